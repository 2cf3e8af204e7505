/*
 * print.h: tostring(t) in PyTorch's format, written through a caller-given sink. No Lua here.
 */
#ifndef MG_PRINT_H
#define MG_PRINT_H

#include "core.h"

/* Receives the text piece by piece (`s` is not terminated; borrowed for the call only). It may
 * longjmp (a Lua buffer raising on no memory): the formatter holds no heap memory across it. */
typedef void (*mg_emit_fn)(void *ud, const char *s, size_t n);

/* Writes t as PyTorch 1.13 prints it with the default print options (precision 4, threshold 1000,
 * edgeitems 3, linewidth 80), e.g. "tensor([  5.3671, -17.3012])", then the suffixes
 * ", size=(0, 3)", ", dtype=float64", ", requires_grad=true" where PyTorch has them. Any strides. */
mg_status mg_format_tensor(mg_ctx *ctx, const mg_tensor *t, mg_emit_fn emit, void *ud);

#endif
