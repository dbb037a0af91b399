# How a pool grows: slot counts per arena, huge pages for large blocks, and
# adding an arena to a size class (now, or at the main thread's next safe
# point for the allocator hooks). Included by pool.pyx; each function takes
# the Pool it works on.

# From this slot size on, one dedicated one-slot arena per block.
cdef size_t LARGE_SLOT = <size_t>1 << 20
# Slot counts of a class's arenas: the first arena holds about FIRST_ARENA
# bytes of slots (between MIN_SLOTS and MAX_FIRST_SLOTS slots), each next
# one twice as many, up to MAX_ARENA_SLOTS slots or MAX_POOLED_ARENA_BYTES.
cdef size_t FIRST_ARENA = <size_t>1 << 20
cdef uint32_t MIN_SLOTS = 4
cdef uint32_t MAX_FIRST_SLOTS = 256
cdef uint32_t MAX_ARENA_SLOTS = 65536
cdef size_t MAX_POOLED_ARENA_BYTES = <size_t>1 << 30
# Transparent huge pages: the PMD size on x86-64, and numpy's threshold.
cdef size_t HUGE_PAGE = <size_t>2 << 20
cdef size_t HUGEPAGE_MIN_SLOT = <size_t>4 << 20


cdef int _pending_grow(void *arg) noexcept with gil:
    """Py_AddPendingCall callback: the main thread, the GIL, a safe point."""
    cdef grow_token_t *token = <grow_token_t *>arg
    cdef Pool pool
    if token.pool == NULL:
        free(token)     # the pool died while the call was queued
        return 0
    pool = <Pool>token.pool
    try:
        grow_wanted(pool)
    except BaseException:
        pass    # growth is best effort; the hook forwards meanwhile
    return 0


cdef void _ask_hugepages(ga_arena_t *a) noexcept nogil:
    """MADV_HUGEPAGE on the 2 MiB-aligned part of a dedicated arena's slot
    (best effort: THP may be off, the range too small)."""
    cdef char *start = ga_slot_start(a, 0)
    cdef char *end = start + a.slot_size
    cdef char *aligned = <char *>ga_round_up(<uintptr_t>start, HUGE_PAGE)
    if aligned < end:
        ga_hugepage(aligned, <size_t>(end - aligned))


cdef uint32_t _first_slots(size_t slot_size) noexcept nogil:
    cdef size_t n
    if slot_size >= LARGE_SLOT:
        return 1
    n = FIRST_ARENA // slot_size
    if n < MIN_SLOTS:
        n = MIN_SLOTS
    if n > MAX_FIRST_SLOTS:
        n = MAX_FIRST_SLOTS
    return <uint32_t>n


cdef uint32_t _next_slots(uint32_t slots, size_t slot_size) noexcept nogil:
    cdef size_t n = <size_t>slots * 2
    if n > MAX_ARENA_SLOTS:
        n = MAX_ARENA_SLOTS
    if n * slot_size > MAX_POOLED_ARENA_BYTES:
        n = MAX_POOLED_ARENA_BYTES // slot_size
    if n < slots:
        n = slots
    return <uint32_t>n


