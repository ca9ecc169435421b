/* fp8_moe_layer against the independent double-precision reference (test_moe_ref.c): random, skewed
 * and sparse routing, DeepSeek-style group-limited routing, softmax top-k, ties, shared experts,
 * W8A8, FP8 per-channel and 128x128 experts, MXFP4 and NVFP4 experts, every activation; and the
 * pieces run one by one give the layer's result bit for bit. */
#include "test_moe_ref.h"

#include <math.h>
#include <string.h>

static fp8_context *ctx;
static fp8_device *dev;

typedef struct layer_case {
    const char *name;
    uint32_t m, e, k, h, i, is;
    fp8_dtype wdt;
    fp8_scale_layout wl;
    fp8_dtype xdt, ydt;
    fp8_moe_activation act;
    int routing;                /* 0: logits + router; 1: caller ids, random; 2: caller ids, all to experts 3 and 1 */
    ref_router rr;
    fp8_moe_group_score gscore;
    float bias_amp;             /* router correction bias (0: none) */
    float logit_amp;            /* 0: all logits equal (ties) */
    fp8_moe_act_quant q;
    fp8_dtype idt;              /* intermediate rows (0: f32) */
    uint32_t row_align;
    size_t gap;                 /* bytes between experts beyond their size */
    double tol;
    int pieces;                 /* also run the pieces and compare bit for bit */
    uint64_t seed;
    uint32_t spread;            /* > 0: also run with the routed experts spread over buffers of this many each */
} layer_case;

static const fp8_scale_layout ROW_F32 = {.kind = FP8_SCALE_ROW, .dtype = FP8_F32};
static const fp8_scale_layout BLK128 = {.kind = FP8_SCALE_BLOCK, .dtype = FP8_F32, .block_rows = 128, .block_cols = 128};
static const fp8_scale_layout MXFP4 = {.kind = FP8_SCALE_BLOCK, .dtype = FP8_E8M0, .block_rows = 1, .block_cols = 32};
static const fp8_scale_layout NVFP4 = {.kind = FP8_SCALE_BLOCK, .dtype = FP8_E4M3FN, .block_rows = 1, .block_cols = 16};

static int gated(fp8_moe_activation a)
{
    return a == FP8_MOE_ACT_SWIGLU || a == FP8_MOE_ACT_GEGLU || a == FP8_MOE_ACT_GEGLU_TANH;
}

static float round_to(fp8_dtype d, float v) { return fp8_decode_value(d, fp8_encode_value(d, v, FP8_OVERFLOW_CAST)); }

/* The routed experts of `x` copied into buffers of `per` experts each, at a new offset; `w` gets the spread. */
typedef struct spread {
    fp8_buffer *parts[64];
    uint32_t count;
} spread;

static void spread_experts(const ref_experts *x, uint32_t per, fp8_moe_weights *w, spread *s)
{
    size_t stride = x->w.expert_stride;
    const size_t bytes = fp8_buffer_size(x->wbuf), offset = 48; /* keeps 16-byte alignment */
    if (!stride) fp8_dtype_storage_size(x->dtype, (size_t)x->n * x->k, &stride);
    uint8_t *all = malloc(bytes);
    fp8_buffer_read(x->wbuf, 0, all, bytes);
    s->count = x->e / per + (x->e % per != 0);
    CHECK(s->count <= 64 && stride, "spread: %u buffers, stride %zu", s->count, stride);
    for (uint32_t p = 0; p < s->count; p++) {
        const size_t first = (size_t)p * per * stride;
        const size_t len = first + per * stride <= bytes ? per * stride : bytes - first;
        CHECK_STATUS(fp8_buffer_create(dev, offset + len, &s->parts[p]), FP8_OK);
        fp8_buffer_write(s->parts[p], offset, all + first, len);
    }
    free(all);
    *w = x->w;
    w->w.buffer = NULL;
    w->w.offset = offset;
    w->experts_per_buffer = per;
    w->w_buffer_count = s->count;
    w->w_buffers = s->parts;
}

static void spread_free(spread *s)
{
    for (uint32_t p = 0; p < s->count; p++) fp8_buffer_free(s->parts[p]);
}

