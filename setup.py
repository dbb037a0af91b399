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

import glob
import logging
import os
import shutil

import Cython
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.modified import newer_group

C_FLAGS = ["-O2", "-Wall", "-Wno-unused-function"]
CORE = "guardalloc.libguardalloc_core"
CORE_SOURCES = ["src/guardalloc/_c/core.c", "src/guardalloc/_c/guards.c", "src/guardalloc/_c/faults.c",
                "src/guardalloc/_c/options.c", "src/guardalloc/_c/stacks.c",
                "src/guardalloc/_c/modules.c", "src/guardalloc/_c/sigunwind.c", "src/guardalloc/_c/altstack.c"]
MALLOC = "guardalloc.libguardalloc_malloc"
MALLOC_SOURCES = ["src/guardalloc/_c/malloc.c", "src/guardalloc/_c/heap.c"]
# Every header: an editable reinstall reuses a module only when it is newer
# than all of them (ReusingBuildExt).
HEADERS = sorted(glob.glob("src/guardalloc/_c/*.h"))

# One extension per concern.
MODULES = [
    "guardalloc.introspect.probe",
    "guardalloc.faults",
    "guardalloc.tracebacks",
    "guardalloc.arena",
    "guardalloc.introspect.pagemap",
    "guardalloc.pool",
    "guardalloc.hooks.pymem",
    "guardalloc.hooks._numpy_handler",
]


# Build speed: Cython and the C compiler both run one job per CPU (the
# extensions are independent of one another).
JOBS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class ReusingBuildExt(build_ext):
    """build_ext that compiles the modules in parallel and, for an editable
    install, reuses the in-place module when it is newer than all its sources.

    pip builds an editable install in a fresh temporary directory each time,
    so the stock command recompiles every module even when nothing changed
    (``pip install -e .`` then ``pip install -e '.[test]'`` compiled twice).
    The in-place ``.so`` carries the interpreter's ABI tag in its name, so it
    is only reused by the interpreter it was built for.
    """

    def finalize_options(self):
        # One compile job per CPU unless -j/--parallel says otherwise. (Set
        # here, not in setup(options=...): an editable build re-creates the
        # command and drops those.)
        super().finalize_options()
        if self.parallel is None:
            self.parallel = JOBS

    def build_extension(self, ext):
        if self.editable_mode and not self.force:
            # The module's path in the source tree, and where this build puts it.
            package, _, name = ext.name.rpartition(".")
            package_dir = self.get_finalized_command("build_py").get_package_dir(package)
            inplace_file = os.path.join(package_dir, os.path.basename(self.get_ext_filename(ext.name)))
            regular_file = self.get_ext_fullpath(ext.name)
            sources = [*ext.sources, *ext.depends]
            if os.path.exists(inplace_file) and not newer_group(sources, inplace_file, "newer"):
                os.makedirs(os.path.dirname(regular_file), exist_ok=True)
                shutil.copy2(inplace_file, regular_file)
                self.announce(f"reusing {inplace_file} (newer than its sources)", level=logging.INFO)
                return
        super().build_extension(ext)


def _keep_fresh_c(extension):
    """Compile the C that cythonize generated last time when it is newer than
    every project file that shapes it (and came from this Cython version),
    instead of regenerating it.

    cythonize also counts Cython's own bundled .pxd files as dependencies, and
    pip installs Cython afresh for every isolated build, so it regenerated
    every module (and build_ext recompiled it) on each ``pip install -e``.
    """
    inputs = [__file__, *glob.glob("src/guardalloc/**/*.pxd", recursive=True)]
    sources = []
    for source in extension.sources:
        generated = source[:-len(".pyx")] + ".c"
        if source.endswith(".pyx") and os.path.exists(generated):
            with open(generated, encoding="utf-8", errors="replace") as f:
                made_by = f.readline()
            if f"Cython {Cython.__version__} " in made_by and not newer_group([source, *inputs], generated):
                source = generated
        sources.append(source)
    extension.sources = sources
    return extension


class BuildCoreFirst(ReusingBuildExt):
    """Build the core library before the modules that link to it."""

    def build_extensions(self):
        core = [ext for ext in self.extensions if ext.name == CORE]
        modules = [ext for ext in self.extensions if ext.name != CORE]
        self.extensions = core
        super().build_extensions()
        core_file = os.path.basename(self.get_ext_fullpath(CORE))
        core_dir = os.path.dirname(os.path.abspath(self.get_ext_fullpath(CORE)))
        for ext in modules:
            # $ORIGIN/.. for a module in a subpackage (guardalloc.hooks.pymem).
            origin = "/".join(["$ORIGIN", *[".."] * (ext.name.count(".") - 1)])
            ext.extra_link_args = [f"-L{core_dir}", f"-l:{core_file}", f"-Wl,-rpath,{origin}",
                                   *ext.extra_link_args]
        self.extensions = modules
        super().build_extensions()
        self.extensions = core + modules


# libgcc_s for _Unwind_Backtrace (stacks.c), libdl for dladdr on older glibc.
core_library = Extension(CORE, CORE_SOURCES, extra_compile_args=[*C_FLAGS, "-fvisibility=default"],
                         extra_link_args=["-lgcc_s", "-ldl"], depends=HEADERS)

# LD_PRELOAD library: exports only the malloc family (and guardalloc_native_*);
# libdl for dlsym on older glibc.
malloc_library = Extension(MALLOC, MALLOC_SOURCES,
                           extra_compile_args=[*C_FLAGS, "-fvisibility=hidden", "-pthread"],
                           extra_link_args=["-ldl", "-pthread"], depends=HEADERS)

extensions = [
    # include_dirs: "_c/layout.h" as _core.pxd names it, from modules in subpackages too.
    Extension(name, ["src/" + name.replace(".", "/") + ".pyx"], include_dirs=["src/guardalloc"],
              extra_compile_args=C_FLAGS, depends=HEADERS)
    for name in MODULES
]

setup(
    ext_modules=[core_library, malloc_library, *cythonize(
        [_keep_fresh_c(extension) for extension in extensions],
        nthreads=JOBS if JOBS > 1 else 0,
        include_path=["src"],
        compiler_directives={"language_level": 3, "embedsignature": True},
    )],
    cmdclass={"build_ext": BuildCoreFirst},
)
