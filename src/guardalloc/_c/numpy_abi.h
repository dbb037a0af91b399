/*
 * numpy's data-memory handler (NEP 49), declared here so that guardalloc
 * builds without numpy's headers.
 *
 * The layout is part of numpy's ABI since 1.22 (version 1 of the struct;
 * numpy/_core/include/numpy/ndarraytypes.h, unchanged in 2.x): a 127-byte
 * name, a version byte, then the allocator's context and four functions.
 * The run-time checks in _numpy_handler.pyx refuse a numpy whose ABI major
 * version is not one this file was checked against.
 */
#ifndef GUARDALLOC_NUMPY_ABI_H
#define GUARDALLOC_NUMPY_ABI_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    /* Unlike PyMemAllocatorEx.free, numpy passes the allocation's size. */
    void (*free)(void *ctx, void *ptr, size_t size);
} ga_np_allocator_t;

typedef struct {
    char name[127];
    uint8_t version;            /* 1 */
    ga_np_allocator_t allocator;
} ga_np_handler_t;

/* Capsule name numpy requires (MEM_HANDLER_CAPSULE_NAME). */
#define GA_NP_CAPSULE_NAME "mem_handler"
#define GA_NP_HANDLER_VERSION 1

/* Indices into numpy's C-API table (numpy_api.py, the same in 1.22 to 2.x). */
#define GA_NP_API_GET_ABI_VERSION 0       /* PyArray_GetNDArrayCVersion        */
#define GA_NP_API_GET_FEATURE_VERSION 211 /* PyArray_GetNDArrayCFeatureVersion */
#define GA_NP_API_SET_HANDLER 304         /* PyDataMem_SetHandler (1.22)       */
#define GA_NP_API_GET_HANDLER 305         /* PyDataMem_GetHandler (1.22)       */
/* NPY_1_22_API_VERSION: the C-API feature version that added the handler. */
#define GA_NP_FEATURE_1_22 0x0000000F

_Static_assert(offsetof(ga_np_handler_t, version) == 127, "numpy handler layout");
_Static_assert(offsetof(ga_np_handler_t, allocator) == 128, "numpy handler layout");
_Static_assert(sizeof(ga_np_handler_t) == 128 + 5 * sizeof(void *), "numpy handler layout");

/* Counters bumped from any thread without the GIL. */
static inline void ga_np_count(uint64_t *counter) {
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}
static inline uint64_t ga_np_read(uint64_t *counter) {
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

#endif
