/* The CPU MoE pieces, the oracle for device backends: routing, grouping, activation quantization,
 * grouped GEMM (through the reference GEMM on per-expert views) and combine, all in double. */
#include "../backend/moe.h"
#include "../format/format.h"
#include "cpu.h"

#include <math.h>
#include <string.h>

#define NONE FP8_MOE_NONE

static const uint8_t *host_bytes(const fp8_buffer *b, size_t offset)
{
    return (const uint8_t *)fp8i_cpu_ptr(b) + offset;
}

static uint32_t *plan_words(const fp8i_moe_plan *p)
{
    return (uint32_t *)((uint8_t *)fp8i_cpu_ptr(p->buffer) + p->offset);
}

static float load_at(const fp8i_matrix *m, uint32_t r, uint32_t c)
{
    return fp8i_load(m->dtype, host_bytes(m->buffer, m->offset), (size_t)r * m->row_stride + c);
}

/* ------------------------------------------------------------------------------------------------
 * Routing.
 * ---------------------------------------------------------------------------------------------- */
/* Index of the largest key among allowed[i] (non-zero), the lowest index on ties; n when none. */
static uint32_t argmax_allowed(const double *key, const uint8_t *allowed, uint32_t n)
{
    uint32_t best = n;
    for (uint32_t i = 0; i < n; i++)
        if (allowed[i] && (best == n || key[i] > key[best])) best = i;
    return best;
}

/* One token: returns false when its logits (or the bias) are not finite. */
static bool route_token(const fp8i_moe_route_args *a, uint32_t t, double *s, double *key, double *gkey, uint8_t *allowed,
                        uint8_t *gallowed, int32_t *ids, float *w)
{
    const uint32_t e = a->experts, k = a->top_k;
    double mx = -INFINITY;
    for (uint32_t i = 0; i < e; i++) {
        s[i] = load_at(&a->logits, t, i);
        if (!isfinite(s[i])) return false;
        if (s[i] > mx) mx = s[i];
    }
    if (a->scoring == FP8_MOE_SCORE_SOFTMAX) {
        double z = 0.0;
        for (uint32_t i = 0; i < e; i++) z += (s[i] = exp(s[i] - mx));
        for (uint32_t i = 0; i < e; i++) s[i] /= z;
    } else {
        for (uint32_t i = 0; i < e; i++) s[i] = 1.0 / (1.0 + exp(-s[i]));
    }
    for (uint32_t i = 0; i < e; i++) {
        key[i] = s[i];
        if (a->bias.buffer) {
            const double b = load_at(&a->bias, 0, i);
            if (!isfinite(b)) return false;
            key[i] += b;
        }
        allowed[i] = 1;
    }
    if (a->n_group > 1) {
        const uint32_t gs = e / a->n_group;
        for (uint32_t g = 0; g < a->n_group; g++) {
            const double *kg = key + (size_t)g * gs;
            double top1 = -INFINITY, top2 = -INFINITY;
            for (uint32_t i = 0; i < gs; i++) {
                if (kg[i] > top1) { top2 = top1; top1 = kg[i]; }
                else if (kg[i] > top2) top2 = kg[i];
            }
            gkey[g] = a->group_score == FP8_MOE_GROUP_SCORE_MAX || gs == 1 ? top1 : top1 + top2;
            gallowed[g] = 1;
        }
        uint8_t *kept = gallowed + a->n_group; /* second half of the group scratch */
        memset(kept, 0, a->n_group);
        for (uint32_t j = 0; j < a->topk_group; j++) {
            uint32_t g = argmax_allowed(gkey, gallowed, a->n_group);
            gallowed[g] = 0;
            kept[g] = 1;
        }
        for (uint32_t i = 0; i < e; i++) allowed[i] = kept[i / gs];
    }
    double sum = 0.0, wd[FP8_MOE_MAX_TOP_K];
    for (uint32_t j = 0; j < k; j++) {
        const uint32_t id = argmax_allowed(key, allowed, e); /* always found: validation ensured enough experts */
        allowed[id] = 0;
        ids[j] = (int32_t)id;
        wd[j] = s[id];
        sum += wd[j];
    }
    for (uint32_t j = 0; j < k; j++) {
        double v = wd[j];
        if (a->renormalize && sum > 0.0) v /= sum;
        w[j] = (float)(v * a->scaling);
    }
    return true;
}

