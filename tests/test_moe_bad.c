/* Bad input to every MoE call gets its documented status, never a crash or a stray write: expert ids
 * outside [0,E), k > E, k == 0, NaN/Inf logits, M == 0, mismatched weight shapes and strides,
 * corrupt plans, short or overlapping scratch. */
#include "test_moe_ref.h"

#include <math.h>
#include <string.h>

#define NONE FP8_MOE_NONE

static fp8_context *ctx;
static fp8_device *dev;

enum { M = 3, E = 4, K = 2, H = 32, I = 16 };

static const fp8_scale_layout ROW_F32 = {.kind = FP8_SCALE_ROW, .dtype = FP8_F32};

/* A valid layer and its pieces' operands; each test copies a descriptor and breaks one thing. */
typedef struct fixture {
    ref_experts gu, dn;
    fp8_buffer *x, *y, *logits, *ids, *w, *scratch, *plan, *h, *o;
    fp8_moe_layer_desc layer;
    fp8_moe_route_desc route;
    fp8_moe_plan plan_desc;
    fp8_moe_gemm_desc g1;
    fp8_moe_combine_desc comb;
    size_t scratch_bytes, plan_bytes;
    uint32_t rows;
} fixture;

static fixture fx;

static void fixture_make(void)
{
    test_rng rng = {0xbad};
    CHECK_STATUS(ref_experts_make(dev, &rng, E, 2 * I, H, FP8_E4M3FN, ROW_F32, 0.2f, 0, &fx.gu), FP8_OK);
    CHECK_STATUS(ref_experts_make(dev, &rng, E, H, I, FP8_E4M3FN, ROW_F32, 0.2f, 0, &fx.dn), FP8_OK);
    float x[M * H], l[M * E];
    for (int i = 0; i < M * H; i++) x[i] = test_rng_normal(&rng);
    for (int i = 0; i < M * E; i++) l[i] = test_rng_normal(&rng);
    fx.x = ref_upload(dev, FP8_F32, x, M * H);
    fx.logits = ref_upload(dev, FP8_F32, l, M * E);
    fp8_buffer_create(dev, M * H * 4, &fx.y);
    fp8_buffer_create(dev, M * K * 4, &fx.ids);
    fp8_buffer_create(dev, M * K * 4, &fx.w);
    fp8_moe_layer_desc *d = &fx.layer;
    *d = (fp8_moe_layer_desc){.m = M, .experts = E, .top_k = K, .hidden = H, .intermediate = I};
    d->x = (fp8_operand){.buffer = fx.x, .dtype = FP8_F32};
    d->y = (fp8_operand){.buffer = fx.y, .dtype = FP8_F32};
    d->logits = (fp8_operand){.buffer = fx.logits, .dtype = FP8_F32};
    d->router.renormalize = 1;
    d->activation = FP8_MOE_ACT_SWIGLU;
    d->gate_up = fx.gu.w;
    d->down = fx.dn.w;
    d->row_align = 2;
    CHECK_STATUS(fp8_moe_layer_scratch_size(dev, d, &fx.scratch_bytes), FP8_OK);
    fp8_buffer_create(dev, fx.scratch_bytes, &fx.scratch);
    d->scratch = fx.scratch;
    CHECK_STATUS(fp8_moe_layer(dev, d), FP8_OK);

    fx.route = (fp8_moe_route_desc){.m = M, .experts = E, .top_k = K, .logits = d->logits,
                                    .router = {.renormalize = 1},
                                    .ids = {.buffer = fx.ids, .dtype = FP8_I32}, .weights = {.buffer = fx.w, .dtype = FP8_F32}};
    CHECK_STATUS(fp8_moe_route(dev, &fx.route), FP8_OK);
    CHECK_STATUS(fp8_moe_plan_size(M, K, E, 2, &fx.plan_bytes, &fx.rows), FP8_OK);
    fp8_buffer_create(dev, fx.plan_bytes, &fx.plan);
    fx.plan_desc = (fp8_moe_plan){.buffer = fx.plan, .m = M, .top_k = K, .experts = E, .row_align = 2};
    fp8_moe_group_desc gd = {.ids = fx.route.ids, .plan = fx.plan_desc};
    CHECK_STATUS(fp8_moe_group(dev, &gd), FP8_OK);
    fp8_buffer_create(dev, (size_t)fx.rows * I * 4, &fx.h);
    fp8_buffer_create(dev, (size_t)fx.rows * H * 4, &fx.o);
    fx.g1 = (fp8_moe_gemm_desc){.plan = fx.plan_desc, .n = 2 * I, .k = H, .weights = fx.gu.w, .x = d->x, .x_gathered = 1,
                                .activation = FP8_MOE_ACT_SWIGLU, .y = {.buffer = fx.h, .dtype = FP8_F32}};
    CHECK_STATUS(fp8_moe_grouped_gemm(dev, &fx.g1), FP8_OK);
    fx.comb = (fp8_moe_combine_desc){.plan = fx.plan_desc, .hidden = H, .rows = {.buffer = fx.o, .dtype = FP8_F32},
                                     .weights = fx.route.weights, .y = d->y};
    CHECK_STATUS(fp8_moe_combine(dev, &fx.comb), FP8_OK);
}

