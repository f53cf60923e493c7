/* liaison.hub._geo: the contract's GeoJSON coordinates checked on the raw JSON bytes.
 *
 * The hub decodes geometry `coordinates` as msgspec.Raw (services/hub/geo.py) and asks these
 * functions whether the bytes are a value the contract's decoder would accept, without building
 * a Python float or tuple for each position. The answer is one-sided: True means the contract's
 * decoder (schemas/types.py: Position, _Ring, Polygon) accepts the value; False means "invalid,
 * or not sure", and the hub then decodes the message with the contract's decoder, which decides
 * and words the error. So everything unusual answers False: exponents, more than 17 significant
 * digits or 32 bytes, a number whose integer part equals the bound and whose fraction is not all
 * zeros.
 *
 * Why the range check is exact without parsing a double: the bounds L (90, 180) are doubles,
 * and rounding a decimal to the nearest double is monotonic, so a decimal d with |d| < L rounds
 * to a double of magnitude <= L (accepted by Meta(ge=-L, le=L)), |d| == L rounds to L, and
 * |d| >= L + 1 rounds beyond L (refused). Only L < |d| < L + 1 needs the exact rounding
 * (180.00000000000001 rounds to 180.0 and is accepted): that is left to the contract's decoder.
 */
#define _GNU_SOURCE /* memmem */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LONGITUDE_BOUND 180
#define LATITUDE_BOUND 90
#define RING_MIN 4
#define RING_MAX 2000
#define RINGS_MIN 1
#define RINGS_MAX 16
/* Significant digits and bytes of a number the fast path reads (a double's shortest repr has
 * at most 17 and 24); longer numbers go to the contract's decoder. */
#define MAX_SIGNIFICANT 17
#define MAX_NUMBER_BYTES 32

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} Cursor;

/* JSON's four whitespace bytes, and no others (msgspec refuses e.g. a form feed). */
static inline void skip_ws(Cursor *c) {
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        /* Every token byte is above ' ': one comparison for the usual case, no whitespace. */
        if (ch > ' ' || (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t')) {
            return;
        }
        c->p++;
    }
}

static inline int take(Cursor *c, unsigned char ch) {
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static inline int is_digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }

/* The first byte at or after p that is not a digit (or end). Eight bytes at a time where eight
 * are there: a byte is a digit when its high nibble is 3 and adding 6 keeps it so. Adding 6 to
 * a byte carries into the next one only for a low nibble of 10 or more, which is not a digit,
 * so every byte up to the first non-digit is judged right. A 6-decimal fraction: one step. */
static inline const unsigned char *digits_end(const unsigned char *p, const unsigned char *end) {
    const uint64_t high = 0xF0F0F0F0F0F0F0F0ULL, threes = 0x3030303030303030ULL;
    while (end - p >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        uint64_t not_digit = ((v & high) ^ threes) | (((v + 0x0606060606060606ULL) & high) ^ threes);
        if (not_digit) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return p + (__builtin_ctzll(not_digit) >> 3);
#else
            break;
#endif
        }
        p += 8;
    }
    while (p < end && is_digit(*p)) {
        p++;
    }
    return p;
}

/* One JSON number (RFC 8259 grammar without an exponent) in [-bound, bound]: 1, else 0. */
static inline int number_within(Cursor *c, int bound) {
    const unsigned char *p = c->p, *end = c->end;
    if (p < end && *p == '-') {
        p++;
    }
    if (p >= end || !is_digit(*p)) {
        return 0; /* '+1', '.5', 'NaN', 'Infinity', '-', a string, a nested array... */
    }
    const unsigned char *int_start = p;
    int integer = 0;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && is_digit(*p)) {
            p++;
        }
        /* Four digits are already beyond every bound. */
        if (p - int_start > 3) {
            return 0;
        }
        for (const unsigned char *q = int_start; q < p; q++) {
            integer = integer * 10 + (*q - '0');
        }
        if (integer > bound) {
            return 0;
        }
    }
    ptrdiff_t significant = integer ? p - int_start : 0;
    if (p < end && *p == '.') {
        const unsigned char *fraction = ++p;
        p = digits_end(p, end);
        if (p == fraction) {
            return 0; /* '1.' */
        }
        const unsigned char *first = fraction;
        if (!integer || integer == bound) {
            /* Leading zeros of a number below 1 are not significant; for the bound, whether
             * any digit is not zero is what matters. */
            while (first < p && *first == '0') {
                first++;
            }
            if (integer == bound && first < p) {
                return 0; /* between the bound and the next integer: rounding decides */
            }
        }
        significant += p - first;
    }
    if (p < end && (*p == 'e' || *p == 'E' || is_digit(*p))) {
        return 0; /* an exponent, or a digit after a leading zero ('01') */
    }
    if (significant > MAX_SIGNIFICANT || p - c->p > MAX_NUMBER_BYTES) {
        return 0;
    }
    c->p = p;
    return 1;
}

