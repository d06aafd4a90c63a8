/*
 * logpath._scanner._scan: one C pass over a block of lines with the scanner generated from the
 * grammar (scanner.c, from scanner.re by re2c; grammars/scanner_gen.py writes scanner.re).
 *
 * This file is written by hand: the loop over the lines of a block and the Python entry.
 * scan(data, first_lineno, after, starts, integers) takes the block's bytes (UTF-8, "\n" after
 * every line, no "\r"), the beginnings of trace lines (bytes), and per field (lp_field_names
 * order) a byte saying whether it is a decimal integer (logpath.netfilter.is_integer_field, as
 * logpath.parse._integer_mask writes them); returns
 *   (lineno, raw, rest, columns, others)
 * lineno:      the number of each line the scanner took, in line order: an Arrow int64 array's
 *              values buffer;
 * raw:         the text of each of those lines: (int32 offsets, data), an Arrow string array's
 *              buffers, built by memcpy (a Python string per line and its conversion were a
 *              tenth of a block's typing);
 * others:      how many lines above `after` are no netfilter line, as parse_lines tells them: no
 *              "IN=" or no "OUT=", no trace line's beginning, and not blank (a printable ASCII
 *              character in them: a line of other white space is left to Python, whose
 *              str.strip() knows Unicode's); a syslog file's other lines were a third of a
 *              block's, each made a Python string to be counted;
 * rest:        (lineno, text) of every other line numbered above `after`, for the Python path;
 * columns:     per field, None if no line had it, else, for a text,
 *              (validity bitmap or None, int32 offsets, data, null count): an Arrow string
 *              array's buffers, built by memcpy, no Python object per value; for a decimal
 *              integer, (validity bitmap or None, int64 values, null count), the digits read
 *              here as logpath.netfilter.integers reads them (more than INTEGER_DIGITS digits:
 *              TOO_LONG, above every limit); an empty value is missing, as Python's path makes
 *              it, and a field with any other text is left a text column, for Python.
 */
#define _GNU_SOURCE /* memmem */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "scanner.c"

#define MAX_LINE 65536 /* logpath.parse.MAX_LINE: longer lines are skipped by Python */

typedef struct {
    int32_t *spans; /* 2 per field per taken line: offsets into the block, -1 absent */
    int32_t *line_spans; /* 2 per taken line: where it starts and ends in the block */
    int64_t *lineno; /* per taken line, its number */
    Py_ssize_t lines, capacity;
    /* per field, on how many taken lines it is present and its bytes on them: a column is
     * built in one pass over the lines, and none for a field no line shows (most of a
     * block's 119: TRACE, ARP, ICMP quotes...), where two passes over every line's spans per
     * field were a quarter of the scan */
    Py_ssize_t present[LP_FIELDS], bytes[LP_FIELDS];
} Spans;

