/*
 * The Python frame walker of pyframes.pyx, compiled against the running
 * interpreter's headers (3.11, 3.12, 3.13; the frame layout is internal, so
 * Py_BUILD_CORE), and registered with the core (_c/pyframes.h).
 *
 * What it reads, as faulthandler's traceback dump does: the calling
 * thread's state (PyGILState_GetThisThreadState: a thread-local read, also
 * right for a thread that released the GIL, as ctypes calls do), its
 * innermost _PyInterpreterFrame, and the chain of `previous` frames. Each
 * frame gives its code object and instruction pointer. Describing a frame
 * reads the code object's name, file name and location table (the format of
 * CPython's Objects/locations.md, decoded here), every read through
 * ga_safe_read: no Python API is called, nothing is allocated, no lock or
 * GIL is taken, and a freed object gives -1, not a fault.
 */
#ifndef GUARDALLOC_PYFRAMES_WALK_H
#define GUARDALLOC_PYFRAMES_WALK_H

#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include <Python.h>
#include <stddef.h>
#include <string.h>
#include "internal/pycore_frame.h"
#include "_c/pyframes.h"
#include "_c/sigunwind.h"

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030E0000
#error "guardalloc's Python frame walker knows the frames of CPython 3.11 to 3.13"
#endif

#if PY_VERSION_HEX >= 0x030D0000
#define GA_FRAME_CODE(f) ((f)->f_executable)
#define GA_FRAME_INSTR(f) ((const char *)(f)->instr_ptr)
#else
#define GA_FRAME_CODE(f) ((PyObject *)(f)->f_code)
#define GA_FRAME_INSTR(f) ((const char *)(f)->prev_instr)
#endif

/* Frames visited at most: ends a walk over a corrupt (cyclic) chain. */
#define GA_WALK_HOPS 4096

/* Code objects at which a walk stops (a launcher's frames below every frame
 * of the program): written under the GIL before they are used, the entries
 * before the count; the module keeps them alive. */
#define GA_STOP_MAX 64
static PyObject *ga_pw_stop[GA_STOP_MAX];
static int ga_pw_nstop;

static int ga_pw_stops_at(const PyObject *code)
{
    int i, n = __atomic_load_n(&ga_pw_nstop, __ATOMIC_ACQUIRE);
    for (i = 0; i < n; i++)
        if (ga_pw_stop[i] == code)
            return 1;
    return 0;
}

/* Stop walks at code from now on; 0, or -1 when the table is full. */
static int ga_pw_add_stop(PyObject *code)
{
    int n = ga_pw_nstop;
    if (ga_pw_stops_at(code))
        return 0;
    if (n == GA_STOP_MAX)
        return -1;
    ga_pw_stop[n] = code;
    __atomic_store_n(&ga_pw_nstop, n + 1, __ATOMIC_RELEASE);
    return 0;
}

static int ga_pw_read(int checked, const void *addr, void *out, size_t n)
{
    if (addr == NULL)
        return 0;
    if (!checked) {
        memcpy(out, addr, n);
        return 1;
    }
    return ga_safe_read((uintptr_t)addr, out, n);
}

/* The calling thread's innermost frame, or NULL. */
static const _PyInterpreterFrame *ga_pw_top(int checked)
{
    PyThreadState *tstate;
    if (!Py_IsInitialized())
        return NULL;   /* before start-up is done, or finalizing: no thread states to trust */
    tstate = PyGILState_GetThisThreadState();
    if (tstate == NULL)
        return NULL;
#if PY_VERSION_HEX >= 0x030D0000
    {
        struct _PyInterpreterFrame *top;
        if (!ga_pw_read(checked, &tstate->current_frame, &top, sizeof(top)))
            return NULL;
        return top;
    }
#else
    {
        _PyCFrame *cframe;
        struct _PyInterpreterFrame *top;
        if (!ga_pw_read(checked, &tstate->cframe, &cframe, sizeof(cframe))
                || !ga_pw_read(checked, &cframe->current_frame, &top, sizeof(top)))
            return NULL;
        return top;
    }
#endif
}

