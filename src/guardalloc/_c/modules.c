/*
 * The table of loaded objects (see modules.h). Two tables:
 * a rebuild fills the one not published and then publishes it, so a
 * handler reading the published one never sees it half written (it would
 * take two rebuilds during one report to write under a reader).
 */
#define _GNU_SOURCE
#include <link.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include "modules.h"

#define GA_MODULES_MAX 2048
#define GA_MODULE_POOL (256 * 1024)

typedef struct {
    size_t n;
    uint32_t pool_used;
    ga_module_t mods[GA_MODULES_MAX];   /* sorted by lo */
    char pool[GA_MODULE_POOL];
} ga_module_table_t;

/* Static (the library's bss): no mapping, and no VMA, of their own; the
 * pages are touched only as far as the table fills them. */
static ga_module_table_t ga_table_storage[2];
static ga_module_table_t *const ga_tables[2] = {&ga_table_storage[0], &ga_table_storage[1]};
static ga_module_table_t *ga_published;       /* read by the handler */
static unsigned long long ga_seen_adds, ga_seen_subs;
static pid_t ga_refresher;                    /* the pid refreshing now, 0: none */

typedef struct {
    unsigned long long adds, subs;
} ga_counts_t;

static int ga_read_counts(struct dl_phdr_info *info, size_t size, void *arg)
{
    ga_counts_t *c = arg;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
        c->adds = info->dlpi_adds;
        c->subs = info->dlpi_subs;
    }
    return 1;   /* the counters are the same in every entry: one is enough */
}

static uint32_t ga_pool_add(ga_module_table_t *t, const char *s)
{
    size_t n = strlen(s) + 1;
    uint32_t at = t->pool_used;
    if (n > GA_MODULE_POOL - t->pool_used)
        return 0;   /* pool[0] is "": a path that does not fit is not named */
    memcpy(t->pool + at, s, n);
    t->pool_used += (uint32_t)n;
    return at;
}

static void ga_read_build_id(const struct dl_phdr_info *info, ga_module_t *m)
{
    int i;
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        const char *p, *end;
        if (ph->p_type != PT_NOTE)
            continue;
        p = (const char *)(info->dlpi_addr + ph->p_vaddr);
        end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *note = (const ElfW(Nhdr) *)p;
            const char *name = p + sizeof(*note);
            const char *desc = name + ((note->n_namesz + 3) & ~3u);
            p = desc + ((note->n_descsz + 3) & ~3u);
            if (p > end)
                break;
            if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                size_t n = note->n_descsz < GA_BUILD_ID_MAX ? note->n_descsz : GA_BUILD_ID_MAX;
                memcpy(m->build_id, desc, n);
                m->build_id_len = (uint8_t)n;
                return;
            }
        }
    }
}

static int ga_add_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    ga_module_table_t *t = arg;
    ga_module_t m;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    size_t i, at;
    (void)size;
    if (t->n == GA_MODULES_MAX)
        return 1;
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD) {
            uintptr_t start = info->dlpi_addr + ph->p_vaddr;
            if (start < lo)
                lo = start;
            if (start + ph->p_memsz > hi)
                hi = start + ph->p_memsz;
        }
    }
    if (hi <= lo)
        return 0;
    memset(&m, 0, sizeof(m));
    m.lo = lo;
    m.hi = hi;
    m.bias = info->dlpi_addr;
    if (info->dlpi_name != NULL && info->dlpi_name[0] != '\0') {
        m.path = ga_pool_add(t, info->dlpi_name);
    } else {
        /* The program itself has no name here: the kernel knows its path. */
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n > 0) {
            exe[n] = '\0';
            m.path = ga_pool_add(t, exe);
        }
    }
    ga_read_build_id(info, &m);
    /* Insertion keeps the table sorted by address (a few hundred objects). */
    for (at = t->n; at > 0 && t->mods[at - 1].lo > m.lo; at--)
        t->mods[at] = t->mods[at - 1];
    t->mods[at] = m;
    t->n++;
    return 0;
}