static int spans_grow(Spans *s)
{
    Py_ssize_t capacity = s->capacity ? 2 * s->capacity : 1024;
    int32_t *grown = PyMem_Realloc(s->spans, (size_t)capacity * 2 * LP_FIELDS * sizeof(int32_t));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    s->spans = grown;
    int32_t *lines = PyMem_Realloc(s->line_spans, (size_t)capacity * 2 * sizeof(int32_t));
    if (lines == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    s->line_spans = lines;
    int64_t *numbers = PyMem_Realloc(s->lineno, (size_t)capacity * sizeof(int64_t));
    if (numbers == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    s->lineno = numbers;
    s->capacity = capacity;
    return 0;
}

/* Python's message_end() strips trailing white space (any Unicode space) and, in a line with
 * "message repeated " in its first 120 characters, a last "]"; the patterns here strip only
 * spaces, so a line ending otherwise is left to Python (480 bytes: 120 characters of UTF-8). */
static int end_is_plain(const unsigned char *line, const unsigned char *end)
{
    static const char repeated[] = "message repeated ";
    while (end > line && end[-1] == ' ')
        end--;
    if (end == line)
        return 0;
    unsigned char last = end[-1];
    if (last >= 0x80 || last < 0x21)
        return 0;
    if (last == ']') {
        size_t head = (size_t)(end - line) < 480 ? (size_t)(end - line) : 480;
        return memmem(line, head, repeated, sizeof repeated - 1) == NULL;
    }
    return 1;
}

static PyObject *column(const Spans *s, const unsigned char *base, int field)
{
    Py_ssize_t n = s->lines, total = s->bytes[field], nulls = n - s->present[field];
    if (nulls == n)
        Py_RETURN_NONE;
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * (Py_ssize_t)sizeof(int32_t));
    PyObject *data = PyBytes_FromStringAndSize(NULL, total);
    PyObject *validity = nulls ? PyBytes_FromStringAndSize(NULL, (n + 7) / 8) : Py_None;
    if (offsets == NULL || data == NULL || validity == NULL) {
        Py_XDECREF(offsets);
        Py_XDECREF(data);
        if (validity != Py_None)
            Py_XDECREF(validity);
        return NULL;
    }
    if (validity == Py_None)
        Py_INCREF(Py_None);
    else
        memset(PyBytes_AS_STRING(validity), 0, (size_t)(n + 7) / 8);
    int32_t *offset = (int32_t *)PyBytes_AS_STRING(offsets);
    char *out = PyBytes_AS_STRING(data);
    unsigned char *valid = (unsigned char *)(validity == Py_None ? NULL : PyBytes_AS_STRING(validity));
    int32_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int32_t *span = s->spans + (i * LP_FIELDS + field) * 2;
        offset[i] = at;
        if (span[0] >= 0) {
            memcpy(out + at, base + span[0], (size_t)(span[1] - span[0]));
            at += span[1] - span[0];
            if (valid)
                valid[i / 8] |= (unsigned char)(1u << (i % 8));
        }
    }
    offset[n] = at;
    return Py_BuildValue("(NNNn)", validity, offsets, data, nulls);
}

/* logpath.netfilter.INTEGER_DIGITS and TOO_LONG: a number of more digits than an int64 surely
 * holds is read as one above every limit (the line is then rejected for it) */
#define INTEGER_DIGITS 18
#define TOO_LONG 999999999999999999LL

/* Whether every present value of the field is digits (an empty one counts as missing). */
static int all_digits(const Spans *s, const unsigned char *base, int field)
{
    for (Py_ssize_t i = 0; i < s->lines; i++) {
        const int32_t *span = s->spans + (i * LP_FIELDS + field) * 2;
        for (int32_t at = span[0]; at >= 0 && at < span[1]; at++)
            if (base[at] < '0' || base[at] > '9')
                return 0;
    }
    return 1;
}

static PyObject *integer_column(const Spans *s, const unsigned char *base, int field)
{
    Py_ssize_t n = s->lines, nulls = 0;
    PyObject *values = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int64_t));
    PyObject *validity = PyBytes_FromStringAndSize(NULL, (n + 7) / 8);
    if (values == NULL || validity == NULL) {
        Py_XDECREF(values);
        Py_XDECREF(validity);
        return NULL;
    }
    int64_t *value = (int64_t *)PyBytes_AS_STRING(values);
    unsigned char *valid = (unsigned char *)PyBytes_AS_STRING(validity);
    memset(valid, 0, (size_t)(n + 7) / 8);
    for (Py_ssize_t i = 0; i < n; i++) {
        const int32_t *span = s->spans + (i * LP_FIELDS + field) * 2;
        int32_t length = span[0] >= 0 ? span[1] - span[0] : 0;
        if (length == 0) {
            value[i] = 0;
            nulls++;
            continue;
        }
        int64_t number = 0;
        if (length > INTEGER_DIGITS) {
            number = TOO_LONG;
        } else {
            for (int32_t at = span[0]; at < span[1]; at++)
                number = number * 10 + (base[at] - '0');
        }
        value[i] = number;
        valid[i / 8] |= (unsigned char)(1u << (i % 8));
    }
    if (nulls == 0) {
        Py_DECREF(validity);
        validity = Py_None;
        Py_INCREF(Py_None);
    }
    return Py_BuildValue("(NNn)", validity, values, nulls);
}

