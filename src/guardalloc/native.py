"""``guardalloc.native``: the preloadable malloc library, the public path of
``guardalloc.hooks.preload``. Importing either gives the same module object."""

import sys

from guardalloc.hooks import preload as _module

from guardalloc.hooks.preload import *
from guardalloc.hooks.preload import __all__ as __all__  # noqa: E402,F401,F403  (what type checkers see)

sys.modules[__name__] = _module