/* W8A8 by hand: rows of a device matrix quantized on the host with fp8_quantize, the rule the layer's device
 * quantization follows bit for bit, into FP8 codes and their F32 scales for the grouped GEMM. Rows that fail
 * (the unwritten rows past a plan's last one) become zeros: no GEMM reads them. */
static void host_quantize(fp8_operand src, uint32_t rows, uint32_t cols, const fp8_moe_act_quant *q, fp8_operand *codes,
                          fp8_scales *scales)
{
    const uint32_t bc = q->block_cols && q->block_cols < cols ? q->block_cols : cols, nb = (cols + bc - 1) / bc;
    float *v = malloc((size_t)rows * cols * 4), *s = malloc((size_t)rows * nb * 4);
    uint8_t *c = malloc((size_t)rows * cols);
    ref_download(src.buffer, src.offset, src.dtype, (size_t)rows * cols, v);
    const fp8_scale_layout layout = {.kind = FP8_SCALE_BLOCK, .dtype = FP8_F32, .block_rows = 1, .block_cols = bc};
    for (uint32_t r = 0; r < rows; r++) {
        const fp8_quantize_desc qd = {.rows = 1, .cols = cols, .src_dtype = FP8_F32, .src = v + (size_t)r * cols,
                                      .dst_dtype = q->dtype, .dst = c + (size_t)r * cols, .dst_bytes = cols,
                                      .scale_layout = layout, .scale = s + (size_t)r * nb, .scale_bytes = nb * 4};
        if (fp8_quantize(&qd) != FP8_OK) {
            memset(c + (size_t)r * cols, 0, cols);
            for (uint32_t b = 0; b < nb; b++) s[(size_t)r * nb + b] = 1.0f;
        }
    }
    *codes = (fp8_operand){.dtype = q->dtype};
    *scales = (fp8_scales){.layout = layout};
    fp8_buffer_create(dev, (size_t)rows * cols, &codes->buffer);
    fp8_buffer_create(dev, (size_t)rows * nb * 4, &scales->buffer);
    fp8_buffer_write(codes->buffer, 0, c, (size_t)rows * cols);
    fp8_buffer_write(scales->buffer, 0, s, (size_t)rows * nb * 4);
    free(v);
    free(s);
    free(c);
}

/* Run the layer's pieces by hand into the same scratch layout's roles, using separate buffers (W8A8: FP8
 * codes from host_quantize, whatever form the layer hands its GEMMs). */
static void run_pieces(const fp8_moe_layer_desc *d, fp8_buffer *y2)
{
    const uint32_t m = d->m, k = d->top_k, e = d->experts, hd = d->hidden, in = d->intermediate;
    uint32_t a = d->row_align, rows;
    if (!a) fp8_moe_row_align(dev, m, k, e, &a);
    size_t pbytes;
    CHECK_STATUS(fp8_moe_plan_size(m, k, e, a, &pbytes, &rows), FP8_OK);
    fp8_buffer *plan = NULL, *ids = NULL, *w = NULL, *h = NULL, *o = NULL;
    fp8_buffer_create(dev, pbytes, &plan);
    fp8_buffer_create(dev, (size_t)m * k * 4, &ids);
    fp8_buffer_create(dev, (size_t)m * k * 4, &w);
    fp8_buffer_create(dev, (size_t)rows * in * 4, &h);
    fp8_buffer_create(dev, (size_t)rows * hd * 4, &o);
    fp8_operand ido = d->ids, wo = d->weights;
    if (d->logits.buffer) {
        ido = (fp8_operand){.buffer = ids, .dtype = FP8_I32};
        wo = (fp8_operand){.buffer = w, .dtype = FP8_F32};
        fp8_moe_route_desc rd = {.m = m, .experts = e, .top_k = k, .logits = d->logits, .router = d->router, .ids = ido,
                                 .weights = wo};
        CHECK_STATUS(fp8_moe_route(dev, &rd), FP8_OK);
    }
    const fp8_moe_plan p = {.buffer = plan, .m = m, .top_k = k, .experts = e, .row_align = a};
    fp8_moe_group_desc gd = {.ids = ido, .plan = p};
    CHECK_STATUS(fp8_moe_group(dev, &gd), FP8_OK);
    const bool w8a8 = d->act_quant.dtype != FP8_DTYPE_INVALID;
    fp8_moe_gemm_desc g1 = {.plan = p, .n = gated(d->activation) ? 2 * in : in, .k = hd, .weights = d->gate_up, .x = d->x,
                            .x_gathered = 1, .activation = d->activation,
                            .y = {.buffer = h, .dtype = FP8_F32}};
    if (w8a8) host_quantize(d->x, m, hd, &d->act_quant, &g1.x, &g1.x_scales);
    CHECK_STATUS(fp8_moe_grouped_gemm(dev, &g1), FP8_OK);
    fp8_moe_gemm_desc g2 = {.plan = p, .n = hd, .k = in, .weights = d->down, .x = {.buffer = h, .dtype = FP8_F32},
                            .y = {.buffer = o, .dtype = FP8_F32}};
    if (w8a8) host_quantize(g2.x, rows, in, &d->act_quant, &g2.x, &g2.x_scales);
    CHECK_STATUS(fp8_moe_grouped_gemm(dev, &g2), FP8_OK);
    if (w8a8) {
        fp8_buffer_free(g1.x.buffer); fp8_buffer_free(g1.x_scales.buffer);
        fp8_buffer_free(g2.x.buffer); fp8_buffer_free(g2.x_scales.buffer);
    }
    fp8_moe_combine_desc cd = {.plan = p, .hidden = hd, .rows = {.buffer = o, .dtype = FP8_F32}, .weights = wo,
                               .y = {.buffer = y2, .dtype = d->y.dtype}};
    CHECK_STATUS(fp8_moe_combine(dev, &cd), FP8_OK);
    fp8_buffer_free(plan); fp8_buffer_free(ids); fp8_buffer_free(w); fp8_buffer_free(h); fp8_buffer_free(o);
}

