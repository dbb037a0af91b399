"""support(): probes, not version parsing."""

import dataclasses
import sys

import pytest

import guardalloc


def test_support_is_a_frozen_probe_result():
    found = guardalloc.support()
    assert isinstance(found, guardalloc.Support)
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.anonymous = False
    assert found.auto_backend == ("madvise" if found.anonymous else "mprotect")
    assert (found.reason == "") == found.anonymous
    assert guardalloc.support() is found
    assert guardalloc.support(refresh=True) == found


def test_support_on_this_kernel_matches_a_real_guard():
    # Cross-check the probe against a real arena: when the probe says
    # guards work, a madvise arena must build; otherwise it must refuse.
    found = guardalloc.support()
    if found.anonymous:
        with guardalloc.Arena(4096, 2, backend="madvise") as arena:
            assert arena.backend == "madvise"
    else:
        with pytest.raises(guardalloc.GuardUnsupportedError):
            guardalloc.Arena(4096, 2, backend="madvise")


def test_auto_fallback_warns_with_the_reason(monkeypatch):
    support_module = sys.modules["guardalloc.introspect.probe"]
    refused = guardalloc.Support(kernel="6.1.0", anonymous=False, file_shared=False,
                                 process_madvise=False, pagemap_guard_bit=False,
                                 auto_backend="mprotect",
                                 reason="madvise(MADV_GUARD_INSTALL) refused: errno 22: Invalid argument")
    monkeypatch.setattr(support_module, "_cached", refused)
    with pytest.warns(RuntimeWarning, match="errno 22.*falling back to mprotect"):
        arena = guardalloc.Arena(4096, 2)
    with arena:
        assert arena.backend == "mprotect"
    with pytest.raises(guardalloc.GuardUnsupportedError, match="errno 22"):
        guardalloc.Arena(4096, 2, backend="madvise")
