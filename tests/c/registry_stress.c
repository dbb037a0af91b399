/*
 * The registry under concurrency (tests/test_registry.py runs it under a
 * watchdog): writer threads register and unregister arenas while a reader
 * thread looks addresses up, as the fault handler does, and (argv[1] "fork")
 * the main thread forks meanwhile; each child checks that the registry it
 * inherited is whole and that its lock is free. Arenas here are descriptors
 * only: their ranges lie in the non-canonical hole of the address space,
 * where nothing is ever mapped. Prints "ok" lines, or "not ok" and exits 1.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "registry.h"

#define STABLE 64
#define WRITERS 3
#define PER_WRITER 200
#define ROUNDS 60
#define SPAN ((size_t)1 << 20)
#define HOLE ((uintptr_t)1 << 47)

static ga_arena_t stable[STABLE];
static ga_arena_t churn[WRITERS][PER_WRITER];
static volatile int writers_done;
static unsigned long errors, lookups;

static char *range_base(size_t index)
{
    return (char *)(HOLE + index * 2 * SPAN);   /* a gap between any two */
}

static void fail(const char *what)
{
    printf("not ok %s\n", what);
    fflush(stdout);
    _exit(1);
}

static void *writer(void *arg)
{
    int w = (int)(intptr_t)arg, round, i, order[PER_WRITER];
    unsigned seed = 12345u + (unsigned)w;
    for (round = 0; round < ROUNDS; round++) {
        for (i = 0; i < PER_WRITER; i++)
            if (ga_register_arena(&churn[w][i]) != 0)
                fail("register during churn");
        for (i = 0; i < PER_WRITER; i++)
            order[i] = i;
        for (i = 0; i < PER_WRITER; i++) {   /* unregistered in a shuffled order */
            int j = i + (int)(rand_r(&seed) % (unsigned)(PER_WRITER - i)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (i = 0; i < PER_WRITER; i++) {
            ga_arena_t *a = &churn[w][order[i]];
            if (ga_find_arena(a->base + a->size - 1) != a)
                fail("a registered churn arena is not found");
            ga_unregister_arena(a);
        }
        for (i = 0; i < PER_WRITER; i++) {
            ga_arena_t *a = &churn[w][i];
            if (ga_find_arena(a->base) != NULL)
                fail("an unregistered arena is still found");
        }
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE)) {
        size_t i;
        for (i = 0; i < STABLE; i++) {
            ga_arena_t *a = ga_find_arena(stable[i].base + (i * 4096) % stable[i].size);
            if (a != &stable[i])
                __atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
            /* The gap after each arena belongs to nobody. */
            if (ga_find_arena(stable[i].base + stable[i].size) != NULL)
                __atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
        }
        for (i = 0; i < WRITERS * PER_WRITER; i++) {
            /* A churn address: no arena, or one whose range holds it. */
            char *p = range_base(STABLE + i) + 100;
            ga_arena_t *a = ga_find_arena(p);
            if (a != NULL && (p < a->base || p >= a->base + a->size))
                __atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
        }
        __atomic_add_fetch(&lookups, 2 * STABLE + WRITERS * PER_WRITER, __ATOMIC_RELAXED);
    }
    return NULL;
}

static int child_check(void)
{
    ga_arena_t extra;
    size_t i;
    for (i = 0; i < STABLE; i++)
        if (ga_find_arena(stable[i].base) != &stable[i])
            return 1;
    memset(&extra, 0, sizeof(extra));
    extra.base = range_base(STABLE + WRITERS * PER_WRITER + 1);
    extra.size = SPAN;
    if (ga_register_arena(&extra) != 0 || ga_find_arena(extra.base + 1) != &extra)
        return 2;
    ga_unregister_arena(&extra);
    return ga_find_arena(extra.base) == NULL ? 0 : 3;
}

int main(int argc, char **argv)
{
    pthread_t writers[WRITERS], reading;
    int forking = argc > 1 && strcmp(argv[1], "fork") == 0, forks = 0, w, i;
    size_t before = ga_registered_arenas();

    alarm(100);   /* a hang dies by SIGALRM, seen by the test */
    for (i = 0; i < STABLE; i++) {
        stable[i].base = range_base((size_t)i);
        stable[i].size = SPAN / 2 + (size_t)i * 4096;
        if (ga_register_arena(&stable[i]) != 0)
            fail("register a stable arena");
    }
    for (w = 0; w < WRITERS; w++)
        for (i = 0; i < PER_WRITER; i++) {
            churn[w][i].base = range_base(STABLE + (size_t)w * PER_WRITER + (size_t)i);
            churn[w][i].size = SPAN;
        }
    pthread_create(&reading, NULL, reader, NULL);
    for (w = 0; w < WRITERS; w++)
        pthread_create(&writers[w], NULL, writer, (void *)(intptr_t)w);
    if (forking) {
        for (forks = 0; forks < 40; forks++) {
            int status;
            pid_t pid = fork();
            if (pid == 0)
                _exit(child_check());
            if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                printf("not ok fork %d: child status %d\n", forks, pid < 0 ? -1 : status);
                return 1;
            }
        }
    }
    for (w = 0; w < WRITERS; w++)
        pthread_join(writers[w], NULL);
    __atomic_store_n(&writers_done, 1, __ATOMIC_RELEASE);
    pthread_join(reading, NULL);
    if (errors != 0) {
        printf("not ok %lu wrong lookups of %lu\n", errors, lookups);
        return 1;
    }
    if (ga_registered_arenas() != before + STABLE)
        fail("live count after the churn");
    for (i = 0; i < STABLE; i++)
        ga_unregister_arena(&stable[i]);
    if (ga_registered_arenas() != before)
        fail("live count at the end");
    printf("ok %lu lookups, %d forks\n", lookups, forks);
    return 0;
}
