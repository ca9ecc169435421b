/* fp8_moe_route against the sorting reference: softmax and sigmoid, bias, group-limited selection
 * (DeepSeek-V2 and -V3 styles), renormalisation, scaling, ties, E up to 512 and k up to 16. */
#include "test_moe_ref.h"

#include <math.h>
#include <string.h>

static fp8_context *ctx;
static fp8_device *dev;

typedef struct route_out {
    int32_t *ids;
    float *w;
    fp8_status st;
} route_out;

/* Run fp8_moe_route on host logits; the router's bias (if any) is uploaded from rr->bias. */
static route_out run_route(uint32_t m, uint32_t e, uint32_t k, fp8_dtype ldt, const float *logits, const ref_router *rr,
                           fp8_moe_group_score gscore)
{
    route_out o = {calloc((size_t)m * k, 4), calloc((size_t)m * k, 4), FP8_OK};
    fp8_buffer *lb = ref_upload(dev, ldt, logits, (size_t)m * e);
    fp8_buffer *bb = rr->bias ? ref_upload(dev, FP8_F32, rr->bias, e) : NULL;
    fp8_buffer *ib = NULL, *wb = NULL;
    fp8_buffer_create(dev, (size_t)m * k * 4, &ib);
    fp8_buffer_create(dev, (size_t)m * k * 4, &wb);
    fp8_moe_route_desc d = {.m = m, .experts = e, .top_k = k};
    d.logits = (fp8_operand){.buffer = lb, .dtype = ldt};
    d.router = (fp8_moe_router){.scoring = rr->scoring, .n_group = rr->n_group, .topk_group = rr->topk_group,
                                .group_score = gscore, .renormalize = (uint32_t)rr->renormalize,
                                .routed_scaling_factor = (float)rr->scale};
    if (bb) d.router.bias = (fp8_operand){.buffer = bb, .dtype = FP8_F32};
    d.ids = (fp8_operand){.buffer = ib, .dtype = FP8_I32};
    d.weights = (fp8_operand){.buffer = wb, .dtype = FP8_F32};
    o.st = fp8_moe_route(dev, &d);
    fp8_buffer_read(ib, 0, o.ids, (size_t)m * k * 4);
    fp8_buffer_read(wb, 0, o.w, (size_t)m * k * 4);
    fp8_buffer_free(lb); fp8_buffer_free(bb); fp8_buffer_free(ib); fp8_buffer_free(wb);
    return o;
}

/* Compare with the reference: ids exactly, weights to f32 rounding. Returns how many tokens matched. */
static uint32_t compare(const char *name, uint32_t m, uint32_t e, uint32_t k, const float *logits, const ref_router *rr,
                        const route_out *o)
{
    int32_t rid[64];
    double rw[64];
    uint32_t good = 0;
    for (uint32_t t = 0; t < m; t++) {
        CHECK(ref_route(logits + (size_t)t * e, e, k, rr, rid, rw), "%s: reference failed", name);
        int same = 1;
        for (uint32_t j = 0; j < k; j++) {
            if (o->ids[t * k + j] != rid[j]) same = 0;
            if (fabs(o->w[t * k + j] - rw[j]) > 1e-6 * fabs(rw[j]) + 1e-30) same = 0;
        }
        if (!same)
            fprintf(stderr, "%s: token %u: got id %d w %.9g, want id %d w %.9g (first slot)\n", name, t, o->ids[t * k],
                    o->w[t * k], rid[0], rw[0]);
        good += (uint32_t)same;
    }
    CHECK(good == m, "%s: %u of %u tokens match the reference", name, good, m);
    return good;
}

static float *random_logits(test_rng *rng, size_t n, float amp)
{
    float *l = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) l[i] = amp * test_rng_normal(rng);
    return l;
}

/* Softmax top-k with and without renormalisation, f32/f16/bf16 logits. */
static void test_softmax(void)
{
    test_rng rng = {0x1234};
    const uint32_t m = 20, e = 64, k = 6;
    float *l = random_logits(&rng, (size_t)m * e, 2.0f);
    const fp8_dtype dts[] = {FP8_F32, FP8_F16, FP8_BF16};
    for (int i = 0; i < 3; i++) {
        /* The reference sees exactly the logits the device sees. */
        float *lr = malloc((size_t)m * e * sizeof(float));
        for (size_t j = 0; j < (size_t)m * e; j++) lr[j] = fp8_decode_value(dts[i], fp8_encode_value(dts[i], l[j], FP8_OVERFLOW_CAST));
        for (int renorm = 0; renorm < 2; renorm++) {
            ref_router rr = {.scoring = FP8_MOE_SCORE_SOFTMAX, .renormalize = renorm, .scale = renorm ? 1.0 : 0.5};
            route_out o = run_route(m, e, k, dts[i], lr, &rr, 0);
            CHECK_STATUS(o.st, FP8_OK);
            compare(renorm ? "softmax renorm" : "softmax scaled", m, e, k, lr, &rr, &o);
            if (renorm) {
                for (uint32_t t = 0; t < m; t++) {
                    double s = 0;
                    for (uint32_t j = 0; j < k; j++) s += o.w[t * k + j];
                    CHECK(fabs(s - 1.0) < 1e-6, "renormalised weights of token %u sum to %.9g", t, s);
                    for (uint32_t j = 1; j < k; j++)
                        CHECK(o.w[t * k + j] <= o.w[t * k + j - 1], "token %u: weights not in descending order", t);
                }
            }
            free(o.ids); free(o.w);
        }
        free(lr);
    }
    free(l);
}

