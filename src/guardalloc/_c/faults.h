/*
 * The fault reporter's public API: a registry of live arenas that the
 * SIGSEGV/SIGBUS handler can search without locks or allocation, the handler
 * itself, the report of a bad free, and the report context set from Python.
 * One file per concern; this header gathers them for the core's users
 * (_core.pxd, faults.pyx, heap.c).
 */
#ifndef GUARDALLOC_FAULTS_H
#define GUARDALLOC_FAULTS_H

#include "handler.h"
#include "registry.h"
#include "report_context.h"
#include "report_free.h"

#endif
