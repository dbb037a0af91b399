"""Every stats() returns a frozen dataclass of guardalloc.stats that is also a
read-only mapping: attribute and key access agree, dict(s) is the dict that
stats() used to return (same keys, same order, same value types), and the
object can be neither changed nor hashed."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest

import guardalloc
import guardalloc.numpy as gnp
from guardalloc import native, pymem
from guardalloc.stats import ArenaStats, HandlerStats, NativeStats, PoolStats, PymemStats

# The keys (in order) and value types of the dicts stats() returned before.
ARENA_KEYS = {"slots": int, "live": int, "free": int, "quarantined": int, "retired": int,
              "slot_size": int, "guard_pages": int, "backend": str, "batched": bool,
              "guard_syscalls": int, "uaf_syscalls": int, "allocations": int,
              "faults_continued": int, "size": int, "uaf": bool, "quarantine": int}
POOL_KEYS = {"arenas": int, "live": int, "live_bytes": int, "allocations": int, "frees": int,
             "corruptions": int, "refused": int, "mapped_bytes": int, "address_space": int,
             "reserved": int, "max_bytes": int, "max_arenas": int, "kept_bytes": int, "classes": dict,
             "refused_growing": int}
HANDLER_KEYS = {"malloc": int, "calloc": int, "realloc": int, "free": int, "fallback": int,
                "failed": int, "bad_free": int, "corrupt": int, "oversize": int,
                "largest_oversize": int, "oversize_live": int}
PYMEM_KEYS = {"state": str, "sample_rate": int, "random": bool, "raw": dict, "mem": dict, "obj": dict}
PYMEM_POOL_KEYS = {"live": int, "refused": int, "arenas": int, "refused_growing": int}
NATIVE_KEYS = {"allocations": int, "frees": int, "live": int, "refused": int, "arenas": int,
               "mapped_bytes": int}


def check_stats(s, cls, keys: dict) -> None:
    """s is a frozen cls whose mapping face is the old dict, key for key."""
    assert type(s) is cls and dataclasses.is_dataclass(s)
    assert list(s) == list(s.keys()) == list(keys) and len(s) == len(keys)
    for name, kind in keys.items():
        assert type(s[name]) is kind, (name, s[name])
        assert getattr(s, name) is s[name] and name in s and s.get(name) is s[name]
    old = {name: s[name] for name in keys}
    assert dict(s) == old and s == old and old == s and dict(s.items()) == old
    assert list(s.values()) == list(old.values())
    assert {**s} == old
    assert json.loads(json.dumps(dict(s))) == json.loads(json.dumps(old))
    assert "no_such_key" not in s and s.get("no_such_key") is None
    with pytest.raises(KeyError):
        s["no_such_key"]
    with pytest.raises(KeyError):
        s[0]
    first = next(iter(keys))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(s, first, 1)
    with pytest.raises(TypeError):
        s[first] = 1
    with pytest.raises(TypeError):
        del s[first]
    with pytest.raises(TypeError):
        hash(s)
    assert repr(s).startswith(f"{cls.__name__}({first}=")
    assert pickle.loads(pickle.dumps(s)) == s
    assert dataclasses.replace(s) == s and dataclasses.asdict(s).items() >= old.items()


def test_arena_stats():
    with guardalloc.Arena(4096, 8, uaf=True, quarantine=2) as arena:
        arena.alloc(10).free()
        buf = arena.alloc(10)
        s = arena.stats()
        check_stats(s, ArenaStats, ARENA_KEYS)
        assert (s.live, s.quarantined, s.allocations, s.quarantine, s.uaf) == (1, 1, 2, 2, True)
        assert s.free == s["free"] == 6
        buf.free()
        assert arena.stats() != s       # a snapshot: later calls see the free
        assert arena.stats().live == 0 and s.live == 1


def test_pool_stats_and_the_handlers():
    with guardalloc.Pool() as pool:
        buf = pool.alloc(100)
        s = pool.stats()
        check_stats(s, PoolStats, POOL_KEYS)
        assert s.live == 1 and s.live_bytes == 100
        assert s.classes == s["classes"] == {4096: {"arenas": 1, "slots": s.classes[4096]["slots"],
                                                    "exhausted": False}}
        s.classes.clear()               # a fresh dict per call: nobody else sees it
        assert pool.stats().classes
        buf.free()
    made = gnp.handler(fallback=True)
    check_stats(made.stats(), HandlerStats, HANDLER_KEYS)
    check_stats(made.pool_stats(), PoolStats, POOL_KEYS)
    assert made.pool_stats().max_bytes == guardalloc.options.default_max_bytes()


def test_native_stats_fields():
    s = NativeStats(*range(6))
    check_stats(s, NativeStats, NATIVE_KEYS)
    assert s.mapped_bytes == s["mapped_bytes"] == 5
    assert native.stats() is None       # no preloaded library in this process


def test_pymem_stats_without_a_pool_leave_the_pool_keys_out(child):
    proc = child("""
        import json
        from guardalloc import pymem
        from test_stats import PYMEM_KEYS, PYMEM_POOL_KEYS, PymemStats, check_stats
        s = pymem.stats()
        check_stats(s, PymemStats, PYMEM_KEYS)
        assert s.live is s.refused is s.arenas is None and "live" not in s
        pymem.install(sample_rate=1, domains=("obj",))
        junk = [str(i) * 20 for i in range(100)]
        s = pymem.stats()
        pymem.uninstall()
        check_stats(s, PymemStats, {**PYMEM_KEYS, **PYMEM_POOL_KEYS})
        assert s.state == "sampling" and s.obj["hooked"] is True and s.obj["sampled"] > 0
        assert s.live == s["live"] > 0 and s.arenas == s["arenas"] >= 1
        print(json.dumps(dict(s)))
    """)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["state"] == "sampling"


def test_stats_classes_are_the_documented_home():
    import guardalloc.stats as home

    assert home.__all__ == ["ArenaStats", "PoolStats", "HandlerStats", "PymemStats", "NativeStats"]
    for cls in (ArenaStats, PoolStats, HandlerStats, PymemStats, NativeStats):
        assert cls.__module__ == "guardalloc.stats"
        assert dataclasses.fields(cls) and cls.__dataclass_params__.frozen
    assert pymem.stats.__doc__ and "PymemStats" in pymem.stats.__doc__