static size_t ga_pw_capture(ga_pyframe_t *out, size_t max, int checked)
{
    const _PyInterpreterFrame *fp = ga_pw_top(checked);
    size_t n = 0;
    long last = -1;   /* index in out of the frame visited just before, or -1 */
    int hops;
    for (hops = 0; fp != NULL && hops < GA_WALK_HOPS; hops++) {
        _PyInterpreterFrame f;
        PyObject *code;
        PyTypeObject *type;
        ptrdiff_t at;
        if (!ga_pw_read(checked, fp, &f, offsetof(_PyInterpreterFrame, localsplus)))
            break;
#if PY_VERSION_HEX >= 0x030C0000
        if (f.owner == FRAME_OWNED_BY_CSTACK) {
            /* The shim below each call of the interpreter from C: the frame
             * visited before it is the first that call ran. */
            if (last >= 0)
                out[last].flags |= GA_PYFRAME_ENTRY;
            last = -1;
            fp = f.previous;
            continue;
        }
#endif
        if (n == max)
            break;   /* read past the last kept frame only to see whether it was an entry */
        last = -1;
        code = GA_FRAME_CODE(&f);
        if (ga_pw_stops_at(code)) {
            if (n > 0)
                out[n - 1].flags |= GA_PYFRAME_LAUNCHER;
            break;
        }
        if (code != NULL && ga_pw_read(checked, &code->ob_type, &type, sizeof(type)) && type == &PyCode_Type) {
            at = GA_FRAME_INSTR(&f) - ((const char *)code + offsetof(PyCodeObject, co_code_adaptive));
            if (at >= 0 && at / 2 <= INT32_MAX) {   /* before the first instruction: a frame being built */
                out[n].code = code;
                out[n].lasti = (int32_t)(at / (ptrdiff_t)sizeof(_Py_CODEUNIT));
                out[n].flags = 0;
#if PY_VERSION_HEX < 0x030C0000
                if (f.is_entry)
                    out[n].flags |= GA_PYFRAME_ENTRY;
#endif
                last = (long)n++;
            }
        }
        fp = f.previous;
    }
    (void)last;   /* 3.11 marks entry frames itself */
    return n;
}

/* Bytes of an object read in pieces, each through ga_safe_read. */
typedef struct {
    uintptr_t at;        /* the first byte */
    size_t len, pos;     /* bytes in all, the next one to read */
    size_t start, have;  /* what buf holds: [start, start + have) */
    unsigned char buf[128];
} ga_pw_bytes_t;

static int ga_pw_byte(ga_pw_bytes_t *b)
{
    if (b->pos >= b->len)
        return -1;
    if (b->pos < b->start || b->pos >= b->start + b->have) {
        size_t n = b->len - b->pos < sizeof(b->buf) ? b->len - b->pos : sizeof(b->buf);
        if (!ga_safe_read(b->at + b->pos, b->buf, n))
            return -1;
        b->start = b->pos;
        b->have = n;
    }
    return b->buf[b->pos++ - b->start];
}

/* Locations.md's varint: 6 bits a byte, bit 6 says more follow. */
static int ga_pw_varint(ga_pw_bytes_t *b, unsigned *out)
{
    int c = ga_pw_byte(b);
    unsigned val, shift = 0;
    if (c < 0)
        return -1;
    val = (unsigned)c & 63;
    while (c & 64) {
        if ((c = ga_pw_byte(b)) < 0 || (shift += 6) > 30)
            return -1;
        val |= ((unsigned)c & 63) << shift;
    }
    *out = val;
    return 0;
}

static int ga_pw_svarint(ga_pw_bytes_t *b, int *out)
{
    unsigned u;
    if (ga_pw_varint(b, &u) != 0)
        return -1;
    *out = (u & 1) ? -(int)(u >> 1) : (int)(u >> 1);
    return 0;
}

/* The line of code unit `lasti` in a location table (a bytes object at
 * table), starting from firstlineno; 0 when unknown. */
static int ga_pw_line(PyObject *table, int firstlineno, int32_t lasti)
{
    PyBytesObject head;
    ga_pw_bytes_t b;
    PyTypeObject *type;
    int line = firstlineno;
    long addr = 0;
    if (!ga_safe_read((uintptr_t)table, &head, offsetof(PyBytesObject, ob_sval)))
        return 0;
    type = ((PyObject *)&head)->ob_type;
    if (type != &PyBytes_Type || Py_SIZE((PyObject *)&head) < 0 || Py_SIZE((PyObject *)&head) > (1 << 24))
        return 0;
    memset(&b, 0, sizeof(b));
    b.at = (uintptr_t)table + offsetof(PyBytesObject, ob_sval);
    b.len = (size_t)Py_SIZE((PyObject *)&head);
    for (;;) {
        int first = ga_pw_byte(&b), kind, length, delta = 0;
        unsigned skip;
        if (first < 0 || !(first & 0x80))
            return 0;
        kind = (first >> 3) & 15;
        length = (first & 7) + 1;
        if (kind == 14) {          /* long form: line delta, end line, column, end column */
            if (ga_pw_svarint(&b, &delta) != 0 || ga_pw_varint(&b, &skip) != 0
                    || ga_pw_varint(&b, &skip) != 0 || ga_pw_varint(&b, &skip) != 0)
                return 0;
        } else if (kind == 13) {   /* no column */
            if (ga_pw_svarint(&b, &delta) != 0)
                return 0;
        } else if (kind >= 10 && kind <= 12) {   /* one line, the delta in the kind; two columns */
            delta = kind - 10;
            if (ga_pw_byte(&b) < 0 || ga_pw_byte(&b) < 0)
                return 0;
        } else if (kind < 10) {    /* same line, one byte of columns */
            if (ga_pw_byte(&b) < 0)
                return 0;
        }                          /* 15: no location */
        line += delta;
        if (lasti < addr + length)
            return kind == 15 ? 0 : line;
        addr += length;
    }
}

