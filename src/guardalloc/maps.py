"""``guardalloc.maps``: guard pages and VMAs of a process, the public path of
``guardalloc.introspect.maps``. Importing either gives the same module object."""

import sys

from guardalloc.introspect import maps as _module

from guardalloc.introspect.maps import *
from guardalloc.introspect.maps import __all__ as __all__  # noqa: E402,F401,F403  (what type checkers see)

sys.modules[__name__] = _module
