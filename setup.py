"""Build the Cython extension modules (metadata lives in pyproject.toml)."""

import glob
import logging
import os
import shutil

import Cython
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.modified import newer_group

# One extension per concern; hand-written C that a module needs sits in _c/.
MODULES = {
    "guardalloc.support": [],
    "guardalloc.faults": ["guardalloc/_c/faults.c"],
    "guardalloc.arena": [],
    "guardalloc.pagemap": [],
    "guardalloc.pool": [],
    "guardalloc.pymem": [],
    "guardalloc._numpy_handler": [],
}

extensions = [
    Extension(
        name,
        [name.replace(".", "/") + ".pyx", *c_sources],
        extra_compile_args=["-O2", "-Wall", "-Wno-unused-function"],
        # Every header: an editable reinstall reuses a module only when it is
        # newer than all of them (reusing_build_ext).
        depends=sorted(glob.glob("guardalloc/_c/*.h")),
    )
    for name, c_sources in MODULES.items()
]

# Build speed: Cython and the C compiler both run one job per CPU (the
# extensions are independent of one another).
JOBS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class reusing_build_ext(build_ext):
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
            inplace_file = self.get_ext_filename(ext.name)
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
    inputs = [__file__, *glob.glob("guardalloc/*.pxd"), *glob.glob("guardalloc/*.pxi")]
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


setup(
    ext_modules=cythonize(
        [_keep_fresh_c(extension) for extension in extensions],
        nthreads=JOBS if JOBS > 1 else 0,
        compiler_directives={"language_level": 3, "embedsignature": True},
    ),
    cmdclass={"build_ext": reusing_build_ext},
)
