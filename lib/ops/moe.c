/* MoE front door: validates every piece's descriptor, dispatches to the backend's moe_* slots, and
 * composes the layer from those slots over a caller-owned scratch buffer. */
#include "../backend/moe.h"
#include "../format/format.h"
#include "ops.h"

#include <math.h>
#include <stdio.h>

#define NONE FP8_MOE_NONE
#define SCRATCH_ALIGN 256u /* the largest storage-buffer offset alignment a device may ask for */

/* ------------------------------------------------------------------------------------------------
 * Byte ranges, for overlap checks between outputs and inputs.
 * ---------------------------------------------------------------------------------------------- */
typedef struct range {
    const fp8_buffer *buf; /* NULL: nothing */
    size_t begin, end;
} range;

static range matrix_range(const fp8i_matrix *m, uint32_t rows, uint32_t cols)
{
    range r = {0};
    if (!m->buffer || rows == 0) return r;
    size_t bytes = 0;
    /* Validated already, so neither product overflows. */
    fp8_dtype_storage_size(m->dtype, (size_t)(rows - 1) * m->row_stride + cols, &bytes);
    r.buf = m->buffer;
    r.begin = m->offset;
    r.end = m->offset + bytes;
    return r;
}

static bool overlap(range a, range b)
{
    return a.buf && a.buf == b.buf && a.begin < b.end && b.begin < a.end;
}

static bool overlaps_any(range a, const range *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (overlap(a, list[i])) return true;
    return false;
}

static bool is_fp8(fp8_dtype d) { return fp8i_is_quantized(d) && d != FP8_E2M1; }

/* ------------------------------------------------------------------------------------------------
 * Plans.
 * ---------------------------------------------------------------------------------------------- */
fp8_status fp8i_moe_plan_layout(uint32_t m, uint32_t top_k, uint32_t experts, uint32_t row_align, fp8i_moe_plan *p)
{
    if (top_k == 0 || experts == 0) return FP8_ERR_SHAPE;
    if (row_align == 0 || row_align > FP8_MOE_MAX_ROW_ALIGN) return FP8_ERR_INVALID_ARGUMENT;
    const uint64_t slots = (uint64_t)m * top_k;
    if (slots >= NONE) return FP8_ERR_SIZE_OVERFLOW;
    const uint64_t groups = slots < experts ? slots : experts;
    uint64_t rows = slots + groups * (row_align - 1);
    rows = (rows + row_align - 1) / row_align * row_align;
    if (rows >= NONE) return FP8_ERR_SIZE_OVERFLOW; /* every row index must differ from the NONE marker */
    fp8i_moe_plan r = {0};
    r.m = m;
    r.top_k = top_k;
    r.experts = experts;
    r.row_align = row_align;
    r.slots = (uint32_t)slots;
    r.rows = (uint32_t)rows;
    r.tiles = (uint32_t)(rows / row_align);
    const size_t chunks = (size_t)(slots / FP8I_MOE_CHUNK + (slots % FP8I_MOE_CHUNK != 0));
    size_t at = FP8I_MOE_HEADER_WORDS;
    r.counts_at = at;      at += experts;
    r.offsets_at = at;     at += (size_t)experts + 1;
    r.active_at = at;      at += experts;
    r.row_token_at = at;   at += r.rows;
    r.row_slot_at = at;    at += r.rows;
    r.slot_row_at = at;    at += r.slots;
    r.tile_expert_at = at; at += r.tiles;
    r.workspace_at = at;
    if (!fp8i_mul_size(experts, chunks, &r.workspace_words) || !fp8i_add_size(r.workspace_words, 256, &r.workspace_words) ||
        !fp8i_add_size(at, r.workspace_words, &r.words))
        return FP8_ERR_SIZE_OVERFLOW;
    size_t bytes;
    if (!fp8i_mul_size(r.words, 4, &bytes)) return FP8_ERR_SIZE_OVERFLOW;
    *p = r;
    return FP8_OK;
}

fp8_status fp8_moe_plan_size(uint32_t m, uint32_t top_k, uint32_t experts, uint32_t row_align, size_t *bytes,
                             uint32_t *rows_capacity)
{
    fp8i_moe_plan p;
    fp8_status st = fp8i_moe_plan_layout(m, top_k, experts, row_align, &p);
    if (st != FP8_OK) return st;
    if (bytes) *bytes = p.words * 4;
    if (rows_capacity) *rows_capacity = p.rows;
    return FP8_OK;
}

static uint32_t device_row_align(const fp8_device *dev, uint32_t m, uint32_t top_k, uint32_t experts)
{
    uint32_t a = dev->backend->moe_row_align ? dev->backend->moe_row_align(dev, m, top_k, experts) : 1;
    return a == 0 || a > FP8_MOE_MAX_ROW_ALIGN ? 1 : a;
}

fp8_status fp8_moe_row_align(const fp8_device *dev, uint32_t m, uint32_t top_k, uint32_t experts, uint32_t *row_align)
{
    if (!dev || !row_align) return FP8_ERR_NULL_POINTER;
    *row_align = device_row_align(dev, m, top_k, experts);
    return FP8_OK;
}

/* Resolve a plan descriptor and check its region against its buffer. */
static fp8_status check_plan(const fp8_device *dev, const char *what, const fp8_moe_plan *pd, fp8i_moe_plan *out)
{
    const fp8_context *ctx = dev->ctx;
    if (pd->experts > FP8_MOE_MAX_EXPERTS || pd->top_k > FP8_MOE_MAX_TOP_K)
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED, "%s: E=%u k=%u beyond the limits (%u, %u)", what, pd->experts,
                         pd->top_k, FP8_MOE_MAX_EXPERTS, FP8_MOE_MAX_TOP_K);
    if (pd->top_k > pd->experts)
        return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "%s: k=%u exceeds E=%u", what, pd->top_k, pd->experts);
    fp8_status st = fp8i_moe_plan_layout(pd->m, pd->top_k, pd->experts, pd->row_align, out);
    if (st != FP8_OK)
        return FP8I_FAIL(ctx, st, "%s: bad plan shape (M=%u k=%u E=%u row_align=%u)", what, pd->m, pd->top_k,
                         pd->experts, pd->row_align);
    if (pd->m == 0) return FP8_OK; /* nothing will be read or written: the region is not looked at */
    if (!pd->buffer) return FP8I_FAIL(ctx, FP8_ERR_NULL_POINTER, "%s: plan without a buffer", what);
    if (pd->buffer->dev != dev) return FP8I_FAIL(ctx, FP8_ERR_WRONG_DEVICE, "%s: plan buffer of another device", what);
    if (pd->offset % 4) return FP8I_FAIL(ctx, FP8_ERR_STRIDE, "%s: plan offset %zu is not a multiple of 4", what, pd->offset);
    size_t end;
    if (!fp8i_add_size(pd->offset, out->words * 4, &end))
        return FP8I_FAIL(ctx, FP8_ERR_SIZE_OVERFLOW, "%s: plan extent overflows", what);
    if (end > pd->buffer->size)
        return FP8I_FAIL(ctx, FP8_ERR_BUFFER_TOO_SMALL, "%s: plan needs %zu bytes from offset %zu, buffer has %zu", what,
                         out->words * 4, pd->offset, pd->buffer->size);
    out->buffer = pd->buffer;
    out->offset = pd->offset;
    return FP8_OK;
}