static void fixture_free(void)
{
    ref_experts_free(&fx.gu);
    ref_experts_free(&fx.dn);
    fp8_buffer *b[] = {fx.x, fx.y, fx.logits, fx.ids, fx.w, fx.scratch, fx.plan, fx.h, fx.o};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) fp8_buffer_free(b[i]);
}

static void test_route_bad(void)
{
    fp8_moe_route_desc d;
#define ROUTE(mutation, expected) do { d = fx.route; mutation; CHECK_STATUS(fp8_moe_route(dev, &d), expected); } while (0)
    /* Data errors: returned by the call on the CPU, by the next synchronize on a device. */
#define ROUTE_DATA(mutation, expected) \
    do { d = fx.route; mutation; CHECK_STATUS(ref_data_status(dev, fp8_moe_route(dev, &d)), expected); } while (0)
    ROUTE((void)0, FP8_OK);
    ROUTE(d.top_k = 0, FP8_ERR_SHAPE);
    ROUTE(d.top_k = E + 1, FP8_ERR_SHAPE);
    ROUTE(d.experts = 0, FP8_ERR_SHAPE);
    ROUTE((d.router.n_group = 3, d.router.topk_group = 1), FP8_ERR_SHAPE);           /* 3 does not divide 4 */
    ROUTE((d.router.n_group = 2, d.router.topk_group = 0), FP8_ERR_SHAPE);
    ROUTE((d.router.n_group = 2, d.router.topk_group = 3), FP8_ERR_SHAPE);
    ROUTE((d.router.n_group = 4, d.router.topk_group = 1), FP8_ERR_SHAPE);           /* 1 expert kept, k = 2 */
    ROUTE(d.router.topk_group = 1, FP8_ERR_SHAPE);                                   /* no n_group */
    ROUTE((d.experts = FP8_MOE_MAX_EXPERTS + 1), FP8_ERR_UNSUPPORTED);
    ROUTE((d.experts = 100, d.top_k = FP8_MOE_MAX_TOP_K + 1), FP8_ERR_UNSUPPORTED);
    ROUTE(d.router.scoring = (fp8_moe_scoring)7, FP8_ERR_INVALID_ARGUMENT);
    ROUTE(d.router.group_score = (fp8_moe_group_score)9, FP8_ERR_INVALID_ARGUMENT);
    ROUTE(d.router.routed_scaling_factor = NAN, FP8_ERR_NOT_FINITE);
    ROUTE(d.ids.dtype = FP8_F32, FP8_ERR_UNSUPPORTED_DTYPE);
    ROUTE(d.weights.dtype = FP8_F16, FP8_ERR_UNSUPPORTED_DTYPE);
    ROUTE(d.logits.dtype = FP8_E4M3FN, FP8_ERR_UNSUPPORTED_DTYPE);
    ROUTE(d.logits.buffer = NULL, FP8_ERR_NULL_POINTER);
    ROUTE(d.ids.offset = 4, FP8_ERR_BUFFER_TOO_SMALL);
    ROUTE(d.ids.row_stride = 1, FP8_ERR_STRIDE);
    ROUTE(d.ids = d.logits, FP8_ERR_UNSUPPORTED_DTYPE);
    ROUTE((d.weights.buffer = d.logits.buffer), FP8_ERR_INVALID_ARGUMENT);           /* output over the input */
    ROUTE((d.weights.buffer = d.ids.buffer), FP8_ERR_INVALID_ARGUMENT);              /* outputs over each other */
    ROUTE((d.router.bias = (fp8_operand){.buffer = fx.w, .dtype = FP8_F16}), FP8_ERR_UNSUPPORTED_DTYPE);
    CHECK_STATUS(fp8_moe_route(dev, NULL), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_moe_route(NULL, &fx.route), FP8_ERR_NULL_POINTER);

    /* A buffer of another device handle. */
    fp8_device *other = NULL;
    uint32_t idx;
    fp8_device_filter f = {.backend = FP8_BACKEND_CPU};
    fp8_context_find_device(ctx, &f, &idx);
    CHECK_STATUS(fp8_device_open(ctx, idx, &other), FP8_OK);
    CHECK_STATUS(fp8_moe_route(other, &fx.route), FP8_ERR_WRONG_DEVICE);
    fp8_device_close(other);

    /* M == 0: FP8_OK, nothing read (NULL buffers accepted) and nothing written. */
    int32_t sentinel[M * K], after[M * K];
    fp8_buffer_read(fx.ids, 0, sentinel, sizeof sentinel);
    ROUTE((d.m = 0, d.logits.buffer = NULL), FP8_OK);
    fp8_buffer_read(fx.ids, 0, after, sizeof after);
    CHECK(memcmp(sentinel, after, sizeof after) == 0, "M == 0 wrote ids");

    /* Non-finite logits: FP8_ERR_NOT_FINITE, the bad token gets ids 0..k-1 with weight 0, others routed. */
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++) {
        float l[M * E];
        fp8_buffer_read(fx.logits, 0, l, sizeof l);
        fp8_buffer *lb = NULL;
        fp8_buffer_create(dev, sizeof l, &lb);
        l[1 * E + 2] = bad[b];
        fp8_buffer_write(lb, 0, l, sizeof l);
        int32_t ids_good[M * K], ids_bad[M * K];
        float w_good[M * K], w_bad[M * K];
        CHECK_STATUS(fp8_moe_route(dev, &fx.route), FP8_OK);
        fp8_buffer_read(fx.ids, 0, ids_good, sizeof ids_good);
        fp8_buffer_read(fx.w, 0, w_good, sizeof w_good);
        ROUTE_DATA(d.logits.buffer = lb, FP8_ERR_NOT_FINITE);
        fp8_buffer_read(fx.ids, 0, ids_bad, sizeof ids_bad);
        fp8_buffer_read(fx.w, 0, w_bad, sizeof w_bad);
        for (int t = 0; t < M; t++)
            for (int j = 0; j < K; j++) {
                if (t == 1)
                    CHECK(ids_bad[t * K + j] == j && w_bad[t * K + j] == 0.0f, "non-finite token: id %d w %g",
                          ids_bad[t * K + j], w_bad[t * K + j]);
                else
                    CHECK(ids_bad[t * K + j] == ids_good[t * K + j] && w_bad[t * K + j] == w_good[t * K + j],
                          "finite token %d changed", t);
            }
        fp8_buffer_free(lb);
    }
    /* A NaN bias spoils every token. */
    float bias[E] = {0, NAN, 0, 0};
    fp8_buffer *bb = ref_upload(dev, FP8_F32, bias, E);
    ROUTE_DATA(d.router.bias = ((fp8_operand){.buffer = bb, .dtype = FP8_F32}), FP8_ERR_NOT_FINITE);
    fp8_buffer_free(bb);
