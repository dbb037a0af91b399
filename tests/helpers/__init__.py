"""Cython test helpers (``tests/helpers/*.pyx``): extensions that drive
guardalloc's C interfaces from C without the GIL, built on first use against
the imported guardalloc."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
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


def helper_cache_key(name: str) -> str:
    """The build cache key of the helper ``NAME``: its source, the imported
    guardalloc's .pxd files and C headers (the interfaces it compiles
    against), the Cython version, and the interpreter's ABI (the extension
    suffix names the version and ABI: cpython-311-x86_64-linux-gnu), so that
    a build for one interpreter or one guardalloc is never loaded by another."""
    import hashlib

    import Cython

    package_dir = Path(guardalloc.__file__).resolve().parent
    key = hashlib.sha256((HELPERS / f"{name}.pyx").read_bytes())
    for interface in sorted([*package_dir.rglob("*.pxd"), *package_dir.rglob("*.h")]):
        key.update(str(interface.relative_to(package_dir)).encode() + b"\0" + interface.read_bytes())
    key.update(f"Cython {Cython.__version__}\0{sysconfig.get_config_var('EXT_SUFFIX')}\0{sys.version}".encode())
    return key.hexdigest()[:16]


def load_helper(name: str):
    """Import the test helper extension ``tests/helpers/NAME.pyx``, building it
    (once per source, guardalloc build and interpreter: :func:`helper_cache_key`)
    against the imported guardalloc: helpers that drive guardalloc's C
    interfaces from C without the GIL.

    Raises:
        subprocess.CalledProcessError: the helper did not build.
    """
    import importlib
    import shutil
    import tempfile

    package_dir = Path(guardalloc.__file__).resolve().parent
    out = Path(tempfile.gettempdir()) / f"guardalloc-test-helpers-{helper_cache_key(name)}"
    module = name + sysconfig.get_config_var("EXT_SUFFIX")
    if not (out / module).exists():
        # Built aside and renamed into place: parallel workers (pytest -n)
        # never import a half-written module.
        staging = Path(tempfile.mkdtemp(prefix=f"{out.name}-", dir=out.parent))
        try:
            subprocess.run([sys.executable, "-c", _BUILD_HELPER, name, str(HELPERS / f"{name}.pyx"),
                            str(staging), PACKAGE_PARENT, str(package_dir)], check=True)
            try:
                staging.rename(out)
            except OSError:
                # Another worker's build got there first, or a leftover
                # without the module (an interrupted build) is in the way.
                if not (out / module).exists():
                    shutil.rmtree(out, ignore_errors=True)
                    staging.rename(out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
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