static range plan_range(const fp8i_moe_plan *p)
{
    range r = {p->buffer, p->offset, p->offset + p->words * 4};
    return r;
}

/* ------------------------------------------------------------------------------------------------
 * Routing.
 * ---------------------------------------------------------------------------------------------- */
static fp8_status route_validate(const fp8_device *dev, const fp8_moe_route_desc *d, fp8i_moe_route_args *a)
{
    const fp8_context *ctx = dev->ctx;
    const fp8_moe_router *r = &d->router;
    fp8_status st;
    if (d->experts == 0 || d->top_k == 0)
        return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe route: zero experts or k (E=%u k=%u)", d->experts, d->top_k);
    if (d->top_k > d->experts)
        return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe route: k=%u exceeds E=%u", d->top_k, d->experts);
    if (d->experts > FP8_MOE_MAX_EXPERTS || d->top_k > FP8_MOE_MAX_TOP_K)
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED, "moe route: E=%u k=%u beyond the limits (%u, %u)", d->experts,
                         d->top_k, FP8_MOE_MAX_EXPERTS, FP8_MOE_MAX_TOP_K);
    if (r->scoring != FP8_MOE_SCORE_SOFTMAX && r->scoring != FP8_MOE_SCORE_SIGMOID)
        return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "moe route: unknown scoring %d", (int)r->scoring);
    if ((unsigned)r->group_score > FP8_MOE_GROUP_SCORE_TOP2_SUM)
        return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "moe route: unknown group score %d", (int)r->group_score);
    if (!isfinite(r->routed_scaling_factor))
        return FP8I_FAIL(ctx, FP8_ERR_NOT_FINITE, "moe route: routed_scaling_factor is not finite");
    *a = (fp8i_moe_route_args){.m = d->m, .experts = d->experts, .top_k = d->top_k, .scoring = r->scoring,
                               .n_group = 1, .topk_group = 1, .renormalize = r->renormalize != 0,
                               .scaling = r->routed_scaling_factor == 0.0f ? 1.0f : r->routed_scaling_factor};
    a->group_score = r->group_score != FP8_MOE_GROUP_SCORE_AUTO ? r->group_score
                     : r->scoring == FP8_MOE_SCORE_SIGMOID      ? FP8_MOE_GROUP_SCORE_TOP2_SUM
                                                                : FP8_MOE_GROUP_SCORE_MAX;
    if (r->n_group) {
        if (d->experts % r->n_group)
            return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe route: %u groups do not divide E=%u", r->n_group, d->experts);
        if (r->topk_group == 0 || r->topk_group > r->n_group)
            return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe route: topk_group=%u outside 1..%u", r->topk_group, r->n_group);
        if ((uint64_t)r->topk_group * (d->experts / r->n_group) < d->top_k)
            return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe route: %u groups of %u experts cannot give k=%u", r->topk_group,
                             d->experts / r->n_group, d->top_k);
        a->n_group = r->n_group;
        a->topk_group = r->topk_group;
    } else if (r->topk_group) {
        return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe route: topk_group=%u without n_group", r->topk_group);
    }
    if (r->bias.buffer) {
        if (r->bias.dtype != FP8_F32) return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "moe route: bias must be f32");
        fp8_operand b = r->bias;
        b.row_stride = 0;
        if ((st = fp8i_check_matrix(dev, "moe route bias", &b, 1, d->experts, &a->bias)) != FP8_OK) return st;
    }
    if (d->m == 0) return FP8_OK;
    if (!fp8i_is_float(d->logits.dtype))
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "moe route: logits must be f32, f16 or bf16, got %s",
                         fp8_dtype_name(d->logits.dtype));
    if (d->ids.dtype != FP8_I32)
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "moe route: ids must be i32, got %s", fp8_dtype_name(d->ids.dtype));
    if (d->weights.dtype != FP8_F32)
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "moe route: weights must be f32, got %s",
                         fp8_dtype_name(d->weights.dtype));
    if ((st = fp8i_check_matrix(dev, "moe route logits", &d->logits, d->m, d->experts, &a->logits)) != FP8_OK) return st;
    if ((st = fp8i_check_matrix(dev, "moe route ids", &d->ids, d->m, d->top_k, &a->ids)) != FP8_OK) return st;
    if ((st = fp8i_check_matrix(dev, "moe route weights", &d->weights, d->m, d->top_k, &a->weights)) != FP8_OK) return st;
    const range in[] = {matrix_range(&a->logits, d->m, d->experts), matrix_range(&a->bias, 1, d->experts)};
    const range ids = matrix_range(&a->ids, d->m, d->top_k), w = matrix_range(&a->weights, d->m, d->top_k);
    if (overlaps_any(ids, in, 2) || overlaps_any(w, in, 2) || overlap(ids, w))
        return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "moe route: outputs overlap each other or an input");
    return FP8_OK;
}

static fp8_status route_run(fp8_device *dev, const fp8_moe_route_desc *d)
{
    fp8i_moe_route_args a;
    fp8_status st = route_validate(dev, d, &a);
    if (st != FP8_OK || d->m == 0) return st;
    if (!dev->backend->moe_route)
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "moe route: not implemented on %s", dev->entry->info.name);
    return dev->backend->moe_route(dev, &a);
}

fp8_status fp8_moe_route(fp8_device *dev, const fp8_moe_route_desc *desc)
{
    if (!dev || !desc) return FP8_ERR_NULL_POINTER;
    return route_run(dev, desc);
}

/* ------------------------------------------------------------------------------------------------
 * Grouping.
 * ---------------------------------------------------------------------------------------------- */
static fp8_status group_validate(fp8_device *dev, const fp8_moe_group_desc *d, fp8i_moe_group_args *a)
{
    const fp8_context *ctx = dev->ctx;
    *a = (fp8i_moe_group_args){0};
    fp8_status st = check_plan(dev, "moe group", &d->plan, &a->plan);
    if (st != FP8_OK || d->plan.m == 0) return st;
    if (d->ids.dtype != FP8_I32)
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "moe group: ids must be i32, got %s", fp8_dtype_name(d->ids.dtype));
    if ((st = fp8i_check_matrix(dev, "moe group ids", &d->ids, d->plan.m, d->plan.top_k, &a->ids)) != FP8_OK) return st;
    if (overlap(plan_range(&a->plan), matrix_range(&a->ids, d->plan.m, d->plan.top_k)))
        return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "moe group: plan overlaps the ids");
    return FP8_OK;
}