/* DeepSeek-V3: E=256 in 8 groups, top-4 groups, sigmoid + correction bias, k=8, renormalised, x2.5. */
static void test_deepseek_v3(void)
{
    test_rng rng = {0xdeed};
    const uint32_t m = 16, e = 256, k = 8;
    float *l = random_logits(&rng, (size_t)m * e, 1.5f);
    float *bias = malloc(e * sizeof(float));
    for (uint32_t i = 0; i < e; i++) bias[i] = 0.3f * test_rng_normal(&rng);
    ref_router rr = {.scoring = FP8_MOE_SCORE_SIGMOID, .bias = bias, .n_group = 8, .topk_group = 4, .group_top2 = 1,
                     .renormalize = 1, .scale = 2.5};
    route_out o = run_route(m, e, k, FP8_F32, l, &rr, FP8_MOE_GROUP_SCORE_AUTO);
    CHECK_STATUS(o.st, FP8_OK);
    compare("deepseek-v3", m, e, k, l, &rr, &o);
    for (uint32_t t = 0; t < m; t++) {
        uint32_t groups = 0;
        for (uint32_t j = 0; j < k; j++) groups |= 1u << (o.ids[t * k + j] / 32);
        CHECK(__builtin_popcount(groups) <= 4, "token %u uses %d groups", t, __builtin_popcount(groups));
        double s = 0;
        for (uint32_t j = 0; j < k; j++) s += o.w[t * k + j];
        CHECK(fabs(s - 2.5) < 1e-5, "token %u: weights sum to %.9g, want 2.5", t, s);
    }
    /* The bias must matter for selection and must not leak into the weights. */
    ref_router nob = rr;
    nob.bias = NULL;
    route_out o2 = run_route(m, e, k, FP8_F32, l, &nob, FP8_MOE_GROUP_SCORE_AUTO);
    CHECK(memcmp(o.ids, o2.ids, (size_t)m * k * 4) != 0, "the correction bias changed no selection");
    compare("deepseek-v3 no bias", m, e, k, l, &nob, &o2);
    /* Explicit MAX group score differs from AUTO (TOP2_SUM) somewhere. */
    ref_router mx = rr;
    mx.group_top2 = 0;
    route_out o3 = run_route(m, e, k, FP8_F32, l, &mx, FP8_MOE_GROUP_SCORE_MAX);
    compare("sigmoid group max", m, e, k, l, &mx, &o3);
    route_out o4 = run_route(m, e, k, FP8_F32, l, &rr, FP8_MOE_GROUP_SCORE_TOP2_SUM);
    CHECK(memcmp(o.ids, o4.ids, (size_t)m * k * 4) == 0 && memcmp(o.w, o4.w, (size_t)m * k * 4) == 0,
          "AUTO and TOP2_SUM differ for sigmoid");
    free(o.ids); free(o.w); free(o2.ids); free(o2.w); free(o3.ids); free(o3.w); free(o4.ids); free(o4.w);
    /* A strongly negative bias: masked experts must still lose (excluded, not keyed 0). */
    for (uint32_t i = 0; i < e; i++) bias[i] = -5.0f - (float)(i % 7);
    route_out o5 = run_route(m, e, k, FP8_F32, l, &rr, 0);
    CHECK_STATUS(o5.st, FP8_OK);
    compare("negative bias", m, e, k, l, &rr, &o5);
    free(o5.ids); free(o5.w);
    free(l);
    free(bias);
}

/* DeepSeek-V2: softmax, group score = max, no renormalisation. */
static void test_deepseek_v2(void)
{
    test_rng rng = {0x5eed};
    const uint32_t m = 12, e = 64, k = 6;
    float *l = random_logits(&rng, (size_t)m * e, 2.0f);
    ref_router rr = {.scoring = FP8_MOE_SCORE_SOFTMAX, .n_group = 8, .topk_group = 3, .group_top2 = 0, .scale = 16.0};
    route_out o = run_route(m, e, k, FP8_F32, l, &rr, 0);
    CHECK_STATUS(o.st, FP8_OK);
    compare("deepseek-v2", m, e, k, l, &rr, &o);
    free(o.ids); free(o.w); free(l);
}

