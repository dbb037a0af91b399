/*
 * The report context that Python sets: where the text and JSON reports go,
 * and the test that runs (report_context.c). Read by the reports, in the
 * signal handler, without locks.
 */
#ifndef GUARDALLOC_REPORT_CONTEXT_H
#define GUARDALLOC_REPORT_CONTEXT_H

/* Where JSON reports go: a path template ("%p": the pid of the process
 * that faults, "%%": a percent sign), NULL or "" for none. One JSON object
 * per fault (and per report of ga_report_free), on one line, appended
 * (docs/report-schema.json), each line in one write(2). Returns 0, or -1
 * when the template is longer than GA_LOG_PATH_MAX (options.h). */
int ga_set_report_path(const char *path_template);
const char *ga_get_report_path(void);   /* NULL when none */

/* The test that runs now (a pytest node id, cut to 1024 bytes) and its
 * phase ("setup", "call", "teardown", "collect"), named in every report;
 * NULL: none. */
void ga_set_report_test(const char *nodeid, const char *phase);
const char *ga_get_report_test(void);

/* The file descriptor the text report is written to (default 2; -1: none). */
void ga_set_report_fd(int fd);
int ga_get_report_fd(void);

#endif
