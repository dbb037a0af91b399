# cython: language_level=3
"""The C core's contract, declared once for Cython: the arena layout
(``_c/layout.h``), the kernel calls (``_c/guards.h``), the slot core
(``_c/core.h``), native stacks (``_c/stacks.h``), Python frames
(``_c/pyframes.h``) and the fault reporter
(``_c/registry.h``, ``_c/handler.h``, ``_c/report_free.h``). Nothing else."""

from libc.stdint cimport uint8_t, uint32_t, uint64_t

cdef extern from "_c/stacks.h" nogil:
    enum:
        GA_STACK_DEPTH
    ctypedef struct ga_stack_t:
        void *pc[GA_STACK_DEPTH]
        uint32_t n
        uint32_t dropped
    ctypedef struct ga_packed_stack_t:
        pass

cdef extern from "_c/pyframes.h" nogil:
    ctypedef struct ga_pystack_t:
        uint32_t n
    size_t ga_pystacks_table_size(size_t nslots, size_t page)
    int ga_pystacks_ensure(ga_arena_t *a)
    void ga_pystacks_release(ga_arena_t *a)
    void ga_pystacks_record(ga_arena_t *a, long slot, int freed)
    void ga_pystacks_forget(ga_arena_t *a, long slot)
    void ga_pystack_capture(ga_pystack_t *s, int checked)
    void ga_pystacks_store(ga_arena_t *a, long slot, int freed, const ga_pystack_t *s)

cdef extern from "_c/layout.h" nogil:
    enum:
        GA_SLOT_FREE
        GA_SLOT_LIVE
        GA_SLOT_QUARANTINED
        GA_SLOT_RETIRED
        GA_FLAG_DATA_GUARDED
        GA_FLAG_RETIRE
        GA_FLAG_FAULTED
        GA_FLAG_DIRTY
        GA_FLAG_RAW
        GA_FLAG_STACKED
        GA_FLAG_GUARD_BEFORE_LIFTED
        GA_FLAG_GUARD_AFTER_LIFTED
        GA_SLACK_BYTE
        GA_BACKEND_NONE
        GA_BACKEND_MADVISE
        GA_BACKEND_MPROTECT
        GA_ALIGN_LEFT
        GA_ALIGN_RIGHT
        GA_ALIGN_RANDOM
        GA_OK
        GA_ERR_FULL
        GA_ERR_SYSCALL
        GA_ERR_FOREIGN
        GA_ERR_INVALID
        GA_ERR_DOUBLE
        GA_ERR_CORRUPT
        GA_ERR_NOT_FREE
        GA_ERR_OWNED

    ctypedef struct ga_damage_t:
        size_t nbytes
        size_t first_offset
        size_t damaged

    ctypedef struct ga_slot_t:
        uint32_t nbytes
        uint32_t offset
        uint8_t state
        uint8_t flags

    ctypedef struct ga_arena_t:
        char *base
        size_t size
        size_t slot_size
        size_t guard_size
        size_t stride
        size_t alignment
        uint32_t nslots
        int backend
        int align
        int on_fault_continue
        int uaf
        int shared
        int file_backed
        int batched
        ga_slot_t *slots
        char **alloc_trace
        char **free_trace
        const char *untraced_hint
        const char *owner
        ga_packed_stack_t *stacks
        ga_pystack_t *pystacks
        uint64_t faults_continued
        uint32_t quarantine_limit
        uint32_t quarantine_len
        uint64_t random_state
        uint64_t guard_syscalls
        uint64_t uaf_syscalls
        uint64_t allocations
        uint32_t opened
        char *closed_from

    char *ga_slot_start(const ga_arena_t *a, size_t i)
    long ga_slot_of(const ga_arena_t *a, const void *p)
    size_t ga_round_up(size_t n, size_t multiple)
    size_t ga_slots_size(size_t slot_size, uint32_t nslots, size_t guard_size)
    size_t ga_bookkeeping_size(uint32_t nslots, int uaf)
    size_t ga_anonymous_mapping_size(size_t slot_size, uint32_t nslots, size_t guard_size,
                                     int uaf, size_t page)


cdef extern from "_c/guards.h" nogil:
    enum:
        GA_IOV_MAX
        GA_PM_GUARD_BIT
    const unsigned long GA_PAGEMAP_SCAN
    const uint64_t GA_PAGE_IS_GUARD

    struct iovec:
        void *iov_base
        size_t iov_len

    struct ga_page_region:
        uint64_t start
        uint64_t end
        uint64_t categories

    struct ga_pm_scan_arg:
        uint64_t size
        uint64_t flags
        uint64_t start
        uint64_t end
        uint64_t walk_end
        uint64_t vec
        uint64_t vec_len
        uint64_t max_pages
        uint64_t category_inverted
        uint64_t category_mask
        uint64_t category_anyof_mask
        uint64_t return_mask

    size_t ga_page_size()
    void *ga_map_anonymous(void *fixed, size_t size)
    void *ga_map_file(int fd, size_t size, int shared)
    void *ga_reserve(void *fixed, size_t size)
    int ga_unmap(void *addr, size_t size)
    int ga_unlock(void *addr, size_t size)
    int ga_discard(void *addr, size_t size)
    int ga_hugepage(void *addr, size_t size)
    int ga_guard_range(void *addr, size_t len, int backend, int install)
    int ga_guard_strided(char *first, size_t stride, size_t count, size_t len,
                         int backend, int batched, int install, uint64_t *syscalls)
    long ga_guard_batch(const iovec *ranges, size_t n, int install)
    int ga_batching_refused()
    int ga_self_pidfd()
    int ga_memfd(const char *name)


cdef extern from "_c/stacks.h" nogil:
    int ga_stacks_skip_library(const void *code)
    void ga_stack_capture(ga_stack_t *out)
    size_t ga_stack_len(const ga_stack_t *s)
    size_t ga_stacks_table_size(size_t nslots, size_t page)
    const ga_stack_t *ga_stacks_unpack(const ga_arena_t *a, long slot, int freed, ga_stack_t *buf)
    void ga_stacks_record(ga_arena_t *a, long slot, int freed, const ga_stack_t *s)
    void ga_stacks_forget(ga_arena_t *a, long slot)


cdef extern from "_c/altstack.h" nogil:
    void ga_altstack_ensure()


cdef extern from "_c/core.h" nogil:
    void ga_arena_attach(ga_arena_t *a, void *tables)
    int ga_arena_guard_all(ga_arena_t *a)
    int ga_arena_open(ga_arena_t *a, uint32_t upto)
    long ga_alloc(ga_arena_t *a, size_t nbytes, int zero, int raw, long want)
    int ga_free(ga_arena_t *a, char *address, int raw_only, ga_damage_t *damage)
    char *ga_block_start(const ga_arena_t *a, long slot)
    long ga_live_slot_at(const ga_arena_t *a, const void *p)
    void ga_count_states(const ga_arena_t *a, uint64_t counts[4])


cdef extern from "_c/registry.h":
    int ga_register_arena(ga_arena_t *arena) nogil
    void ga_unregister_arena(ga_arena_t *arena) nogil
    size_t ga_registered_arenas() nogil


cdef extern from "_c/handler.h":
    int ga_reports_enable()
    void ga_reports_disable()
    int ga_reports_active()
    int ga_reports_handler_on_top()


cdef extern from "_c/report_free.h":
    void ga_report_free(int code, const void *ptr, const ga_arena_t *a, long slot,
                        const ga_damage_t *damage, const ga_stack_t *this_free, int continuing) nogil