static fp8_status group_run(fp8_device *dev, const fp8_moe_group_desc *d)
{
    const fp8_context *ctx = dev->ctx;
    fp8i_moe_group_args a;
    fp8_status st = group_validate(dev, d, &a);
    if (st != FP8_OK || d->plan.m == 0) return st;
    if (!dev->backend->moe_group)
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED, "moe group: not implemented on %s", dev->entry->info.name);
    return dev->backend->moe_group(dev, &a);
}

fp8_status fp8_moe_group(fp8_device *dev, const fp8_moe_group_desc *desc)
{
    if (!dev || !desc) return FP8_ERR_NULL_POINTER;
    return group_run(dev, desc);
}

/* Route, and group the routing's ids in the same backend call where the backend fuses them for these arguments
 * (a decode layer then has one dependent pass fewer; *grouped says so). Otherwise only the routing is enqueued
 * and the caller groups. */
static fp8_status route_maybe_group(fp8_device *dev, const fp8_moe_route_desc *rd, const fp8_moe_group_desc *gd,
                                    bool *grouped)
{
    *grouped = false;
    if (dev->backend->moe_route_group && rd->m > 0) {
        fp8i_moe_route_args ra;
        fp8i_moe_group_args ga;
        fp8_status st = route_validate(dev, rd, &ra);
        if (st == FP8_OK) st = group_validate(dev, gd, &ga);
        if (st != FP8_OK) return st;
        if ((st = dev->backend->moe_route_group(dev, &ra, &ga)) != FP8_ERR_UNSUPPORTED) {
            *grouped = st == FP8_OK;
            return st;
        }
    }
    return route_run(dev, rd);
}

/* Open or close a section of `calls` calls the device may overlap (backend.h: `concurrent`); a no-op for one
 * call (a section would only add a barrier before it) and on in-order backends. */
static fp8_status concurrent(fp8_device *dev, bool begin, uint32_t calls)
{
    return calls > 1 && dev->backend->concurrent ? dev->backend->concurrent(dev, begin) : FP8_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Grouped GEMM.
 * ---------------------------------------------------------------------------------------------- */
/* The experts of one projection, resolved; `ranges` receives what they occupy (w of a single buffer,
 * scales, tensor scales, bias) for overlap checks, and weights_overlap covers experts over several buffers. */
typedef struct weights_view {
    fp8i_matrix w;                  /* w.buffer: the first buffer when the experts are spread */
    size_t w_stride;
    fp8i_scales scales;
    size_t scales_stride;
    fp8i_matrix tensor_scales, bias;
    range ranges[4];
    fp8_buffer *const *w_buffers;   /* NULL: every expert in w.buffer */
    uint32_t per_buffer, experts;
    size_t one;                     /* one expert's bytes */
} weights_view;

/* Byte range of buffer `part` of a spread projection. */
static range part_range(const weights_view *v, uint32_t part)
{
    const uint32_t first = part * v->per_buffer, left = v->experts - first;
    const uint32_t count = left < v->per_buffer ? left : v->per_buffer;
    return (range){v->w_buffers[part], v->w.offset, v->w.offset + (size_t)(count - 1) * v->w_stride + v->one};
}

static uint32_t part_count(const weights_view *v)
{
    return v->w_buffers ? v->experts / v->per_buffer + (v->experts % v->per_buffer != 0) : 0;
}

/* Whether r overlaps anything the view reads. */
static bool weights_overlap(const weights_view *v, range r)
{
    if (overlaps_any(r, v->ranges, 4)) return true;
    for (uint32_t p = 0; p < part_count(v); p++)
        if (overlap(r, part_range(v, p))) return true;
    return false;
}

/* The last of `count` experts from w's offset in buffer `buf` fits it (the first was checked already). */
static fp8_status check_experts_fit(const fp8_device *dev, const char *what, const fp8_moe_weights *wt, fp8_buffer *buf,
                                    uint32_t count, uint32_t n, uint32_t k, const weights_view *v)
{
    fp8_operand lw = wt->w;
    lw.buffer = buf;
    size_t last;
    if (!fp8i_mul_size(count - 1, v->w_stride, &last) || !fp8i_add_size(lw.offset, last, &lw.offset))
        return FP8I_FAIL(dev->ctx, FP8_ERR_SIZE_OVERFLOW, "%s: %u experts overflow", what, count);
    fp8i_matrix tmp;
    return fp8i_check_matrix(dev, what, &lw, n, k, &tmp);
}

/* Every expert's matrix fits its buffer: one buffer holding them all, or each buffer of a spread holding its
 * share. The spread's buffers must all be given and on this device; w.buffer must then be NULL, so that a
 * descriptor never names two places for expert 0. */
static fp8_status check_expert_matrices(const fp8_device *dev, const char *what, const fp8_moe_weights *wt,
                                        uint32_t n, uint32_t k, weights_view *v)
{
    const fp8_context *ctx = dev->ctx;
    fp8_status st;
    if (!wt->experts_per_buffer) {
        if (wt->w_buffers || wt->w_buffer_count)
            return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "%s: w_buffers given without experts_per_buffer", what);
        if ((st = check_experts_fit(dev, what, wt, wt->w.buffer, v->experts, n, k, v)) != FP8_OK) return st;
        v->ranges[0] = (range){v->w.buffer, v->w.offset, v->w.offset + (size_t)(v->experts - 1) * v->w_stride + v->one};
        return FP8_OK;
    }
    if (!wt->w_buffers)
        return FP8I_FAIL(ctx, FP8_ERR_NULL_POINTER, "%s: experts_per_buffer %u without w_buffers", what, wt->experts_per_buffer);
    const uint32_t need = v->experts / wt->experts_per_buffer + (v->experts % wt->experts_per_buffer != 0);
    if (wt->w_buffer_count != need)
        return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "%s: %u experts at %u a buffer take %u buffers, w_buffer_count is %u", what,
                         v->experts, wt->experts_per_buffer, need, wt->w_buffer_count);
    if (wt->w.buffer)
        return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "%s: w.buffer must be NULL when w_buffers holds the experts", what);
    v->w_buffers = wt->w_buffers;
    v->per_buffer = wt->experts_per_buffer < v->experts ? wt->experts_per_buffer : v->experts;
    for (uint32_t p = 0; p < part_count(v); p++) {
        if (!wt->w_buffers[p]) return FP8I_FAIL(ctx, FP8_ERR_NULL_POINTER, "%s: w_buffers[%u] is NULL", what, p);
        const uint32_t left = v->experts - p * v->per_buffer, count = left < v->per_buffer ? left : v->per_buffer;
        char part_what[160];
        snprintf(part_what, sizeof part_what, "%s (w_buffers[%u], %u experts)", what, p, count);
        if ((st = check_experts_fit(dev, part_what, wt, wt->w_buffers[p], count, n, k, v)) != FP8_OK) return st;
    }
    v->w.buffer = wt->w_buffers[0];
    return FP8_OK;
}

