"""The Cython test helpers' build cache (tests/helpers): a build is reused
only by the interpreter, Cython and guardalloc build it was made for."""

from __future__ import annotations

import sys
import sysconfig

import helpers
from helpers import helper_cache_key, load_helper


def test_the_helper_is_built_for_this_interpreter():
    module = load_helper("pool_stress")
    assert module.__file__.endswith("pool_stress" + sysconfig.get_config_var("EXT_SUFFIX")), module.__file__


def test_the_cache_key_changes_with_the_interpreter(monkeypatch):
    here = helper_cache_key("pool_stress")
    assert helper_cache_key("pool_stress") == here
    real = sysconfig.get_config_var
    # Another version's (or ABI's) extension suffix: another cache entry, as
    # a 3.11 build left in the temporary directory must not serve 3.13.
    monkeypatch.setattr(sysconfig, "get_config_var",
                        lambda name: ".cpython-399-x86_64-linux-gnu.so" if name == "EXT_SUFFIX" else real(name))
    assert helper_cache_key("pool_stress") != here
    monkeypatch.undo()
    monkeypatch.setattr(sys, "version", sys.version + " (another build)")
    assert helper_cache_key("pool_stress") != here


def test_the_cache_key_changes_with_the_interfaces_it_compiles_against(monkeypatch, tmp_path):
    here = helper_cache_key("pool_stress")
    package = tmp_path / "guardalloc"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "pool.pxd").write_text("# another pool.pxd\n")
    monkeypatch.setattr(helpers.guardalloc, "__file__", str(package / "__init__.py"))
    assert helper_cache_key("pool_stress") != here
