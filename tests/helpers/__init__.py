"""Cython test helpers (``tests/helpers/*.pyx``): extensions that drive
guardalloc's C interfaces from C without the GIL, built on first use against
the imported guardalloc."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import guardalloc

HELPERS = Path(__file__).resolve().parent
PACKAGE_PARENT = str(Path(guardalloc.__file__).resolve().parent.parent)

_BUILD_HELPER = """
import sys
from Cython.Build import cythonize
from setuptools import Extension, setup
name, source, out, package_parent, package_dir = sys.argv[1:]
setup(script_args=["-q", "build_ext", "--build-lib", out, "--build-temp", out + "/tmp"],
      ext_modules=cythonize([Extension(name, [source], include_dirs=[package_dir])],
                            include_path=[package_parent], language_level=3, quiet=True,
                            build_dir=out + "/c"))
"""


def load_helper(name: str):
    """Import the test helper extension ``tests/helpers/NAME.pyx``, building it
    (once per source and guardalloc build) against the imported guardalloc:
    helpers that drive guardalloc's C interfaces from C without the GIL."""
    import hashlib
    import importlib
    import tempfile

    source = HELPERS / f"{name}.pyx"
    package_dir = Path(guardalloc.__file__).resolve().parent
    key = hashlib.sha256(source.read_bytes())
    for pxd in sorted(package_dir.glob("*.pxd")):
        key.update(pxd.read_bytes())
    out = Path(tempfile.gettempdir()) / f"guardalloc-test-helpers-{key.hexdigest()[:16]}"
    if not any(out.glob(f"{name}.*.so")):
        subprocess.run([sys.executable, "-c", _BUILD_HELPER, name, str(source), str(out),
                        PACKAGE_PARENT, str(package_dir)], check=True)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return importlib.import_module(name)


def pool_stress(pool, iterations: int, seed: int, max_nbytes: int = 65536) -> int:
    """Random malloc/calloc/realloc/free_ptr calls through ``pool``'s C
    interface without the GIL; how many checks failed (0 unless it is broken)."""
    return load_helper("pool_stress").pool_stress(pool, iterations, seed, max_nbytes)


def alloc_free_pairs(pool, pairs: int, nbytes: int = 64) -> int:
    """``pairs`` malloc + free_ptr calls through ``pool``'s C interface
    without the GIL; how many failed (0 unless it is broken or full)."""
    return load_helper("pool_stress").alloc_free_pairs(pool, pairs, nbytes)