static fp8_status check_weights(const fp8_device *dev, const char *what, const fp8_moe_weights *wt, uint32_t experts,
                                uint32_t n, uint32_t k, weights_view *v)
{
    const fp8_context *ctx = dev->ctx;
    fp8_status st;
    *v = (weights_view){.experts = experts};
    if (!fp8i_is_quantized(wt->w.dtype))
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "%s: weights must be FP8 or FP4, got %s", what,
                         fp8_dtype_name(wt->w.dtype));
    /* The first expert's matrix is checked like fp8_gemm's; a spread's first buffer stands in for w.buffer. */
    fp8_operand w0 = wt->w;
    if (wt->experts_per_buffer && wt->w_buffers && !wt->w.buffer) w0.buffer = wt->w_buffers[0];
    if ((st = fp8i_check_matrix(dev, what, &w0, n, k, &v->w)) != FP8_OK) return st;
    /* One expert's bytes, and the stride that packs them back to back. */
    size_t packed;
    fp8_dtype_storage_size(v->w.dtype, (size_t)(n - 1) * v->w.row_stride + k, &v->one);
    if (!fp8i_mul_size(n, v->w.row_stride, &packed) || fp8_dtype_storage_size(v->w.dtype, packed, &packed) != FP8_OK)
        return FP8I_FAIL(ctx, FP8_ERR_SIZE_OVERFLOW, "%s: expert size overflows", what);
    v->w_stride = wt->expert_stride ? wt->expert_stride : packed;
    if (experts > 1 && v->w_stride < v->one)
        return FP8I_FAIL(ctx, FP8_ERR_STRIDE, "%s: expert stride %zu is smaller than one %ux%u expert (%zu bytes)", what,
                         v->w_stride, n, k, v->one);
    if ((st = check_expert_matrices(dev, what, wt, n, k, v)) != FP8_OK) return st;

    if ((st = fp8i_check_scales(dev, what, &wt->scales, n, k, &v->scales)) != FP8_OK) return st;
    if (v->scales.dtype != FP8_DTYPE_INVALID) {
        const size_t esize = fp8_dtype_bits(v->scales.dtype) / 8;
        const size_t sone = (size_t)v->scales.block_row_count * v->scales.blocks_per_row * esize;
        v->scales_stride = wt->scales_expert_stride ? wt->scales_expert_stride : sone;
        if (experts > 1 && (v->scales_stride < sone || v->scales_stride % esize))
            return FP8I_FAIL(ctx, FP8_ERR_STRIDE, "%s: scale expert stride %zu: one expert's scales take %zu bytes", what,
                             v->scales_stride, sone);
        size_t slast;
        fp8_scales ls = wt->scales;
        if (!fp8i_mul_size(experts - 1, v->scales_stride, &slast) || !fp8i_add_size(ls.offset, slast, &ls.offset))
            return FP8I_FAIL(ctx, FP8_ERR_SIZE_OVERFLOW, "%s: scales of %u experts overflow", what, experts);
        fp8i_scales stmp;
        if ((st = fp8i_check_scales(dev, what, &ls, n, k, &stmp)) != FP8_OK) return st;
        v->ranges[1] = (range){v->scales.buffer, v->scales.offset, ls.offset + sone};
    }
    if (wt->tensor_scales.buffer) {
        if (wt->tensor_scales.dtype != FP8_F32)
            return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "%s: per-expert tensor scales must be f32", what);
        fp8_operand t = wt->tensor_scales;
        t.row_stride = 0;
        if ((st = fp8i_check_matrix(dev, what, &t, 1, experts, &v->tensor_scales)) != FP8_OK) return st;
        v->ranges[2] = matrix_range(&v->tensor_scales, 1, experts);
    }
    if (wt->bias.buffer) {
        if (!fp8i_is_float(wt->bias.dtype))
            return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "%s: bias must be f32, f16 or bf16", what);
        if ((st = fp8i_check_matrix(dev, what, &wt->bias, experts, n, &v->bias)) != FP8_OK) return st;
        v->ranges[3] = matrix_range(&v->bias, experts, n);
    }
    return FP8_OK;
}

static bool is_gated(fp8_moe_activation a)
{
    return a == FP8_MOE_ACT_SWIGLU || a == FP8_MOE_ACT_GEGLU || a == FP8_MOE_ACT_GEGLU_TANH;
}

static fp8_status gemm_validate(const fp8_device *dev, const fp8_moe_gemm_desc *d, bool scaled_bf16, fp8i_moe_gemm_args *a)
{
    const fp8_context *ctx = dev->ctx;
    fp8_status st;
    *a = (fp8i_moe_gemm_args){.n = d->n, .k = d->k, .activation = d->activation, .x_gathered = d->x_gathered != 0};
    const bool dense = d->plan.buffer == NULL;
    if (dense) {
        if (d->plan.experts != 1)
            return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe gemm: a dense call (no plan) has one expert, not %u", d->plan.experts);
        a->plan = (fp8i_moe_plan){.m = d->plan.m, .top_k = 1, .experts = 1, .row_align = 1, .slots = d->plan.m,
                                  .rows = d->plan.m, .tiles = d->plan.m};
        a->x_gathered = true;
    } else if ((st = check_plan(dev, "moe gemm", &d->plan, &a->plan)) != FP8_OK) {
        return st;
    }
    if (d->n == 0 || d->k == 0) return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe gemm: zero dimension (N=%u K=%u)", d->n, d->k);
    if ((unsigned)d->activation > FP8_MOE_ACT_GELU_TANH)
        return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "moe gemm: unknown activation %d", (int)d->activation);
    a->n_out = d->n;
    if (is_gated(d->activation)) {
        if (d->n & 1) return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe gemm: a gated activation needs an even N, got %u", d->n);
        a->n_out = d->n / 2;
    }
    weights_view wv;
    if ((st = check_weights(dev, "moe gemm weights", &d->weights, a->plan.experts, d->n, d->k, &wv)) != FP8_OK) return st;
    a->w = wv.w;
    a->w_expert_stride = wv.w_stride;
    a->w_scales = wv.scales;
    a->w_scales_expert_stride = wv.scales_stride;
    a->w_tensor_scales = wv.tensor_scales;
    a->bias = wv.bias;
    a->w_buffers = wv.w_buffers;
    a->w_experts_per_buffer = wv.per_buffer;
    if (!fp8i_is_float(d->x.dtype) && !is_fp8(d->x.dtype))
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "moe gemm: activations must be f32/f16/bf16 or 8-bit FP8, got %s",
                         fp8_dtype_name(d->x.dtype));
    if (!fp8i_is_float(d->y.dtype))
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "moe gemm: output must be f32, f16 or bf16, got %s",
                         fp8_dtype_name(d->y.dtype));
    if (a->plan.m == 0) return FP8_OK;
    const uint32_t x_rows = a->x_gathered ? a->plan.m : a->plan.rows;
    if ((st = fp8i_check_matrix(dev, "moe gemm X", &d->x, x_rows, d->k, &a->x)) != FP8_OK) return st;
    if ((st = fp8i_check_scales(dev, "moe gemm X scales", &d->x_scales, x_rows, d->k, &a->x_scales)) != FP8_OK) return st;
    if (fp8i_is_float(d->x.dtype) && d->x_scales.layout.kind != FP8_SCALE_NONE && !(scaled_bf16 && d->x.dtype == FP8_BF16))
        return FP8I_FAIL(ctx, FP8_ERR_SCALE_LAYOUT, "moe gemm: float activations take no scale tensor");
    /* Rows are gathered per expert, so a scale may cover one row or all of them, nothing in between. */
    if (a->x_scales.block_rows != 1 && a->x_scales.block_row_count != 1)
        return FP8I_FAIL(ctx, FP8_ERR_SCALE_LAYOUT, "moe gemm: activation scale blocks must be one row high (got %u)",
                         a->x_scales.block_rows);
    if ((st = fp8i_check_matrix(dev, "moe gemm Y", &d->y, a->plan.rows, a->n_out, &a->y)) != FP8_OK) return st;
    const range y = matrix_range(&a->y, a->plan.rows, a->n_out);
    const range x = matrix_range(&a->x, x_rows, d->k);
    range xs = {0};
    if (a->x_scales.buffer) {
        const size_t bytes = (size_t)a->x_scales.block_row_count * a->x_scales.blocks_per_row *
                             (fp8_dtype_bits(a->x_scales.dtype) / 8);
        xs = (range){a->x_scales.buffer, a->x_scales.offset, a->x_scales.offset + bytes};
    }
    const range in[] = {x, xs, wv.ranges[0], wv.ranges[1], wv.ranges[2], wv.ranges[3],
                        dense ? (range){0} : plan_range(&a->plan)};
    if (overlaps_any(y, in, sizeof in / sizeof in[0]) || weights_overlap(&wv, y))
        return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "moe gemm: output overlaps an input");
    return FP8_OK;
}

