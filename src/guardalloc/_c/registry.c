/*
 * The registry of live arenas: the table the SIGSEGV/SIGBUS handler searches
 * (ga_find_arena) to tell a fault inside an arena from any other.
 *
 * Live arenas never overlap, so the arena holding an address is the one with
 * the greatest base at or below it: a search tree keyed by base. It is a
 * treap (priorities are a hash of the base, so its shape does not depend on
 * the order arenas come in: expected depth about 2 ln n, 20 at 16,384
 * arenas), and it is persistent: a writer never changes a node that a reader
 * may see. It copies the nodes on the path it changes (expected O(log n)),
 * links the copies to the untouched subtrees, and publishes the new root with
 * one store. A reader (the fault handler, in any thread, at any moment) loads
 * the root once and walks a tree that nobody changes under it: no lock, no
 * allocation, O(log n) comparisons.
 *
 * Nodes come from chunks that are mapped on demand and never unmapped (mmap,
 * not malloc, which may be the native heap itself). A node that a write took
 * out of the tree is retired, not reused at once: a reader may still stand on
 * it. Readers count themselves in ga_readers for the length of a search; a
 * writer that sees the count at zero after publishing its root knows that
 * every search that could have seen a retired node is over, and hands the
 * retired nodes back for reuse. A search that never ends (a thread stopped
 * inside one) only keeps retired nodes from being reused: the pool grows,
 * the tree stays right.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include "guards.h"
#include "locks.h"
#include "registry.h"

#define GA_MAX_ARENAS (256 * 1024)
#define GA_NODES_PER_CHUNK 4096

typedef struct ga_rnode {
    /* Fixed while the node is in a tree a reader may see. */
    const char *base, *end;       /* the arena's range: base .. base + size */
    ga_arena_t *arena;
    struct ga_rnode *left, *right;
    uint64_t priority;            /* a heap on it keeps the tree balanced */
    /* The writer's own (readers never look at them). */
    uint64_t write;               /* the write that made the node: it may change it in place */
    struct ga_rnode *next;        /* on the free or the retired list */
} ga_rnode_t;

/* The first nodes are static (no mapping, no VMA for the common case). */
static ga_rnode_t ga_first_nodes[256];

static ga_rnode_t *ga_root;           /* read by the handler: atomics only */
static unsigned long ga_readers;      /* searches under way */

/* The writer's state, all under ga_registry_lock. */
static ga_rnode_t *ga_free_nodes, *ga_retired;
static size_t ga_first_used, ga_pool_nodes, ga_retired_count;
static uint64_t ga_write;             /* this write's number (nodes it made carry it) */
static size_t ga_live;
static int ga_out_of_nodes;

/* Writers are serialized here: Python arenas register under the GIL, the
 * native heap's under its own mutex, both at once. Level GA_LOCK_REGISTRY of
 * the lock order (locks.h), the innermost: it is taken with a Pool's or the
 * heap's lock held, and nothing is allocated or locked under it. Held across
 * fork() by locks.c's handlers (and re-made in the child), so that a child
 * never inherits it locked, nor a tree half made. */
static pthread_mutex_t ga_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t ga_registry_once = PTHREAD_ONCE_INIT;

static void ga_registry_init(void)
{
    /* Only fails without memory for locks.c's table: then a fork() racing a
     * registration could leave the child's lock held (the registry still
     * works in the parent). */
    (void)ga_fork_lock_add(&ga_registry_lock, GA_LOCK_REGISTRY);
}

void ga_registry_fork_init(void)
{
    pthread_once(&ga_registry_once, ga_registry_init);
}

/* -- the writer's nodes ---------------------------------------------------- */