cdef int grow_class(Pool self, int cls, bint in_hook=False) except -1:
    """Add an arena to a class (GIL held, lock not held). in_hook: inside
    an allocator hook (grow_in_hook): run no Python code, keep the GIL.

    Raises:
        MemoryError: a limit (max_bytes, max_arenas, the reservation) or
            the kernel refused.
    """
    cdef pool_class_t *c = &self.classes[cls]
    cdef size_t slot_size = c.slot_size
    cdef size_t budget, footprint, pad = 0
    cdef uint32_t slots
    cdef char *place
    cdef Arena arena
    cdef bint finish
    cdef int problem = 0
    self._check_open()
    # No Python object may be made while the lock is held: the lock is
    # also taken inside allocator hooks (pymem), which would deadlock.
    pthread_mutex_lock(&self.lock)
    slots = 0
    footprint = 0
    if self.narenas + self.growing >= self.max_arenas_:
        problem = 1
    else:
        budget = (self.max_bytes_ - self.mapped_bytes) // slot_size \
            if self.mapped_bytes < self.max_bytes_ else 0
        slots = c.next_slots if c.next_slots <= budget else <uint32_t>budget
        footprint = ga_anonymous_mapping_size(slot_size, slots, self.guard_size, self.uaf, PAGE)
        if self.native_stacks:
            footprint += ga_stacks_table_size(slots, PAGE)
        if slots == 0:
            problem = 2
        elif footprint > <size_t>(self.reserve_end - self.bump):
            problem = 3
        elif self.hugepages and slot_size >= LARGE_SLOT:
            # The slot (and so the right-aligned block) ends on a huge
            # page boundary; skipped when the reservation has no room.
            pad = (HUGE_PAGE - <size_t>(<uintptr_t>(self.bump + self.guard_size + slot_size)
                                        % HUGE_PAGE)) % HUGE_PAGE
            if footprint + pad > <size_t>(self.reserve_end - self.bump):
                pad = 0
    if problem:
        c.exhausted = True
    else:
        # Claim the range now: another thread may grow while this one
        # builds its arena (guard installation releases the GIL).
        place = self.bump + pad
        self.bump += pad + footprint
        self.mapped_bytes += <size_t>slots * slot_size
        self.growing += 1
    pthread_mutex_unlock(&self.lock)
    if problem == 1:
        raise MemoryError(f"the pool reached max_arenas ({self.max_arenas_:,} arenas): pass a larger "
                          "max_arenas to Pool(max_arenas=...), or guardalloc.configure(max_arenas=...) "
                          "for guardalloc.alloc()'s default pool")
    if problem == 2:
        raise MemoryError(
            f"the pool reached max_bytes ({self.max_bytes_:,} bytes of slots; "
            f"{self.mapped_bytes:,} mapped, no room for a {slot_size:,}-byte slot): pass a larger "
            "max_bytes to Pool(max_bytes=...), or guardalloc.configure(max_bytes=...) for "
            "guardalloc.alloc()'s default pool")
    if problem == 3:
        raise MemoryError("the pool's address space reservation is used up")

    arena = None
    options = self.options
    try:
        if options.quarantine is not None and options.quarantine > slots:
            if in_hook:
                raise MemoryError("a per-arena quarantine is not set up inside a hook")
            options = options.replace(quarantine=slots)   # the quarantine is per arena
        arena = new_pooled_arena(place, slot_size, slots, options, _free_hook, <void *>self,
                                 self.native_stacks, self.backend if in_hook else None, self.owner)
        if self.hugepages and slot_size >= HUGEPAGE_MIN_SLOT:
            _ask_hugepages(&arena.a)
        add_arena(self, arena, cls, slots)
    except BaseException:
        if arena is not None:
            arena.free_hook = NULL
            arena.release()    # the range goes back to PROT_NONE
        pthread_mutex_lock(&self.lock)
        self.mapped_bytes -= <size_t>slots * slot_size
        if self.bump == place + footprint:
            self.bump = place - pad    # nobody claimed after us: give it back
        pthread_mutex_unlock(&self.lock)
        raise
    finally:
        pthread_mutex_lock(&self.lock)
        self.growing -= 1
        finish = self.is_closed and self.growing == 0
        pthread_mutex_unlock(&self.lock)
        if finish:
            self._unmap_reservation()   # close() left it to us
    self.arenas.append(arena)
    return 0


