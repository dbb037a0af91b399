"""Build the C core and the Cython extension modules (metadata: pyproject.toml).

The C core (``guardalloc/_c``: layout, guards, slot core, fault handler) is
one shared library, ``libguardalloc_core``, so that its state (the fault
registry, the pidfd cache) exists once per process; every extension module
links to it through ``$ORIGIN``.

The preloadable malloc library, ``libguardalloc_malloc`` (``_c/malloc.c``,
``heap.c``, ``options.c``), links to the same core library by ``$ORIGIN``
rather than compiling the core in again: in a Python process that also uses
``--numpy`` / ``--pymem`` there is then one fault registry and one handler
for every guarded block. Neither library depends on libpython.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

C_FLAGS = ["-O2", "-Wall", "-Wno-unused-function"]
CORE = "guardalloc.libguardalloc_core"
CORE_SOURCES = ["guardalloc/_c/core.c", "guardalloc/_c/guards.c", "guardalloc/_c/faults.c"]
MALLOC = "guardalloc.libguardalloc_malloc"
MALLOC_SOURCES = ["guardalloc/_c/malloc.c", "guardalloc/_c/heap.c", "guardalloc/_c/options.c"]
HEADERS = ["guardalloc/_c/layout.h", "guardalloc/_c/guards.h", "guardalloc/_c/core.h",
           "guardalloc/_c/faults.h", "guardalloc/_c/classes.h", "guardalloc/_c/heap.h",
           "guardalloc/_c/options.h"]

# One extension per concern.
MODULES = [
    "guardalloc.support",
    "guardalloc.faults",
    "guardalloc.tracebacks",
    "guardalloc.arena",
    "guardalloc.pagemap",
    "guardalloc.pool",
    "guardalloc.pymem",
    "guardalloc._numpy_handler",
]


class BuildCoreFirst(build_ext):
    """Build the core library before the modules that link to it."""

    def build_extensions(self):
        core = [ext for ext in self.extensions if ext.name == CORE]
        modules = [ext for ext in self.extensions if ext.name != CORE]
        self.extensions = core
        super().build_extensions()
        core_file = os.path.basename(self.get_ext_fullpath(CORE))
        core_dir = os.path.dirname(os.path.abspath(self.get_ext_fullpath(CORE)))
        for ext in modules:
            ext.extra_link_args = [f"-L{core_dir}", f"-l:{core_file}", "-Wl,-rpath,$ORIGIN",
                                   *ext.extra_link_args]
        self.extensions = modules
        super().build_extensions()
        self.extensions = core + modules


core_library = Extension(CORE, CORE_SOURCES, extra_compile_args=[*C_FLAGS, "-fvisibility=default"],
                         depends=HEADERS)

# LD_PRELOAD library: exports only the malloc family (and guardalloc_native_*);
# libgcc_s for _Unwind_Backtrace, libdl for dlsym/dladdr on older glibc.
malloc_library = Extension(MALLOC, MALLOC_SOURCES,
                           extra_compile_args=[*C_FLAGS, "-fvisibility=hidden", "-pthread"],
                           extra_link_args=["-lgcc_s", "-ldl", "-pthread"], depends=HEADERS)

extensions = [
    Extension(name, [name.replace(".", "/") + ".pyx"], extra_compile_args=C_FLAGS, depends=HEADERS)
    for name in MODULES
]

setup(
    ext_modules=[core_library, malloc_library, *cythonize(
        extensions,
        compiler_directives={"language_level": 3, "embedsignature": True},
    )],
    cmdclass={"build_ext": BuildCoreFirst},
)