static uint64_t ga_priority(const char *base)
{
    /* splitmix64's finalizer: arenas of the native heap come at rising
     * addresses, which as priorities would make a list of the tree. */
    uint64_t z = (uint64_t)(uintptr_t)base + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static ga_rnode_t *ga_node_new(void)
{
    ga_rnode_t *n = ga_free_nodes;
    if (n != NULL) {
        ga_free_nodes = n->next;
    } else if (ga_first_used < sizeof(ga_first_nodes) / sizeof(ga_first_nodes[0])) {
        n = &ga_first_nodes[ga_first_used++];
    } else {
        ga_rnode_t *chunk = ga_map_anonymous(NULL, GA_NODES_PER_CHUNK * sizeof(*chunk));
        size_t i;
        if (chunk == NULL) {
            ga_out_of_nodes = 1;
            return NULL;
        }
        ga_pool_nodes += GA_NODES_PER_CHUNK;
        for (i = 1; i < GA_NODES_PER_CHUNK - 1; i++)
            chunk[i].next = &chunk[i + 1];
        chunk[GA_NODES_PER_CHUNK - 1].next = NULL;
        ga_free_nodes = &chunk[1];
        n = &chunk[0];
    }
    n->write = ga_write;
    n->next = NULL;
    return n;
}

static void ga_node_retire(ga_rnode_t *n)
{
    if (n->write == ga_write) {        /* made by this write: no reader saw it */
        n->next = ga_free_nodes;
        ga_free_nodes = n;
        return;
    }
    n->next = ga_retired;
    ga_retired = n;
    ga_retired_count++;
}

/* n itself when this write made it (nobody else sees it yet), else a copy
 * of it and n retired. NULL when out of memory (n untouched). */
static ga_rnode_t *ga_own(ga_rnode_t *n)
{
    ga_rnode_t *c;
    if (n->write == ga_write)
        return n;
    c = ga_node_new();
    if (c == NULL)
        return NULL;
    c->base = n->base;
    c->end = n->end;
    c->arena = n->arena;
    c->left = n->left;
    c->right = n->right;
    c->priority = n->priority;
    ga_node_retire(n);
    return c;
}

/* -- persistent treap operations (each returns the new subtree) ------------ */
/* They fail only when no node can be mapped; ga_out_of_nodes then says so and
 * the caller drops the write: nothing it made is published. */

/* Split t into the nodes with base < key (*lo) and the others (*hi). */
static void ga_split(ga_rnode_t *t, const char *key, ga_rnode_t **lo, ga_rnode_t **hi)
{
    ga_rnode_t *c;
    if (t == NULL) {
        *lo = *hi = NULL;
        return;
    }
    if ((c = ga_own(t)) == NULL) {
        *lo = *hi = NULL;
        return;
    }
    if (c->base < key) {
        ga_split(c->right, key, &c->right, hi);
        *lo = c;
    } else {
        ga_split(c->left, key, lo, &c->left);
        *hi = c;
    }
}

/* Join a and b, every base of a below every base of b. */
static ga_rnode_t *ga_merge(ga_rnode_t *a, ga_rnode_t *b)
{
    ga_rnode_t *c;
    if (a == NULL)
        return b;
    if (b == NULL)
        return a;
    if (a->priority > b->priority) {
        if ((c = ga_own(a)) == NULL)
            return NULL;
        c->right = ga_merge(c->right, b);
    } else {
        if ((c = ga_own(b)) == NULL)
            return NULL;
        c->left = ga_merge(a, c->left);
    }
    return c;
}

static ga_rnode_t *ga_insert(ga_rnode_t *t, ga_rnode_t *n)
{
    ga_rnode_t *c;
    if (t == NULL)
        return n;
    if (n->priority > t->priority) {
        ga_split(t, n->base, &n->left, &n->right);
        return n;
    }
    if ((c = ga_own(t)) == NULL)
        return NULL;
    if (n->base < c->base)
        c->left = ga_insert(c->left, n);
    else
        c->right = ga_insert(c->right, n);
    return c;
}

/* t without the node of arena (*found set when it was there). */
static ga_rnode_t *ga_remove(ga_rnode_t *t, const ga_arena_t *arena, int *found)
{
    ga_rnode_t *c;
    if (t == NULL)
        return NULL;
    if (t->arena == arena) {
        *found = 1;
        c = ga_merge(t->left, t->right);
        ga_node_retire(t);
        return c;
    }
    if ((c = ga_own(t)) == NULL)
        return NULL;
    if (arena->base < c->base)
        c->left = ga_remove(c->left, arena, found);
    else
        c->right = ga_remove(c->right, arena, found);
    return c;
}

/* -- publication ------------------------------------------------------------ */

static void ga_write_begin(void)
{
    ga_write++;
    ga_out_of_nodes = 0;
}

/* Make root the tree readers see, then reuse what no reader can reach. */
static void ga_publish(ga_rnode_t *root)
{
    /* seq_cst with the readers' count: a search that counted itself after
     * this load loads the root after this store, and cannot reach a node
     * retired before it. */
    __atomic_store_n(&ga_root, root, __ATOMIC_SEQ_CST);
    if (ga_retired != NULL && __atomic_load_n(&ga_readers, __ATOMIC_SEQ_CST) == 0) {
        ga_rnode_t *n = ga_retired, *next;
        for (; n != NULL; n = next) {
            next = n->next;
            n->next = ga_free_nodes;
            ga_free_nodes = n;
        }
        ga_retired = NULL;
        ga_retired_count = 0;
    }
}

/* The writes' fallback when a node could not be mapped: the nodes this write
 * made go back to the free list (nothing reachable by a reader changed), and
 * the nodes it retired stay in the published tree, so they leave the list. */
static void ga_write_abort(ga_rnode_t *retired_before)
{
    while (ga_retired != retired_before) {
        ga_retired = ga_retired->next;
        ga_retired_count--;
    }
    /* The copies this write made are unreachable from the published root;
     * they are lost to the pool (this happens only when mmap fails). */
}

static ga_rnode_t *ga_search(ga_rnode_t *n, const char *p, unsigned long *steps)
{
    unsigned long k = 0;
    while (n != NULL) {
        k++;
        if (p < n->base)
            n = n->left;
        else if (p >= n->end)
            n = n->right;
        else
            break;
    }
    if (steps != NULL)
        *steps = k;
    return n;
}

/* The node with the greatest base at or below key, or NULL. */
static ga_rnode_t *ga_floor(ga_rnode_t *n, const char *key)
{
    ga_rnode_t *best = NULL;
    while (n != NULL) {
        if (n->base <= key) {
            best = n;
            n = n->right;
        } else {
            n = n->left;
        }
    }
    return best;
}

int ga_register_arena(ga_arena_t *arena)
{
    ga_rnode_t *root, *retired_before, *n, *last;
    int rc = -1;
    /* A no-op after the first call. Callers that hold a lock of the order
     * (the heap, a Pool) added theirs first, which made this call. */
    ga_registry_fork_init();
    pthread_mutex_lock(&ga_registry_lock);
    root = ga_root;
    if (ga_live >= GA_MAX_ARENAS || arena->size == 0 || arena->base + arena->size < arena->base) {
        errno = arena->size == 0 ? EINVAL : ENOMEM;
        goto out;
    }
    /* Two live arenas never overlap; one that would is refused, not hidden.
     * The registered arena with the greatest base below the new end is the
     * only one that may reach into it. */
    last = ga_floor(root, arena->base + arena->size - 1);
    if (last != NULL && last->end > arena->base) {
        errno = EEXIST;
        goto out;
    }
    ga_write_begin();
    retired_before = ga_retired;
    n = ga_node_new();
    if (n == NULL)
        goto out;
    n->base = arena->base;
    n->end = arena->base + arena->size;
    n->arena = arena;
    n->left = n->right = NULL;
    n->priority = ga_priority(arena->base);
    root = ga_insert(root, n);
    if (ga_out_of_nodes) {
        ga_write_abort(retired_before);
        errno = ENOMEM;
        goto out;
    }
    ga_publish(root);
    ga_live++;
    rc = 0;
out:
    pthread_mutex_unlock(&ga_registry_lock);
    return rc;
}

void ga_unregister_arena(ga_arena_t *arena)
{
    ga_rnode_t *root, *retired_before;
    ga_rnode_t *n;
    int found = 0;
    pthread_mutex_lock(&ga_registry_lock);
    n = ga_search(ga_root, arena->base, NULL);
    if (n != NULL && n->arena == arena) {
        ga_write_begin();
        retired_before = ga_retired;
        root = ga_remove(ga_root, arena, &found);
        if (ga_out_of_nodes || !found) {
            /* The arena stays visible (mmap failed for a copy): a fault in
             * it is then reported as in a live arena, as before. */
            ga_write_abort(retired_before);
        } else {
            ga_publish(root);
            ga_live--;
        }
    }
    pthread_mutex_unlock(&ga_registry_lock);
}

ga_arena_t *ga_find_arena(const void *addr)
{
    ga_rnode_t *n;
    ga_arena_t *a;
    __atomic_add_fetch(&ga_readers, 1, __ATOMIC_SEQ_CST);
    n = ga_search(__atomic_load_n(&ga_root, __ATOMIC_SEQ_CST), addr, NULL);
    a = n != NULL ? n->arena : NULL;   /* before the node may be reused */
    __atomic_sub_fetch(&ga_readers, 1, __ATOMIC_SEQ_CST);
    return a;
}

unsigned long ga_registry_steps(const void *addr)
{
    unsigned long steps;
    __atomic_add_fetch(&ga_readers, 1, __ATOMIC_SEQ_CST);
    (void)ga_search(__atomic_load_n(&ga_root, __ATOMIC_SEQ_CST), addr, &steps);
    __atomic_sub_fetch(&ga_readers, 1, __ATOMIC_SEQ_CST);
    return steps;
}

void ga_registry_after_fork_child(void)
{
    /* The child's one thread is not inside a search (fork is not called from
     * one); a search of another thread of the parent was copied half done. */
    __atomic_store_n(&ga_readers, 0, __ATOMIC_SEQ_CST);
}

size_t ga_registered_arenas(void)
{
    return ga_live;
}
