# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Guarding the interpreter's own allocations: GWP-ASan for Python.

:func:`install` wraps the allocators of the RAW, MEM and OBJ domains
(``PyMem_GetAllocator`` / ``PyMem_SetAllocator``, the only supported way to
hook after startup). One request in ``sample_rate`` goes to a guarded slot of
a dedicated :class:`~guardalloc.pool.Pool`; every other request, and every
pointer the pool does not own, goes to the allocator that was there before.
An object that C code overflows then hits a guard page, and the fault
reporter explains it.

The hooks never run Python code and never wait for the GIL (the RAW
domain has none): the pool is used through its C interface under its own mutex
and is grown with ``grow="pending"``: the main thread adds an arena at its
next safe point, asked when a class is three quarters used, so that its
next arena is usually ready before it fills up. A MEM or OBJ request
(their callers hold the GIL) that finds its class full all the same has
the pool add the arena at once, without running Python code, with the
cyclic collector paused and the caller's exception kept; its nested
requests are forwarded meanwhile. A RAW request that finds its class full
is forwarded and counted (``refused_growing`` in :func:`stats`, and a
note at exit under ``sample_rate=1``). With
``sample_rate=1`` install() also makes an arena for every size class up to
``PREPARED_MAX_SLOT`` (untouched slots: address space, no memory), so that
the first block of every size is guarded too.

