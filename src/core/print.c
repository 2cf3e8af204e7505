/*
 * print.c: tensors as text, exactly as PyTorch 1.13 prints them (torch/_tensor_str.py with the
 * default options), so a book's output can be compared by eye.
 *
 * PyTorch's _Formatter picks one format for all the elements shown, then pads each to one width:
 *   - int64 and bool: "{}" (bool as True / False);
 *   - floating, looking only at the nonzero finite elements:
 *       all integral      -> "{:.0f}" plus ".", or "{:.4e}" when max/min > 1000 or max > 1e8;
 *       otherwise         -> "{:.4f}", or "{:.4e}" when max/min > 1000, max > 1e8 or min < 1e-4;
 *     nan and inf print as "nan", "inf", "-inf" (never "1." style, never "-nan").
 *   The width is the longest of those nonzero finite elements (at least 1): zeros and non-finite
 *   values are padded to it but never widen it.
 * Past 1000 elements every dim longer than 6 shows its first and last 3 entries around "...", and
 * the width comes from the shown elements only. A 1-D row wraps after floor((80 - indent) /
 * (width + 2)) items, the " ..." counting as one.
 *
 * No heap memory: pass 1 gathers min / max / integrality, pass 2 measures the width, pass 3 emits,
 * each walking the shown elements straight from the strides (any view, stride 0 included).
 * Formatting goes through snprintf, which rounds like Python's format (both are exact, ties to
 * even), and a float32 is formatted from its double value as Python does. snprintf follows
 * LC_NUMERIC: a host that sets a locale with a decimal comma gets commas (Lua itself starts in "C").
 */
#include "print.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { PRECISION = 4, THRESHOLD = 1000, EDGEITEMS = 3, LINEWIDTH = 80 };

#define PREFIX "tensor("

/* ================================================================ elements */

