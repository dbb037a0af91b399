"""``guardalloc.pymem``: the PyMem hooks, the public path of
``guardalloc.hooks.pymem``. Importing either gives the same module object."""

import sys

from guardalloc.hooks import pymem as _module

from guardalloc.hooks.pymem import *  # noqa: E402,F401,F403  (what type checkers see)

sys.modules[__name__] = _module