/* The texts of the taken lines: an Arrow string array's (offsets, data). */
static PyObject *raw_column(const Spans *s, const unsigned char *base)
{
    Py_ssize_t n = s->lines, total = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        total += s->line_spans[2 * i + 1] - s->line_spans[2 * i];
    if (total > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a block's lines must be smaller than 2 GiB");
        return NULL;
    }
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * (Py_ssize_t)sizeof(int32_t));
    PyObject *data = PyBytes_FromStringAndSize(NULL, total);
    if (offsets == NULL || data == NULL) {
        Py_XDECREF(offsets);
        Py_XDECREF(data);
        return NULL;
    }
    int32_t *offset = (int32_t *)PyBytes_AS_STRING(offsets), at = 0;
    char *out = PyBytes_AS_STRING(data);
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t start = s->line_spans[2 * i], length = s->line_spans[2 * i + 1] - start;
        offset[i] = at;
        memcpy(out + at, base + start, (size_t)length);
        at += length;
    }
    offset[n] = at;
    return Py_BuildValue("(NN)", offsets, data);
}

static int append_line(PyObject *rest, long long lineno, const unsigned char *line,
                       Py_ssize_t length)
{
    PyObject *number = PyLong_FromLongLong(lineno);
    PyObject *text = PyUnicode_DecodeUTF8((const char *)line, length, "strict");
    int failed = number == NULL || text == NULL;
    if (!failed) {
        PyObject *pair = PyTuple_Pack(2, number, text);
        failed = pair == NULL || PyList_Append(rest, pair) < 0;
        Py_XDECREF(pair);
    }
    Py_XDECREF(number);
    Py_XDECREF(text);
    return failed ? -1 : 0;
}

/* Whether parse_lines would count this line as no netfilter line (see `others` above). */
static int is_other(const unsigned char *line, Py_ssize_t length, PyObject *starts)
{
    if (memmem(line, (size_t)length, "OUT=", 4) != NULL && memmem(line, (size_t)length, "IN=", 3) != NULL)
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(starts); i++) {
        PyObject *start = PyTuple_GET_ITEM(starts, i);
        Py_ssize_t n = PyBytes_GET_SIZE(start);
        if (n <= length && memcmp(line, PyBytes_AS_STRING(start), (size_t)n) == 0)
            return 0;
    }
    for (Py_ssize_t i = 0; i < length; i++)
        if (line[i] > 0x20 && line[i] < 0x7f)
            return 1;
    return 0;
}

/* Scan every line; fill the spans of the lines taken, count the others that are no netfilter
 * line, hand the rest to `rest`. */
static int scan_lines(const unsigned char *base, Py_ssize_t size, long long lineno, long long after,
                      PyObject *starts, Spans *spans, PyObject *rest, Py_ssize_t *others)
{
    const unsigned char *line = base, *end = base + size;
    const unsigned char *span[2 * LP_FIELDS];
    for (; line < end; lineno++) {
        const unsigned char *newline = memchr(line, '\n', (size_t)(end - line));
        Py_ssize_t length = newline - line;
        if (lineno > after) {
            int kind = 0;
            /* parse_lines's order: no netfilter line first (no line without "IN=" and "OUT="
             * is one the patterns take), so the automaton never runs on a syslog file's other
             * lines (on the 2M-line replay, 4% of the scan's CPU) */
            int other = is_other(line, length, starts);
            if (!other && length <= MAX_LINE && end_is_plain(line, newline)) {
                memset(span, 0, sizeof span);
                kind = lp_scan_line(line, span);
            }
            if (kind) {
                if (spans->lines == spans->capacity && spans_grow(spans) < 0)
                    return -1;
                int32_t *out = spans->spans + spans->lines * LP_FIELDS * 2;
                for (int i = 0; i < 2 * LP_FIELDS; i += 2) {
                    if (span[i]) {
                        out[i] = (int32_t)(span[i] - base);
                        out[i + 1] = (int32_t)(span[i + 1] - base);
                        spans->present[i / 2]++;
                        spans->bytes[i / 2] += span[i + 1] - span[i];
                    } else {
                        out[i] = out[i + 1] = -1;
                    }
                }
                spans->line_spans[2 * spans->lines] = (int32_t)(line - base);
                spans->line_spans[2 * spans->lines + 1] = (int32_t)(newline - base);
                spans->lineno[spans->lines] = lineno;
                spans->lines++;
            } else if (other) {
                (*others)++;
            } else if (append_line(rest, lineno, line, length) < 0) {
                return -1;
            }
        }
        line = newline + 1;
    }
    return 0;
}