int ga_modules_refresh(void)
{
    ga_counts_t now = {0, 0};
    ga_module_table_t *next;
    pid_t me = getpid(), owner = 0;
    /* One refresher at a time; a fork() during a refresh leaves the child
     * the parent's pid here, which it takes over. */
    if (!__atomic_compare_exchange_n(&ga_refresher, &owner, me, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        if (owner == me || !__atomic_compare_exchange_n(&ga_refresher, &owner, me, 0, __ATOMIC_ACQUIRE,
                                                        __ATOMIC_RELAXED))
            return 0;   /* another thread is at it: its table will do */
    }
    dl_iterate_phdr(ga_read_counts, &now);
    if (ga_published != NULL && now.adds == ga_seen_adds && now.subs == ga_seen_subs) {
        __atomic_store_n(&ga_refresher, 0, __ATOMIC_RELEASE);
        return 0;
    }
    next = ga_published == ga_tables[0] ? ga_tables[1] : ga_tables[0];
    next->n = 0;
    next->pool[0] = '\0';
    next->pool_used = 1;
    dl_iterate_phdr(ga_add_object, next);
    ga_seen_adds = now.adds;
    ga_seen_subs = now.subs;
    __atomic_store_n(&ga_published, next, __ATOMIC_RELEASE);
    __atomic_store_n(&ga_refresher, 0, __ATOMIC_RELEASE);
    return 0;
}

const ga_module_t *ga_module_of(const void *pc)
{
    const ga_module_table_t *t = __atomic_load_n(&ga_published, __ATOMIC_ACQUIRE);
    uintptr_t a = (uintptr_t)pc;
    size_t lo = 0, hi;
    if (t == NULL)
        return NULL;
    hi = t->n;
    while (lo < hi) {   /* the last object starting at or below a */
        size_t mid = lo + (hi - lo) / 2;
        if (t->mods[mid].lo <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || a >= t->mods[lo - 1].hi)
        return NULL;
    return &t->mods[lo - 1];
}

const char *ga_module_path(const ga_module_t *m)
{
    size_t i;
    for (i = 0; i < 2; i++) {
        const ga_module_table_t *t = ga_tables[i];
        if (t != NULL && m >= t->mods && m < t->mods + GA_MODULES_MAX)
            return t->pool + m->path;
    }
    return "";
}

/* Append s to out[*len..size-1) (cut when full). */
static void ga_append(char *out, size_t size, size_t *len, const char *s)
{
    while (*s && *len + 1 < size)
        out[(*len)++] = *s++;
}

static void ga_append_hex(char *out, size_t size, size_t *len, uintptr_t v, int prefix)
{
    char rev[2 * sizeof(v)];
    int n = 0;
    if (prefix)
        ga_append(out, size, len, "0x");
    do {
        rev[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n > 0 && *len + 1 < size)
        out[(*len)++] = rev[--n];
}

size_t ga_format_raw_frame(const void *pc, char *out, size_t size)
{
    const ga_module_t *m = ga_module_of(pc);
    size_t len = 0, i;
    if (size == 0)
        return 0;
    ga_append_hex(out, size, &len, (uintptr_t)pc, 1);
    if (m == NULL || ga_module_path(m)[0] == '\0') {
        ga_append(out, size, &len, " (<unknown module>)");
    } else {
        ga_append(out, size, &len, " (");
        ga_append(out, size, &len, ga_module_path(m));
        ga_append(out, size, &len, "+");
        ga_append_hex(out, size, &len, (uintptr_t)pc - m->bias, 1);
        ga_append(out, size, &len, ")");
        if (m->build_id_len > 0) {
            ga_append(out, size, &len, " (BuildId: ");
            for (i = 0; i < m->build_id_len && len + 3 < size; i++) {
                out[len++] = "0123456789abcdef"[m->build_id[i] >> 4];
                out[len++] = "0123456789abcdef"[m->build_id[i] & 15];
            }
            ga_append(out, size, &len, ")");
        }
    }
    out[len] = '\0';
    return len;
}