/* scaled_bf16: the layer's W8A8 activations as the bf16 values of their FP8 codes, which keep their scales
 * (layer_plan.qdt); callers of the public API give FP8 codes for that. */
static fp8_status gemm_run(fp8_device *dev, const fp8_moe_gemm_desc *d, bool scaled_bf16)
{
    fp8i_moe_gemm_args a;
    fp8_status st = gemm_validate(dev, d, scaled_bf16, &a);
    if (st != FP8_OK || a.plan.m == 0) return st;
    if (!dev->backend->moe_grouped_gemm)
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "moe gemm: not implemented on %s", dev->entry->info.name);
    FP8I_DEBUG(dev->ctx, "moe gemm %s M=%u E=%u R=%u N=%u K=%u W=%s X=%s act=%d", d->plan.buffer ? "grouped" : "dense",
               a.plan.m, a.plan.experts, a.plan.rows, a.n, a.k, fp8_dtype_name(a.w.dtype), fp8_dtype_name(a.x.dtype),
               (int)a.activation);
    return dev->backend->moe_grouped_gemm(dev, &a);
}

fp8_status fp8_moe_grouped_gemm(fp8_device *dev, const fp8_moe_gemm_desc *desc)
{
    if (!dev || !desc) return FP8_ERR_NULL_POINTER;
    return gemm_run(dev, desc, false);
}

/* ------------------------------------------------------------------------------------------------
 * Combine.
 * ---------------------------------------------------------------------------------------------- */
static fp8_status combine_run(fp8_device *dev, const fp8_moe_combine_desc *d)
{
    const fp8_context *ctx = dev->ctx;
    fp8i_moe_combine_args a = {.hidden = d->hidden};
    fp8_status st = check_plan(dev, "moe combine", &d->plan, &a.plan);
    if (st != FP8_OK) return st;
    if (d->hidden == 0) return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe combine: hidden size 0");
    if (d->plan.m == 0) return FP8_OK;
    const uint32_t m = d->plan.m, k = d->plan.top_k, h = d->hidden;
    if (!fp8i_is_float(d->rows.dtype) || !fp8i_is_float(d->y.dtype) || (d->shared.buffer && !fp8i_is_float(d->shared.dtype)))
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "moe combine: rows, shared and y must be f32, f16 or bf16");
    if (d->weights.dtype != FP8_F32)
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "moe combine: weights must be f32, got %s",
                         fp8_dtype_name(d->weights.dtype));
    if ((st = fp8i_check_matrix(dev, "moe combine rows", &d->rows, a.plan.rows, h, &a.rows)) != FP8_OK) return st;
    if ((st = fp8i_check_matrix(dev, "moe combine weights", &d->weights, m, k, &a.weights)) != FP8_OK) return st;
    if (d->shared.buffer &&
        (st = fp8i_check_matrix(dev, "moe combine shared", &d->shared, m, h, &a.shared)) != FP8_OK)
        return st;
    if ((st = fp8i_check_matrix(dev, "moe combine Y", &d->y, m, h, &a.y)) != FP8_OK) return st;
    const range in[] = {plan_range(&a.plan), matrix_range(&a.rows, a.plan.rows, h), matrix_range(&a.weights, m, k),
                        matrix_range(&a.shared, m, h)};
    if (overlaps_any(matrix_range(&a.y, m, h), in, 4))
        return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "moe combine: output overlaps an input");
    if (!dev->backend->moe_combine)
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED, "moe combine: not implemented on %s", dev->entry->info.name);
    return dev->backend->moe_combine(dev, &a);
}

fp8_status fp8_moe_combine(fp8_device *dev, const fp8_moe_combine_desc *desc)
{
    if (!dev || !desc) return FP8_ERR_NULL_POINTER;
    return combine_run(dev, desc);
}

/* ------------------------------------------------------------------------------------------------
 * The layer. Scratch holds, from scratch_offset, each region starting on a multiple of 256 bytes:
 *   plan                      fp8_moe_plan_size(M, k, E, A)
 *   ids [M,k] I32, w [M,k] F32            when routing from logits
 *   xq [M,H] c, xs [M,bH] F32             W8A8 (b = block_cols, bH = ceil(H/b); b = H for ROW)
 *   h [R,I] t                             gate/up + activation, plan row order
 *   hq [R,I] c, hs [R,bI] F32             W8A8
 *   o [R,H] t                             down projection, plan row order
 *   sh [M,Is] t, shq [M,Is] c, shs [M,bIs] F32 (W8A8), so [M,H] t       shared expert
 * with t = intermediate_dtype (F32 by default) and c = act_quant.dtype, or BF16 holding the values of its
 * codes where the backend's moe_act_bf16 asks for that (the same products, without decoding FP8 in the
 * grouped GEMM's inner loop).
 * ---------------------------------------------------------------------------------------------- */