/* A str object's text as UTF-8 into out (cut to fit, NUL-terminated); 0, or -1. */
static int ga_pw_text(PyObject *text, char *out, size_t size)
{
    PyASCIIObject head;
    ga_pw_bytes_t b;
    size_t n = 0, i, kind, len;
    if (size == 0 || !ga_safe_read((uintptr_t)text, &head, sizeof(head)))
        return -1;
    out[0] = '\0';
    if (((PyObject *)&head)->ob_type != &PyUnicode_Type || !head.state.compact || head.length < 0)
        return -1;
    kind = head.state.kind;
    if (kind != 1 && kind != 2 && kind != 4)
        return -1;
    len = (size_t)head.length;
    memset(&b, 0, sizeof(b));
    b.at = (uintptr_t)text + (head.state.ascii ? sizeof(PyASCIIObject) : sizeof(PyCompactUnicodeObject));
    b.len = len * kind;
    for (i = 0; i < len; i++) {
        uint32_t ch = 0;
        unsigned char enc[4];
        size_t k, m;
        for (k = 0; k < kind; k++) {
            int c = ga_pw_byte(&b);
            if (c < 0)
                return -1;
            ch |= (uint32_t)c << (8 * k);   /* x86-64: little-endian code units */
        }
        if (ch < 0x80) {
            enc[0] = (unsigned char)ch;
            m = 1;
        } else if (ch < 0x800) {
            enc[0] = (unsigned char)(0xC0 | (ch >> 6));
            enc[1] = (unsigned char)(0x80 | (ch & 63));
            m = 2;
        } else if (ch < 0x10000) {
            enc[0] = (unsigned char)(0xE0 | (ch >> 12));
            enc[1] = (unsigned char)(0x80 | ((ch >> 6) & 63));
            enc[2] = (unsigned char)(0x80 | (ch & 63));
            m = 3;
        } else {
            enc[0] = (unsigned char)(0xF0 | (ch >> 18));
            enc[1] = (unsigned char)(0x80 | ((ch >> 12) & 63));
            enc[2] = (unsigned char)(0x80 | ((ch >> 6) & 63));
            enc[3] = (unsigned char)(0x80 | (ch & 63));
            m = 4;
        }
        if (n + m + 1 > size)
            break;   /* cut at a whole character */
        memcpy(out + n, enc, m);
        n += m;
    }
    out[n] = '\0';
    return 0;
}

static int ga_pw_describe(const ga_pyframe_t *f, ga_pyframe_info_t *out)
{
    PyCodeObject code;
    out->function[0] = out->file[0] = '\0';
    out->line = 0;
    Py_ssize_t refs;
    if (!ga_safe_read((uintptr_t)f->code, &code, offsetof(PyCodeObject, co_code_adaptive))
            || ((PyObject *)&code)->ob_type != &PyCode_Type)
        return -1;
    /* A freed object's first word is pymalloc's free-list link (an address
     * or NULL), not a count: a live one is at least 1 and at most 3.12's
     * immortal count, 2^32 - 1. */
    memcpy(&refs, &code, sizeof(refs));
    if (refs <= 0 || (uint64_t)refs > 0xFFFFFFFFull)
        return -1;
    if (ga_pw_text(code.co_qualname, out->function, sizeof(out->function)) != 0)
        out->function[0] = '\0';
    if (ga_pw_text(code.co_filename, out->file, sizeof(out->file)) != 0)
        out->file[0] = '\0';
    out->line = ga_pw_line(code.co_linetable, code.co_firstlineno, f->lasti);
    return 0;
}

static const ga_pywalker_t ga_pw_walker = {ga_pw_capture, ga_pw_describe};

static void ga_pw_register(void)
{
    ga_pyframes_register(&ga_pw_walker);
}

#endif