static void run_case(const layer_case *c)
{
    test_rng rng = {c->seed ? c->seed : 0x9e3779b97f4a7c15ull};
    const uint32_t m = c->m, e = c->e, k = c->k, hd = c->h, in = c->i, is = c->is;
    const uint32_t gu = gated(c->act) ? 2 * in : in;
    ref_experts wgu, wdn, sgu = {0}, sdn = {0};
    CHECK_STATUS(ref_experts_make(dev, &rng, e, gu, hd, c->wdt, c->wl, 1.0f / sqrtf((float)hd), c->gap, &wgu), FP8_OK);
    CHECK_STATUS(ref_experts_make(dev, &rng, e, hd, in, c->wdt, c->wl, 1.0f / sqrtf((float)in), c->gap, &wdn), FP8_OK);
    if (is) {
        const uint32_t sg = gated(c->act) ? 2 * is : is;
        CHECK_STATUS(ref_experts_make(dev, &rng, 1, sg, hd, c->wdt, c->wl, 1.0f / sqrtf((float)hd), 0, &sgu), FP8_OK);
        CHECK_STATUS(ref_experts_make(dev, &rng, 1, hd, is, c->wdt, c->wl, 1.0f / sqrtf((float)is), 0, &sdn), FP8_OK);
    }
    /* Inputs, rounded to the dtypes the device holds so the reference sees the same values. */
    float *x = malloc((size_t)m * hd * 4), *logits = malloc((size_t)m * e * 4), *bias = NULL;
    for (size_t j = 0; j < (size_t)m * hd; j++) x[j] = round_to(c->xdt, test_rng_normal(&rng));
    for (size_t j = 0; j < (size_t)m * e; j++) logits[j] = c->logit_amp * test_rng_normal(&rng);
    if (c->bias_amp != 0) {
        bias = malloc(e * 4);
        for (uint32_t j = 0; j < e; j++) bias[j] = c->bias_amp * test_rng_normal(&rng);
    }
    int32_t *ids = malloc((size_t)m * k * 4);
    float *wts = malloc((size_t)m * k * 4);
    ref_router rr = c->rr;
    rr.bias = bias;
    for (uint32_t t = 0; t < m; t++) {
        if (c->routing == 0) {
            double wd[64];
            CHECK(ref_route(logits + (size_t)t * e, e, k, &rr, ids + t * k, wd), "%s: reference routing", c->name);
            for (uint32_t j = 0; j < k; j++) wts[t * k + j] = (float)wd[j];
        } else {
            for (uint32_t j = 0; j < k; j++) {
                if (c->routing == 2) ids[t * k + j] = j == 0 ? 3 : 1;
                else {
                    int32_t id;
                    int dup;
                    do {
                        id = (int32_t)(test_rng_next(&rng) % e);
                        dup = 0;
                        for (uint32_t i = 0; i < j; i++) dup |= ids[t * k + i] == id;
                    } while (dup);
                    ids[t * k + j] = id;
                }
                wts[t * k + j] = test_rng_uniform(&rng, 0.1f, 1.0f);
            }
        }
    }
    fp8_buffer *xb = ref_upload(dev, c->xdt, x, (size_t)m * hd);
    fp8_buffer *lb = ref_upload(dev, FP8_F32, logits, (size_t)m * e);
    fp8_buffer *bb = bias ? ref_upload(dev, FP8_F32, bias, e) : NULL;
    fp8_buffer *ib = NULL, *wb = ref_upload(dev, FP8_F32, wts, (size_t)m * k), *yb = NULL, *y2 = NULL, *sb = NULL;
    fp8_buffer_create(dev, (size_t)m * k * 4, &ib);
    fp8_buffer_write(ib, 0, ids, (size_t)m * k * 4);
    size_t ybytes;
    fp8_dtype_storage_size(c->ydt, (size_t)m * hd, &ybytes);
    fp8_buffer_create(dev, ybytes, &yb);
    fp8_buffer_create(dev, ybytes, &y2);

    fp8_moe_layer_desc d = {.m = m, .experts = e, .top_k = k, .hidden = hd, .intermediate = in};
    d.x = (fp8_operand){.buffer = xb, .dtype = c->xdt};
    d.y = (fp8_operand){.buffer = yb, .dtype = c->ydt};
    if (c->routing == 0) {
        d.logits = (fp8_operand){.buffer = lb, .dtype = FP8_F32};
        d.router = (fp8_moe_router){.scoring = rr.scoring, .n_group = rr.n_group, .topk_group = rr.topk_group,
                                    .group_score = c->gscore, .renormalize = (uint32_t)rr.renormalize,
                                    .routed_scaling_factor = (float)rr.scale};
        if (bb) d.router.bias = (fp8_operand){.buffer = bb, .dtype = FP8_F32};
    } else {
        d.ids = (fp8_operand){.buffer = ib, .dtype = FP8_I32};
        d.weights = (fp8_operand){.buffer = wb, .dtype = FP8_F32};
    }
    d.activation = c->act;
    d.gate_up = wgu.w;
    d.down = wdn.w;
    if (is) {
        d.shared_intermediate = is;
        d.shared_gate_up = sgu.w;
        d.shared_down = sdn.w;
    }
    d.act_quant = c->q;
    d.intermediate_dtype = c->idt;
    d.row_align = c->row_align;
    size_t sbytes = 0;
    CHECK_STATUS(fp8_moe_layer_scratch_size(dev, &d, &sbytes), FP8_OK);
    fp8_buffer_create(dev, sbytes + 512, &sb);
    d.scratch = sb;
    d.scratch_offset = 512;
    CHECK_STATUS(fp8_moe_layer(dev, &d), FP8_OK);
    float *y = malloc((size_t)m * hd * 4);
    ref_download(yb, 0, c->ydt, (size_t)m * hd, y);

    /* The reference. */
    double *yr = calloc((size_t)m * hd, sizeof(double)), *xr = malloc(hd * sizeof(double));
    const fp8_dtype qd = c->q.dtype;
    for (uint32_t t = 0; t < m; t++) {
        for (uint32_t j = 0; j < hd; j++) xr[j] = x[(size_t)t * hd + j];
        if (qd != FP8_DTYPE_INVALID) ref_qdq_row(qd, c->q.block_cols, xr, hd, xr);
        for (uint32_t j = 0; j < k; j++)
            ref_expert_mlp(&wgu, &wdn, (uint32_t)ids[t * k + j], c->act, qd, c->q.block_cols, xr, wts[t * k + j],
                           yr + (size_t)t * hd);
        if (is) ref_expert_mlp(&sgu, &sdn, 0, c->act, qd, c->q.block_cols, xr, 1.0, yr + (size_t)t * hd);
    }
    const double err = test_rel_frobenius(y, yr, (size_t)m * hd);
    CHECK(err <= c->tol, "%s: relative error %.3g above %.3g", c->name, err, c->tol);
    printf("%-34s rel err %.3g (tol %.3g)\n", c->name, err, c->tol);

    /* Per-expert load in the layer's plan (the first scratch region) matches the reference ids. */
    uint32_t *counts = malloc(e * 4), *hist = calloc(e, 4);
    fp8_buffer_read(sb, 512 + 64, counts, e * 4);
    for (uint32_t s = 0; s < m * k; s++) hist[ids[s]]++;
    CHECK(memcmp(counts, hist, e * 4) == 0, "%s: per-expert counts differ from the reference routing", c->name);

    if (c->pieces) {
        run_pieces(&d, y2);
        float *yp = malloc((size_t)m * hd * 4);
        ref_download(y2, 0, c->ydt, (size_t)m * hd, yp);
        CHECK(memcmp(yp, y, (size_t)m * hd * 4) == 0, "%s: pieces differ from the layer", c->name);
        /* And the layer is reproducible. */
        CHECK_STATUS(fp8_moe_layer(dev, &d), FP8_OK);
        ref_download(yb, 0, c->ydt, (size_t)m * hd, yp);
        CHECK(memcmp(yp, y, (size_t)m * hd * 4) == 0, "%s: a second run differs", c->name);
        free(yp);
    }
    if (c->spread) {
        /* Experts over several buffers: the same kernels read the same bytes, so the result is bit for bit
         * the one-buffer result. */
        spread sgu_parts, sdn_parts;
        spread_experts(&wgu, c->spread, &d.gate_up, &sgu_parts);
        spread_experts(&wdn, c->spread, &d.down, &sdn_parts);
        CHECK_STATUS(fp8_moe_layer(dev, &d), FP8_OK);
        float *ys = malloc((size_t)m * hd * 4);
        ref_download(yb, 0, c->ydt, (size_t)m * hd, ys);
        const int same = memcmp(ys, y, (size_t)m * hd * 4) == 0;
        CHECK(same, "%s: experts over %u buffers differ from one buffer", c->name, sgu_parts.count);
        if (same) printf("%-34s same over %u buffers of %u experts\n", c->name, sgu_parts.count, c->spread);
        if (c->pieces) {
            run_pieces(&d, y2);
            ref_download(y2, 0, c->ydt, (size_t)m * hd, ys);
            CHECK(memcmp(ys, y, (size_t)m * hd * 4) == 0, "%s: pieces over %u buffers differ", c->name, sgu_parts.count);
        }
        free(ys);
        spread_free(&sgu_parts);
        spread_free(&sdn_parts);
    }
    free(counts); free(hist);
    free(y); free(yr); free(xr); free(x); free(logits); free(bias); free(ids); free(wts);
    fp8_buffer_free(xb); fp8_buffer_free(lb); fp8_buffer_free(bb); fp8_buffer_free(ib); fp8_buffer_free(wb);
    fp8_buffer_free(yb); fp8_buffer_free(y2); fp8_buffer_free(sb);
    ref_experts_free(&wgu); ref_experts_free(&wdn);
    if (is) { ref_experts_free(&sgu); ref_experts_free(&sdn); }
}