static void test_ties(void)
{
    /* All equal: the lowest ids, equal weights. */
    const uint32_t e = 10, k = 4;
    float l[2 * 10] = {0};
    ref_router rr = {.scoring = FP8_MOE_SCORE_SOFTMAX};
    route_out o = run_route(1, e, k, FP8_F32, l, &rr, 0);
    CHECK_STATUS(o.st, FP8_OK);
    for (uint32_t j = 0; j < k; j++) {
        CHECK(o.ids[j] == (int32_t)j, "all-equal logits: slot %u got expert %d", j, o.ids[j]);
        CHECK(fabsf(o.w[j] - 0.1f) < 1e-7f, "all-equal logits: weight %g", o.w[j]);
    }
    free(o.ids); free(o.w);
    /* Partial ties: 3 appears at 1, 2 and 4; 2 at 3 and 8. */
    const float l2[10] = {1, 3, 3, 2, 3, 0, -1, 0, 2, 1};
    o = run_route(1, e, k, FP8_F32, l2, &rr, 0);
    const int32_t want[4] = {1, 2, 4, 3};
    for (uint32_t j = 0; j < k; j++) CHECK(o.ids[j] == want[j], "ties: slot %u got %d, want %d", j, o.ids[j], want[j]);
    free(o.ids); free(o.w);
    /* Tied groups: groups 1 and 2 tie for best, groups 0 and 3 tie behind with the same experts in
     * swapped order; keeping 3 groups must keep group 0, so expert 0 (not 7) comes third. */
    const float l3[8] = {2, 0, 5, 1, 1, 5, 0, 2};
    ref_router rg = {.scoring = FP8_MOE_SCORE_SIGMOID, .n_group = 4, .topk_group = 3, .group_top2 = 1};
    o = run_route(1, 8, 3, FP8_F32, l3, &rg, 0);
    compare("group ties", 1, 8, 3, l3, &rg, &o);
    CHECK(o.ids[0] == 2 && o.ids[1] == 5 && o.ids[2] == 0, "group ties: got %d %d %d", o.ids[0], o.ids[1], o.ids[2]);
    free(o.ids); free(o.w);
    /* Saturated sigmoid scores (both 1.0 in double) tie on the key: lowest id. */
    const float l4[4] = {40, 50, -3, 0};
    ref_router rs = {.scoring = FP8_MOE_SCORE_SIGMOID};
    o = run_route(1, 4, 1, FP8_F32, l4, &rs, 0);
    CHECK(o.ids[0] == 0, "saturated sigmoid tie: got %d", o.ids[0]);
    free(o.ids); free(o.w);
}

/* Large E and k, f16 logits; k == E. */
static void test_large(void)
{
    test_rng rng = {0xb16};
    const uint32_t m = 5, e = 512, k = 16;
    float *l = random_logits(&rng, (size_t)m * e, 3.0f);
    for (size_t j = 0; j < (size_t)m * e; j++) l[j] = fp8_decode_value(FP8_BF16, fp8_encode_value(FP8_BF16, l[j], FP8_OVERFLOW_CAST));
    ref_router rr = {.scoring = FP8_MOE_SCORE_SOFTMAX, .renormalize = 1};
    route_out o = run_route(m, e, k, FP8_BF16, l, &rr, 0);
    CHECK_STATUS(o.st, FP8_OK);
    compare("E=512 k=16 bf16", m, e, k, l, &rr, &o);
    free(o.ids); free(o.w);
    ref_router rg = {.scoring = FP8_MOE_SCORE_SIGMOID, .n_group = 16, .topk_group = 4, .group_top2 = 1, .renormalize = 1};
    o = run_route(m, e, k, FP8_BF16, l, &rg, 0);
    compare("E=512 k=16 grouped", m, e, k, l, &rg, &o);
    free(o.ids); free(o.w);
    /* k == E: every expert, in key order. */
    o = run_route(2, 8, 8, FP8_F32, l, &rr, 0);
    CHECK_STATUS(o.st, FP8_OK);
    compare("k == E", 2, 8, 8, l, &rr, &o);
    free(o.ids); free(o.w);
    free(l);
}

int main(void)
{
    fp8_context_options opt = {.log = test_log};
    CHECK_STATUS(fp8_context_create(&opt, &ctx), FP8_OK);
    dev = ref_open_device(ctx);
    test_softmax();
    test_deepseek_v3();
    test_deepseek_v2();
    test_ties();
    test_large();
    ref_close_device(dev);
    fp8_context_destroy(ctx);
    return test_finish("moe_route");
}
