"""Build the Cython extension modules (metadata lives in pyproject.toml)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

# One extension per concern; hand-written C that a module needs sits in _c/.
MODULES = {
    "guardalloc.support": [],
    "guardalloc.faults": ["guardalloc/_c/faults.c", "guardalloc/_c/options.c"],
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
        depends=["guardalloc/_c/arena.h", "guardalloc/_c/faults.h", "guardalloc/_c/options.h"],
    )
    for name, c_sources in MODULES.items()
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3, "embedsignature": True},
    ),
)
