/*
 * The table of locks held across fork() (see locks.h for the order).
 *
 * The table is an array kept sorted by level: a static one for the first
 * GA_STATIC_LOCKS locks (a process with a few pools maps nothing for it),
 * then mapped pages grown by doubling -- not malloc, which may be the native
 * heap (whose lock is in the table).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include "guards.h"
#include "locks.h"
#include "registry.h"

typedef struct {
    pthread_mutex_t *m;
    int level;
} ga_fork_lock_t;

static pthread_mutex_t ga_table_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t ga_handlers_once = PTHREAD_ONCE_INIT;
static int ga_handlers_error;
#define GA_STATIC_LOCKS 64
static ga_fork_lock_t ga_static_table[GA_STATIC_LOCKS];
static ga_fork_lock_t *ga_table = ga_static_table;
static size_t ga_count, ga_cap = GA_STATIC_LOCKS;

/* Outermost first: the table is sorted by level. */
static void ga_fork_prepare(void)
{
    size_t i;
    pthread_mutex_lock(&ga_table_lock);
    for (i = 0; i < ga_count; i++)
        pthread_mutex_lock(ga_table[i].m);
}

static void ga_fork_parent(void)
{
    size_t i;
    for (i = ga_count; i > 0; i--)
        pthread_mutex_unlock(ga_table[i - 1].m);
    pthread_mutex_unlock(&ga_table_lock);
}

static void ga_fork_child(void)
{
    size_t i;
    for (i = ga_count; i > 0; i--)
        pthread_mutex_init(ga_table[i - 1].m, NULL);
    pthread_mutex_init(&ga_table_lock, NULL);
    ga_registry_after_fork_child();
}

static void ga_install_handlers(void)
{
    ga_handlers_error = pthread_atfork(ga_fork_prepare, ga_fork_parent, ga_fork_child);
}

static int ga_grow_table(void)
{
    size_t cap = 2 * ga_cap;
    ga_fork_lock_t *grown = ga_map_anonymous(NULL, cap * sizeof(*grown));
    if (grown == NULL)
        return -1;
    memcpy(grown, ga_table, ga_count * sizeof(*grown));
    if (ga_table != ga_static_table)
        ga_unmap(ga_table, ga_cap * sizeof(*grown));
    ga_table = grown;
    ga_cap = cap;
    return 0;
}

int ga_fork_lock_add(pthread_mutex_t *m, int level)
{
    size_t at;
    if (m == NULL || level < GA_LOCK_FRONT || level > GA_LOCK_REGISTRY) {
        errno = EINVAL;
        return -1;
    }
    /* The registry's lock is taken under every other one: it is in the table
     * before any lock that may be held around a registration. (Called here,
     * holding nothing, since its first call adds the lock.) */
    if (level < GA_LOCK_REGISTRY)
        ga_registry_fork_init();
    pthread_once(&ga_handlers_once, ga_install_handlers);
    if (ga_handlers_error != 0) {
        errno = ga_handlers_error;
        return -1;
    }
    pthread_mutex_lock(&ga_table_lock);
    if (ga_count == ga_cap && ga_grow_table() != 0) {
        pthread_mutex_unlock(&ga_table_lock);
        errno = ENOMEM;
        return -1;
    }
    /* After the last lock of the same or a lower level. */
    for (at = ga_count; at > 0 && ga_table[at - 1].level > level; at--)
        ;
    memmove(&ga_table[at + 1], &ga_table[at], (ga_count - at) * sizeof(*ga_table));
    ga_table[at].m = m;
    ga_table[at].level = level;
    ga_count++;
    pthread_mutex_unlock(&ga_table_lock);
    return 0;
}

void ga_fork_lock_remove(pthread_mutex_t *m)
{
    size_t i;
    pthread_mutex_lock(&ga_table_lock);
    for (i = 0; i < ga_count; i++) {
        if (ga_table[i].m == m) {
            memmove(&ga_table[i], &ga_table[i + 1], (ga_count - i - 1) * sizeof(*ga_table));
            ga_count--;
            break;
        }
    }
    pthread_mutex_unlock(&ga_table_lock);
}

unsigned long ga_fork_lock_count(void)
{
    unsigned long n;
    pthread_mutex_lock(&ga_table_lock);
    n = ga_count;
    pthread_mutex_unlock(&ga_table_lock);
    return n;
}
