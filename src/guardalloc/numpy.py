"""``guardalloc.numpy``: the NEP 49 numpy handler, the public path of
``guardalloc.hooks.numpy``. Importing either gives the same module object."""

import sys

from guardalloc.hooks import numpy as _module

from guardalloc.hooks.numpy import *
from guardalloc.hooks.numpy import __all__ as __all__  # noqa: E402,F401,F403  (what type checkers see)

sys.modules[__name__] = _module
