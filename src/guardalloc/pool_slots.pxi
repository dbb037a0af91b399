# The pool's slot bookkeeping under its lock: which arena holds an address,
# taking a slot from a size class, and freeing one (the kept large blocks,
# the avail stacks). Included by pool.pyx; callers hold pool.lock, except
# pool_free_locked, which takes it.

cdef inline long pool_find(Pool self, const char *address) noexcept nogil:
    """Table index of the arena whose mapping holds address, or -1."""
    cdef long lo = 0, hi = <long>self.narenas - 1, mid
    while lo <= hi:
        mid = (lo + hi) >> 1
        if address < self.table[mid].start:
            hi = mid - 1
        elif address >= self.table[mid].end:
            lo = mid + 1
        else:
            return mid
    return -1

cdef inline long pool_take(Pool self, int cls, size_t nbytes, bint zero, bint raw,
                           void **where) noexcept nogil:
    """A live slot for nbytes from the class's arenas: its index (and
    where[0] its arena), GA_ERR_FULL or GA_ERR_SYSCALL."""
    cdef pool_class_t *c = &self.classes[cls]
    cdef pool_arena_t *e
    cdef int result
    if self.is_closed:
        return GA_ERR_FULL
    ga_altstack_ensure()   # this thread may fault in the block: report on a stack of known size
    while c.navail > 0:
        e = &self.table[c.avail[c.navail - 1]]
        result = ga_alloc(&(<Arena>e.arena).a, nbytes, zero, raw, -1)
        if result >= 0:
            if (<Arena>e.arena).a.stacks != NULL:
                # The C caller records the new ones; a Python caller none.
                ga_stacks_forget(&(<Arena>e.arena).a, result)
            if e.kept:
                e.kept = False
                self.kept_bytes -= c.slot_size
            self.live += 1
            c.live += 1
            self.live_bytes += nbytes
            self.allocations += 1
            where[0] = e.arena   # not e: the table may move once unlocked
            return result
        if result != GA_ERR_FULL:
            return result
        e.in_avail = False
        c.navail -= 1
    return GA_ERR_FULL

cdef int pool_free_locked(Pool self, char *address, int raw_only, ga_damage_t *damage,
                          const ga_stack_t *stack=NULL, const ga_pystack_t *pystack=NULL) noexcept nogil:
    """Free the block at address through the core: its result code.

    ``raw_only`` refuses (GA_ERR_OWNED) blocks that a Python Buffer
    owns: C callers must not free those behind the Buffer's back.
    ``stack``: the caller's native stack, kept as the slot's free stack
    (under the lock: the slot may be handed out again right after);
    ``pystack``: its Python frames, kept the same way.
    """
    cdef long index, slot
    cdef pool_arena_t *e
    cdef pool_class_t *c
    cdef ga_arena_t *a
    cdef int code
    pthread_mutex_lock(&self.lock)
    index = pool_find(self, address) if not self.is_closed else -1
    if index < 0:
        pthread_mutex_unlock(&self.lock)
        return GA_ERR_FOREIGN
    e = &self.table[index]
    a = &(<Arena>e.arena).a
    code = ga_free(a, address, raw_only, damage)
    if code == GA_OK or code == GA_ERR_CORRUPT or code == GA_ERR_SYSCALL:
        self.live -= 1
        self.live_bytes -= damage.nbytes
        self.frees += 1
        if code == GA_ERR_CORRUPT:
            self.corruptions += 1
        c = &self.classes[e.cls]
        c.live -= 1
        slot = ga_slot_of(a, address)
        if stack != NULL:
            ga_stacks_record(a, slot, 1, stack)
        if pystack != NULL and (pystack.n == 0 or ga_pystacks_ensure(a) == 0):
            ga_pystacks_store(a, slot, 1, pystack)
        if c.slot_size >= LARGE_SLOT and not a.uaf and a.slots[slot].state == GA_SLOT_FREE:
            # A dedicated arena keeps its address range for the next
            # block of its class, and its memory within the budget.
            if self.kept_bytes + a.slot_size <= self.keep_bytes_:
                e.kept = True
                self.kept_bytes += a.slot_size
            elif ga_discard(ga_slot_start(a, slot), a.slot_size) == 0:
                a.slots[slot].flags &= ~GA_FLAG_DIRTY
        if not e.in_avail and c.navail < c.cap_avail:
            e.in_avail = True
            c.avail[c.navail] = <uint32_t>index
            c.navail += 1
    pthread_mutex_unlock(&self.lock)
    return code