typedef struct layer_plan {
    uint32_t row_align, rows;
    size_t plan_bytes;
    size_t plan, ids, weights, xq, xs, h, hq, hs, o, sh, shq, shs, so; /* byte offsets from scratch_offset */
    size_t total;
    uint32_t bh, bi, bis;         /* scale blocks per row of x, h and the shared h */
    uint32_t colh, coli, colis;   /* block_cols resolved per matrix */
    fp8_dtype idt;                /* dtype of h, o, sh, so */
    fp8_dtype qdt;                /* dtype of xq, hq, shq (W8A8) */
} layer_plan;

/* Append a region of rows x cols elements of dtype at the next aligned offset. */
static bool take(size_t *cursor, fp8_dtype dtype, size_t rows, size_t cols, size_t *at)
{
    size_t elems, bytes, c;
    if (!fp8i_mul_size(rows, cols, &elems) || fp8_dtype_storage_size(dtype, elems, &bytes) != FP8_OK) return false;
    if (!fp8i_add_size(*cursor, SCRATCH_ALIGN - 1, &c)) return false;
    c -= c % SCRATCH_ALIGN;
    *at = c;
    return fp8i_add_size(c, bytes, cursor);
}

static uint32_t blocks_of(uint32_t cols, uint32_t block_cols) { return cols / block_cols + (cols % block_cols != 0); }

static fp8_status layer_layout(const fp8_device *dev, const fp8_moe_layer_desc *d, layer_plan *lp)
{
    const fp8_context *ctx = dev->ctx;
    *lp = (layer_plan){0};
    if (d->experts == 0 || d->top_k == 0 || d->hidden == 0 || d->intermediate == 0)
        return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe layer: zero size (E=%u k=%u H=%u I=%u)", d->experts, d->top_k,
                         d->hidden, d->intermediate);
    if (d->top_k > d->experts) return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe layer: k=%u exceeds E=%u", d->top_k, d->experts);
    if (d->experts > FP8_MOE_MAX_EXPERTS || d->top_k > FP8_MOE_MAX_TOP_K)
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED, "moe layer: E=%u k=%u beyond the limits", d->experts, d->top_k);
    const fp8_moe_act_quant *q = &d->act_quant;
    if (q->dtype != FP8_DTYPE_INVALID && !is_fp8(q->dtype))
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "moe layer: activations quantize to an 8-bit FP8 dtype, not %s",
                         fp8_dtype_name(q->dtype));
    lp->idt = d->intermediate_dtype ? d->intermediate_dtype : FP8_F32;
    if (!fp8i_is_float(lp->idt))
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "moe layer: intermediate rows must be f32, f16 or bf16, not %s",
                         fp8_dtype_name(lp->idt));
    lp->row_align = d->row_align ? d->row_align : device_row_align(dev, d->m, d->top_k, d->experts);
    fp8i_moe_plan p;
    fp8_status st = fp8i_moe_plan_layout(d->m, d->top_k, d->experts, lp->row_align, &p);
    if (st != FP8_OK)
        return FP8I_FAIL(ctx, st, "moe layer: bad plan shape (M=%u k=%u E=%u row_align=%u)", d->m, d->top_k, d->experts,
                         lp->row_align);
    lp->rows = p.rows;
    lp->plan_bytes = p.words * 4;
    if (d->m == 0) return FP8_OK;
    const uint32_t m = d->m, k = d->top_k, hd = d->hidden, in = d->intermediate, is = d->shared_intermediate;
    const bool quant = q->dtype != FP8_DTYPE_INVALID;
    const bool wide = quant && dev->backend->moe_act_bf16 && dev->backend->moe_act_bf16(dev, lp->row_align);
    lp->qdt = wide ? FP8_BF16 : q->dtype;
    lp->colh = q->block_cols && q->block_cols < hd ? q->block_cols : hd;
    lp->coli = q->block_cols && q->block_cols < in ? q->block_cols : in;
    lp->colis = is ? (q->block_cols && q->block_cols < is ? q->block_cols : is) : 1;
    lp->bh = blocks_of(hd, lp->colh);
    lp->bi = blocks_of(in, lp->coli);
    lp->bis = is ? blocks_of(is, lp->colis) : 0;
    size_t cur = 0;
    bool ok = take(&cur, FP8_U8, 1, lp->plan_bytes, &lp->plan);
    if (d->logits.buffer) ok = ok && take(&cur, FP8_I32, m, k, &lp->ids) && take(&cur, FP8_F32, m, k, &lp->weights);
    if (quant) ok = ok && take(&cur, lp->qdt, m, hd, &lp->xq) && take(&cur, FP8_F32, m, lp->bh, &lp->xs);
    ok = ok && take(&cur, lp->idt, lp->rows, in, &lp->h);
    if (quant) ok = ok && take(&cur, lp->qdt, lp->rows, in, &lp->hq) && take(&cur, FP8_F32, lp->rows, lp->bi, &lp->hs);
    ok = ok && take(&cur, lp->idt, lp->rows, hd, &lp->o);
    if (is) {
        ok = ok && take(&cur, lp->idt, m, is, &lp->sh);
        if (quant) ok = ok && take(&cur, lp->qdt, m, is, &lp->shq) && take(&cur, FP8_F32, m, lp->bis, &lp->shs);
        ok = ok && take(&cur, lp->idt, m, hd, &lp->so);
    }
    if (!ok) return FP8I_FAIL(ctx, FP8_ERR_SIZE_OVERFLOW, "moe layer: scratch size overflows");
    lp->total = cur;
    return FP8_OK;
}

fp8_status fp8_moe_layer_scratch_size(const fp8_device *dev, const fp8_moe_layer_desc *desc, size_t *bytes)
{
    if (!dev || !desc || !bytes) return FP8_ERR_NULL_POINTER;
    layer_plan lp;
    fp8_status st = layer_layout(dev, desc, &lp);
    if (st == FP8_OK) *bytes = lp.total;
    return st;
}

/* Quantize rows of a float matrix in scratch (W8A8). */
static fp8_status quantize_rows(fp8_device *dev, const fp8i_moe_quant_args *q)
{
    if (!dev->backend->moe_quantize_rows)
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "moe layer: W8A8 activation quantization not implemented on %s",
                         dev->entry->info.name);
    return dev->backend->moe_quantize_rows(dev, q);
}

static fp8i_matrix scratch_matrix(const fp8_moe_layer_desc *d, size_t at, fp8_dtype dtype, size_t cols)
{
    return (fp8i_matrix){.buffer = d->scratch, .offset = d->scratch_offset + at, .dtype = dtype, .row_stride = cols};
}

static fp8_operand scratch_operand(const fp8_moe_layer_desc *d, size_t at, fp8_dtype dtype)
{
    return (fp8_operand){.buffer = d->scratch, .offset = d->scratch_offset + at, .dtype = dtype};
}

