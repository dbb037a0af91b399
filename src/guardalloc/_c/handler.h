/*
 * The SIGSEGV/SIGBUS handler: its installation and chaining (handler.c).
 */
#ifndef GUARDALLOC_HANDLER_H
#define GUARDALLOC_HANDLER_H

/* Install the SIGSEGV/SIGBUS handler (chaining to the dispositions in place)
 * or, when it is installed already, switch reports back on. Gives the calling
 * thread an alternate signal stack when it has none. Returns 0, or -1 with
 * errno set. Not async-signal-safe; callers serialize (the GIL). */
int ga_reports_enable(void);

/* Stop reporting. The previous dispositions are put back when the handler is
 * still the one installed; when another handler was installed on top of it
 * (and may chain to it), the handler stays and passes every signal on. */
void ga_reports_disable(void);

/* 1 while faults inside arenas are reported. */
int ga_reports_active(void);

/* 1 when guardalloc's handler is the current SIGSEGV disposition. */
int ga_reports_handler_on_top(void);

#endif
