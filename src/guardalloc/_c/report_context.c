/*
 * The report context, set from Python (not from the handler): where the text
 * and the JSON reports go, and the test that is running. Strings are
 * published through two buffers and an index, so that a handler running in
 * another thread while one is set reads either the old or the new string
 * whole.
 */
#include <string.h>
#include <unistd.h>
#include "options.h"
#include "report_context.h"
#include "report_internal.h"

#define GA_TEST_MAX GA_LOG_PATH_MAX   /* bytes of a node id kept */

typedef struct {
    char text[2][GA_LOG_PATH_MAX + 1];
    int current;   /* index of the published string; -1: none */
} ga_pubstr_t;

static ga_pubstr_t ga_log_path = {{"", ""}, -1};
static ga_pubstr_t ga_test_id = {{"", ""}, -1};
static ga_pubstr_t ga_test_phase = {{"", ""}, -1};
static int ga_text_fd = STDERR_FILENO;   /* where text reports go (ga_set_report_fd) */

static int ga_pubstr_set(ga_pubstr_t *p, const char *s, size_t max)
{
    int next;
    size_t n;
    if (s == NULL || *s == '\0') {
        __atomic_store_n(&p->current, -1, __ATOMIC_RELEASE);
        return 0;
    }
    n = strlen(s);
    if (n > max)
        return -1;
    next = __atomic_load_n(&p->current, __ATOMIC_ACQUIRE) == 0 ? 1 : 0;
    memcpy(p->text[next], s, n + 1);
    __atomic_store_n(&p->current, next, __ATOMIC_RELEASE);
    return 0;
}

static const char *ga_pubstr_get(ga_pubstr_t *p)
{
    int i = __atomic_load_n(&p->current, __ATOMIC_ACQUIRE);
    return i < 0 ? NULL : p->text[i];
}

int ga_set_report_path(const char *path_template)
{
    return ga_pubstr_set(&ga_log_path, path_template, GA_LOG_PATH_MAX);
}

const char *ga_get_report_path(void)
{
    return ga_pubstr_get(&ga_log_path);
}

void ga_set_report_test(const char *nodeid, const char *phase)
{
    /* Too long a node id is cut (a report with most of it beats none). */
    char cut[GA_TEST_MAX + 1];
    if (nodeid != NULL && strlen(nodeid) > GA_TEST_MAX) {
        memcpy(cut, nodeid, GA_TEST_MAX);
        cut[GA_TEST_MAX] = '\0';
        nodeid = cut;
    }
    ga_pubstr_set(&ga_test_id, nodeid, GA_TEST_MAX);
    ga_pubstr_set(&ga_test_phase, nodeid != NULL ? phase : NULL, 31);
}

const char *ga_get_report_test(void)
{
    return ga_pubstr_get(&ga_test_id);
}

const char *ga_get_report_phase(void)
{
    return ga_pubstr_get(&ga_test_phase);
}

void ga_set_report_fd(int fd)
{
    __atomic_store_n(&ga_text_fd, fd, __ATOMIC_RELAXED);
}

int ga_get_report_fd(void)
{
    return __atomic_load_n(&ga_text_fd, __ATOMIC_RELAXED);
}