/* '[' lon ',' lat ']' with JSON whitespace anywhere between tokens. */
static inline int position(Cursor *c) {
    if (!take(c, '[')) {
        return 0;
    }
    skip_ws(c);
    if (!number_within(c, LONGITUDE_BOUND)) {
        return 0;
    }
    skip_ws(c);
    if (!take(c, ',')) {
        return 0;
    }
    skip_ws(c);
    if (!number_within(c, LATITUDE_BOUND)) {
        return 0;
    }
    skip_ws(c);
    return take(c, ']');
}

/* '[' item (',' item)* ']' with min..max items: a ring of positions, a polygon of rings.
 * Static inline with a constant `item`, so each caller gets its own loop, the call inlined. */
static inline int list_of(Cursor *c, int (*item)(Cursor *), int min, int max) {
    if (!take(c, '[')) {
        return 0;
    }
    int count = 0;
    for (;;) {
        skip_ws(c);
        if (!item(c)) {
            return 0;
        }
        if (++count > max) {
            return 0;
        }
        skip_ws(c);
        if (take(c, ']')) {
            return count >= min;
        }
        if (!take(c, ',')) {
            return 0;
        }
    }
}

static int ring(Cursor *c) { return list_of(c, position, RING_MIN, RING_MAX); }

static int polygon(Cursor *c) { return list_of(c, ring, RINGS_MIN, RINGS_MAX); }

/* The whole buffer is one value for `parse`, whitespace aside. */
static PyObject *whole(PyObject *arg, int (*parse)(Cursor *)) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Cursor c = {(const unsigned char *)view.buf, (const unsigned char *)view.buf + view.len};
    skip_ws(&c);
    int ok = parse(&c);
    if (ok) {
        skip_ws(&c);
        ok = c.p == c.end;
    }
    PyBuffer_Release(&view);
    return PyBool_FromLong(ok);
}

static PyObject *geo_point(PyObject *module, PyObject *arg) {
    (void)module;
    return whole(arg, position);
}

static PyObject *geo_polygon(PyObject *module, PyObject *arg) {
    (void)module;
    return whole(arg, polygon);
}

/* Whether a \u escape could spell the key "coordinates" another way (\u0061..\u007a are the
 * escapes of its letters). */
static int key_may_be_escaped(const char *p, const char *end) {
    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        if (end - p >= 5 && p[1] == 'u' && p[2] == '0' && p[3] == '0' &&
            (p[4] == '6' || p[4] == '7')) {
            return 1;
        }
        p += 2; /* an escape is two bytes at least; skipping both keeps "\\u0063" apart */
        if (p >= end) {
            break;
        }
    }
    return 0;
}

static const char KEY[] = "\"coordinates\"";
#define KEY_LEN (sizeof(KEY) - 1)

/* What stands in for checked coordinates in blank()'s copy: a string, which no value the
 * contract accepts as coordinates can be. */
static const char POINT_MARK[] = "\"point\"";
static const char POLYGON_MARK[] = "\"polygon\"";

typedef struct {
    Py_ssize_t from, to; /* the value's bytes, [from, to) */
    int polygon;
} Span;

/* The document with every "coordinates" key's value replaced by a mark of its kind, once each
 * value is checked: (copy, number of keys); None when any key's value is not accepted here
 * (invalid, not sure, not an array, or the string "coordinates" not used as a key) or an
 * escape could spell the key otherwise. Decoding the copy skips no coordinates: the contract's
 * decoder would otherwise parse every number once more only to step over it. */