fp8_status fp8i_cpu_moe_route(fp8_device *dev, const fp8i_moe_route_args *a)
{
    const fp8_context *ctx = dev->ctx;
    const uint32_t e = a->experts, k = a->top_k;
    double *buf = fp8i_malloc(ctx, (size_t)3 * e * sizeof(double));
    uint8_t *flags = fp8i_malloc(ctx, (size_t)3 * e);
    if (!buf || !flags) {
        fp8i_free(ctx, buf);
        fp8i_free(ctx, flags);
        return FP8_ERR_OUT_OF_HOST_MEMORY;
    }
    uint8_t *ids = (uint8_t *)fp8i_cpu_ptr(a->ids.buffer) + a->ids.offset;
    uint8_t *wts = (uint8_t *)fp8i_cpu_ptr(a->weights.buffer) + a->weights.offset;
    uint32_t bad = 0, first_bad = 0;
    for (uint32_t t = 0; t < a->m; t++) {
        int32_t tid[FP8_MOE_MAX_TOP_K];
        float tw[FP8_MOE_MAX_TOP_K];
        if (!route_token(a, t, buf, buf + e, buf + 2 * (size_t)e, flags, flags + e, tid, tw)) {
            /* The safe answer every backend gives: valid ids, no weight. */
            for (uint32_t j = 0; j < k; j++) { tid[j] = (int32_t)j; tw[j] = 0.0f; }
            if (!bad++) first_bad = t;
        }
        memcpy(ids + (size_t)t * a->ids.row_stride * 4, tid, (size_t)k * 4);
        memcpy(wts + (size_t)t * a->weights.row_stride * 4, tw, (size_t)k * 4);
    }
    fp8i_free(ctx, buf);
    fp8i_free(ctx, flags);
    if (bad)
        return FP8I_FAIL(ctx, FP8_ERR_NOT_FINITE, "moe route: %u token(s) with non-finite logits or bias (first: %u)", bad,
                         first_bad);
    return FP8_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Grouping: counting sort, stable in slot order.
 * ---------------------------------------------------------------------------------------------- */
fp8_status fp8i_cpu_moe_group(fp8_device *dev, const fp8i_moe_group_args *a)
{
    const fp8i_moe_plan *p = &a->plan;
    uint32_t *w = plan_words(p);
    const uint32_t e = p->experts, k = p->top_k, al = p->row_align;
    uint32_t *counts = w + p->counts_at, *offsets = w + p->offsets_at, *active = w + p->active_at;
    uint32_t *row_token = w + p->row_token_at, *row_slot = w + p->row_slot_at, *slot_row = w + p->slot_row_at;
    uint32_t *tile_expert = w + p->tile_expert_at;
    const uint8_t *ids = host_bytes(a->ids.buffer, a->ids.offset);
    /* Every slot's id, read once: the ids may be garbage, so each is range-checked before use. */
    uint32_t dropped = 0;
    memset(counts, 0, (size_t)e * 4);
    for (uint32_t s = 0; s < p->slots; s++) {
        int32_t id;
        memcpy(&id, ids + ((size_t)(s / k) * a->ids.row_stride + s % k) * 4, 4);
        if (id < 0 || (uint32_t)id >= e) { dropped++; continue; }
        counts[id]++;
    }
    uint32_t total = 0, nactive = 0;
    for (uint32_t i = 0; i < e; i++) {
        offsets[i] = total;
        total += (counts[i] + al - 1) / al * al; /* <= rows capacity by construction */
        if (counts[i]) active[nactive++] = i;
    }
    offsets[e] = total;
    for (uint32_t i = nactive; i < e; i++) active[i] = NONE;
    for (uint32_t r = 0; r < p->rows; r++) row_token[r] = row_slot[r] = NONE;
    /* Scatter in slot order; counts[] is reused as each expert's cursor and restored after. */
    for (uint32_t i = 0; i < e; i++) counts[i] = 0;
    for (uint32_t s = 0; s < p->slots; s++) {
        int32_t id;
        memcpy(&id, ids + ((size_t)(s / k) * a->ids.row_stride + s % k) * 4, 4);
        if (id < 0 || (uint32_t)id >= e) { slot_row[s] = NONE; continue; }
        const uint32_t r = offsets[id] + counts[id]++;
        row_token[r] = s / k;
        row_slot[r] = s;
        slot_row[s] = r;
    }
    uint32_t owner = 0;
    for (uint32_t t = 0; t < p->tiles; t++) {
        const uint32_t r = t * al;
        if (r >= total) { tile_expert[t] = NONE; continue; }
        while (offsets[owner + 1] <= r) owner++; /* skips empty groups, which span no rows */
        tile_expert[t] = owner;
    }
    memset(w, 0, FP8I_MOE_HEADER_WORDS * 4);
    w[FP8I_MOE_H_MAGIC] = FP8_MOE_PLAN_MAGIC;
    w[FP8I_MOE_H_STATUS] = dropped ? (uint32_t)(int32_t)FP8_ERR_EXPERT_ID : 0;
    w[FP8I_MOE_H_M] = p->m;
    w[FP8I_MOE_H_TOP_K] = k;
    w[FP8I_MOE_H_EXPERTS] = e;
    w[FP8I_MOE_H_ROW_ALIGN] = al;
    w[FP8I_MOE_H_ROWS] = p->rows;
    w[FP8I_MOE_H_TOTAL_ROWS] = total;
    w[FP8I_MOE_H_ACTIVE] = nactive;
    w[FP8I_MOE_H_DROPPED] = dropped;
    if (dropped)
        return FP8I_FAIL(dev->ctx, FP8_ERR_EXPERT_ID, "moe group: %u slot(s) with an expert id outside [0, %u) dropped",
                         dropped, e);
    return FP8_OK;
}

/* A plan lives in caller memory: before trusting it, check that it is the one the descriptor names and
 * that every index the consumers follow stays in range. */
static fp8_status verify_plan(const fp8_device *dev, const fp8i_moe_plan *p, const char *what)
{
    const uint32_t *w = plan_words(p);
    if (w[FP8I_MOE_H_MAGIC] != FP8_MOE_PLAN_MAGIC || w[FP8I_MOE_H_M] != p->m || w[FP8I_MOE_H_TOP_K] != p->top_k ||
        w[FP8I_MOE_H_EXPERTS] != p->experts || w[FP8I_MOE_H_ROW_ALIGN] != p->row_align || w[FP8I_MOE_H_ROWS] != p->rows)
        return FP8I_FAIL(dev->ctx, FP8_ERR_INVALID_ARGUMENT,
                         "%s: the plan's header does not match the descriptor (not built by fp8_moe_group?)", what);
    const uint32_t *counts = w + p->counts_at, *offsets = w + p->offsets_at;
    const uint32_t *row_token = w + p->row_token_at, *slot_row = w + p->slot_row_at;
    const uint32_t total = w[FP8I_MOE_H_TOTAL_ROWS];
    if (offsets[0] != 0 || offsets[p->experts] != total || total > p->rows) goto corrupt;
    for (uint32_t e = 0; e < p->experts; e++)
        if (offsets[e + 1] < offsets[e] || offsets[e + 1] - offsets[e] < counts[e]) goto corrupt;
    for (uint32_t r = 0; r < total; r++)
        if (row_token[r] != NONE && row_token[r] >= p->m) goto corrupt;
    for (uint32_t s = 0; s < p->slots; s++)
        if (slot_row[s] != NONE && slot_row[s] >= total) goto corrupt;
    return FP8_OK;
corrupt:
    return FP8I_FAIL(dev->ctx, FP8_ERR_INVALID_ARGUMENT, "%s: the plan's contents are inconsistent", what);
}

/* ------------------------------------------------------------------------------------------------
 * Activation quantization: fp8_quantize's host rule, row by row.
 * ---------------------------------------------------------------------------------------------- */
fp8_status fp8i_cpu_moe_quantize_rows(fp8_device *dev, const fp8i_moe_quant_args *a)
{
    const uint32_t *row_token = NULL;
    uint32_t rows = a->rows;
    if (a->plan.buffer) {
        fp8_status st = verify_plan(dev, &a->plan, "moe quantize");
        if (st != FP8_OK) return st;
        const uint32_t *w = plan_words(&a->plan);
        row_token = w + a->plan.row_token_at;
        if (w[FP8I_MOE_H_TOTAL_ROWS] < rows) rows = w[FP8I_MOE_H_TOTAL_ROWS];
    }
    const uint32_t nb = a->cols / a->block_cols + (a->cols % a->block_cols != 0);
    const size_t src_es = fp8_dtype_bits(a->src.dtype) / 8;
    uint32_t bad = 0;
    for (uint32_t r = 0; r < rows; r++) {
        if (row_token && row_token[r] == NONE) continue; /* padding: the GEMM never reads it */
        uint8_t *dst = (uint8_t *)fp8i_cpu_ptr(a->dst.buffer) + a->dst.offset + (size_t)r * a->dst.row_stride;
        float *sc = (float *)((uint8_t *)fp8i_cpu_ptr(a->scales.buffer) + a->scales.offset) + (size_t)r * a->scales.row_stride;
        fp8_quantize_desc q = {.rows = 1, .cols = a->cols, .src_dtype = a->src.dtype,
                               .src = host_bytes(a->src.buffer, a->src.offset + (size_t)r * a->src.row_stride * src_es),
                               .dst_dtype = a->dst.dtype, .dst = dst, .dst_bytes = a->cols,
                               .scale_layout = {.kind = FP8_SCALE_BLOCK, .dtype = FP8_F32, .block_rows = 1,
                                                .block_cols = a->block_cols},
                               .scale = sc, .scale_bytes = (size_t)nb * 4};
        fp8_status st = fp8_quantize(&q);
        if (st == FP8_ERR_NOT_FINITE) {
            memset(dst, 0, a->cols);
            for (uint32_t b = 0; b < nb; b++) sc[b] = 1.0f;
            bad++;
        } else if (st != FP8_OK) {
            return FP8I_FAIL(dev->ctx, FP8_ERR_INTERNAL, "moe quantize: fp8_quantize said %s", fp8_status_name(st));
        }
    }
    if (bad) return FP8I_FAIL(dev->ctx, FP8_ERR_NOT_FINITE, "moe quantize: %u row(s) of activations not finite", bad);
    return FP8_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Grouped GEMM: for each active expert, gather its rows into host scratch and run the reference GEMM
 * on a view of that expert's weights; the epilogue applies the activation in double.
 * ---------------------------------------------------------------------------------------------- */
static double silu(double x) { return x / (1.0 + exp(-x)); }
static double gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double gelu_tanh(double x)
{
    return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

static double activate(fp8_moe_activation act, double x)
{
    switch (act) {
    case FP8_MOE_ACT_SWIGLU: case FP8_MOE_ACT_SILU: return silu(x);
    case FP8_MOE_ACT_GEGLU: case FP8_MOE_ACT_GELU: return gelu(x);
    case FP8_MOE_ACT_GEGLU_TANH: case FP8_MOE_ACT_GELU_TANH: return gelu_tanh(x);
    default: return x;
    }
}

typedef struct gemm_tmp {
    uint8_t *x, *xs;
    float *y;
} gemm_tmp;

/* Rows [row0, row0 + count) of the output belong to expert e; src[i] is the X row each reads. */
static fp8_status run_expert(fp8_device *dev, const fp8i_moe_gemm_args *a, uint32_t e, uint32_t row0, uint32_t count,
                             const uint32_t *src, const gemm_tmp *tmp)
{
    const size_t x_es = fp8_dtype_bits(a->x.dtype) / 8;
    const size_t xrow = (size_t)a->k * x_es;
    const uint8_t *xbase = host_bytes(a->x.buffer, a->x.offset);
    for (uint32_t i = 0; i < count; i++) memcpy(tmp->x + i * xrow, xbase + (size_t)src[i] * a->x.row_stride * x_es, xrow);
    fp8_buffer xb = {.dev = dev, .size = count * xrow, .impl = tmp->x};
    fp8_buffer xsb = {.dev = dev};
    fp8_buffer yb = {.dev = dev, .size = (size_t)count * a->n * 4, .impl = tmp->y};
    fp8i_gemm_args g = {.m = count, .n = a->n, .k = a->k, .path = FP8_PATH_CPU_REFERENCE};
    g.w = a->w;
    g.w.buffer = fp8i_moe_expert_w(a, e, &g.w.offset);
    g.w_scales = a->w_scales;
    if (g.w_scales.buffer) g.w_scales.offset += (size_t)e * a->w_scales_expert_stride;
    if (a->w_tensor_scales.buffer) g.w_scales.tensor_scale *= load_at(&a->w_tensor_scales, 0, e);
    g.x = (fp8i_matrix){.buffer = &xb, .offset = 0, .dtype = a->x.dtype, .row_stride = a->k};
    g.x_scales = a->x_scales;
    if (a->x_scales.buffer && a->x_scales.block_rows == 1 && a->x_scales.block_row_count > 1) {
        /* One scale row per X row: gather them beside the rows. */
        const size_t srow = (size_t)a->x_scales.blocks_per_row * (fp8_dtype_bits(a->x_scales.dtype) / 8);
        const uint8_t *sbase = host_bytes(a->x_scales.buffer, a->x_scales.offset);
        for (uint32_t i = 0; i < count; i++) memcpy(tmp->xs + i * srow, sbase + (size_t)src[i] * srow, srow);
        xsb.size = count * srow;
        xsb.impl = tmp->xs;
        g.x_scales.buffer = &xsb;
        g.x_scales.offset = 0;
        g.x_scales.block_row_count = count;
    }
    g.y = (fp8i_matrix){.buffer = &yb, .offset = 0, .dtype = FP8_F32, .row_stride = a->n};
    if (a->bias.buffer) {
        g.bias = a->bias;
        g.bias.offset += (size_t)e * a->bias.row_stride * (fp8_dtype_bits(a->bias.dtype) / 8);
    }
    fp8_status st = fp8i_cpu_gemm(dev, &g);
    if (st != FP8_OK) return st;

    uint8_t *y = (uint8_t *)fp8i_cpu_ptr(a->y.buffer) + a->y.offset;
    const bool gated = a->n_out != a->n;
    for (uint32_t i = 0; i < count; i++) {
        const float *yr = tmp->y + (size_t)i * a->n;
        for (uint32_t c = 0; c < a->n_out; c++) {
            double v = gated ? activate(a->activation, yr[c]) * (double)yr[a->n_out + c] : activate(a->activation, yr[c]);
            fp8i_store(a->y.dtype, y, (size_t)(row0 + i) * a->y.row_stride + c, (float)v, FP8_OVERFLOW_CAST);
        }
    }
    return FP8_OK;
}

fp8_status fp8i_cpu_moe_grouped_gemm(fp8_device *dev, const fp8i_moe_gemm_args *a)
{
    const fp8_context *ctx = dev->ctx;
    const fp8i_moe_plan *p = &a->plan;
    fp8_status st = FP8_OK;
    const uint32_t *w = NULL;
    uint32_t max_rows = p->m;
    if (p->buffer) {
        if ((st = verify_plan(dev, p, "moe gemm")) != FP8_OK) return st;
        w = plan_words(p);
        max_rows = 0;
        for (uint32_t e = 0; e < p->experts; e++)
            if (w[p->counts_at + e] > max_rows) max_rows = w[p->counts_at + e];
    }
    const size_t x_es = fp8_dtype_bits(a->x.dtype) / 8;
    const size_t xs_row = a->x_scales.buffer ? (size_t)a->x_scales.blocks_per_row * (fp8_dtype_bits(a->x_scales.dtype) / 8) : 0;
    gemm_tmp tmp = {0};
    uint32_t *src = fp8i_malloc(ctx, (size_t)(max_rows ? max_rows : 1) * 4);
    tmp.x = fp8i_malloc(ctx, (size_t)(max_rows ? max_rows : 1) * a->k * x_es);
    tmp.xs = fp8i_malloc(ctx, (size_t)(max_rows ? max_rows : 1) * (xs_row ? xs_row : 1));
    tmp.y = fp8i_malloc(ctx, (size_t)(max_rows ? max_rows : 1) * a->n * 4);
    if (!src || !tmp.x || !tmp.xs || !tmp.y) {
        st = FP8_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    if (!p->buffer) { /* dense: every token, expert 0 */
        for (uint32_t i = 0; i < p->m; i++) src[i] = i;
        st = run_expert(dev, a, 0, 0, p->m, src, &tmp);
        goto done;
    }
    uint8_t *y = (uint8_t *)fp8i_cpu_ptr(a->y.buffer) + a->y.offset;
    for (uint32_t e = 0; e < p->experts && st == FP8_OK; e++) {
        const uint32_t row0 = w[p->offsets_at + e], end = w[p->offsets_at + e + 1], count = w[p->counts_at + e];
        for (uint32_t i = 0; i < count; i++) {
            const uint32_t tok = w[p->row_token_at + row0 + i];
            if (tok == NONE) { st = FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "moe gemm: plan row without a token"); break; }
            src[i] = a->x_gathered ? tok : row0 + i;
        }
        if (st == FP8_OK && count) st = run_expert(dev, a, e, row0, count, src, &tmp);
        for (uint32_t r = row0 + count; r < end; r++) /* padding rows are zeros, never garbage */
            for (uint32_t c = 0; c < a->n_out; c++) fp8i_store(a->y.dtype, y, (size_t)r * a->y.row_stride + c, 0.0f, FP8_OVERFLOW_CAST);
    }
done:
    fp8i_free(ctx, src);
    fp8i_free(ctx, tmp.x);
    fp8i_free(ctx, tmp.xs);
    fp8i_free(ctx, tmp.y);
    return st;
}

/* ------------------------------------------------------------------------------------------------
 * Combine: fixed order (slots j ascending, then the shared rows), in double.
 * ---------------------------------------------------------------------------------------------- */
fp8_status fp8i_cpu_moe_combine(fp8_device *dev, const fp8i_moe_combine_args *a)
{
    const fp8_context *ctx = dev->ctx;
    const fp8i_moe_plan *p = &a->plan;
    fp8_status st = verify_plan(dev, p, "moe combine");
    if (st != FP8_OK) return st;
    const uint32_t *slot_row = plan_words(p) + p->slot_row_at;
    double *acc = fp8i_malloc(ctx, (size_t)a->hidden * sizeof(double));
    if (!acc) return FP8_ERR_OUT_OF_HOST_MEMORY;
    uint8_t *y = (uint8_t *)fp8i_cpu_ptr(a->y.buffer) + a->y.offset;
    for (uint32_t t = 0; t < p->m; t++) {
        for (uint32_t h = 0; h < a->hidden; h++) acc[h] = 0.0;
        for (uint32_t j = 0; j < p->top_k; j++) {
            const uint32_t r = slot_row[(size_t)t * p->top_k + j];
            if (r == NONE) continue;
            const double wt = load_at(&a->weights, t, j);
            for (uint32_t h = 0; h < a->hidden; h++) acc[h] += wt * (double)load_at(&a->rows, r, h);
        }
        if (a->shared.buffer)
            for (uint32_t h = 0; h < a->hidden; h++) acc[h] += (double)load_at(&a->shared, t, h);
        for (uint32_t h = 0; h < a->hidden; h++)
            fp8i_store(a->y.dtype, y, (size_t)t * a->y.row_stride + h, (float)acc[h], FP8_OVERFLOW_CAST);
    }
    fp8i_free(ctx, acc);
    return FP8_OK;
}
