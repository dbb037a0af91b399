/*
 * The C++ operators, by their mangled names (the ones libstdc++ exports:
 * `nm -D --defined-only libstdc++.so.6 | grep -E ' T _Z(nw|na|dl|da)'`).
 * Defined in the preloaded library, they take over from libstdc++'s, which
 * would end in malloc and free and lose the family: new and new[] record
 * theirs (GA_FAMILY_NEW, GA_FAMILY_NEW_ARRAY), delete and delete[] check it
 * (malloc.c's ga_new and ga_delete). A request that no allocator can serve
 * goes on to libstdc++'s own operator, which calls the new-handler and
 * throws std::bad_alloc (or, nothrow, returns NULL).
 */
#include <stddef.h>
#include "cxx_operators.h"
#include "heap.h"

#define GA_EXPORT __attribute__((visibility("default")))
#define GA_UNUSED __attribute__((unused))

typedef void *(*ga_new_fn)(size_t);
typedef void *(*ga_new_aligned_fn)(size_t, size_t);
typedef void *(*ga_new_nothrow_fn)(size_t, const void *);
typedef void *(*ga_new_aligned_nothrow_fn)(size_t, size_t, const void *);

/* The throwing forms: on failure the next operator throws. */
#define GA_NEW(name, family)                                                  \
    GA_EXPORT void *name(size_t n)                                            \
    {                                                                         \
        void *p = ga_new(n, 0, family);                                       \
        ga_new_fn next;                                                       \
        if (p != NULL)                                                        \
            return p;                                                         \
        if ((next = (ga_new_fn)ga_next_operator(#name)) == NULL)              \
            ga_no_operator(#name);                                            \
        return next(n);                                                       \
    }
#define GA_NEW_ALIGNED(name, family)                                          \
    GA_EXPORT void *name(size_t n, size_t alignment)                          \
    {                                                                         \
        void *p = ga_new(n, alignment ? alignment : 1, family);               \
        ga_new_aligned_fn next;                                               \
        if (p != NULL)                                                        \
            return p;                                                         \
        if ((next = (ga_new_aligned_fn)ga_next_operator(#name)) == NULL)      \
            ga_no_operator(#name);                                            \
        return next(n, alignment);                                            \
    }
#define GA_NEW_NOTHROW(name, family)                                          \
    GA_EXPORT void *name(size_t n, const void *tag)                           \
    {                                                                         \
        void *p = ga_new(n, 0, family);                                       \
        ga_new_nothrow_fn next;                                               \
        if (p != NULL || (next = (ga_new_nothrow_fn)ga_next_operator(#name)) == NULL) \
            return p;                                                         \
        return next(n, tag);                                                  \
    }
#define GA_NEW_ALIGNED_NOTHROW(name, family)                                  \
    GA_EXPORT void *name(size_t n, size_t alignment, const void *tag)         \
    {                                                                         \
        void *p = ga_new(n, alignment ? alignment : 1, family);               \
        ga_new_aligned_nothrow_fn next;                                       \
        if (p != NULL                                                         \
                || (next = (ga_new_aligned_nothrow_fn)ga_next_operator(#name)) == NULL) \
            return p;                                                         \
        return next(n, alignment, tag);                                       \
    }

GA_NEW(_Znwm, GA_FAMILY_NEW)
GA_NEW(_Znam, GA_FAMILY_NEW_ARRAY)
GA_NEW_ALIGNED(_ZnwmSt11align_val_t, GA_FAMILY_NEW)
GA_NEW_ALIGNED(_ZnamSt11align_val_t, GA_FAMILY_NEW_ARRAY)
GA_NEW_NOTHROW(_ZnwmRKSt9nothrow_t, GA_FAMILY_NEW)
GA_NEW_NOTHROW(_ZnamRKSt9nothrow_t, GA_FAMILY_NEW_ARRAY)
GA_NEW_ALIGNED_NOTHROW(_ZnwmSt11align_val_tRKSt9nothrow_t, GA_FAMILY_NEW)
GA_NEW_ALIGNED_NOTHROW(_ZnamSt11align_val_tRKSt9nothrow_t, GA_FAMILY_NEW_ARRAY)

/* delete and delete[]: plain, sized (C++14), aligned (C++17), nothrow. The
 * size and alignment arguments are not checked. */
#define GA_DELETE_NEW(p) ga_delete(p, GA_FAMILY_NEW, "operator delete")
#define GA_DELETE_ARRAY(p) ga_delete(p, GA_FAMILY_NEW_ARRAY, "operator delete []")
typedef const void *ga_nothrow_t;

GA_EXPORT void _ZdlPv(void *p) { GA_DELETE_NEW(p); }
GA_EXPORT void _ZdaPv(void *p) { GA_DELETE_ARRAY(p); }
GA_EXPORT void _ZdlPvm(void *p, GA_UNUSED size_t n) { GA_DELETE_NEW(p); }
GA_EXPORT void _ZdaPvm(void *p, GA_UNUSED size_t n) { GA_DELETE_ARRAY(p); }
GA_EXPORT void _ZdlPvSt11align_val_t(void *p, GA_UNUSED size_t a) { GA_DELETE_NEW(p); }
GA_EXPORT void _ZdaPvSt11align_val_t(void *p, GA_UNUSED size_t a) { GA_DELETE_ARRAY(p); }
GA_EXPORT void _ZdlPvmSt11align_val_t(void *p, GA_UNUSED size_t n, GA_UNUSED size_t a) { GA_DELETE_NEW(p); }
GA_EXPORT void _ZdaPvmSt11align_val_t(void *p, GA_UNUSED size_t n, GA_UNUSED size_t a) { GA_DELETE_ARRAY(p); }
GA_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, GA_UNUSED ga_nothrow_t t) { GA_DELETE_NEW(p); }
GA_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, GA_UNUSED ga_nothrow_t t) { GA_DELETE_ARRAY(p); }
GA_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, GA_UNUSED size_t a, GA_UNUSED ga_nothrow_t t)
{
    GA_DELETE_NEW(p);
}
GA_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, GA_UNUSED size_t a, GA_UNUSED ga_nothrow_t t)
{
    GA_DELETE_ARRAY(p);
}

