/*
 * GA_INTERNAL marks a function that the C core's files share but that
 * libguardalloc_core does not export (the library is built with default
 * visibility so that its public ga_* API is exported).
 */
#ifndef GUARDALLOC_INTERNAL_H
#define GUARDALLOC_INTERNAL_H

#define GA_INTERNAL __attribute__((visibility("hidden")))

#endif
