# The pool's C interface for the allocator hooks (numpy's handler, the PyMem
# hooks): malloc, calloc, realloc, free, ownership and size, under the pool's
# own mutex, never the GIL. Included by pool.pyx, whose Pool methods of the
# same names (pool.pxd) call these inline functions.

cdef inline void *pool_malloc(Pool self, size_t nbytes, bint gil=False) noexcept nogil:
    return pool_c_alloc(self, nbytes, False, gil)

cdef inline void *pool_calloc(Pool self, size_t count, size_t size, bint gil=False) noexcept nogil:
    if size != 0 and count > (<size_t>-1) // size:
        return NULL
    return pool_c_alloc(self, count * size, True, gil)

cdef inline void *pool_c_alloc(Pool self, size_t nbytes, bint zero, bint gil) noexcept nogil:
    cdef int cls
    cdef long slot
    cdef bint growing = False
    cdef pool_class_t *c
    cdef void *arena = NULL
    cdef ga_arena_t *a
    cdef ga_stack_t stack
    cdef ga_pystack_t pystack
    if nbytes == 0:
        nbytes = 1    # a unique pointer, like malloc(0)
    if nbytes > MAX_BLOCK:
        return NULL
    if self.native_stacks:
        ga_stack_capture(&stack)   # before the lock: unwinding is the slow part
        ga_pystack_capture(&pystack, 0)   # why this is safe in a hook: _c/pyframes.h, ga_pystacks_store
    cls = ga_class_of(nbytes, PAGE)
    pthread_mutex_lock(&self.lock)
    slot = pool_take(self, cls, nbytes, zero, True, &arena)
    if self.grow_mode == GROW_PENDING:
        c = &self.classes[cls]
        if slot == GA_ERR_FULL:
            growing = not c.exhausted and not self.is_closed
            schedule_growth(self, cls)
        elif c.slots - c.live <= (c.slots >> 2):
            # Low water: have the next arena made before the class is full,
            # so that requests are not forwarded while it is being made.
            schedule_growth(self, cls)
    pthread_mutex_unlock(&self.lock)
    if slot == GA_ERR_FULL and self.grow_mode == GROW_SYNC:
        slot = grow_sync(self, cls, nbytes, zero, &arena)
    elif growing and gil and GA_CAN_GROW_IN_HOOK and not ga_growing_in_hook():
        slot = grow_in_hook(self, cls, nbytes, zero, &arena)
        growing = slot == GA_ERR_FULL and not self.classes[cls].exhausted
    if slot < 0:
        # Statistics: a lost update is harmless.
        self.refused += 1
        if growing:
            self.refused_growing += 1
        return NULL
    if self.native_stacks:
        a = &(<Arena>arena).a
        ga_stacks_record(a, slot, 0, &stack)   # the slot is ours
        if pystack.n == 0 or ga_pystacks_ensure(a) == 0:
            ga_pystacks_store(a, slot, 0, &pystack)
    return ga_block_start(&(<Arena>arena).a, slot)

cdef inline void *pool_realloc(Pool self, void *ptr, size_t nbytes, ga_damage_t *damage,
                               bint gil=False) noexcept nogil:
    cdef size_t old
    cdef void *moved
    cdef ga_damage_t undo
    cdef int code
    damage.damaged = 0
    if ptr == NULL:
        return pool_malloc(self, nbytes, gil)
    old = pool_size_of(self, ptr)
    if old == 0:
        return NULL
    # Always move: a block that shrank or grew in place would no longer
    # end at its guard page.
    moved = pool_malloc(self, nbytes, gil)
    if moved == NULL:
        return NULL
    memcpy(moved, ptr, old if old < nbytes else nbytes)
    code = pool_free_ptr(self, ptr, damage)
    if code != GA_OK and code != GA_ERR_CORRUPT and code != GA_ERR_SYSCALL:
        # Not the C interface's block (a Python Buffer owns it): undo.
        pool_free_ptr(self, moved, &undo)
        return NULL
    return moved

cdef inline int pool_free_ptr(Pool self, void *ptr, ga_damage_t *damage) noexcept nogil:
    cdef ga_stack_t stack
    cdef ga_pystack_t pystack
    damage.damaged = 0
    if not pool_owns_ptr(self, ptr):
        return GA_ERR_FOREIGN
    if self.native_stacks:
        ga_stack_capture(&stack)
        ga_pystack_capture(&pystack, 0)
        return pool_free_locked(self, <char *>ptr, True, damage, &stack, &pystack)
    return pool_free_locked(self, <char *>ptr, True, damage)

cdef inline bint pool_owns_ptr(Pool self, const void *ptr) noexcept nogil:
    return (not self.is_closed and <const char *>ptr >= self.reserve_start
            and <const char *>ptr < self.reserve_end)

cdef inline size_t pool_size_of(Pool self, const void *ptr) noexcept nogil:
    cdef long index, slot
    cdef ga_arena_t *a
    cdef size_t nbytes = 0
    if not pool_owns_ptr(self, ptr):
        return 0
    pthread_mutex_lock(&self.lock)
    index = pool_find(self, <const char *>ptr) if not self.is_closed else -1
    if index >= 0:
        a = &(<Arena>self.table[index].arena).a
        slot = ga_live_slot_at(a, ptr)
        if slot >= 0:
            nbytes = a.slots[slot].nbytes
    pthread_mutex_unlock(&self.lock)
    return nbytes

cdef inline ga_arena_t *pool_arena_of(Pool self, const void *ptr) noexcept nogil:
    cdef long index
    cdef ga_arena_t *a = NULL
    if not pool_owns_ptr(self, ptr):
        return NULL
    pthread_mutex_lock(&self.lock)
    index = pool_find(self, <const char *>ptr) if not self.is_closed else -1
    if index >= 0:
        a = &(<Arena>self.table[index].arena).a
    pthread_mutex_unlock(&self.lock)
    return a