static fp8_scales act_scales(const fp8_moe_layer_desc *d, size_t at, uint32_t block_cols)
{
    fp8_scales s = {.buffer = d->scratch, .offset = d->scratch_offset + at};
    s.layout = (fp8_scale_layout){.kind = FP8_SCALE_BLOCK, .dtype = FP8_F32, .block_rows = 1, .block_cols = block_cols};
    return s;
}

/* Every caller operand the layer reads or writes, for the overlap checks against scratch and y. */
static fp8_status layer_check_operands(const fp8_device *dev, const fp8_moe_layer_desc *d, const layer_plan *lp,
                                       fp8i_matrix *x)
{
    const fp8_context *ctx = dev->ctx;
    fp8_status st;
    const uint32_t m = d->m, e = d->experts, k = d->top_k, hd = d->hidden, in = d->intermediate;
    const uint32_t is = d->shared_intermediate;
    const uint32_t gu_rows = is_gated(d->activation) ? 2 * in : in;
    if (is_gated(d->activation) && in > UINT32_MAX / 2)
        return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe layer: 2*I overflows");
    if (!fp8i_is_float(d->x.dtype) || !fp8i_is_float(d->y.dtype))
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED_DTYPE, "moe layer: x and y must be f32, f16 or bf16");
    range r[32];
    size_t n = 0;
    fp8i_matrix y, tmp;
    if (m) {
        if ((st = fp8i_check_matrix(dev, "moe layer x", &d->x, m, hd, x)) != FP8_OK) return st;
        if ((st = fp8i_check_matrix(dev, "moe layer y", &d->y, m, hd, &y)) != FP8_OK) return st;
        r[n++] = matrix_range(x, m, hd);
    }
    if (d->logits.buffer) {
        if (m) {
            if ((st = fp8i_check_matrix(dev, "moe layer logits", &d->logits, m, e, &tmp)) != FP8_OK) return st;
            r[n++] = matrix_range(&tmp, m, e);
        }
        if (d->router.bias.buffer) {
            fp8_operand b = d->router.bias;
            b.row_stride = 0;
            if ((st = fp8i_check_matrix(dev, "moe layer router bias", &b, 1, e, &tmp)) != FP8_OK) return st;
            r[n++] = matrix_range(&tmp, 1, e);
        }
    } else if (m) {
        if (!d->ids.buffer || !d->weights.buffer)
            return FP8I_FAIL(ctx, FP8_ERR_NULL_POINTER, "moe layer: neither logits nor ids and weights given");
        if ((st = fp8i_check_matrix(dev, "moe layer ids", &d->ids, m, k, &tmp)) != FP8_OK) return st;
        r[n++] = matrix_range(&tmp, m, k);
        if ((st = fp8i_check_matrix(dev, "moe layer weights", &d->weights, m, k, &tmp)) != FP8_OK) return st;
        r[n++] = matrix_range(&tmp, m, k);
    }
    weights_view wv[4];
    uint32_t nw = 0;
    if ((st = check_weights(dev, "moe layer gate_up", &d->gate_up, e, gu_rows, hd, &wv[nw++])) != FP8_OK) return st;
    if ((st = check_weights(dev, "moe layer down", &d->down, e, hd, in, &wv[nw++])) != FP8_OK) return st;
    if (is) {
        const uint32_t sgu_rows = is_gated(d->activation) ? 2 * is : is;
        if (is_gated(d->activation) && is > UINT32_MAX / 2)
            return FP8I_FAIL(ctx, FP8_ERR_SHAPE, "moe layer: 2*Is overflows");
        if ((st = check_weights(dev, "moe layer shared gate_up", &d->shared_gate_up, 1, sgu_rows, hd, &wv[nw++])) != FP8_OK)
            return st;
        if ((st = check_weights(dev, "moe layer shared down", &d->shared_down, 1, hd, is, &wv[nw++])) != FP8_OK) return st;
    }
    if (m == 0) return FP8_OK;
    const range yr = matrix_range(&y, m, hd);
    bool hit = overlaps_any(yr, r, n);
    for (uint32_t i = 0; i < nw; i++) hit = hit || weights_overlap(&wv[i], yr);
    if (hit) return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "moe layer: y overlaps an input");
    r[n++] = yr;

    if (!d->scratch) return FP8I_FAIL(ctx, FP8_ERR_NULL_POINTER, "moe layer: no scratch buffer");
    if (d->scratch->dev != dev) return FP8I_FAIL(ctx, FP8_ERR_WRONG_DEVICE, "moe layer: scratch of another device");
    if (d->scratch_offset % SCRATCH_ALIGN)
        return FP8I_FAIL(ctx, FP8_ERR_STRIDE, "moe layer: scratch offset %zu is not a multiple of %u", d->scratch_offset,
                         SCRATCH_ALIGN);
    size_t end;
    if (!fp8i_add_size(d->scratch_offset, lp->total, &end) || end > d->scratch->size)
        return FP8I_FAIL(ctx, FP8_ERR_BUFFER_TOO_SMALL, "moe layer: needs %zu bytes of scratch from offset %zu, buffer has %zu",
                         lp->total, d->scratch_offset, d->scratch->size);
    const range sc = {d->scratch, d->scratch_offset, end};
    hit = overlaps_any(sc, r, n);
    for (uint32_t i = 0; i < nw; i++) hit = hit || weights_overlap(&wv[i], sc);
    if (hit)
        return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "moe layer: scratch overlaps an operand");
    return FP8_OK;
}

