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

import configparser
import glob
import logging
import os
import re
import shutil
import subprocess
import sys
import sysconfig

# Arena's bookkeeping relies on the GIL, and nothing has run on a
# free-threaded build yet (docs/design.md, "Free-threaded CPython").
if sysconfig.get_config_var("Py_GIL_DISABLED"):
    sys.exit("guardalloc does not support free-threaded CPython (3.13t, 3.14t) yet: build and use it "
             "with a regular CPython (docs/design.md, \"Free-threaded CPython\", says what is missing).")

import Cython
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.modified import newer_group

C_FLAGS = ["-O2", "-Wall", "-Wno-unused-function"]
CORE = "guardalloc.libguardalloc_core"
C_DIR = "src/guardalloc/_c"
# Each library's C sources, listed once (tests/test_c_core.py reads it too).
# Both libraries depend on it, which also puts it in the sdist.
SOURCES_LIST = f"{C_DIR}/sources.txt"


def _library_sources(library):
    """The C sources of one library in SOURCES_LIST (its [library] section)."""
    parser = configparser.ConfigParser(allow_no_value=True, delimiters=("=",))
    parser.optionxform = str
    with open(SOURCES_LIST, encoding="utf-8") as f:
        parser.read_file(f)
    return [f"{C_DIR}/{name}" for name in parser[library]]


CORE_SOURCES = _library_sources("libguardalloc_core")
MALLOC = "guardalloc.libguardalloc_malloc"
MALLOC_SOURCES = _library_sources("libguardalloc_malloc")
# Where a quoted #include, a `cdef extern from "..."` or a cimport is looked
# up besides the including file's directory (cythonize's include_path).
INCLUDE_DIRS = ["src", "src/guardalloc"]
_C_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)
_CYTHON_INCLUDE = re.compile(r'^[ \t]*include[ \t]+"([^"]+)"', re.M)   # a .pxi, compiled in
_EXTERN_FROM = re.compile(r'^[ \t]*cdef[ \t]+extern[ \t]+from[ \t]+"([^"<>]+)"', re.M)
_CIMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+cimport[ \t]+(\([^)]*\)|[^\n#]*)"
                      r"|cimport[ \t]+([\w.]+))", re.M)


def _find(name, directory):
    """The project file `name` refers to from a file in directory, or None
    (a system or Python header, a Cython-bundled .pxd)."""
    for base in (directory, *INCLUDE_DIRS):
        path = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(path):
            return path
    return None


def _referenced(path):
    """The project files that path uses directly: the headers a C file
    includes; the headers a .pyx/.pxd/.pxi declares from, the .pxd files it
    cimports and the .pxi files it includes (and a .pyx its own .pxd)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    directory = os.path.dirname(path)
    if path.endswith((".c", ".h")):
        names = _C_INCLUDE.findall(text)
    else:
        names = (_EXTERN_FROM.findall(text) + _C_INCLUDE.findall(text)   # and verbatim C blocks
                 + _CYTHON_INCLUDE.findall(text))
        for package, imported, module in _CIMPORT.findall(text):
            # "from a.b cimport c": a/b.pxd, or a/b/c.pxd when c is a module;
            # a relative package is looked up from this file's directory.
            package = package.lstrip(".").replace(".", "/")
            dotted = [module.replace(".", "/")] if module else [package] * bool(package) + [
                os.path.join(package, name) for name in re.findall(r"\w+", imported)]
            names += [name + ".pxd" for name in dotted]
        if path.endswith(".pyx"):
            names.append(os.path.basename(path)[:-len(".pyx")] + ".pxd")
    found = (_find(name, directory) for name in names)
    return {p for p in found if p is not None}


def depends(*sources):
    """Every project header and .pxd that sources use, transitively: the files
    whose change must rebuild the module or library built from them."""
    seen, todo = set(), list(sources)
    while todo:
        for path in _referenced(todo.pop()):
            if path not in seen:
                seen.add(path)
                todo.append(path)
    return sorted(seen - set(sources))


# One extension per concern.
MODULES = [
    "guardalloc.introspect.probe",
    "guardalloc.faults",
    "guardalloc.pyframes",
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
    inputs = [__file__, *glob.glob("src/guardalloc/**/*.pxd", recursive=True),
              *glob.glob("src/guardalloc/**/*.pxi", recursive=True)]
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
    """Build the core library before the modules that link to it; link
    every library with no run path but its own ``$ORIGIN`` ones."""

    def build_extensions(self):
        # An interpreter built with --enable-shared and an rpath (pyenv's)
        # puts -Wl,-rpath,<its lib directory> in LDSHARED. Nothing here
        # links libpython, and a wheel would carry the build machine's path.
        self.compiler.linker_so = [arg for arg in self.compiler.linker_so
                                   if not arg.startswith(("-Wl,-rpath,/", "-Wl,-rpath=/", "-Wl,-R/"))]
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




def _libunwind():
    """(compile flags, link flags) for libunwind found by pkg-config, or None
    with one warning: stack capture then falls back to libgcc's unwinder,
    about 100 times slower a frame (docs/design.md, "Stack capture")."""
    pkg_config = shutil.which(os.environ.get("PKG_CONFIG", "pkg-config"))
    try:
        if pkg_config is not None:
            cflags, libs = (subprocess.run([pkg_config, flag, "libunwind"], capture_output=True, text=True,
                                           check=True).stdout.split() for flag in ("--cflags", "--libs"))
            return [*cflags, "-DGA_HAVE_LIBUNWIND"], libs
    except subprocess.CalledProcessError:
        pass
    print("WARNING: guardalloc: libunwind not found by pkg-config (Debian: apt-get install libunwind-dev); "
          "native stacks use libgcc's slower unwinder", file=sys.stderr)
    return None


UNWIND_CFLAGS, UNWIND_LIBS = _libunwind() or ([], [])
# libunwind (or libgcc_s) for the stack capture (stacks.c), libdl for dladdr on older glibc.
core_library = Extension(CORE, CORE_SOURCES, extra_compile_args=[*C_FLAGS, "-fvisibility=default", *UNWIND_CFLAGS],
                         extra_link_args=[*UNWIND_LIBS, "-lgcc_s", "-ldl"],
                         depends=[*depends(*CORE_SOURCES), SOURCES_LIST])

# LD_PRELOAD library: exports only the malloc family (and guardalloc_native_*);
# libdl for dlsym on older glibc.
malloc_library = Extension(MALLOC, MALLOC_SOURCES,
                           extra_compile_args=[*C_FLAGS, "-fvisibility=hidden", "-pthread"],
                           extra_link_args=["-ldl", "-pthread"],
                           depends=[*depends(*MALLOC_SOURCES), SOURCES_LIST])

extensions = [
    # include_dirs: "_c/layout.h" as _core.pxd names it, from modules in subpackages too.
    Extension(name, [source], include_dirs=["src/guardalloc"], extra_compile_args=C_FLAGS,
              depends=depends(source))
    for name in MODULES
    for source in ["src/" + name.replace(".", "/") + ".pyx"]
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
