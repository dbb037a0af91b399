"""guardalloc.options.default_max_bytes: the one default max_bytes of every
pool (Pool, the default pool, the numpy handler, the PyMem hooks): 256 GiB of
slot address space (untouched slots cost no memory), or under strict
overcommit a quarter of RAM between 64 MiB and 1 TiB; in both cases at most
what lets the reservation take a quarter of the address space RLIMIT_AS
leaves, down to a page."""

from __future__ import annotations

import pytest

import guardalloc
import guardalloc.numpy as gnp
import guardalloc.pool
from guardalloc import options, pymem
from conftest import PAGE

GiB, MiB, TiB = 1 << 30, 1 << 20, 1 << 40


def expected(ram: int, left: int | None, guard_pages: int = 1, strict: bool = False) -> int:
    """The documented policy, written out again."""
    size = min(max(ram // 4, 64 * MiB), TiB) if strict else 256 * GiB
    if left is not None:
        # The reservation, max_bytes * (1 + guard_pages) plus a guard page per
        # arena (at most one arena per page), in a quarter of what is left.
        size = min(size, left // 4 // (1 + 2 * guard_pages))
    return max(PAGE, size // PAGE * PAGE)


@pytest.fixture
def machine(monkeypatch):
    """Set the RAM, the address space left and the overcommit policy that
    the policy sees."""
    def set_machine(ram: int, left: int | None, strict: bool = False) -> None:
        monkeypatch.setattr(options, "_physical_memory", lambda: ram)
        monkeypatch.setattr(options, "address_space_left", lambda: left)
        monkeypatch.setattr(options, "strict_overcommit", lambda: strict)
    return set_machine


@pytest.mark.parametrize("ram, left, guard_pages, strict, result", [
    (16 * GiB, None, 1, False, 256 * GiB),            # address space, not RAM
    (100 * MiB, None, 5, False, 256 * GiB),           # whatever the RAM and guard pages
    (16 * GiB, 12 * GiB, 1, False, GiB),              # a quarter of 12 GiB holds a 1 GiB pool
    (16 * GiB, 12 * GiB, 3, False, 3 * GiB // 7 // PAGE * PAGE),
    (16 * GiB, 0, 1, False, PAGE),                    # nothing left: one page
    (16 * GiB, 1000 * TiB, 1, False, 256 * GiB),      # a generous limit changes nothing
    (16 * GiB, None, 1, True, 4 * GiB),               # strict overcommit: a quarter of RAM
    (16 * GiB, None, 5, True, 4 * GiB),               # guard pages cost address space only
    (100 * MiB, None, 1, True, 64 * MiB),             # at least 64 MiB ...
    (8 * TiB, None, 1, True, TiB),                    # ... at most 1 TiB
    (16 * GiB, 12 * GiB, 1, True, GiB),
    (100 * MiB, 120 * MiB, 1, True, 10 * MiB),        # the limit beats the 64 MiB floor
    (16 * GiB, 1000 * TiB, 1, True, 4 * GiB),
])
def test_the_policy(machine, ram, left, guard_pages, strict, result):
    machine(ram, left, strict)
    assert options.default_max_bytes(guard_pages) == result == expected(ram, left, guard_pages, strict)


@pytest.mark.parametrize("content, strict", [("2\n", True), ("0\n", False), ("1\n", False), (None, False)])
def test_strict_overcommit_reads_the_kernel_setting(monkeypatch, tmp_path, content, strict):
    path = tmp_path / "overcommit_memory"
    if content is not None:
        path.write_text(content)
    monkeypatch.setattr(options, "_OVERCOMMIT_PATH", str(path))
    assert options.strict_overcommit() is strict


def test_one_function_behind_every_name():
    assert pymem.default_max_bytes is options.default_max_bytes
    assert guardalloc.pool.default_max_bytes is options.default_max_bytes
    assert guardalloc.pool.DEFAULT_MAX_BYTES == options.MAX_DEFAULT_MAX_BYTES == TiB


def test_pools_and_the_numpy_handler_take_it(machine):
    machine(16 * GiB, 12 * GiB)
    with guardalloc.Pool() as pool, guardalloc.Pool(guard_pages=3) as wide:
        assert pool.max_bytes == GiB
        assert wide.max_bytes == options.default_max_bytes(3) < GiB
    made = gnp.handler(guard_pages=2, keep_bytes=7 * PAGE)      # options of its own: a new pool
    assert made.pool_stats().max_bytes == options.default_max_bytes(2) == 12 * GiB // 4 // 5 // PAGE * PAGE


@pytest.mark.parametrize("value, error", [(0, ValueError), ("1", TypeError), (True, TypeError)])
def test_guard_pages_is_checked(value, error):
    with pytest.raises(error, match="guard_pages"):
        options.default_max_bytes(value)


def test_under_a_lowered_rlimit_as_every_default_pool_fits(child):
    """In a child with RLIMIT_AS 3 GiB above what it maps: the default is the
    policy's for what is left, and each default pool (Pool, the default pool,
    the PyMem hooks' pool, the numpy handler's) reserves at most a quarter of
    the address space left when it is made."""
    proc = child("""
        import os, resource
        import numpy as np
        import guardalloc, guardalloc.numpy as gnp
        from guardalloc import options, pymem
        from test_options import expected
        strict = options.strict_overcommit()

        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        def vm_size():
            for line in open("/proc/self/status"):
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
        soft = vm_size() + (3 << 30)
        resource.setrlimit(resource.RLIMIT_AS, (soft, resource.RLIM_INFINITY))
        left = options.address_space_left()
        assert abs(soft - vm_size() - left) < (64 << 20), (soft, left)
        made = options.default_max_bytes()
        # VmSize may move by an arena or two of Python's between the reads.
        assert abs(made - expected(ram, left, strict=strict)) <= (1 << 20), (made, expected(ram, left, strict=strict))
        assert made <= (3 << 30) // 4 // 3

        def check(label, make):
            # make() makes a default pool and returns it (or its stats).
            before = options.address_space_left()
            pool = make()
            assert pool.reserved <= before // 4, (label, pool.reserved, before)
            assert abs(pool.max_bytes - expected(ram, before, strict=strict)) <= (1 << 20), (label, pool.max_bytes)
            print(label, "fits")

        check("Pool", guardalloc.Pool)
        check("default pool", lambda: guardalloc.alloc(100) and guardalloc.default_pool())
        check("pymem", lambda: pymem.install(sample_rate=1000) or pymem.pool())
        pymem.uninstall()
        check("numpy", lambda: gnp.install().pool_stats())
        a = np.ones(1000)
        print("numpy guarded", gnp.is_guarded(a), a.sum())
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["Pool fits", "default pool fits", "pymem fits", "numpy fits",
                                        "numpy guarded True 1000.0"]


def test_with_almost_nothing_left_the_default_is_a_page_or_so(child):
    proc = child("""
        import resource
        from guardalloc import options
        import guardalloc
        vm = int([l for l in open("/proc/self/status") if l.startswith("VmSize:")][0].split()[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (16 << 20), resource.RLIM_INFINITY))
        made = options.default_max_bytes()
        assert options.PAGE_SIZE <= made <= (16 << 20) // 4 // 3, made
        with guardalloc.Pool() as pool:
            pool.alloc(100).free()
        print("ok", made)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok ")


def test_the_default_pool_serves_what_malloc_would(child):
    """100,000 live buffers of 1 B to 1 MiB (about 50 GB of slots, one page
    of each touched): the default pool serves them all, as bytearray would,
    since untouched slots cost no memory."""
    if options.strict_overcommit():
        pytest.skip("vm.overcommit_memory=2: the default is a share of RAM there")
    proc = child("""
        import random
        import guardalloc
        rng = random.Random(22)
        live, slots = [], 0
        for _ in range(100_000):
            nbytes = rng.randint(1, 1 << 20)
            buf = guardalloc.alloc(nbytes)
            buf[nbytes - 1] = 1
            live.append(buf)
            slots += guardalloc.Pool.slot_size_for(nbytes)
        print(len(live), slots > (40 << 30))
    """, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["100000", "True"]


def test_a_pool_at_its_limit_says_what_to_set():
    with guardalloc.Pool(max_bytes=4 * PAGE) as pool:
        held = [pool.alloc(PAGE) for _ in range(4)]
        with pytest.raises(MemoryError, match=r"reached max_bytes.*Pool\(max_bytes=\.\.\.\).*"
                                              r"guardalloc\.configure\(max_bytes=\.\.\.\)"):
            pool.alloc(PAGE)
        for buf in held:
            buf.free()
    with guardalloc.Pool(max_arenas=1) as pool:
        held = [pool.alloc(2 << 20)]
        with pytest.raises(MemoryError, match=r"reached max_arenas.*Pool\(max_arenas=\.\.\.\).*"
                                              r"guardalloc\.configure\(max_arenas=\.\.\.\)"):
            pool.alloc(2 << 20)
        held[0].free()