fp8_status fp8_moe_layer(fp8_device *dev, const fp8_moe_layer_desc *d)
{
    if (!dev || !d) return FP8_ERR_NULL_POINTER;
    const fp8_context *ctx = dev->ctx;
    if ((unsigned)d->activation > FP8_MOE_ACT_GELU_TANH || d->activation == FP8_MOE_ACT_NONE)
        return FP8I_FAIL(ctx, FP8_ERR_INVALID_ARGUMENT, "moe layer: activation %d (NONE would make the MLP linear)",
                         (int)d->activation);
    layer_plan lp;
    fp8_status st = layer_layout(dev, d, &lp);
    if (st != FP8_OK) return st;
    fp8i_matrix x;
    if ((st = layer_check_operands(dev, d, &lp, &x)) != FP8_OK || d->m == 0) return st;

    const uint32_t m = d->m, hd = d->hidden, in = d->intermediate, is = d->shared_intermediate;
    const bool quant = d->act_quant.dtype != FP8_DTYPE_INVALID;
    const fp8_dtype qd = lp.qdt, grid = d->act_quant.dtype;
    const bool scaled_bf16 = qd == FP8_BF16; /* the GEMMs' activations: bf16 values of FP8 codes, with scales */
    const fp8_moe_plan plan = {.buffer = d->scratch, .offset = d->scratch_offset + lp.plan, .m = m, .top_k = d->top_k,
                               .experts = d->experts, .row_align = lp.row_align};
    const fp8_moe_plan dense = {.m = m, .top_k = 1, .experts = 1, .row_align = 1};
    fp8i_moe_plan rplan;
    if ((st = check_plan(dev, "moe layer", &plan, &rplan)) != FP8_OK) return st;

    /* The passes in dependency levels; the calls inside one level read nothing another writes, write disjoint
     * scratch and can record only one and the same data error, so a device that overlaps calls may run them
     * side by side (the shared expert beside the routed experts, the activations' quantization beside the
     * routing): a decode layer waits on a dispatch floor per level, not per call. */
    fp8_operand weights = d->weights, xin = d->x;
    fp8_scales xin_scales = {0};
    const fp8_moe_group_desc gd = {.ids = d->logits.buffer ? scratch_operand(d, lp.ids, FP8_I32) : d->ids,
                                   .plan = plan};
    const fp8i_moe_quant_args xqa = {.rows = m, .cols = hd, .block_cols = lp.colh, .grid = grid, .src = x,
                                     .dst = scratch_matrix(d, lp.xq, qd, hd),
                                     .scales = scratch_matrix(d, lp.xs, FP8_F32, lp.bh)};
    if (quant) {
        xin = scratch_operand(d, lp.xq, qd);
        xin_scales = act_scales(d, lp.xs, lp.colh);
    }

    /* 1-3. Route (or take the caller's choices), group, and quantize the activations per token into scratch
     * when the layer is W8A8. Routing and quantization can both record only FP8_ERR_NOT_FINITE; grouping the
     * caller's ids can record FP8_ERR_EXPERT_ID, so it goes first on its own. */
    if (d->logits.buffer) {
        weights = scratch_operand(d, lp.weights, FP8_F32);
        const fp8_moe_route_desc rd = {.m = m, .experts = d->experts, .top_k = d->top_k, .logits = d->logits,
                                       .router = d->router, .ids = gd.ids, .weights = weights};
        bool grouped = false;
        if ((st = concurrent(dev, true, 1 + quant)) != FP8_OK) return st;
        st = quant ? quantize_rows(dev, &xqa) : FP8_OK;
        if (st == FP8_OK) st = route_maybe_group(dev, &rd, &gd, &grouped);
        concurrent(dev, false, 1 + quant);
        if (st == FP8_OK && !grouped) st = group_run(dev, &gd);
        if (st != FP8_OK) return st;
    } else {
        if ((st = group_run(dev, &gd)) != FP8_OK || (quant && (st = quantize_rows(dev, &xqa)) != FP8_OK)) return st;
    }
    const uint32_t gu_rows = is_gated(d->activation) ? 2 * in : in;
    const uint32_t sgu_rows = is_gated(d->activation) ? 2 * is : is;

    /* 4. Gate/up with the activation, rows gathered from the tokens; beside it the shared expert's gate/up,
     * dense over all tokens. Only the routed call can record an error (FP8_ERR_INVALID_ARGUMENT, a bad plan). */
    const fp8_moe_gemm_desc g1 = {.plan = plan, .n = gu_rows, .k = hd, .weights = d->gate_up, .x = xin,
                                  .x_scales = xin_scales, .x_gathered = 1, .activation = d->activation,
                                  .y = scratch_operand(d, lp.h, lp.idt)};
    const fp8_moe_gemm_desc s1 = {.plan = dense, .n = sgu_rows, .k = hd, .weights = d->shared_gate_up, .x = xin,
                                  .x_scales = xin_scales, .activation = d->activation,
                                  .y = scratch_operand(d, lp.sh, lp.idt)};
    const uint32_t level = is ? 2 : 1; /* calls per level from here on: routed, and shared where there is one */
    if ((st = concurrent(dev, true, level)) != FP8_OK) return st;
    st = gemm_run(dev, &g1, scaled_bf16);
    if (st == FP8_OK && is) st = gemm_run(dev, &s1, scaled_bf16);
    concurrent(dev, false, level);
    if (st != FP8_OK) return st;

    /* 5. W8A8: both intermediates quantized (each can record only FP8_ERR_NOT_FINITE). */
    fp8_moe_gemm_desc g2 = {.plan = plan, .n = hd, .k = in, .weights = d->down, .x = scratch_operand(d, lp.h, lp.idt),
                            .activation = FP8_MOE_ACT_NONE, .y = scratch_operand(d, lp.o, lp.idt)};
    fp8_moe_gemm_desc s2 = {.plan = dense, .n = hd, .k = is, .weights = d->shared_down,
                            .x = scratch_operand(d, lp.sh, lp.idt), .activation = FP8_MOE_ACT_NONE,
                            .y = scratch_operand(d, lp.so, lp.idt)};
    if (quant) {
        const fp8i_moe_quant_args hqa = {.rows = lp.rows, .cols = in, .block_cols = lp.coli, .grid = grid,
                                         .src = scratch_matrix(d, lp.h, lp.idt, in),
                                         .dst = scratch_matrix(d, lp.hq, qd, in),
                                         .scales = scratch_matrix(d, lp.hs, FP8_F32, lp.bi), .plan = rplan};
        const fp8i_moe_quant_args sqa = {.rows = m, .cols = is, .block_cols = lp.colis, .grid = grid,
                                         .src = scratch_matrix(d, lp.sh, lp.idt, is),
                                         .dst = scratch_matrix(d, lp.shq, qd, is),
                                         .scales = scratch_matrix(d, lp.shs, FP8_F32, lp.bis)};
        if ((st = concurrent(dev, true, level)) != FP8_OK) return st;
        st = quantize_rows(dev, &hqa);
        if (st == FP8_OK && is) st = quantize_rows(dev, &sqa);
        concurrent(dev, false, level);
        if (st != FP8_OK) return st;
        g2.x = scratch_operand(d, lp.hq, qd);
        g2.x_scales = act_scales(d, lp.hs, lp.coli);
        s2.x = scratch_operand(d, lp.shq, qd);
        s2.x_scales = act_scales(d, lp.shs, lp.colis);
    }

    /* 6. Down, over the intermediate rows in plan order; beside it the shared expert's down. */
    if ((st = concurrent(dev, true, level)) != FP8_OK) return st;
    st = gemm_run(dev, &g2, scaled_bf16);
    if (st == FP8_OK && is) st = gemm_run(dev, &s2, scaled_bf16);
    concurrent(dev, false, level);
    if (st != FP8_OK) return st;
    const fp8_operand shared = is ? scratch_operand(d, lp.so, lp.idt) : (fp8_operand){0};

    /* 7. Combine. */
    const fp8_moe_combine_desc cd = {.plan = plan, .hidden = hd, .rows = scratch_operand(d, lp.o, lp.idt),
                                     .weights = weights, .shared = shared, .y = d->y};
    return combine_run(dev, &cd);
}