Sampling is deterministic by default: exactly every ``sample_rate``-th
request of each domain in each thread, counted from :func:`install`, so that
a single-threaded program guards the same allocations on every run. With
``random=True`` each request is guarded with probability ``1/sample_rate``
(a per-thread xorshift generator; ``seed`` makes it repeatable), which
catches bugs whose allocations fall into a fixed stride.
"""

import atexit
import os
import threading

from libc.stdint cimport int64_t, uint64_t, uintptr_t
from libc.stdlib cimport abort
from libc.string cimport memcpy

from cpython.ref cimport Py_INCREF

from guardalloc._core cimport (
    GA_ERR_CORRUPT, GA_ERR_SYSCALL, GA_OK,
    ga_arena_t, ga_damage_t, ga_report_free, ga_slot_of, ga_stack_capture, ga_stack_t, ga_stacks_skip_library,
)
from guardalloc.pool cimport GROW_NEVER, GROW_PENDING, Pool

from guardalloc.errors import AddressSpaceError
from guardalloc.hooks.preload import python_alignment_refusal
# default_max_bytes: the one policy every pool's default follows (public here too).
from guardalloc.options import check_bool, check_int, default_max_bytes
from guardalloc.stats import PymemStats
from guardalloc.pool import Pool as _PoolClass

cdef extern from "Python.h":
    ctypedef enum PyMemAllocatorDomain:
        PYMEM_DOMAIN_RAW
        PYMEM_DOMAIN_MEM
        PYMEM_DOMAIN_OBJ
    ctypedef struct PyMemAllocatorEx:
        void *ctx
        void *(*malloc)(void *ctx, size_t size) noexcept nogil
        void *(*calloc)(void *ctx, size_t nelem, size_t elsize) noexcept nogil
        void *(*realloc)(void *ctx, void *ptr, size_t new_size) noexcept nogil
        void (*free)(void *ctx, void *ptr) noexcept nogil
    void PyMem_GetAllocator(PyMemAllocatorDomain domain, PyMemAllocatorEx *allocator)
    void PyMem_SetAllocator(PyMemAllocatorDomain domain, PyMemAllocatorEx *allocator)
    int Py_AddPendingCall(int (*func)(void *) noexcept, void *arg) nogil

cdef extern from *:
    """
    #include <stdint.h>
    static __thread uint64_t ga_pymem_rng, ga_pymem_rng_generation;
    static uint64_t ga_pymem_threads;   /* threads seeded in this generation */
    /* One xorshift64 generator per thread, seeded from the run's seed and
     * the order in which threads first draw (repeatable for one thread). */
    static inline uint64_t ga_pymem_random(uint64_t seed, uint64_t generation) {
        uint64_t x = ga_pymem_rng;
        if (ga_pymem_rng_generation != generation) {
            uint64_t t = __atomic_add_fetch(&ga_pymem_threads, 1, __ATOMIC_RELAXED);
            x = ((seed + t * 0x9E3779B97F4A7C15ULL) * 0xBF58476D1CE4E5B9ULL) | 1;
            ga_pymem_rng_generation = generation;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ga_pymem_rng = x;
        return x;
    }
    static inline void ga_pymem_new_generation(void) {
        __atomic_store_n(&ga_pymem_threads, 0, __ATOMIC_RELAXED);
    }
    /* Deterministic sampling: one countdown per domain, read and written
     * with relaxed atomics but no read-modify-write: no lock prefix and no
     * division on the path that every allocation takes. Threads racing on
     * it may lose a tick (the stride is then a little longer); a single
     * thread sees exactly every rate-th request. */
    static int64_t ga_pymem_countdown[3];
    static inline int ga_pymem_tick(int domain, int64_t rate) {
        int64_t left = __atomic_load_n(&ga_pymem_countdown[domain], __ATOMIC_RELAXED) - 1;
        if (left > 0) {
            __atomic_store_n(&ga_pymem_countdown[domain], left, __ATOMIC_RELAXED);
            return 0;
        }
        __atomic_store_n(&ga_pymem_countdown[domain], rate, __ATOMIC_RELAXED);
        return 1;
    }
    static inline void ga_pymem_reset_countdowns(int64_t rate) {
        int i;
        for (i = 0; i < 3; i++)
            __atomic_store_n(&ga_pymem_countdown[i], rate, __ATOMIC_RELAXED);
    }
    static inline uint64_t ga_atomic_inc(uint64_t *p) {
        return __atomic_add_fetch(p, 1, __ATOMIC_RELAXED);
    }
    static inline uint64_t ga_atomic_load(uint64_t *p) {
        return __atomic_load_n(p, __ATOMIC_RELAXED);
    }
    """
    uint64_t ga_atomic_inc(uint64_t *p) nogil
    uint64_t ga_atomic_load(uint64_t *p) nogil
    uint64_t ga_pymem_random(uint64_t seed, uint64_t generation) nogil
    void ga_pymem_new_generation() nogil
    bint ga_pymem_tick(int domain, int64_t rate) nogil
    void ga_pymem_reset_countdowns(int64_t rate) nogil


cdef struct domain_t:
    PyMemAllocatorEx saved   # what was installed before us
    PyMemAllocatorEx hook    # ours (ctx points back here)
    int domain
    bint hooked              # our hook is installed in this domain
    bint sampling            # new requests may be guarded
    uint64_t sampled         # requests served by the pool


DOMAIN_NAMES = ("raw", "mem", "obj")
cdef domain_t _domains[3]
cdef void *_pool_ptr = NULL          # borrowed: _pool holds it
# The pool's reserved range, copied here so that the free path (every free
# of the process) tests it inline; the pymem pool is never closed.
cdef const char *_pool_low = NULL
cdef const char *_pool_high = NULL
cdef Pool _pool = None
cdef tuple _pool_options = None      # (max_bytes, alignment, uaf, guard_pages, native_stacks)
cdef uint64_t _rate = 1
cdef bint _random = False
cdef uint64_t _seed = 0
cdef uint64_t _generation = 0       # bumped by install(): countdowns restart
cdef bint _draining = False          # uninstalled, but guarded blocks live
cdef bint _finish_scheduled = False
_lock = threading.Lock()
# install()'s rate, and that of run --pymem and pytest --guardalloc when no
# RATE is given: the one spelling of it.
DEFAULT_SAMPLE_RATE = 5000
# Under sample_rate=1, install() gives every size class up to this slot size
# an arena, while they take at most PREPARED_SHARE of max_bytes.
PREPARED_MAX_SLOT = 16 << 20
PREPARED_SHARE = 4
# Most objects fit in a page or two: at other rates, only those classes.
PREPARED_SMALL_SLOT = 32768


# ---------------------------------------------------------------------------
# The hooks (no GIL in the RAW domain, no Python anywhere)

# Native stacks start at the hooks' caller (PyMem_Malloc...): this module's
# frames are left out.
ga_stacks_skip_library(<const void *>_hook_malloc)


cdef inline bint _should_sample(domain_t *d) noexcept nogil:
    if not d.sampling:
        return False
    if _rate == 1:
        return True
    if _random:
        return ga_pymem_random(_seed, _generation) % _rate == 0
    return ga_pymem_tick(d.domain, <int64_t>_rate)


cdef inline bint _in_pool(const void *ptr) noexcept nogil:
    return _pool_low <= <const char *>ptr < _pool_high


cdef void *_hook_malloc(void *ctx, size_t size) noexcept nogil:
    cdef domain_t *d = <domain_t *>ctx
    cdef void *p
    if _should_sample(d):
        p = (<Pool>_pool_ptr).malloc(size, d.domain != PYMEM_DOMAIN_RAW)
        if p != NULL:
            ga_atomic_inc(&d.sampled)
            return p
    return d.saved.malloc(d.saved.ctx, size)


cdef void *_hook_calloc(void *ctx, size_t nelem, size_t elsize) noexcept nogil:
    cdef domain_t *d = <domain_t *>ctx
    cdef void *p
    if _should_sample(d):
        p = (<Pool>_pool_ptr).calloc(nelem, elsize, d.domain != PYMEM_DOMAIN_RAW)
        if p != NULL:
            ga_atomic_inc(&d.sampled)
            return p
    return d.saved.calloc(d.saved.ctx, nelem, elsize)


cdef void *_hook_realloc(void *ctx, void *ptr, size_t new_size) noexcept nogil:
    cdef domain_t *d = <domain_t *>ctx
    cdef size_t old
    cdef void *moved
    cdef ga_damage_t damage
    if ptr == NULL:
        return _hook_malloc(ctx, new_size)
    if not _in_pool(ptr):
        # A foreign block stays foreign: its size is unknown, so it cannot
        # be copied into a guarded slot.
        return d.saved.realloc(d.saved.ctx, ptr, new_size)
    old = (<Pool>_pool_ptr).size_of(ptr)
    if old == 0:
        # Not a live block: free_ptr changes nothing and says why.
        _bad_pointer((<Pool>_pool_ptr).free_ptr(ptr, &damage), ptr)
    if d.sampling:
        # A guarded block stays guarded while sampling is on.
        moved = (<Pool>_pool_ptr).realloc(ptr, new_size, &damage, d.domain != PYMEM_DOMAIN_RAW)
        if moved != NULL:
            if damage.damaged:
                _report_free(GA_ERR_CORRUPT, ptr, &damage, True)
            return moved
    # Copy out to the saved allocator (pool full, or uninstalled).
    moved = d.saved.malloc(d.saved.ctx, new_size)
    if moved == NULL:
        return NULL
    memcpy(moved, ptr, old if old < new_size else new_size)
    _free_guarded(ptr)
    return moved


cdef void _hook_free(void *ctx, void *ptr) noexcept nogil:
    cdef domain_t *d = <domain_t *>ctx
    if _in_pool(ptr):
        _free_guarded(ptr)
        return
    d.saved.free(d.saved.ctx, ptr)


cdef inline void _free_guarded(void *ptr) noexcept nogil:
    global _finish_scheduled
    cdef ga_damage_t damage
    cdef int code = (<Pool>_pool_ptr).free_ptr(ptr, &damage)
    if code == GA_ERR_CORRUPT:
        _report_free(code, ptr, &damage, True)
    elif code != GA_OK and code != GA_ERR_SYSCALL:
        _bad_pointer(code, ptr)
    if _draining and not _finish_scheduled and ga_atomic_load(&(<Pool>_pool_ptr).live) == 0:
        # The last guarded block is gone: restore the saved allocators at
        # the main thread's next safe point (never from inside a hook).
        _finish_scheduled = True
        if Py_AddPendingCall(_finish_uninstall, NULL) != 0:
            _finish_scheduled = False


cdef void _bad_pointer(int code, void *ptr) noexcept nogil:
    """An invalid or double free (or realloc) of a pointer inside the guarded
    pool (code: the pool's GA_ERR_*): no other allocator owns it, so report
    it and abort, as GWP-ASan does."""
    _report_free(code, ptr, NULL, False)
    abort()


cdef void _report_free(int code, void *ptr, ga_damage_t *damage, bint continuing) noexcept nogil:
    """The report of a free (ga_report_free: text on the report descriptor,
    JSON to log_path) naming ptr's arena and slot, with this free's native
    stack when the pool records stacks. continuing: the program goes on
    (damaged slack: the block was freed)."""
    cdef ga_stack_t stack
    cdef const ga_stack_t *this_free = NULL
    cdef ga_arena_t *a = (<Pool>_pool_ptr).arena_of(ptr)
    cdef long slot = ga_slot_of(a, ptr) if a != NULL else -1
    if (<Pool>_pool_ptr).native_stacks:
        # Captured again, not read from the slot: once freed, the slot may
        # be handed out (and its stacks replaced) by another thread.
        ga_stack_capture(&stack)
        this_free = &stack
    ga_report_free(code, ptr, a, slot, damage, this_free, continuing)


cdef int _finish_uninstall(void *arg) noexcept with gil:
    global _finish_scheduled
    # Pending calls run in the main thread, perhaps inside install() or
    # uninstall(), which hold _lock: then try again at the next safe point.
    if not _lock.acquire(False):
        if Py_AddPendingCall(_finish_uninstall, NULL) != 0:
            _finish_scheduled = False
        return 0
    try:
        _finish_scheduled = False
        if _draining and _pool is not None and _pool.live == 0:
            _restore_all()
    finally:
        _lock.release()
    return 0


# ---------------------------------------------------------------------------
# Installing

cdef bint _is_ours(int i):
    cdef PyMemAllocatorEx current
    PyMem_GetAllocator(<PyMemAllocatorDomain>_domains[i].domain, &current)
    return current.malloc == _hook_malloc and current.ctx == <void *>&_domains[i]


cdef _restore_all():
    """Put the saved allocators back (GIL held, no guarded block live)."""
    global _draining
    cdef int i
    for i in range(3):
        if _domains[i].hooked:
            PyMem_SetAllocator(<PyMemAllocatorDomain>_domains[i].domain, &_domains[i].saved)
            _domains[i].hooked = False
            _domains[i].sampling = False
    _draining = False


cdef bint _refusal_noted = False


def _note_refusals() -> None:
    """Say once on stderr how many sampled requests the guarded pool
    refused, and why (they went to the plain allocator): a limit was
    reached (at any rate), or, under sample_rate=1 (which promises every
    request), their size class was still waiting for its next arena -- said
    when those are more than 1 in 100 of the guarded requests; fewer are
    counted in stats()["refused_growing"] only, so that a clean run stays
    silent."""
    global _refusal_noted
    if _refusal_noted or _pool is None or _pool.closed:
        return
    pool_stats = _pool.stats()
    growing = pool_stats.refused_growing
    limited = pool_stats.refused - growing
    if not any(c["exhausted"] for c in pool_stats["classes"].values()):
        limited = 0
    guarded = sum(_domains[i].sampled for i in range(3))
    if _rate != 1 or growing * 100 <= guarded:
        growing = 0
    if not limited and not growing:
        return
    _refusal_noted = True
    reasons = []
    if limited:
        reasons.append(f"{limited:,} because the guarded pool reached max_bytes={pool_stats['max_bytes']:,} "
                       "(raise it with guardalloc.pymem.install(max_bytes=...), or run --max-bytes)")
    if growing:
        reasons.append(f"{growing:,} because their size class was full while its next arena was being made "
                       "(a raw-domain request, which holds no GIL to grow the pool with, or one made "
                       "while the pool grew)")
    os.write(2, (f"guardalloc: {limited + growing:,} sampled allocation requests were not guarded "
                 f"({guarded:,} were): {'; '.join(reasons)}\n").encode())


def _slot_sizes(limit):
    """The pool's slot sizes (size classes) up to limit bytes, ascending."""
    sizes = []
    nbytes = 1
    while nbytes <= limit:
        size = _PoolClass.slot_size_for(nbytes)
        if size > limit:
            break
        sizes.append(size)
        nbytes = size + 1
    return sizes


cdef _prepare_classes(Pool pool, size_t largest):
    """An arena for every size class up to largest bytes that has none,
    smallest first, while the pool's slots stay within a PREPARED_SHARE of
    max_bytes (a small max_bytes: the rest grows on demand)."""
    have = pool.stats()["classes"]
    for size in _slot_sizes(largest):
        if size in have:
            continue
        # A first arena holds about 1 MiB of slots, at least 4 (1 from 1 MiB).
        first = size if size >= (1 << 20) else max(size * 4, 1 << 20)
        if pool.stats()["mapped_bytes"] + first > pool.max_bytes // PREPARED_SHARE:
            break
        try:
            pool.prepare(size)
        except MemoryError:
            break


def install(sample_rate=DEFAULT_SAMPLE_RATE, *, domains=("raw", "mem", "obj"), max_bytes=None,
            random=False, seed=None, alignment=16, uaf=False, guard_pages=1,
            native_stacks=None) -> None:
    """Send one allocation in ``sample_rate`` of the given domains to guarded
    slots; everything else goes to the allocators installed before.

    Args:
        sample_rate: N >= 1: guard every Nth request (or, with
            ``random=True``, each with probability 1/N). 1 guards them all
            but what a limit refuses, and what comes while a size class
            waits for its next arena (both counted in :func:`stats` and
            noted at exit).
        domains: any of "raw" (PyMem_RawMalloc, no GIL), "mem" (PyMem_Malloc)
            and "obj" (PyObject_Malloc, objects).
        max_bytes: slot memory the guarded pool may map; once it is used up,
            requests are forwarded (and said so once on stderr, with the
            count, at exit). Each guarded block takes at least a page.
            None: :func:`default_max_bytes` (a fraction of RAM and of the
            address space).
        random: random instead of deterministic sampling; ``seed`` (an int)
            makes it repeatable.
        alignment: alignment of guarded blocks (16, what CPython promises;
            2 or more: at 1 CPython's own code objects break, so 1 is
            refused).
        uaf: guard freed blocks too (use-after-free faults).
        guard_pages: guard pages after (and before) each block.
        native_stacks: keep the native stack (the C caller of PyMem_Malloc,
            PyObject_Malloc...) of each guarded block's allocation and free
            for fault reports. Only guarded requests pay for it (a few
            hundred ns each: unwinding); None (the default) records them at
            every ``sample_rate``; False turns them off.

    The pool is made by the first install() and reused by later ones; one
    with other pool options (max_bytes, alignment, uaf, guard_pages) gets a
    new pool, unless guarded blocks of the current one are still live (then
    the current pool and its options stay). Calling install() while installed changes
    the rate and domains.

    Raises:
        ValueError: a bad rate, domain or option (named), or an alignment
            CPython cannot run with (1).
        TypeError: an option of the wrong type (integers must be ints, not
            bool, float or str), or domains not a sequence of names.
        AddressSpaceError: the pool's reservation does not fit (RLIMIT_AS).
        RuntimeError: another hook (tracemalloc?) was installed on top of
            guardalloc's since: uninstall it first.
    """
    global _pool, _pool_options, _pool_ptr, _pool_low, _pool_high, _rate, _random, _seed, _draining, _generation
    cdef int i
    cdef PyMemAllocatorEx current
    sample_rate = check_int("sample_rate", sample_rate, 1, (1 << 63) - 1)
    if isinstance(domains, str):
        raise TypeError("domains must be a sequence of names such as ('raw', 'mem', 'obj'), not a string")
    try:
        wanted = set(domains)
    except TypeError:
        raise TypeError(f"domains must be a sequence of names such as ('raw', 'mem', 'obj'), "
                        f"not {type(domains).__name__}") from None
    if not wanted or not wanted <= set(DOMAIN_NAMES):
        raise ValueError(f"domains must be a non-empty subset of {DOMAIN_NAMES}, not {tuple(domains)!r}")
    if max_bytes is not None:
        max_bytes = check_int("max_bytes", max_bytes, 1)
    random = check_bool("random", random)
    if seed is not None:
        seed = check_int("seed", seed, -(1 << 63), (1 << 64) - 1)
    alignment = check_int("alignment", alignment, 1)
    refusal = python_alignment_refusal(alignment)
    if refusal is not None:
        raise ValueError(refusal)
    uaf = check_bool("uaf", uaf)
    guard_pages = check_int("guard_pages", guard_pages, 1)
    native_stacks = check_bool("native_stacks", native_stacks, none_ok=True)
    if native_stacks is None:
        native_stacks = True
    with _lock:
        for i in range(3):
            if _domains[i].hooked and not _is_ours(i):
                raise RuntimeError(
                    f"another allocator hook was installed on top of guardalloc's in the "
                    f"{DOMAIN_NAMES[i]} domain (tracemalloc?): remove it first")
        if max_bytes is None:
            max_bytes = default_max_bytes(guard_pages)
        options = (max_bytes, alignment, uaf, guard_pages, native_stacks)
        if _pool is None or (_pool_options != options and _pool.live == 0
                             and not any(_domains[i].hooked for i in range(3))):
            try:
                new_pool = _PoolClass(max_bytes=max_bytes, alignment=alignment, uaf=uaf,
                                      guard_pages=guard_pages, grow="pending",
                                      native_stacks=native_stacks)
            except AddressSpaceError as exc:
                raise exc.instead("guardalloc.pymem.install()") from None
            (<Pool>new_pool).set_owner(b"the guardalloc PyMem hooks' Pool")
            # Never deallocated, not even at interpreter exit: the hooks
            # may meet its pointers until the process ends.
            Py_INCREF(new_pool)
            _pool = new_pool
            _pool_options = options
            _pool_ptr = <void *>new_pool
            _pool_low = _pool.reserve_start
            _pool_high = _pool.reserve_end
        _pool.grow_mode = GROW_PENDING   # (stopped by a previous exit hook?)
        _prepare_classes(_pool, PREPARED_MAX_SLOT if sample_rate == 1 else PREPARED_SMALL_SLOT)
        _rate = sample_rate
        _generation += 1
        _random = random
        _seed = (seed if seed is not None else int.from_bytes(os.urandom(8), "little")) & 0xFFFFFFFFFFFFFFFF
        ga_pymem_new_generation()
        ga_pymem_reset_countdowns(<int64_t>sample_rate)
        for i in range(3):
            _domains[i].domain = i
            if DOMAIN_NAMES[i] in wanted and not _domains[i].hooked:
                PyMem_GetAllocator(<PyMemAllocatorDomain>i, &_domains[i].saved)
                _domains[i].hook.ctx = <void *>&_domains[i]
                _domains[i].hook.malloc = _hook_malloc
                _domains[i].hook.calloc = _hook_calloc
                _domains[i].hook.realloc = _hook_realloc
                _domains[i].hook.free = _hook_free
                _domains[i].sampling = True
                _domains[i].hooked = True
                PyMem_SetAllocator(<PyMemAllocatorDomain>i, &_domains[i].hook)
            else:
                _domains[i].sampling = DOMAIN_NAMES[i] in wanted
        _draining = False


def uninstall() -> bool:
    """Stop guarding new allocations and put the saved allocators back.

    Blocks already guarded keep working: while any is live, the hooks stay
    installed but only forward (and free or copy out guarded blocks); the
    saved allocators come back when the last one is freed. Returns True when
    they were restored now, False when that waits for live blocks (see
    :func:`state`). Does nothing when not installed.

    Raises:
        RuntimeError: another hook was installed on top of guardalloc's.
    """
    global _draining
    cdef int i
    with _lock:
        if not any(_domains[i].hooked for i in range(3)):
            return True
        for i in range(3):
            if _domains[i].hooked and not _is_ours(i):
                raise RuntimeError(
                    f"another allocator hook was installed on top of guardalloc's in the "
                    f"{DOMAIN_NAMES[i]} domain (tracemalloc?): remove it first")
        for i in range(3):
            _domains[i].sampling = False
        if _pool.live == 0:
            _restore_all()
            return True
        _draining = True
        return False


def state() -> str:
    """"sampling" (installed), "draining" (uninstalled, guarded blocks still
    live, hooks still forwarding) or "off"."""
    cdef int i
    if any(_domains[i].sampling for i in range(3)):
        return "sampling"
    if any(_domains[i].hooked for i in range(3)):
        return "draining"
    return "off"


def pool():
    """The pool behind the hooks (None before the first :func:`install`)."""
    return _pool


def stats() -> PymemStats:
    """A :class:`guardalloc.stats.PymemStats` (attributes, and keys as in a
    dict): state, sample_rate, random, and per domain (raw, mem, obj):
    hooked, sampling, sampled (requests the pool served); plus, while there
    is an open pool, its live blocks, refused requests (refused_growing: of
    those, the ones whose size class was waiting for its next arena) and
    arenas."""
    cdef int i
    result = {"state": state(), "sample_rate": _rate, "random": bool(_random)}
    for i in range(3):
        result[DOMAIN_NAMES[i]] = {
            "hooked": bool(_domains[i].hooked),
            "sampling": bool(_domains[i].sampling),
            "sampled": _domains[i].sampled,
        }
    if _pool is not None and not _pool.closed:
        pool_stats = _pool.stats()
        result["live"] = pool_stats.live
        result["refused"] = pool_stats.refused
        result["arenas"] = pool_stats.arenas
        result["refused_growing"] = pool_stats.refused_growing
    return PymemStats(**result)


@atexit.register
def _stop_at_exit():
    """Stop sampling before the interpreter is torn down: later requests
    must neither land in the pool nor queue pending calls (the queue goes
    away before the last allocations)."""
    cdef int i
    for i in range(3):
        _domains[i].sampling = False
    if _pool is not None:
        _pool.grow_mode = GROW_NEVER
        try:
            _note_refusals()
        except Exception:
            pass    # a note, not worth failing the exit for