int main(void)
{
    fp8_context_options opt = {.log = test_log};
    CHECK_STATUS(fp8_context_create(&opt, &ctx), FP8_OK);
    dev = ref_open_device(ctx);

    const ref_router softmax_renorm = {.scoring = FP8_MOE_SCORE_SOFTMAX, .renormalize = 1};
    const layer_case cases[] = {
        {.name = "softmax top-2, e4m3 per-channel", .m = 9, .e = 8, .k = 2, .h = 64, .i = 32, .wdt = FP8_E4M3FN,
         .wl = ROW_F32, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.5f, .tol = 1e-6, .pieces = 1},
        {.name = "same, row_align 4 (padded groups)", .m = 9, .e = 8, .k = 2, .h = 64, .i = 32, .wdt = FP8_E4M3FN,
         .wl = ROW_F32, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.5f, .row_align = 4, .tol = 1e-6, .pieces = 1},
        {.name = "random caller ids, strided experts", .m = 11, .e = 6, .k = 3, .h = 48, .i = 40, .wdt = FP8_E5M2,
         .wl = ROW_F32, .xdt = FP8_F16, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .routing = 1, .gap = 24,
         .row_align = 8, .tol = 1e-6, .pieces = 1},
        {.name = "skewed: all tokens to experts 3, 1", .m = 10, .e = 8, .k = 2, .h = 32, .i = 16, .wdt = FP8_E4M3FN,
         .wl = ROW_F32, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .routing = 2, .row_align = 16,
         .tol = 1e-6, .pieces = 1},
        {.name = "sparse: 2 tokens over 64 experts", .m = 2, .e = 64, .k = 4, .h = 32, .i = 16, .wdt = FP8_E4M3FN,
         .wl = ROW_F32, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 2.0f, .tol = 1e-6},
        {.name = "ties: equal logits", .m = 4, .e = 8, .k = 2, .h = 32, .i = 16, .wdt = FP8_E4M3FN, .wl = ROW_F32,
         .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm, .logit_amp = 0.0f,
         .tol = 1e-6},
        {.name = "deepseek-v3 routing + shared, 128x128", .m = 6, .e = 256, .k = 8, .h = 32, .i = 16, .is = 32,
         .wdt = FP8_E4M3FN, .wl = BLK128, .xdt = FP8_BF16, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU,
         .rr = {.scoring = FP8_MOE_SCORE_SIGMOID, .n_group = 8, .topk_group = 4, .group_top2 = 1, .renormalize = 1,
                .scale = 2.5},
         .bias_amp = 0.2f, .logit_amp = 1.0f, .tol = 1e-6, .pieces = 0},
        /* One token: the decode shape, where each active expert has one row (OpenCL takes a one-row kernel). */
        {.name = "one token: deepseek-v3 routing + shared", .m = 1, .e = 256, .k = 8, .h = 32, .i = 16, .is = 32,
         .wdt = FP8_E4M3FN, .wl = BLK128, .xdt = FP8_BF16, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU,
         .rr = {.scoring = FP8_MOE_SCORE_SIGMOID, .n_group = 8, .topk_group = 4, .group_top2 = 1, .renormalize = 1,
                .scale = 2.5},
         .bias_amp = 0.2f, .logit_amp = 1.0f, .tol = 1e-6},
        {.name = "one token: mxfp4 experts, W8A8 1x32", .m = 1, .e = 8, .k = 4, .h = 64, .i = 32, .wdt = FP8_E2M1,
         .wl = MXFP4, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.0f, .q = {.dtype = FP8_E4M3FN, .block_cols = 32}, .tol = 1e-4},
        {.name = "one token: e4m3 per-channel, pieces", .m = 1, .e = 8, .k = 2, .h = 64, .i = 32, .wdt = FP8_E4M3FN,
         .wl = ROW_F32, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.5f, .tol = 1e-6, .pieces = 1},
        /* W8A8 against pieces fed FP8 codes: bit for bit whatever form the layer's GEMMs get (bf16 values of
         * the codes on Vulkan's decode kernel). Both the E4M3 and the E5M2 grid, blocks and whole rows. */
        {.name = "decode W8A8 1x128, pieces", .m = 3, .e = 8, .k = 2, .h = 256, .i = 128, .wdt = FP8_E4M3FN,
         .wl = BLK128, .xdt = FP8_BF16, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.0f, .q = {.dtype = FP8_E4M3FN, .block_cols = 128}, .tol = 1e-4, .pieces = 1},
        {.name = "decode W8A8 e5m2 per-token, pieces", .m = 2, .e = 8, .k = 2, .h = 64, .i = 32, .wdt = FP8_E4M3FN,
         .wl = ROW_F32, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.0f, .q = {.dtype = FP8_E5M2}, .tol = 1e-3, .pieces = 1},
        {.name = "e4m3 128x128 W8A8 1x128", .m = 5, .e = 8, .k = 2, .h = 256, .i = 128, .wdt = FP8_E4M3FN,
         .wl = BLK128, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.0f, .q = {.dtype = FP8_E4M3FN, .block_cols = 128}, .row_align = 4, .tol = 1e-4},
        {.name = "W8A8 per-token + shared", .m = 7, .e = 8, .k = 2, .h = 64, .i = 32, .is = 16, .wdt = FP8_E4M3FN,
         .wl = ROW_F32, .xdt = FP8_F16, .ydt = FP8_F16, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.0f, .q = {.dtype = FP8_E4M3FN}, .tol = 1e-3},
        {.name = "mxfp4 experts, bf16 in/out", .m = 6, .e = 8, .k = 2, .h = 64, .i = 32, .wdt = FP8_E2M1, .wl = MXFP4,
         .xdt = FP8_BF16, .ydt = FP8_BF16, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm, .logit_amp = 1.0f,
         .tol = 5e-3, .pieces = 1},
        {.name = "nvfp4 experts (per-expert scale)", .m = 6, .e = 8, .k = 2, .h = 64, .i = 32, .wdt = FP8_E2M1,
         .wl = NVFP4, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.0f, .tol = 1e-6},
        {.name = "bf16 intermediates", .m = 9, .e = 8, .k = 2, .h = 64, .i = 32, .is = 16, .wdt = FP8_E4M3FN,
         .wl = ROW_F32, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.5f, .idt = FP8_BF16, .row_align = 4, .tol = 6e-3},
        {.name = "f16 intermediates, W8A8", .m = 9, .e = 8, .k = 2, .h = 64, .i = 32, .wdt = FP8_E4M3FN,
         .wl = ROW_F32, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.5f, .idt = FP8_F16, .q = {.dtype = FP8_E4M3FN, .block_cols = 32}, .tol = 5e-3},
        {.name = "geglu", .m = 5, .e = 4, .k = 2, .h = 32, .i = 16, .wdt = FP8_E4M3FN, .wl = ROW_F32, .xdt = FP8_F32,
         .ydt = FP8_F32, .act = FP8_MOE_ACT_GEGLU, .rr = softmax_renorm, .logit_amp = 1.0f, .tol = 1e-6},
        {.name = "geglu tanh", .m = 5, .e = 4, .k = 2, .h = 32, .i = 16, .wdt = FP8_E4M3FN, .wl = ROW_F32, .xdt = FP8_F32,
         .ydt = FP8_F32, .act = FP8_MOE_ACT_GEGLU_TANH, .rr = softmax_renorm, .logit_amp = 1.0f, .tol = 1e-6},
        {.name = "silu (not gated) + shared", .m = 5, .e = 4, .k = 1, .h = 32, .i = 24, .is = 8, .wdt = FP8_E4M3FN,
         .wl = ROW_F32, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SILU, .rr = softmax_renorm,
         .logit_amp = 1.0f, .tol = 1e-6},
        {.name = "gelu (not gated)", .m = 5, .e = 4, .k = 2, .h = 32, .i = 24, .wdt = FP8_E4M3FN, .wl = ROW_F32,
         .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_GELU, .rr = {.scoring = FP8_MOE_SCORE_SOFTMAX, .scale = 0.7},
         .logit_amp = 1.0f, .tol = 1e-6},
        {.name = "gelu tanh (not gated)", .m = 5, .e = 4, .k = 2, .h = 32, .i = 24, .wdt = FP8_E4M3FN, .wl = ROW_F32,
         .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_GELU_TANH, .rr = softmax_renorm, .logit_amp = 1.0f,
         .tol = 1e-6},
        /* Experts over several buffers (fp8_moe_weights.w_buffers), decode and tiled plans. */
        {.name = "spread: 3 experts a buffer, tiles", .m = 9, .e = 8, .k = 2, .h = 64, .i = 32, .wdt = FP8_E4M3FN,
         .wl = BLK128, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.5f, .row_align = 16, .gap = 16, .tol = 1e-6, .pieces = 1, .spread = 3},
        {.name = "spread: one token, 1 expert a buffer", .m = 1, .e = 8, .k = 4, .h = 64, .i = 32, .wdt = FP8_E2M1,
         .wl = MXFP4, .xdt = FP8_F32, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.0f, .tol = 1e-6, .spread = 1},
        {.name = "spread: decode, 5 experts a buffer", .m = 3, .e = 16, .k = 4, .h = 48, .i = 32, .wdt = FP8_E5M2,
         .wl = ROW_F32, .xdt = FP8_F16, .ydt = FP8_F32, .act = FP8_MOE_ACT_SWIGLU, .rr = softmax_renorm,
         .logit_amp = 1.0f, .is = 16, .tol = 1e-6, .spread = 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);

    ref_close_device(dev);
    fp8_context_destroy(ctx);
    return test_finish("moe");
}
