/*
 * The size of a faulting access (issue 21: "WRITE of size 8"), which a page
 * fault does not carry: the instruction at the faulting PC is read without
 * faulting (sigunwind.c) and decoded (insn_decode.c), in the signal handler.
 * Async-signal-safe: no allocation, no lock, process_vm_readv(2) only.
 */
#include <string.h>
#include "report_internal.h"
#include "sigunwind.h"

void ga_access_decode(ga_access_t *stack)
{
    stack->code_len = 0;
    stack->decoded = 0;
    memset(&stack->insn, 0, sizeof(stack->insn));
#if defined(__x86_64__)
    if (stack->n == 0)
        return;
    stack->code_len = ga_read_code((uintptr_t)stack->pc[0] - 1, stack->code, sizeof(stack->code));
    stack->decoded = stack->code_len > 0 && ga_insn_decode(stack->code, stack->code_len, &stack->insn) == 0;
#endif   /* elsewhere the code is not x86's: no size */
}

const char *ga_access_name(const char *access, const ga_access_t *stack)
{
    if (strcmp(access, "access") != 0 || !stack->decoded)
        return access;
    /* A read-modify-write is a write, as the page-fault error code says. */
    if (stack->insn.flags & GA_INSN_WRITE)
        return "WRITE";
    return stack->insn.flags & GA_INSN_READ ? "READ" : access;
}

void ga_put_access_size(ga_line_t *line, const ga_access_t *stack)
{
    unsigned flags = stack->insn.flags;
    if (!stack->decoded || stack->insn.size == 0)
        return;
    ga_put(line, " of size ");
    ga_put_dec(line, stack->insn.size);
    if (flags & GA_INSN_STRING)
        ga_put(line, flags & GA_INSN_REP ? " (one element of a rep string instruction)" : " (a string instruction)");
    else if (flags & GA_INSN_GATHER)
        ga_put(line, flags & GA_INSN_WRITE ? " (one element of a scatter)" : " (one element of a gather)");
    else if (flags & GA_INSN_BROADCAST)
        ga_put(line, " (one element, broadcast to a vector)");
    else if (flags & GA_INSN_MASKED)
        ga_put(line, " (a masked vector access: its full width)");
    else if (flags & GA_INSN_VECTOR)
        ga_put(line, " (a vector access)");
}

static void ga_json_bool(ga_line_t *line, const char *key, int value)
{
    ga_json_key(line, key);
    ga_put(line, value ? "true" : "false");
}

void ga_json_access(ga_line_t *line, const ga_access_t *stack)
{
    static const char digits[] = "0123456789abcdef";
    unsigned flags = stack->insn.flags;
    size_t i, n = stack->decoded ? stack->insn.length : stack->code_len;
    ga_json_key(line, "access_size");
    if (stack->decoded && stack->insn.size > 0)
        ga_put_dec(line, stack->insn.size);
    else
        ga_put(line, "null");
    ga_json_key(line, "instruction");
    if (stack->code_len == 0) {
        ga_put(line, "null");
        return;
    }
    ga_put(line, "{\"bytes\":\"");
    for (i = 0; i < n; i++) {
        char hex[4] = {digits[stack->code[i] >> 4], digits[stack->code[i] & 15], ' ', '\0'};
        if (i + 1 == n)
            hex[2] = '\0';
        ga_put(line, hex);
    }
    ga_put(line, "\"");
    ga_json_bool(line, "decoded", stack->decoded);
    ga_json_bool(line, "reads", flags & GA_INSN_READ);
    ga_json_bool(line, "writes", flags & GA_INSN_WRITE);
    ga_json_bool(line, "string", flags & GA_INSN_STRING);
    ga_json_bool(line, "rep", flags & GA_INSN_REP);
    ga_json_bool(line, "vector", flags & GA_INSN_VECTOR);
    ga_json_bool(line, "masked", flags & GA_INSN_MASKED);
    ga_json_bool(line, "broadcast", flags & GA_INSN_BROADCAST);
    ga_json_bool(line, "gather", flags & GA_INSN_GATHER);
    ga_put(line, "}");
}