cdef int add_arena(Pool self, Arena arena, int cls, uint32_t slots) except -1:
    """Put a new arena in the table and on its class's avail stack."""
    cdef pool_class_t *c = &self.classes[cls]
    cdef pool_arena_t *grown_table
    cdef uint32_t *grown_avail
    cdef uint32_t cap
    cdef int problem = 0
    pthread_mutex_lock(&self.lock)
    if self.is_closed:
        problem = 1
    if not problem and self.narenas == self.cap_table:
        cap = self.cap_table * 2 if self.cap_table else 64
        grown_table = <pool_arena_t *>realloc(self.table, cap * sizeof(pool_arena_t))
        if grown_table == NULL:
            problem = 2
        else:
            self.table = grown_table
            self.cap_table = cap
    if not problem and c.cap_avail < c.narenas + 1:
        # Room for every arena of the class: frees never drop one.
        cap = 2 * (c.narenas + 1) if c.narenas >= 4 else 8
        grown_avail = <uint32_t *>realloc(c.avail, cap * sizeof(uint32_t))
        if grown_avail == NULL:
            problem = 2
        else:
            c.avail = grown_avail
            c.cap_avail = cap
    if not problem:
        # Arenas claimed concurrently may finish out of order: insert
        # sorted (indices of later arenas shift: fix the avail stacks).
        insert_sorted(self, arena, cls)
        # The table's own reference: the cycle collector may clear the
        # `arenas` list before the pool's __dealloc__ walks the table.
        Py_INCREF(arena)
        c.narenas += 1
        c.slots += slots
        if c.slot_size < LARGE_SLOT:
            c.next_slots = _next_slots(slots, c.slot_size)
    pthread_mutex_unlock(&self.lock)
    if problem == 1:
        raise ValueError("operation on a closed guardalloc.Pool (closed while it grew)")
    if problem == 2:
        raise MemoryError("no memory for the pool's arena table")
    return 0


cdef void insert_sorted(Pool self, Arena arena, int cls) noexcept nogil:
    cdef uint32_t at = self.narenas, i
    cdef int k
    cdef pool_class_t *c
    while at > 0 and self.table[at - 1].start > arena.a.base:
        at -= 1
    if at < self.narenas:
        i = self.narenas
        while i > at:
            self.table[i] = self.table[i - 1]
            i -= 1
        for k in range(GA_NCLASSES):
            c = &self.classes[k]
            for i in range(c.navail):
                if c.avail[i] >= at:
                    c.avail[i] += 1
    self.table[at].start = arena.a.base
    self.table[at].end = arena.a.base + arena.a.size
    self.table[at].arena = <void *>arena
    self.table[at].kept = False
    self.table[at].cls = cls
    self.table[at].in_avail = True
    self.narenas += 1
    c = &self.classes[cls]
    c.avail[c.navail] = at
    c.navail += 1


cdef int grow_wanted(Pool self) except -1:
    """Pending mode: add an arena to every class that asked for one."""
    cdef int i, n = 0
    cdef int wanted[GA_NCLASSES]
    pthread_mutex_lock(&self.lock)
    self.grow_token.queued = False
    for i in range(GA_NCLASSES):
        if self.classes[i].grow_wanted:
            self.classes[i].grow_wanted = False
            wanted[n] = i
            n += 1
    pthread_mutex_unlock(&self.lock)
    if self.is_closed:
        return 0
    for i in range(n):
        try:
            grow_class(self, wanted[i])
        except MemoryError:
            pass    # the class is marked exhausted; requests forward
    return 0


cdef void schedule_growth(Pool self, int cls) noexcept nogil:
    """Pending mode, lock held: have the main thread add an arena."""
    cdef pool_class_t *c = &self.classes[cls]
    if c.exhausted or c.grow_wanted:
        return
    c.grow_wanted = True
    if self.grow_token != NULL and not self.grow_token.queued:
        if Py_AddPendingCall(_pending_grow, <void *>self.grow_token) == 0:
            self.grow_token.queued = True
        else:
            c.grow_wanted = False   # queue full: ask again next time


cdef extern from *:
    """
    static __thread int ga_pool_growing_in_hook;
    static inline int ga_growing_in_hook(void) { return ga_pool_growing_in_hook; }
    static inline void ga_set_growing_in_hook(int on) { ga_pool_growing_in_hook = on; }
    #if PY_VERSION_HEX >= 0x030A0000
    #define GA_CAN_GROW_IN_HOOK 1
    static inline int ga_gc_pause(void) { return PyGC_Disable(); }
    static inline void ga_gc_resume(int was_enabled) { if (was_enabled) PyGC_Enable(); }
    #else   /* no PyGC_Disable: pending growth only */
    #define GA_CAN_GROW_IN_HOOK 0
    static inline int ga_gc_pause(void) { return 0; }
    static inline void ga_gc_resume(int was_enabled) { (void)was_enabled; }
    #endif
    """
    bint GA_CAN_GROW_IN_HOOK
    bint ga_growing_in_hook() nogil
    void ga_set_growing_in_hook(int on) nogil
    int ga_gc_pause()
    void ga_gc_resume(int was_enabled)