static double read_float(mg_dtype dt, const char *p) {
    if (dt == MG_FLOAT32) {
        float v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    double v;
    memcpy(&v, p, sizeof v);
    return v;
}

static int64_t read_int(mg_dtype dt, const char *p) {
    if (dt == MG_BOOL) {
        bool v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    int64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The format chosen for every element of one tensor (PyTorch's _Formatter). */
typedef struct formatter {
    mg_dtype dtype;
    bool floating, int_mode, sci_mode;
    bool any;          /* a nonzero finite element was seen (pass 1) */
    double amin, amax; /* of |x| over the nonzero finite elements */
    int width;
} formatter;

/* Fits "%.4f" of DBL_MAX (309 digits): fixed notation is used below 1e8 only, but never overflow. */
enum { ELEM_CAP = 352 };

/* Writes one element, unpadded, into buf; returns its length. */
static int format_elem(const formatter *f, const char *p, char *buf) {
    if (f->dtype == MG_BOOL) return snprintf(buf, ELEM_CAP, "%s", read_int(f->dtype, p) ? "True" : "False");
    if (!f->floating) return snprintf(buf, ELEM_CAP, "%" PRId64, read_int(f->dtype, p));
    const double v = read_float(f->dtype, p);
    if (isnan(v)) return snprintf(buf, ELEM_CAP, "nan"); /* Python drops nan's sign */
    if (isinf(v)) return snprintf(buf, ELEM_CAP, "%s", v < 0 ? "-inf" : "inf");
    if (f->sci_mode) return snprintf(buf, ELEM_CAP, "%.*e", PRECISION, v);
    if (f->int_mode) return snprintf(buf, ELEM_CAP, "%.0f.", v);
    return snprintf(buf, ELEM_CAP, "%.*f", PRECISION, v);
}

static bool counts_for_width(const formatter *f, const char *p) {
    if (!f->floating) return true;
    const double v = read_float(f->dtype, p);
    return isfinite(v) && v != 0;
}

/* pass 1: the range and integrality of the nonzero finite elements */
static void gather(formatter *f, const char *p) {
    if (!counts_for_width(f, p)) return;
    const double v = read_float(f->dtype, p), a = fabs(v);
    if (!f->any || a < f->amin) f->amin = a;
    if (!f->any || a > f->amax) f->amax = a;
    f->any = true;
    if (v != ceil(v)) f->int_mode = false;
}

/* pass 2: the widest element that counts */
static void measure(formatter *f, const char *p) {
    if (!counts_for_width(f, p)) return;
    char buf[ELEM_CAP];
    const int n = format_elem(f, p, buf);
    if (n > f->width) f->width = n;
}

/* ================================================================ walking the shown elements */

/* How many entries of a dim of size n are shown, and which one the k-th shown entry is. */
static int64_t shown_count(int64_t n, bool summarize) {
    return summarize && n > 2 * EDGEITEMS ? 2 * EDGEITEMS : n;
}
static int64_t shown_index(int64_t k, int64_t n, bool summarize) {
    return summarize && n > 2 * EDGEITEMS && k >= EDGEITEMS ? n - 2 * EDGEITEMS + k : k;
}
/* True before the k-th shown entry when "..." stands there. */
static bool ellipsis_before(int64_t k, int64_t n, bool summarize) {
    return summarize && n > 2 * EDGEITEMS && k == EDGEITEMS;
}

static const char *entry(const mg_tensor *t, int d, const char *p, int64_t k, bool summarize) {
    const int64_t item = (int64_t)mg_dtype_size((mg_dtype)t->dtype);
    return p + shown_index(k, t->size[d], summarize) * t->stride[d] * item;
}

typedef void (*visit_fn)(formatter *f, const char *p);

static void visit(const mg_tensor *t, int d, const char *p, bool summarize, visit_fn fn, formatter *f) {
    if (d == t->ndim) {
        fn(f, p);
        return;
    }
    const int64_t n = shown_count(t->size[d], summarize);
    for (int64_t k = 0; k < n; k++) visit(t, d + 1, entry(t, d, p, k, summarize), summarize, fn, f);
}

static void formatter_init(formatter *f, const mg_tensor *t, const char *data, bool summarize) {
    memset(f, 0, sizeof *f);
    f->dtype = (mg_dtype)t->dtype;
    f->floating = mg_is_floating(f->dtype);
    f->int_mode = true;
    f->width = 1;
    if (f->floating) {
        visit(t, 0, data, summarize, gather, f);
        if (!f->any) return; /* only zeros, nan and inf: "0." style, width 1 */
        f->sci_mode = f->amax / f->amin > 1000.0 || f->amax > 1.0e8 || (!f->int_mode && f->amin < 1.0e-4);
    }
    visit(t, 0, data, summarize, measure, f);
}

/* ================================================================ output */

/* The sink plus the current column, which the suffixes' line breaking needs. */
typedef struct writer {
    mg_emit_fn emit;
    void *ud;
    int64_t col;
} writer;

static void put(writer *w, const char *s, size_t n) {
    w->col += (int64_t)n;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n') w->col = (int64_t)(n - i - 1);
    w->emit(w->ud, s, n);
}
static void put_str(writer *w, const char *s) { put(w, s, strlen(s)); }

static void put_spaces(writer *w, int64_t n) {
    static const char spaces[] = "                                ";
    while (n > 0) {
        const int64_t k = n < (int64_t)sizeof spaces - 1 ? n : (int64_t)sizeof spaces - 1;
        put(w, spaces, (size_t)k);
        n -= k;
    }
}

/* ",\n" (newlines times) then the indent */
static void put_break(writer *w, int newlines, int64_t indent) {
    put_str(w, ",");
    for (int i = 0; i < newlines; i++) put_str(w, "\n");
    put_spaces(w, indent);
}

static void put_elem(writer *w, const formatter *f, const char *p) {
    char buf[ELEM_CAP];
    const int n = format_elem(f, p, buf);
    put_spaces(w, f->width - n);
    put(w, buf, (size_t)n);
}

/* The separator before the item-th item of a row: ", ", or a line break every per_line items. */
static void put_row_sep(writer *w, int64_t item, int64_t per_line, int64_t indent) {
    if (item == 0) return;
    if (item % per_line == 0) put_break(w, 1, indent + 1);
    else put_str(w, ", ");
}

/* The innermost dim: "[a, b, c]" wrapped at the line width; " ..." takes an item's slot. */
static void put_row(writer *w, const formatter *f, const mg_tensor *t, const char *p, int64_t indent,
                    bool summarize) {
    const int d = t->ndim - 1;
    const int64_t n = t->size[d], shown = shown_count(n, summarize);
    int64_t per_line = (LINEWIDTH - indent) / (f->width + 2);
    if (per_line < 1) per_line = 1;
    int64_t item = 0;
    put_str(w, "[");
    for (int64_t k = 0; k < shown; k++) {
        if (ellipsis_before(k, n, summarize)) {
            put_row_sep(w, item++, per_line, indent);
            put_str(w, " ...");
        }
        put_row_sep(w, item++, per_line, indent);
        put_elem(w, f, entry(t, d, p, k, summarize));
    }
    put_str(w, "]");
}

/* Dim d and below: nested brackets, sub-tensors separated by ndim - d - 1 newlines. */
static void put_dims(writer *w, const formatter *f, const mg_tensor *t, int d, const char *p, int64_t indent,
                     bool summarize) {
    if (d == t->ndim - 1) {
        put_row(w, f, t, p, indent, summarize);
        return;
    }
    const int64_t n = t->size[d], shown = shown_count(n, summarize);
    const int newlines = t->ndim - d - 1;
    put_str(w, "[");
    for (int64_t k = 0; k < shown; k++) {
        if (ellipsis_before(k, n, summarize)) {
            put_break(w, newlines, indent + 1);
            put_str(w, "...");
        }
        if (k > 0) put_break(w, newlines, indent + 1);
        put_dims(w, f, t, d + 1, entry(t, d, p, k, summarize), indent + 1, summarize);
    }
    put_str(w, "]");
}

/* PyTorch's _add_suffixes: ", s" or, past the line width, ",\n" + indent + s. `last` mirrors its
 * last_line_len, which starts 2 above the real column. */
static void put_suffix(writer *w, int64_t *last, const char *s) {
    const int64_t n = (int64_t)strlen(s), indent = (int64_t)strlen(PREFIX);
    if (*last + n + 2 > LINEWIDTH) {
        put_break(w, 1, indent);
        *last = indent + n;
    } else {
        put_str(w, ", ");
        *last += n + 2;
    }
    put_str(w, s);
}

mg_status mg_format_tensor(mg_ctx *ctx, const mg_tensor *t, mg_emit_fn emit, void *ud) {
    const char *data = mg_tensor_data(t);
    if (t->numel > 0 && !data)
        return mg_fail(ctx, MG_ECLOSED, 1, "tensor used after its storage was released (by <close>)");
    const mg_dtype dt = (mg_dtype)t->dtype;
    writer w = {emit, ud, 0};
    bool dtype_suffix;
    put_str(&w, PREFIX);
    if (t->numel == 0) {
        put_str(&w, "[]");
        dtype_suffix = dt != ctx->default_dtype; /* no element tells an int64 apart */
    } else {
        const bool summarize = t->numel > THRESHOLD;
        formatter f;
        formatter_init(&f, t, data, summarize);
        if (t->ndim == 0) put_elem(&w, &f, data);
        else put_dims(&w, &f, t, 0, data, (int64_t)strlen(PREFIX), summarize);
        dtype_suffix = dt != ctx->default_dtype && dt != MG_INT64 && dt != MG_BOOL;
    }

    int64_t last = w.col + 2;
    if (t->numel == 0 && t->ndim != 1) {
        char size[32 + MG_MAX_DIMS * 24] = "size=(";
        for (int i = 0; i < t->ndim; i++) {
            const size_t len = strlen(size);
            snprintf(size + len, sizeof size - len, i ? ", %" PRId64 : "%" PRId64, t->size[i]);
        }
        strcat(size, ")");
        put_suffix(&w, &last, size);
    }
    if (dtype_suffix) {
        char name[32];
        snprintf(name, sizeof name, "dtype=%s", mg_dtype_name(dt));
        put_suffix(&w, &last, name);
    }
    if (t->requires_grad) put_suffix(&w, &last, "requires_grad=true");
    put_str(&w, ")");
    return MG_OK;
}