static PyObject *scan(PyObject *self, PyObject *args)
{
    Py_buffer block;
    long long first, after;
    PyObject *starts, *integers;
    Py_ssize_t others = 0;
    if (!PyArg_ParseTuple(args, "y*LLO!O!", &block, &first, &after, &PyTuple_Type, &starts,
                          &PyBytes_Type, &integers))
        return NULL;
    if (PyBytes_GET_SIZE(integers) != LP_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "integers must say, of every field, whether it is one");
        PyBuffer_Release(&block);
        return NULL;
    }
    const char *integer = PyBytes_AS_STRING(integers);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(starts); i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(starts, i))) {
            PyErr_SetString(PyExc_TypeError, "starts must be a tuple of bytes");
            PyBuffer_Release(&block);
            return NULL;
        }
    }
    const unsigned char *base = block.buf;
    PyObject *rest = PyList_New(0), *columns = NULL, *raw = NULL, *lineno = NULL;
    PyObject *result = NULL;
    Spans spans = {NULL, NULL, NULL, 0, 0, {0}, {0}};
    if (block.len && base[block.len - 1] != '\n') {
        PyErr_SetString(PyExc_ValueError, "the block must end with a newline");
        goto done;
    }
    if (rest == NULL)
        goto done;
    if (block.len > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a block must be smaller than 2 GiB");
        goto done;
    }
    if (scan_lines(base, block.len, first, after, starts, &spans, rest, &others) < 0)
        goto done;
    columns = PyList_New(LP_FIELDS);
    if (columns == NULL)
        goto done;
    for (int f = 0; f < LP_FIELDS; f++) {
        int typed = integer[f] && spans.present[f] && all_digits(&spans, base, f);
        PyObject *one = typed ? integer_column(&spans, base, f) : column(&spans, base, f);
        if (one == NULL)
            goto done;
        PyList_SET_ITEM(columns, f, one);
    }
    raw = raw_column(&spans, base);
    lineno = PyBytes_FromStringAndSize((const char *)spans.lineno,
                                       spans.lines * (Py_ssize_t)sizeof(int64_t));
    if (raw == NULL || lineno == NULL)
        goto done;
    result = Py_BuildValue("(OOOOn)", lineno, raw, rest, columns, others);
done:
    PyMem_Free(spans.spans);
    PyMem_Free(spans.line_spans);
    PyMem_Free(spans.lineno);
    Py_XDECREF(rest);
    Py_XDECREF(columns);
    Py_XDECREF(raw);
    Py_XDECREF(lineno);
    PyBuffer_Release(&block);
    return result;
}

static PyObject *field_names(PyObject *self, PyObject *unused)
{
    PyObject *names = PyTuple_New(LP_FIELDS);
    if (names == NULL)
        return NULL;
    for (int f = 0; f < LP_FIELDS; f++) {
        PyObject *name = PyUnicode_FromString(lp_field_names[f]);
        if (name == NULL) {
            Py_DECREF(names);
            return NULL;
        }
        PyTuple_SET_ITEM(names, f, name);
    }
    return names;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(data, first_lineno, after, starts, integers) -> (lineno, raw, rest, columns, "
     "others): one block's lines."},
    {"field_names", field_names, METH_NOARGS, "The fields of the columns scan() returns."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", NULL, -1, methods};

/* What scan() takes and returns, numbered: logpath.parse.SCANNER_INTERFACE must be the same, or
 * the module is not used (a build left from an older logpath, say, before a reinstall). */
#define INTERFACE 2

PyMODINIT_FUNC PyInit__scan(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "INTERFACE", INTERFACE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