cdef long grow_in_hook(Pool self, int cls, size_t nbytes, bint zero, void **where) noexcept with gil:
    """A pending-mode pool's full class, asked for by an allocator hook
    that holds the GIL: add an arena now and take a slot from it
    (GA_ERR_FULL when that fails). The arena's objects are made without
    running Python code; requests made meanwhile in this thread (nested
    allocations) are not grown for; the cyclic collector is paused, so no
    finalizer runs inside the caller's allocation; the caller's pending
    exception is kept."""
    cdef PyObject *exc_type
    cdef PyObject *exc_value
    cdef PyObject *exc_tb
    cdef int gc_was
    cdef long slot = GA_ERR_FULL
    ga_set_growing_in_hook(1)
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb)
    gc_was = ga_gc_pause()
    try:
        grow_class(self, cls, True)
        pthread_mutex_lock(&self.lock)
        slot = pool_take(self, cls, nbytes, zero, True, where)
        pthread_mutex_unlock(&self.lock)
    except BaseException:
        slot = GA_ERR_FULL     # the class is marked exhausted when a limit stopped it
    ga_gc_resume(gc_was)
    PyErr_Restore(exc_type, exc_value, exc_tb)
    ga_set_growing_in_hook(0)
    return slot


cdef long grow_sync(Pool self, int cls, size_t nbytes, bint zero, void **where) noexcept nogil:
    cdef long slot
    with gil:
        while True:
            # Another thread may have grown the class meanwhile.
            pthread_mutex_lock(&self.lock)
            slot = pool_take(self, cls, nbytes, zero, True, where)
            pthread_mutex_unlock(&self.lock)
            if slot != GA_ERR_FULL or self.is_closed:
                return slot
            try:
                grow_class(self, cls)
            except BaseException:
                return GA_ERR_FULL


# ---------------------------------------------------------------------------
# Sizing the reservation

def _stack_bytes(native_stacks) -> int:
    """Bytes of stack table per slot (two packed stacks), 0 without stacks."""
    return 2 * sizeof(ga_packed_stack_t) if native_stacks else 0


def _reservation(max_bytes, guard_pages, max_arenas, native_stacks) -> int:
    """Bytes of address space a pool reserves: every slot costs at most
    guard_pages guard pages on top (1-page slots), every arena one more
    guard at its start; with native stacks, every arena's stack table (two
    stacks per slot, at most max_bytes / PAGE slots, a page of rounding per
    arena)."""
    pages = -(-max_bytes // PAGE)
    reserve = pages * PAGE * (1 + guard_pages) + max_arenas * guard_pages * PAGE
    if native_stacks:
        reserve += ga_stacks_table_size(pages, PAGE) + max_arenas * PAGE
    return reserve


def _default_max_arenas(max_bytes) -> int:
    """16384, or one per page of max_bytes when fewer (each arena holds at
    least one page of slots, so a pool can never use more)."""
    return max(1, min(DEFAULT_MAX_ARENAS, max_bytes // PAGE))


def _reservation_error(reserve, why, max_bytes, guard_pages, max_arenas, native_stacks):
    left = address_space_left()
    limit = "" if left is None else f"; RLIMIT_AS lets this process map {left:,} more bytes"
    fits = None
    if left is not None:
        fits = fitting_max_bytes(left, guard_pages, max_arenas, _stack_bytes(native_stacks)) or None
    return AddressSpaceError(
        f"cannot reserve {reserve:,} bytes of address space for a pool of max_bytes={max_bytes:,} "
        f"with guard_pages={guard_pages} ({why}{limit})", reserve, fits)
