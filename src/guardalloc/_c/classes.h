/*
 * Size classes of the pools (Pool, and the native malloc library): whole
 * pages, 1..8 exactly, then four classes per doubling (10, 12, 14, 16, 20,
 * 24, 28, 32, ...) up to 3.5 GiB, so that at most a quarter of a block's
 * slot is slack.
 */
#ifndef GUARDALLOC_CLASSES_H
#define GUARDALLOC_CLASSES_H

#include <stddef.h>

#define GA_EXACT_CLASSES 8
#define GA_NCLASSES 76
/* The largest class whose slot still fits the arena's 32-bit offsets. */
#define GA_MAX_CLASS_PAGES (((size_t)1 << 19) + 3 * ((size_t)1 << 17))

/* Size class of a request of nbytes (1 .. GA_MAX_CLASS_PAGES pages). */
static inline int ga_class_of(size_t nbytes, size_t page)
{
    size_t pages = (nbytes + page - 1) / page, step, q;
    int k;
    if (pages <= GA_EXACT_CLASSES)
        return (int)pages - 1;
    k = 63 - __builtin_clzl(pages - 1);            /* pages in (2**k, 2**(k+1)] */
    step = (size_t)1 << (k - 2);
    q = (pages - ((size_t)1 << k) + step - 1) / step;   /* 1..4 */
    return GA_EXACT_CLASSES + (k - 3) * 4 + (int)q - 1;
}

/* Pages in a slot of class cls. */
static inline size_t ga_class_pages(int cls)
{
    int k, q;
    if (cls < GA_EXACT_CLASSES)
        return (size_t)cls + 1;
    k = (cls - GA_EXACT_CLASSES) / 4 + 3;
    q = (cls - GA_EXACT_CLASSES) % 4 + 1;
    return ((size_t)1 << k) + (size_t)q * ((size_t)1 << (k - 2));
}

#endif