#undef ROUTE
#undef ROUTE_DATA
}

static void test_group_bad(void)
{
    /* Ids outside [0,E): FP8_ERR_EXPERT_ID, the slot is dropped, everything else grouped. */
    int32_t ids[M * K] = {0, 1, -1, 2, 3, E};
    fp8_buffer *ib = NULL;
    fp8_buffer_create(dev, sizeof ids, &ib);
    fp8_buffer_write(ib, 0, ids, sizeof ids);
    fp8_moe_group_desc gd = {.ids = {.buffer = ib, .dtype = FP8_I32}, .plan = fx.plan_desc};
    CHECK_STATUS(ref_data_status(dev, fp8_moe_group(dev, &gd)), FP8_ERR_EXPERT_ID);
    uint32_t *w = malloc(fx.plan_bytes);
    fp8_buffer_read(fx.plan, 0, w, fx.plan_bytes);
    CHECK((int32_t)w[1] == FP8_ERR_EXPERT_ID, "plan status %d", (int32_t)w[1]);
    CHECK(w[9] == 2, "dropped %u, want 2", w[9]);
    const uint32_t *counts = w + 16, *slot_row = w + 16 + 3 * E + 1 + 2 * fx.rows;
    CHECK(counts[0] == 1 && counts[1] == 1 && counts[2] == 1 && counts[3] == 1, "counts %u %u %u %u", counts[0],
          counts[1], counts[2], counts[3]);
    CHECK(slot_row[2] == NONE && slot_row[5] == NONE, "dropped slots have rows %u %u", slot_row[2], slot_row[5]);
    CHECK(w[7] == 8, "total rows %u, want 8 (4 experts of 1 padded to 2)", w[7]);
    /* The plan stays consumable: combine runs over it (the dropped slots add nothing). */
    CHECK_STATUS(fp8_moe_combine(dev, &fx.comb), FP8_OK);
    ids[0] = INT32_MAX;
    fp8_buffer_write(ib, 0, ids, sizeof ids);
    CHECK_STATUS(ref_data_status(dev, fp8_moe_group(dev, &gd)), FP8_ERR_EXPERT_ID);

    /* The layer with such caller ids. */
    fp8_moe_layer_desc ld = fx.layer;
    ld.logits.buffer = NULL;
    ld.ids = gd.ids;
    ld.weights = fx.route.weights;
    size_t need;
    CHECK_STATUS(fp8_moe_layer_scratch_size(dev, &ld, &need), FP8_OK);
    CHECK(need <= fx.scratch_bytes, "caller ids need more scratch than routing");
    CHECK_STATUS(ref_data_status(dev, fp8_moe_layer(dev, &ld)), FP8_ERR_EXPERT_ID);

    /* Plan descriptor errors. */
    fp8_moe_group_desc g;
#define GROUP(mutation, expected) do { g = gd; mutation; CHECK_STATUS(fp8_moe_group(dev, &g), expected); } while (0)
    GROUP(g.plan.offset = 2, FP8_ERR_STRIDE);
    GROUP(g.plan.offset = 4, FP8_ERR_BUFFER_TOO_SMALL);
    GROUP(g.plan.row_align = 0, FP8_ERR_INVALID_ARGUMENT);
    GROUP(g.plan.row_align = FP8_MOE_MAX_ROW_ALIGN + 1, FP8_ERR_INVALID_ARGUMENT);
    GROUP(g.plan.top_k = E + 1, FP8_ERR_SHAPE);
    GROUP(g.plan.top_k = 0, FP8_ERR_SHAPE);
    GROUP(g.plan.buffer = NULL, FP8_ERR_NULL_POINTER);
    GROUP(g.ids.dtype = FP8_U32, FP8_ERR_UNSUPPORTED_DTYPE);
    GROUP(g.ids.buffer = fx.plan, FP8_ERR_INVALID_ARGUMENT); /* plan over its own ids */
    GROUP((g.plan.m = 0, g.ids.buffer = NULL), FP8_OK);
#undef GROUP
    CHECK_STATUS(fp8_moe_plan_size(1, 1, 1, 0, NULL, NULL), FP8_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(fp8_moe_plan_size(UINT32_MAX, 2, 8, 1, NULL, NULL), FP8_ERR_SIZE_OVERFLOW);
    CHECK_STATUS(fp8_moe_plan_size((1u << 30) - 1, 4, 8, 64, NULL, NULL), FP8_ERR_SIZE_OVERFLOW); /* S fits, R not */
    CHECK_STATUS(fp8_moe_plan_size((1u << 30) - 1, 4, 8, 1, NULL, NULL), FP8_OK);
    /* Restore a good plan for the next tests. */
    fp8_moe_group_desc good = {.ids = fx.route.ids, .plan = fx.plan_desc};
    CHECK_STATUS(fp8_moe_group(dev, &good), FP8_OK);
    free(w);
    fp8_buffer_free(ib);
}

static void test_gemm_bad(void)
{
    fp8_moe_gemm_desc d;
#define GEMM(mutation, expected) do { d = fx.g1; mutation; CHECK_STATUS(fp8_moe_grouped_gemm(dev, &d), expected); } while (0)
    GEMM((void)0, FP8_OK);
    GEMM(d.n = 2 * I + 1, FP8_ERR_SHAPE);                              /* odd N with a gated epilogue */
    GEMM(d.n = 0, FP8_ERR_SHAPE);
    GEMM(d.n = 4 * I, FP8_ERR_BUFFER_TOO_SMALL);                       /* weights are [E, 2I, H], not [E, 4I, H] */
    GEMM(d.k = 2 * H, FP8_ERR_BUFFER_TOO_SMALL);
    GEMM(d.plan.experts = E + 1, FP8_ERR_BUFFER_TOO_SMALL);           /* plan buffer sized for E */
    GEMM(d.weights.expert_stride = 100, FP8_ERR_STRIDE);               /* smaller than one 32 x 32 expert */
    GEMM(d.weights.expert_stride = 2 * I * H * 2, FP8_ERR_BUFFER_TOO_SMALL);
    GEMM(d.weights.scales_expert_stride = 8, FP8_ERR_STRIDE);          /* an expert has 32 f32 scales */
    GEMM(d.weights.scales_expert_stride = 2 * I * 4 + 2, FP8_ERR_STRIDE); /* not a whole scale */
    GEMM((d.weights.scales.layout = (fp8_scale_layout){.kind = FP8_SCALE_BLOCK, .dtype = FP8_F32, .block_rows = 1, .block_cols = 8}),
         FP8_ERR_BUFFER_TOO_SMALL);                                    /* per-channel scale buffer, 1x8 layout */
    GEMM(d.weights.scales.layout.kind = (fp8_scale_kind)9, FP8_ERR_SCALE_LAYOUT);
    GEMM(d.weights.w.dtype = FP8_F16, FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM(d.weights.tensor_scales = ((fp8_operand){.buffer = fx.w, .dtype = FP8_F16}), FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM((d.weights.tensor_scales = (fp8_operand){.buffer = fx.w, .offset = 12, .dtype = FP8_F32}), FP8_ERR_BUFFER_TOO_SMALL);
    GEMM((d.weights.bias = (fp8_operand){.buffer = fx.w, .dtype = FP8_F32}), FP8_ERR_BUFFER_TOO_SMALL);
    GEMM(d.x.dtype = FP8_E2M1, FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM(d.y.dtype = FP8_E4M3FN, FP8_ERR_UNSUPPORTED_DTYPE);
    GEMM(d.activation = (fp8_moe_activation)99, FP8_ERR_INVALID_ARGUMENT);
    GEMM((d.x_scales = (fp8_scales){.layout = {.kind = FP8_SCALE_ROW}, .buffer = fx.w}), FP8_ERR_SCALE_LAYOUT);
    GEMM((d.x.dtype = FP8_E4M3FN, d.x_scales = (fp8_scales){.layout = {.kind = FP8_SCALE_BLOCK, .block_rows = 2, .block_cols = 32},
                                                             .buffer = fx.o}),
         FP8_ERR_SCALE_LAYOUT);                                        /* activation scale blocks span rows */
    GEMM(d.x_gathered = 0, FP8_ERR_BUFFER_TOO_SMALL);                  /* x has M rows, not R */
    GEMM(d.y = d.x, FP8_ERR_BUFFER_TOO_SMALL);
    GEMM((d.y.buffer = fx.plan, d.y.offset = 0), FP8_ERR_INVALID_ARGUMENT); /* output over the plan */
    GEMM((d.y.buffer = fx.o), FP8_OK);
    GEMM((d.plan.buffer = NULL), FP8_ERR_SHAPE);                       /* dense has one expert */
    GEMM((d.plan.buffer = NULL, d.plan.experts = 1, d.y.buffer = fx.o), FP8_OK);
    GEMM((d.plan.m = 0, d.x.buffer = NULL, d.y.buffer = NULL), FP8_OK);

    /* Output over an input: x and y in one buffer. */
    fp8_buffer *big = NULL;
    fp8_buffer_create(dev, (size_t)fx.rows * I * 4 + M * H * 4, &big);
    GEMM((d.x.buffer = big, d.y.buffer = big, d.y.offset = 4), FP8_ERR_INVALID_ARGUMENT);
    GEMM((d.x.buffer = big, d.y.buffer = big, d.y.offset = M * H * 4), FP8_OK);
    fp8_buffer_free(big);

    /* Experts over several buffers (w_buffers): two buffers of two experts; the second has room for Y after
     * its experts. */
    enum { EB = 2 * I * H };
    const size_t ybytes = (size_t)fx.rows * I * 4;
    uint8_t *wbytes = malloc(E * EB);
    fp8_buffer_read(fx.gu.wbuf, 0, wbytes, E * EB);
    fp8_buffer *p0 = NULL, *p1 = NULL, *p_short = NULL;
    fp8_buffer_create(dev, 2 * EB, &p0);
    fp8_buffer_create(dev, 2 * EB + ybytes, &p1);
    fp8_buffer_create(dev, EB, &p_short);
    fp8_buffer_write(p0, 0, wbytes, 2 * EB);
    fp8_buffer_write(p1, 0, wbytes + 2 * EB, 2 * EB);
    fp8_buffer_write(p_short, 0, wbytes + 2 * EB, EB);
    fp8_buffer *const two[2] = {p0, p1}, *const hole[2] = {p0, NULL}, *const shortlist[2] = {p0, p_short};
#define SPREAD(list) \
    (d.weights.w.buffer = NULL, d.weights.experts_per_buffer = 2, d.weights.w_buffer_count = 2, d.weights.w_buffers = (list))
    GEMM(SPREAD(two), FP8_OK);
    GEMM((SPREAD(two), d.weights.experts_per_buffer = 1), FP8_ERR_SHAPE); /* four buffers due, two listed */
    GEMM((SPREAD(two), d.weights.w_buffer_count = 3), FP8_ERR_SHAPE);
    GEMM((SPREAD(two), d.weights.experts_per_buffer = 3), FP8_ERR_BUFFER_TOO_SMALL); /* 3 experts in 2 */
    GEMM((SPREAD(two), d.weights.experts_per_buffer = 4, d.weights.w_buffer_count = 1), FP8_ERR_BUFFER_TOO_SMALL);
    GEMM((SPREAD(two), d.weights.experts_per_buffer = 9, d.weights.w_buffer_count = 1), FP8_ERR_BUFFER_TOO_SMALL);
    GEMM((SPREAD(two), d.weights.w.buffer = p0), FP8_ERR_INVALID_ARGUMENT); /* two places for expert 0 */
    GEMM(SPREAD(hole), FP8_ERR_NULL_POINTER);
    GEMM(SPREAD(shortlist), FP8_ERR_BUFFER_TOO_SMALL);
    GEMM((SPREAD(two), d.weights.w_buffers = NULL), FP8_ERR_NULL_POINTER);
    GEMM((d.weights.w_buffers = two), FP8_ERR_INVALID_ARGUMENT);        /* a list without experts_per_buffer */
    GEMM((d.weights.w_buffer_count = 2), FP8_ERR_INVALID_ARGUMENT);
    GEMM((SPREAD(two), d.weights.w.offset = 16), FP8_ERR_BUFFER_TOO_SMALL);
    GEMM((SPREAD(two), d.y.buffer = p1, d.y.offset = 0), FP8_ERR_INVALID_ARGUMENT); /* Y over expert 2 */
    GEMM((SPREAD(two), d.y.buffer = p1, d.y.offset = 2 * EB), FP8_OK);
#undef SPREAD
    fp8_buffer_free(p0);
    fp8_buffer_free(p1);
    fp8_buffer_free(p_short);
    free(wbytes);

    /* Plans that were never grouped, or are corrupt, are refused (the CPU checks every index; a device
     * kernel bounds-checks instead, so this part is the CPU's contract only). */
    if (!ref_is_cpu(dev)) return;
    uint32_t *w = malloc(fx.plan_bytes), *bad = malloc(fx.plan_bytes);
    fp8_buffer_read(fx.plan, 0, w, fx.plan_bytes);
    fp8_buffer *pb = NULL;
    fp8_buffer_create(dev, fx.plan_bytes, &pb);
    GEMM(d.plan.buffer = pb, FP8_ERR_INVALID_ARGUMENT);                /* zeros: no magic */
    const size_t row_token = 16 + 3 * E + 1;
    memcpy(bad, w, fx.plan_bytes);
    bad[row_token] = M + 5;
    fp8_buffer_write(pb, 0, bad, fx.plan_bytes);
    GEMM(d.plan.buffer = pb, FP8_ERR_INVALID_ARGUMENT);
    memcpy(bad, w, fx.plan_bytes);
    bad[16 + E + 1] = 1000; /* offsets[1] beyond offsets[2] */
    fp8_buffer_write(pb, 0, bad, fx.plan_bytes);
    GEMM(d.plan.buffer = pb, FP8_ERR_INVALID_ARGUMENT);
    memcpy(bad, w, fx.plan_bytes);
    bad[16] = 100; /* count bigger than its group */
    fp8_buffer_write(pb, 0, bad, fx.plan_bytes);
    GEMM(d.plan.buffer = pb, FP8_ERR_INVALID_ARGUMENT);
    memcpy(bad, w, fx.plan_bytes);
    bad[5] = 1; /* grouped with another row_align */
    fp8_buffer_write(pb, 0, bad, fx.plan_bytes);
    GEMM(d.plan.buffer = pb, FP8_ERR_INVALID_ARGUMENT);
    /* Combine follows slot_row: a corrupt one is refused. */
    memcpy(bad, w, fx.plan_bytes);
    bad[16 + 3 * E + 1 + 2 * fx.rows] = 1000;
    fp8_buffer_write(pb, 0, bad, fx.plan_bytes);
    fp8_moe_combine_desc c = fx.comb;
    c.plan.buffer = pb;
    CHECK_STATUS(fp8_moe_combine(dev, &c), FP8_ERR_INVALID_ARGUMENT);
    free(w);
    free(bad);
    fp8_buffer_free(pb);
#undef GEMM
}

static void test_combine_bad(void)
{
    fp8_moe_combine_desc d;
#define COMBINE(mutation, expected) do { d = fx.comb; mutation; CHECK_STATUS(fp8_moe_combine(dev, &d), expected); } while (0)
    COMBINE((void)0, FP8_OK);
    COMBINE(d.hidden = 0, FP8_ERR_SHAPE);
    COMBINE(d.weights.dtype = FP8_I32, FP8_ERR_UNSUPPORTED_DTYPE);
    COMBINE(d.rows.dtype = FP8_E4M3FN, FP8_ERR_UNSUPPORTED_DTYPE);
    COMBINE(d.y.buffer = d.rows.buffer, FP8_ERR_INVALID_ARGUMENT);
    COMBINE(d.shared = d.y, FP8_ERR_INVALID_ARGUMENT);
    COMBINE(d.hidden = 2 * H, FP8_ERR_BUFFER_TOO_SMALL);
    COMBINE(d.plan.buffer = NULL, FP8_ERR_NULL_POINTER);
    COMBINE((d.plan.m = 0, d.y.buffer = NULL), FP8_OK);
#undef COMBINE
}

static void test_layer_bad(void)
{
    fp8_moe_layer_desc d;
#define LAYER(mutation, expected) do { d = fx.layer; mutation; CHECK_STATUS(fp8_moe_layer(dev, &d), expected); } while (0)
    LAYER((void)0, FP8_OK);
    LAYER(d.top_k = E + 1, FP8_ERR_SHAPE);
    LAYER(d.top_k = 0, FP8_ERR_SHAPE);
    LAYER(d.intermediate = 0, FP8_ERR_SHAPE);
    LAYER(d.activation = FP8_MOE_ACT_NONE, FP8_ERR_INVALID_ARGUMENT);
    LAYER(d.scratch = NULL, FP8_ERR_NULL_POINTER);
    LAYER(d.scratch_offset = 100, FP8_ERR_STRIDE);
    LAYER(d.scratch_offset = 256, FP8_ERR_BUFFER_TOO_SMALL);
    LAYER(d.row_align = 8, FP8_ERR_BUFFER_TOO_SMALL);                  /* a larger plan than the scratch holds */
    LAYER((d.logits.buffer = NULL), FP8_ERR_NULL_POINTER);             /* neither logits nor ids */
    LAYER(d.y = d.x, FP8_ERR_INVALID_ARGUMENT);
    LAYER(d.act_quant.dtype = FP8_E2M1, FP8_ERR_UNSUPPORTED_DTYPE);
    LAYER(d.act_quant.dtype = FP8_F16, FP8_ERR_UNSUPPORTED_DTYPE);
    LAYER(d.intermediate_dtype = FP8_E4M3FN, FP8_ERR_UNSUPPORTED_DTYPE);
    LAYER(d.intermediate_dtype = FP8_BF16, FP8_OK);                    /* smaller than the f32 scratch */
    LAYER(d.gate_up = fx.dn.w, FP8_ERR_BUFFER_TOO_SMALL);              /* [E, H, I] given where [E, 2I, H] is due */
    LAYER((d.intermediate = 2 * I), FP8_ERR_BUFFER_TOO_SMALL);         /* weights made for I */
    LAYER(d.activation = FP8_MOE_ACT_SILU, FP8_OK);                    /* [E, 2I, H] holds an [E, I, H] */
    LAYER((d.shared_intermediate = 8 * I, d.shared_gate_up = fx.gu.w, d.shared_down = fx.dn.w), FP8_ERR_BUFFER_TOO_SMALL);
    /* Scratch over an operand: x inside the scratch buffer. */
    fp8_buffer *big = NULL;
    fp8_buffer_create(dev, fx.scratch_bytes + 4096, &big);
    LAYER((d.scratch = big, d.x.buffer = big, d.x.offset = 256), FP8_ERR_INVALID_ARGUMENT);
    LAYER((d.scratch = big, d.scratch_offset = 4096 - 0, d.x.buffer = big, d.x.offset = 0), FP8_OK);
    fp8_buffer_free(big);

    /* Gate/up experts over two buffers; y and scratch must stay off both. */
    enum { EB = 2 * I * H };
    uint8_t *wbytes = malloc(E * EB);
    fp8_buffer_read(fx.gu.wbuf, 0, wbytes, E * EB);
    fp8_buffer *p0 = NULL, *p1 = NULL;
    fp8_buffer_create(dev, 2 * EB, &p0);
    fp8_buffer_create(dev, 2 * EB + fx.scratch_bytes, &p1);
    fp8_buffer_write(p0, 0, wbytes, 2 * EB);
    fp8_buffer_write(p1, 0, wbytes + 2 * EB, 2 * EB);
    fp8_buffer *const two[2] = {p0, p1};
#define SPREAD_GU (d.gate_up.w.buffer = NULL, d.gate_up.experts_per_buffer = 2, d.gate_up.w_buffer_count = 2, d.gate_up.w_buffers = two)
    LAYER(SPREAD_GU, FP8_OK);
    LAYER((SPREAD_GU, d.y.buffer = p1, d.y.offset = EB), FP8_ERR_INVALID_ARGUMENT);
    LAYER((SPREAD_GU, d.y.buffer = p1, d.y.offset = 2 * EB), FP8_OK);
    LAYER((SPREAD_GU, d.scratch = p1, d.scratch_offset = 0), FP8_ERR_INVALID_ARGUMENT);
    LAYER((SPREAD_GU, d.scratch = p1, d.scratch_offset = 2 * EB), FP8_OK);
#undef SPREAD_GU
    fp8_buffer_free(p0);
    fp8_buffer_free(p1);
    free(wbytes);

    /* M == 0: FP8_OK, no scratch needed, y untouched. */
    float before[M * H], after[M * H];
    fp8_buffer_read(fx.y, 0, before, sizeof before);
    d = fx.layer;
    d.m = 0;
    size_t need = 1;
    CHECK_STATUS(fp8_moe_layer_scratch_size(dev, &d, &need), FP8_OK);
    CHECK(need == 0, "M == 0 needs %zu bytes of scratch", need);
    d.scratch = NULL;
    d.x.buffer = NULL;
    CHECK_STATUS(fp8_moe_layer(dev, &d), FP8_OK);
    d.top_k = E + 1; /* the sizes are still checked */
    CHECK_STATUS(fp8_moe_layer(dev, &d), FP8_ERR_SHAPE);
    fp8_buffer_read(fx.y, 0, after, sizeof after);
    CHECK(memcmp(before, after, sizeof after) == 0, "M == 0 wrote y");

    /* NaN logits through the layer; NaN activations under W8A8. */
    float l[M * E], x[M * H];
    fp8_buffer_read(fx.logits, 0, l, sizeof l);
    l[E + 1] = NAN;
    fp8_buffer *lb = ref_upload(dev, FP8_F32, l, M * E);
    d = fx.layer;
    d.logits.buffer = lb;
    CHECK_STATUS(ref_data_status(dev, fp8_moe_layer(dev, &d)), FP8_ERR_NOT_FINITE);
    fp8_buffer_free(lb);
    fp8_buffer_read(fx.x, 0, x, sizeof x);
    x[H + 3] = NAN;
    fp8_buffer *xb = ref_upload(dev, FP8_F32, x, M * H);
    d = fx.layer;
    d.act_quant.dtype = FP8_E4M3FN;
    size_t qneed;
    CHECK_STATUS(fp8_moe_layer_scratch_size(dev, &d, &qneed), FP8_OK);
    fp8_buffer *qs = NULL;
    fp8_buffer_create(dev, qneed, &qs);
    d.scratch = qs;
    CHECK_STATUS(fp8_moe_layer(dev, &d), FP8_OK);
    d.x.buffer = xb;
    CHECK_STATUS(ref_data_status(dev, fp8_moe_layer(dev, &d)), FP8_ERR_NOT_FINITE);
    fp8_buffer_free(qs);
    fp8_buffer_free(xb);
    CHECK_STATUS(fp8_moe_layer(dev, NULL), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_moe_layer_scratch_size(dev, NULL, &need), FP8_ERR_NULL_POINTER);
#undef LAYER
}

/* Random damage to a good plan: the CPU must refuse it or run in bounds (the ASan build checks the
 * latter), and random ids must group or give FP8_ERR_EXPERT_ID. */
static void test_fuzz(void)
{
    if (!ref_is_cpu(dev)) return;
    test_rng rng = {0xf022};
    uint32_t *good = malloc(fx.plan_bytes), *w = malloc(fx.plan_bytes);
    fp8_buffer_read(fx.plan, 0, good, fx.plan_bytes);
    fp8_buffer *pb = NULL;
    fp8_buffer_create(dev, fx.plan_bytes, &pb);
    const size_t used = 16 + 3 * E + 1 + 2 * fx.rows + M * K + fx.rows / 2; /* header to tile_expert */
    int refused = 0, ran = 0;
    for (int i = 0; i < 400; i++) {
        memcpy(w, good, fx.plan_bytes);
        const int hits = 1 + (int)(test_rng_next(&rng) % 3);
        for (int j = 0; j < hits; j++) {
            const size_t at = 2 + test_rng_next(&rng) % (used - 2); /* keep the magic and status */
            const uint64_t r = test_rng_next(&rng);
            w[at] = (r & 3) == 0 ? NONE : (r & 3) == 1 ? (uint32_t)(r >> 8) : (uint32_t)((r >> 8) % (fx.rows + 3));
        }
        fp8_buffer_write(pb, 0, w, fx.plan_bytes);
        fp8_moe_gemm_desc g = fx.g1;
        g.plan.buffer = pb;
        fp8_status st = fp8_moe_grouped_gemm(dev, &g);
        CHECK(st == FP8_OK || st == FP8_ERR_INVALID_ARGUMENT, "fuzzed plan: gemm gave %s", fp8_status_name(st));
        fp8_moe_combine_desc c = fx.comb;
        c.plan.buffer = pb;
        fp8_status st2 = fp8_moe_combine(dev, &c);
        CHECK(st2 == FP8_OK || st2 == FP8_ERR_INVALID_ARGUMENT, "fuzzed plan: combine gave %s", fp8_status_name(st2));
        refused += st != FP8_OK;
        ran += st == FP8_OK;
    }
    CHECK(refused > 0 && ran > 0, "fuzz exercised one outcome only (%d refused, %d ran)", refused, ran);
    fp8_buffer *ib = NULL;
    fp8_buffer_create(dev, M * K * 4, &ib);
    for (int i = 0; i < 200; i++) {
        int32_t ids[M * K];
        int bad = 0;
        for (int j = 0; j < M * K; j++) {
            const uint64_t r = test_rng_next(&rng);
            ids[j] = (r & 7) == 0 ? (int32_t)(r >> 32) : (int32_t)((r >> 8) % E);
            bad |= ids[j] < 0 || ids[j] >= E;
        }
        fp8_buffer_write(ib, 0, ids, sizeof ids);
        fp8_moe_group_desc gd = {.ids = {.buffer = ib, .dtype = FP8_I32}, .plan = {.buffer = pb, .m = M, .top_k = K,
                                                                                  .experts = E, .row_align = 2}};
        CHECK_STATUS(fp8_moe_group(dev, &gd), bad ? FP8_ERR_EXPERT_ID : FP8_OK);
        fp8_moe_combine_desc c = fx.comb;
        c.plan.buffer = pb;
        CHECK_STATUS(fp8_moe_combine(dev, &c), FP8_OK); /* a plan from bad ids is still consistent */
    }
    fp8_buffer_free(ib);
    fp8_buffer_free(pb);
    free(good);
    free(w);
}

int main(void)
{
    fp8_context_options opt = {.log = NULL}; /* the errors below are expected: keep the log quiet */
    CHECK_STATUS(fp8_context_create(&opt, &ctx), FP8_OK);
    dev = ref_open_device(ctx);
    fixture_make();
    test_route_bad();
    test_group_bad();
    test_gemm_bad();
    test_combine_bad();
    test_layer_bad();
    test_fuzz();
    fixture_free();
    ref_close_device(dev);
    fp8_context_destroy(ctx);
    return test_finish("moe_bad");
}