static PyObject *geo_blank(PyObject *module, PyObject *arg) {
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const char *start = (const char *)view.buf, *end = start + view.len, *p = start;
    PyObject *result = NULL;
    Span *spans = NULL;
    Py_ssize_t count = 0, capacity = 0, kept = view.len;
    if (key_may_be_escaped(start, end)) {
        goto refused;
    }
    while ((p = memmem(p, (size_t)(end - p), KEY, KEY_LEN)) != NULL) {
        Cursor c = {(const unsigned char *)p + KEY_LEN, (const unsigned char *)end};
        skip_ws(&c);
        if (!take(&c, ':')) {
            goto refused;
        }
        skip_ws(&c);
        const unsigned char *value = c.p;
        if (!take(&c, '[')) {
            goto refused;
        }
        skip_ws(&c);
        int is_polygon = c.p < c.end && *c.p == '[';
        c.p = value;
        if (!(is_polygon ? polygon(&c) : position(&c))) {
            goto refused;
        }
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 8;
            Span *grown = PyMem_Realloc(spans, (size_t)capacity * sizeof(Span));
            if (grown == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            spans = grown;
        }
        spans[count].from = (const char *)value - start;
        spans[count].to = (const char *)c.p - start;
        spans[count].polygon = is_polygon;
        kept -= spans[count].to - spans[count].from;
        kept += (Py_ssize_t)(is_polygon ? sizeof(POLYGON_MARK) : sizeof(POINT_MARK)) - 1;
        count++;
        p = (const char *)c.p;
    }
    if (count == 0) {
        result = Py_BuildValue("(On)", arg, count);
        goto done;
    }
    PyObject *copy = PyBytes_FromStringAndSize(NULL, kept);
    if (copy == NULL) {
        goto done;
    }
    char *out = PyBytes_AS_STRING(copy);
    Py_ssize_t from = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        memcpy(out, start + from, (size_t)(spans[i].from - from));
        out += spans[i].from - from;
        const char *mark = spans[i].polygon ? POLYGON_MARK : POINT_MARK;
        size_t mark_len = spans[i].polygon ? sizeof(POLYGON_MARK) - 1 : sizeof(POINT_MARK) - 1;
        memcpy(out, mark, mark_len);
        out += mark_len;
        from = spans[i].to;
    }
    memcpy(out, start + from, (size_t)(view.len - from));
    result = Py_BuildValue("(Nn)", copy, count);
    goto done;
refused:
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(spans);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef geo_methods[] = {
    {"point", geo_point, METH_O,
     "True if the bytes are a Point's coordinates the contract accepts; False: invalid or "
     "not sure."},
    {"polygon", geo_polygon, METH_O,
     "True if the bytes are a Polygon's coordinates the contract accepts; False: invalid or "
     "not sure."},
    {"blank", geo_blank, METH_O,
     "(copy, keys): the document with each \"coordinates\" value, once checked, replaced by "
     "the string \"point\" or \"polygon\"; None if any is not accepted here."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef geo_module = {
    PyModuleDef_HEAD_INIT,
    "liaison.hub._geo",
    "GeoJSON coordinates checked on raw JSON bytes, without building Python objects.",
    -1,
    geo_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__geo(void) {
    PyObject *module = PyModule_Create(&geo_module);
    if (module == NULL) {
        return NULL;
    }
    /* What the checks assume of the contract; services/hub/geo.py compares them with it. */
    if (PyModule_AddIntConstant(module, "LONGITUDE_BOUND", LONGITUDE_BOUND) < 0 ||
        PyModule_AddIntConstant(module, "LATITUDE_BOUND", LATITUDE_BOUND) < 0 ||
        PyModule_AddIntConstant(module, "RING_MIN", RING_MIN) < 0 ||
        PyModule_AddIntConstant(module, "RING_MAX", RING_MAX) < 0 ||
        PyModule_AddIntConstant(module, "RINGS_MIN", RINGS_MIN) < 0 ||
        PyModule_AddIntConstant(module, "RINGS_MAX", RINGS_MAX) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
