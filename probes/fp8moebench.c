/* fp8moebench: the whole MoE layer (fp8_moe_layer) and its pieces timed on a device for real models' shapes
 * (Qwen3-30B-A3B, DeepSeek-V3, gpt-oss-20b) at M in {1, 8, 64, 512, 4096}, each model's layer checked first on
 * a few tokens against the CPU device. Reports per M: the layer's device time; the time to read the active
 * experts' weights once at the copy bandwidth measured in the same run; the pieces (route, group, grouped
 * GEMMs, combine) and the share of routing + grouping + combine; the grouped gate/up GEMM's throughput next to
 * one dense fp8_gemm of the same FLOPs. Built on the public API only.
 * Usage: fp8moebench [--quick] [--models qwen3,deepseek,gptoss] [--ms 1,8,64] [--device INDEX|BACKEND[:NAME]|NAME]
 *                    [--json FILE] [--no-check] [--experts-per-buffer P] [--float-activations] [--profile]
 *                    [--samples] [--verbose] [--vary NAME=value/value/...]
 * --experts-per-buffer spreads each projection's experts over buffers of P (they spread by themselves where one
 * buffer cannot hold them): to time, and check, the spread layout on a model that fits one buffer. */
#include <fp8.h>

#include "bench_device.h"
#include "bench_timing.h"
#include "bench_vary.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MS 8

#define DIE(...) do { fprintf(stderr, "fp8moebench: " __VA_ARGS__); fputc('\n', stderr); exit(2); } while (0)
#define TRY(expr) do { fp8_status st_ = (expr); if (st_ != FP8_OK) DIE("%s: %s", #expr, fp8_status_name(st_)); } while (0)

static int failures;

static bool profile;       /* --profile: the library's per-dispatch report (Vulkan) of one layer per M */
static bool profile_print; /* set around that one layer: the other reports are dropped */
static bool verbose;       /* --verbose: every INFO message (with FP8_VK_PIPELINE_STATS=1: pipelines' registers) */

static void on_log(void *user, fp8_log_level level, const char *message)
{
    (void)user;
    if (level >= FP8_LOG_WARN || (verbose && !strstr(message, "profile:"))) fprintf(stderr, "[libfp8] %s\n", message);
    else if (profile_print && strstr(message, "profile:")) printf("    %s\n", message);
}

/* xorshift64*: reproducible data. */
static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static float normal(void)
{
    const double u1 = ((rng() >> 11) + 1.0) / 9007199254740993.0, u2 = (rng() >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

typedef struct model {
    const char *name;
    uint32_t e_real, k, h, i, is;  /* experts of the model, top-k, hidden, intermediate, shared intermediate */
    fp8_dtype wdt;
    fp8_scale_layout wl;
    fp8_moe_scoring scoring;
    uint32_t n_group, topk_group, bias;
    float scaling;
    fp8_moe_act_quant aq;
} model;

#define B128 {FP8_SCALE_BLOCK, FP8_F32, 128, 128}
#define MX32 {FP8_SCALE_BLOCK, FP8_E8M0, 1, 32}
static const model full_models[] = {
    {"qwen3", 128, 8, 2048, 768, 0, FP8_E4M3FN, B128, FP8_MOE_SCORE_SOFTMAX, 0, 0, 0, 0, {FP8_E4M3FN, 128}},
    {"deepseek", 256, 8, 7168, 2048, 2048, FP8_E4M3FN, B128, FP8_MOE_SCORE_SIGMOID, 8, 4, 1, 2.5f, {FP8_E4M3FN, 128}},
    {"gptoss", 32, 4, 2880, 2880, 0, FP8_E2M1, MX32, FP8_MOE_SCORE_SOFTMAX, 0, 0, 0, 0, {FP8_DTYPE_INVALID, 0}},
};
/* --quick: the same structure at sizes lavapipe runs in seconds. */
static const model quick_models[] = {
    {"qwen3", 16, 4, 256, 96, 0, FP8_E4M3FN, B128, FP8_MOE_SCORE_SOFTMAX, 0, 0, 0, 0, {FP8_E4M3FN, 128}},
    {"deepseek", 32, 8, 256, 128, 128, FP8_E4M3FN, B128, FP8_MOE_SCORE_SIGMOID, 8, 4, 1, 2.5f, {FP8_E4M3FN, 128}},
    {"gptoss", 8, 4, 192, 192, 0, FP8_E2M1, MX32, FP8_MOE_SCORE_SOFTMAX, 0, 0, 0, 0, {FP8_DTYPE_INVALID, 0}},
};
static const char *const model_titles[] = {"Qwen3-30B-A3B", "DeepSeek-V3", "gpt-oss-20b"};

typedef struct options {
    bool quick, check;
    const char *models, *device, *json;
    uint32_t ms[MAX_MS], m_count;
    uint32_t experts_per_buffer;    /* 0: as one buffer allows */
    bench_vary vary;                /* --vary: settings of a library knob, each M timed under each */
} options;

static bool listed(const char *list, const char *name)
{
    if (!list) return true;
    const size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return true;
        p += len + (end != NULL);
    }
    return false;
}

/* ------------------------------------------------------------------------------------------------
 * Host data.
 * ---------------------------------------------------------------------------------------------- */
/* Random codes of moderate magnitude (FP8: exponent field 2..9 of E4M3, never NaN; E2M1: any nibble). */
static void fill_codes(fp8_dtype dt, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = rng();
        for (size_t j = i; j < n && j < i + 8; j++, r >>= 8) {
            const uint8_t b = (uint8_t)r;
            p[j] = dt == FP8_E2M1 ? b : (uint8_t)((b & 0x80) | (0x10 + (b & 0x7F) % 0x40));
        }
    }
}

/* Scales that make rows of K products O(1): F32 around 1/(4 sqrt K), or E8M0 powers of two near it. */
static void fill_scales(const fp8_scale_layout *l, uint8_t *p, size_t count, uint32_t k)
{
    const float base = 0.25f / sqrtf((float)k);
    for (size_t i = 0; i < count; i++) {
        const float s = base * (0.75f + 0.5f * (float)(rng() >> 40) / 16777216.0f);
        if (l->dtype == FP8_E8M0) p[i] = (uint8_t)(127 + (int)floorf(log2f(s * 4.0f)) + (int)(rng() % 2));
        else memcpy(p + 4 * i, &s, 4);
    }
}

static void to_bf16(const float *v, uint16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &v[i], 4);
        out[i] = (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
    }
}

static float from_bf16(uint16_t h)
{
    const uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* One projection's experts on the host: codes and scales, packed. */
typedef struct host_w {
    uint8_t *w, *s;
    size_t wbytes, sbytes, w_one, s_one;
} host_w;

static host_w host_weights(const model *md, uint32_t e, uint32_t n, uint32_t k)
{
    host_w h = {0};
    size_t sc;
    TRY(fp8_dtype_storage_size(md->wdt, (size_t)n * k, &h.w_one));
    TRY(fp8_scale_count(&md->wl, n, k, &sc));
    h.s_one = sc * (md->wl.dtype == FP8_F32 ? 4 : 1);
    h.wbytes = h.w_one * e;
    h.sbytes = h.s_one * e;
    h.w = malloc(h.wbytes);
    h.s = malloc(h.sbytes);
    if (!h.w || !h.s) DIE("out of host memory for %zu bytes of weights", h.wbytes);
    fill_codes(md->wdt, h.w, h.wbytes);
    fill_scales(&md->wl, h.s, sc * e, k);
    return h;
}

static fp8_buffer *upload(fp8_device *dev, const void *p, size_t bytes)
{
    fp8_buffer *b = NULL;
    fp8_status st = fp8_buffer_create(dev, bytes ? bytes : 4, &b);
    if (st != FP8_OK) return NULL;
    if (bytes) TRY(fp8_buffer_write(b, 0, p, bytes));
    return b;
}

/* One projection's experts on a device: in one buffer, or spread over buffers of `per` experts where one
 * buffer cannot hold them all (fp8_moe_weights.w_buffers). */
#define MAX_PARTS 16
typedef struct dev_experts {
    fp8_buffer *parts[MAX_PARTS];
    uint32_t count, per;
} dev_experts;

static bool upload_experts(fp8_device *dev, const host_w *h, uint32_t e, uint64_t limit, uint32_t per, dev_experts *out)
{
    out->per = h->w_one && h->wbytes > limit ? (uint32_t)(limit / h->w_one) : e;
    if (per && per < out->per) out->per = per;
    if (!out->per) return false;
    out->count = e / out->per + (e % out->per != 0);
    if (out->count > MAX_PARTS) return false;
    for (uint32_t p = 0; p < out->count; p++) {
        const uint32_t first = p * out->per, n = e - first < out->per ? e - first : out->per;
        if (!(out->parts[p] = upload(dev, h->w + (size_t)first * h->w_one, (size_t)n * h->w_one))) return false;
    }
    return true;
}

static fp8_moe_weights experts_weights(const model *md, const dev_experts *x, fp8_buffer *scales)
{
    fp8_moe_weights w = {.w = {.dtype = md->wdt}, .scales = {.layout = md->wl, .buffer = scales}};
    if (x->count <= 1) {
        w.w.buffer = x->parts[0];
    } else {
        w.experts_per_buffer = x->per;
        w.w_buffer_count = x->count;
        w.w_buffers = x->parts;
    }
    return w;
}

/* A model's operands on one device. */
typedef struct dev_model {
    fp8_device *dev;
    dev_experts gu, dn;
    fp8_buffer *gus, *dns, *sgu, *sgus, *sdn, *sdns, *bias;
    fp8_moe_weights w_gu, w_dn, w_sgu, w_sdn;
} dev_model;

/* limit: the most bytes one buffer of experts may hold (one allocation, and one binding so that the dense
 * comparison GEMM can read expert 0's buffer). */
static bool dev_model_make(fp8_device *dev, const model *md, uint32_t e, const host_w *gu, const host_w *dn,
                           const host_w *sgu, const host_w *sdn, const float *bias, uint64_t limit, uint32_t per,
                           dev_model *out)
{
    dev_model d = {.dev = dev};
    bool ok = upload_experts(dev, gu, e, limit, per, &d.gu);
    d.gus = upload(dev, gu->s, gu->sbytes);
    ok = upload_experts(dev, dn, e, limit, per, &d.dn) && ok;
    d.dns = upload(dev, dn->s, dn->sbytes);
    ok = ok && d.gus && d.dns;
    if (md->is) {
        d.sgu = upload(dev, sgu->w, sgu->wbytes);
        d.sgus = upload(dev, sgu->s, sgu->sbytes);
        d.sdn = upload(dev, sdn->w, sdn->wbytes);
        d.sdns = upload(dev, sdn->s, sdn->sbytes);
        ok = ok && d.sgu && d.sgus && d.sdn && d.sdns;
    }
    if (md->bias) ok = ok && (d.bias = upload(dev, bias, (size_t)e * 4));

    d.w_sgu = (fp8_moe_weights){.w = {.buffer = d.sgu, .dtype = md->wdt}, .scales = {.layout = md->wl, .buffer = d.sgus}};
    d.w_sdn = (fp8_moe_weights){.w = {.buffer = d.sdn, .dtype = md->wdt}, .scales = {.layout = md->wl, .buffer = d.sdns}};
    *out = d;
    /* The spread's buffer lists live in *out (not in d): descriptors point at them. */
    out->w_gu = experts_weights(md, &out->gu, out->gus);
    out->w_dn = experts_weights(md, &out->dn, out->dns);
    return ok;
}

static void dev_model_free(dev_model *d)
{
    fp8_buffer *b[] = {d->gus, d->dns, d->sgu, d->sgus, d->sdn, d->sdns, d->bias};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) fp8_buffer_free(b[i]);
    for (uint32_t p = 0; p < MAX_PARTS; p++) {
        fp8_buffer_free(d->gu.parts[p]);
        fp8_buffer_free(d->dn.parts[p]);
    }
    memset(d, 0, sizeof *d);
}

static bool float_activations; /* --float-activations: layers keep bf16 activations (no W8A8) */

static fp8_moe_layer_desc layer_desc(const model *md, uint32_t e, const dev_model *d, uint32_t m, fp8_buffer *x,
                                     fp8_buffer *logits, fp8_buffer *y)
{
    fp8_moe_layer_desc l = {.m = m, .experts = e, .top_k = md->k, .hidden = md->h, .intermediate = md->i};
    l.x = (fp8_operand){.buffer = x, .dtype = FP8_BF16};
    l.y = (fp8_operand){.buffer = y, .dtype = FP8_BF16};
    l.logits = (fp8_operand){.buffer = logits, .dtype = FP8_F32};
    l.router = (fp8_moe_router){.scoring = md->scoring, .n_group = md->n_group, .topk_group = md->topk_group,
                                .renormalize = 1, .routed_scaling_factor = md->scaling};
    if (md->bias) l.router.bias = (fp8_operand){.buffer = d->bias, .dtype = FP8_F32};
    l.activation = FP8_MOE_ACT_SWIGLU;
    l.gate_up = d->w_gu;
    l.down = d->w_dn;
    if (md->is) {
        l.shared_intermediate = md->is;
        l.shared_gate_up = d->w_sgu;
        l.shared_down = d->w_sdn;
    }
    if (!float_activations) l.act_quant = md->aq;
    l.intermediate_dtype = FP8_BF16;
    return l;
}

/* ------------------------------------------------------------------------------------------------
 * Timing: bench_time (bench_timing.h), regions of 20 ms or more (200 calls at most), the median of five, after
 * 250 ms of warm-up and, once main has turned the clock guard on, a streaming copy before every measurement and
 * region: the H100 drops its SM clock to 345 MHz within a second of light load (the CPU check, data set-up).
 * --quick: no warm-up and one region (a smoke test); --samples prints every region (timings that move between runs).
 * ---------------------------------------------------------------------------------------------- */
static bench_timer timer = {.warmup_ns = 250e6, .region_ns = 20e6, .max_calls = 200, .samples = 5};
static double last_host_ms; /* time_ms's host time per enqueue (median region): what recording costs */

static double time_ms(bench_call_fn fn, const void *arg, const char *what)
{
    bench_times t;
    const fp8_status st = bench_time(&timer, fn, arg, 1, what, &t);
    if (st != FP8_OK) {
        fprintf(stderr, "fp8moebench: %s: %s\n", what, fp8_status_name(st));
        failures++;
        last_host_ms = NAN;
        return NAN;
    }
    last_host_ms = t.host_ns / 1e6;
    return t.device_ns / 1e6;
}

static fp8_status run_layer(fp8_device *dev, const void *a, uint32_t call) { return fp8_moe_layer(dev, a); }
static fp8_status run_route(fp8_device *dev, const void *a, uint32_t call) { return fp8_moe_route(dev, a); }
static fp8_status run_group(fp8_device *dev, const void *a, uint32_t call) { return fp8_moe_group(dev, a); }
static fp8_status run_gemm(fp8_device *dev, const void *a, uint32_t call) { return fp8_moe_grouped_gemm(dev, a); }
static fp8_status run_combine(fp8_device *dev, const void *a, uint32_t call) { return fp8_moe_combine(dev, a); }
static fp8_status run_dense(fp8_device *dev, const void *a, uint32_t call) { return fp8_gemm(dev, a); }
static fp8_status run_copy(fp8_device *dev, const void *a, uint32_t call)
{
    (void)dev;
    fp8_buffer *const *b = a;
    return fp8_buffer_copy(b[1], 0, b[0], 0, fp8_buffer_size(b[0]));
}
static fp8_status run_copy_kernel(fp8_device *dev, const void *a, uint32_t call)
{
    fp8_buffer *const *b = a;
    return bench_copy_kernel(dev, b[0], b[1]);
}

/* Bytes moved per second (read + write) on a large buffer: by the backend's streaming copy kernel where it
 * has one (on the H100's Vulkan driver vkCmdCopyBuffer reaches only about 850 of the 3000 GB/s a kernel
 * does), else by fp8_buffer_copy. *how names which. */
static double copy_bandwidth(fp8_device *dev, const fp8_device_info *info, const char **how)
{
    size_t bytes = (size_t)1 << 30;
    while (bytes > info->max_buffer_range || bytes * 4 > info->memory_bytes) bytes /= 2;
    fp8_buffer *b[2] = {NULL, NULL};
    if (fp8_buffer_create(dev, bytes, &b[0]) != FP8_OK || fp8_buffer_create(dev, bytes, &b[1]) != FP8_OK) {
        fp8_buffer_free(b[0]);
        return NAN;
    }
    fp8_status probe = run_copy_kernel(dev, b, 0);
    if (probe == FP8_OK) probe = fp8_device_synchronize(dev);
    *how = probe == FP8_OK ? "streaming copy kernel" : "fp8_buffer_copy";
    const double ms = time_ms(probe == FP8_OK ? run_copy_kernel : run_copy, b, "copy");
    fp8_buffer_free(b[0]);
    fp8_buffer_free(b[1]);
    return 2.0 * (double)bytes / (ms * 1e-3);
}

/* The time one dependent dispatch costs when it does almost nothing: the copy kernel on 4 KiB, with a barrier
 * before each (each copy writes what the one before wrote). A layer of n passes pays it n times whatever the
 * passes do, which bounds how close a decode layer can get to its weight-read time. NAN where there is no copy
 * kernel. */
static double dispatch_us(fp8_device *dev)
{
    fp8_buffer *b[2] = {NULL, NULL};
    double us = NAN;
    if (fp8_buffer_create(dev, 4096, &b[0]) == FP8_OK && fp8_buffer_create(dev, 4096, &b[1]) == FP8_OK &&
        run_copy_kernel(dev, b, 0) == FP8_OK && fp8_device_synchronize(dev) == FP8_OK)
        us = 1e3 * time_ms(run_copy_kernel, b, "dispatch");
    fp8_buffer_free(b[0]);
    fp8_buffer_free(b[1]);
    return us;
}

/* ------------------------------------------------------------------------------------------------
 * One model.
 * ---------------------------------------------------------------------------------------------- */
static FILE *json;
static bool json_first = true;

/* The layer on `m` tokens of device d: y as floats (the caller frees it) and the plan's per-expert counts. */
static float *layer_once(const model *md, uint32_t e, const dev_model *d, uint32_t m, const uint16_t *x,
                         const float *logits, uint32_t *counts)
{
    fp8_buffer *xb = upload(d->dev, x, (size_t)m * md->h * 2), *lb = upload(d->dev, logits, (size_t)m * e * 4);
    fp8_buffer *yb = NULL, *sb = NULL;
    float *y = malloc((size_t)m * md->h * 4);
    uint16_t *yh = malloc((size_t)m * md->h * 2);
    fp8_moe_layer_desc l = layer_desc(md, e, d, m, xb, lb, NULL);
    size_t sbytes = 0;
    if (!xb || !lb || !y || !yh || fp8_buffer_create(d->dev, (size_t)m * md->h * 2, &yb) != FP8_OK ||
        fp8_moe_layer_scratch_size(d->dev, &l, &sbytes) != FP8_OK || fp8_buffer_create(d->dev, sbytes, &sb) != FP8_OK) {
        free(y);
        y = NULL;
        goto done;
    }
    l.y.buffer = yb;
    l.scratch = sb;
    fp8_status st = fp8_moe_layer(d->dev, &l);
    if (st == FP8_OK) st = fp8_device_synchronize(d->dev);
    if (st != FP8_OK) {
        fprintf(stderr, "fp8moebench: layer on %u tokens: %s\n", m, fp8_status_name(st));
        free(y);
        y = NULL;
        goto done;
    }
    TRY(fp8_buffer_read(yb, 0, yh, (size_t)m * md->h * 2));
    for (size_t i = 0; i < (size_t)m * md->h; i++) y[i] = from_bf16(yh[i]);
    if (counts) TRY(fp8_buffer_read(sb, 64, counts, e * 4)); /* the plan leads the scratch; counts at word 16 */
done:
    free(yh);
    fp8_buffer_free(xb);
    fp8_buffer_free(lb);
    fp8_buffer_free(yb);
    fp8_buffer_free(sb);
    return y;
}

static double rel_error(const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : INFINITY;
}

/* Against the CPU device on the first `m` tokens: the device's layer on those tokens (decode kernels), and
 * the same tokens' rows of the device's layer on `m_big` tokens (prefill kernels; a token's output depends
 * on its own input and logits only). */
static void check_model(const model *md, uint32_t e, const dev_model *dv, const dev_model *dc, uint32_t m,
                        uint32_t m_big, const uint16_t *x, const float *logits)
{
    uint32_t *cv = malloc(e * 4), *cc = malloc(e * 4);
    float *yc = layer_once(md, e, dc, m, x, logits, cc), *yv = layer_once(md, e, dv, m, x, logits, cv);
    /* bf16 output and intermediates, and W8A8 codes that may differ by one where f32 and double disagree. */
    const double tol = 3e-2;
    if (!yc || !yv) {
        printf("  check vs CPU FAILED to run\n");
        failures++;
    } else {
        const double err = rel_error(yv, yc, (size_t)m * md->h);
        const bool same = memcmp(cv, cc, e * 4) == 0;
        printf("  check vs CPU, M=%u: relative error %.3g (tol %.3g), routing %s\n", m, err, tol, same ? "identical" : "DIFFERS");
        if (!(err <= tol) || !same) failures++;
    }
    if (yc && m_big > m) {
        uint32_t a;
        fp8_moe_row_align(dv->dev, m_big, md->k, e, &a);
        float *yb = layer_once(md, e, dv, m_big, x, logits, NULL);
        const double err = yb ? rel_error(yb, yc, (size_t)m * md->h) : INFINITY;
        printf("  check vs CPU, first %u of M=%u tokens (row_align %u): relative error %.3g (tol %.3g)\n", m, m_big, a, err, tol);
        if (!(err <= tol)) failures++;
        free(yb);
    }
    free(yc); free(yv); free(cv); free(cc);
}

static void run_model(const options *o, fp8_context *ctx, fp8_device *dev, const fp8_device_info *info, int mi,
                      double bw)
{
    const model *md = o->quick ? &quick_models[mi] : &full_models[mi];
    const uint32_t gu_rows = 2 * md->i;
    size_t gu_one;
    TRY(fp8_dtype_storage_size(md->wdt, (size_t)gu_rows * md->h, &gu_one));
    /* Every expert of the model; a projection larger than one buffer (one allocation, or one binding) is
     * spread over several (DeepSeek-V3's 7.5 GB of gate/up on NVIDIA's Vulkan, 4.3 GB a buffer). */
    const uint32_t e = md->e_real;
    const uint64_t limit = info->max_allocation_bytes < info->max_buffer_range ? info->max_allocation_bytes
                                                                                : info->max_buffer_range;
    printf("\n%s%s: E=%u k=%u H=%u I=%u%s, %s %s weights%s\n", model_titles[mi], o->quick ? " (quick sizes)" : "", e,
           md->k, md->h, md->i, md->is ? ", 1 shared expert" : "", fp8_dtype_name(md->wdt),
           md->wl.dtype == FP8_E8M0 ? "MX 1x32" : "128x128", md->aq.dtype && !float_activations ? ", W8A8 (E4M3 1x128 activations)" : "");
    if ((uint64_t)gu_one * e > limit)
        printf("  NOTE: gate/up weights (%.1f GB) spread over buffers of %u experts (%.2f GB a buffer at most here)\n",
               (double)gu_one * e / 1e9, (uint32_t)(limit / gu_one), (double)limit / 1e9);
    if (o->experts_per_buffer && o->experts_per_buffer < e)
        printf("  NOTE: experts spread over buffers of %u (--experts-per-buffer)\n", o->experts_per_buffer);

    host_w gu = host_weights(md, e, gu_rows, md->h), dn = host_weights(md, e, md->h, md->i), sgu = {0}, sdn = {0};
    if (md->is) {
        sgu = host_weights(md, 1, 2 * md->is, md->h);
        sdn = host_weights(md, 1, md->h, md->is);
    }
    float *bias = malloc(e * 4);
    for (uint32_t i = 0; i < e; i++) bias[i] = 0.1f * normal();
    dev_model dv;
    if (!dev_model_make(dev, md, e, &gu, &dn, &sgu, &sdn, bias, limit, o->experts_per_buffer, &dv)) {
        printf("  SKIP: the weights do not fit this device\n");
        dev_model_free(&dv);
        goto out;
    }
    uint32_t mmax = 0;
    for (uint32_t j = 0; j < o->m_count; j++) mmax = o->ms[j] > mmax ? o->ms[j] : mmax;
    const uint32_t mcheck = o->quick ? 8 : 2, mhost = mmax > mcheck ? mmax : mcheck; /* tokens of host data */
    float *xf = malloc((size_t)mhost * md->h * 4), *logits = malloc((size_t)mhost * e * 4);
    uint16_t *x = malloc((size_t)mhost * md->h * 2);
    for (size_t i = 0; i < (size_t)mhost * md->h; i++) xf[i] = normal();
    to_bf16(xf, x, (size_t)mhost * md->h);
    for (size_t i = 0; i < (size_t)mhost * e; i++) logits[i] = normal();

    if (o->check) {
        fp8_device *cpu = NULL;
        uint32_t idx;
        fp8_device_filter f = {.backend = FP8_BACKEND_CPU};
        TRY(fp8_context_find_device(ctx, &f, &idx));
        TRY(fp8_device_open(ctx, idx, &cpu));
        dev_model dc;
        fp8_device_info ci;
        TRY(fp8_device_get_info(cpu, &ci, NULL));
        if (dev_model_make(cpu, md, e, &gu, &dn, &sgu, &sdn, bias, ci.max_allocation_bytes, 0, &dc)) {
            for (int v = 0; v < bench_vary_count(&o->vary); v++) {
                char vbuf[160];
                bench_vary_apply(&o->vary, v);
                if (o->vary.count) printf("  under %s:\n", bench_vary_label(&o->vary, v, vbuf, sizeof vbuf));
                check_model(md, e, &dv, &dc, mcheck, mmax, x, logits);
            }
            bench_vary_restore(&o->vary);
        } else
            printf("  check SKIPPED: no host memory for the CPU copy\n");
        dev_model_free(&dc);
        fp8_device_close(cpu);
    }

    /* Operands for the largest M; smaller M use prefixes. */
    fp8_buffer *xb = upload(dev, x, (size_t)mmax * md->h * 2), *lb = upload(dev, logits, (size_t)mmax * e * 4);
    size_t scratch_max = 0, plan_max = 0;
    uint32_t rows_max = 0;
    for (uint32_t j = 0; j < o->m_count; j++) {
        fp8_moe_layer_desc l = layer_desc(md, e, &dv, o->ms[j], xb, lb, NULL);
        size_t s, p;
        uint32_t a, r;
        TRY(fp8_moe_layer_scratch_size(dev, &l, &s));
        TRY(fp8_moe_row_align(dev, o->ms[j], md->k, e, &a));
        TRY(fp8_moe_plan_size(o->ms[j], md->k, e, a, &p, &r));
        scratch_max = s > scratch_max ? s : scratch_max;
        plan_max = p > plan_max ? p : plan_max;
        rows_max = r > rows_max ? r : rows_max;
    }
    const uint32_t s_max = mmax * md->k;
    fp8_buffer *yb = NULL, *sb = NULL, *pb = NULL, *ib = NULL, *wb = NULL, *hb = NULL, *ob = NULL, *dxb = NULL, *dyb = NULL;
    bool ok = xb && lb && fp8_buffer_create(dev, (size_t)mmax * md->h * 2, &yb) == FP8_OK &&
              fp8_buffer_create(dev, scratch_max, &sb) == FP8_OK && fp8_buffer_create(dev, plan_max, &pb) == FP8_OK &&
              fp8_buffer_create(dev, (size_t)s_max * 4, &ib) == FP8_OK && fp8_buffer_create(dev, (size_t)s_max * 4, &wb) == FP8_OK &&
              fp8_buffer_create(dev, (size_t)rows_max * md->i * 2, &hb) == FP8_OK &&
              fp8_buffer_create(dev, (size_t)rows_max * md->h * 2, &ob) == FP8_OK &&
              fp8_buffer_create(dev, (size_t)s_max * md->h * 2, &dxb) == FP8_OK &&
              fp8_buffer_create(dev, (size_t)s_max * gu_rows * 2, &dyb) == FP8_OK;
    if (!ok) {
        printf("  SKIP: activations and scratch for M=%u do not fit this device\n", mmax);
        goto free_all;
    }
    {
        /* Dense X for the comparison GEMM: M*k rows, the tokens repeated. */
        uint16_t *dx = malloc((size_t)s_max * md->h * 2);
        for (size_t q = 0; q < (size_t)s_max * md->h; q++) dx[q] = x[q % ((size_t)mmax * md->h)];
        TRY(fp8_buffer_write(dxb, 0, dx, (size_t)s_max * md->h * 2));
        free(dx);
    }
    printf("  %5s %10s %9s %10s %6s | %8s %8s %9s %9s %8s %8s %6s | %9s %9s %s\n", "M", "layer ms", "host ms", "wread ms", "ratio",
           "route", "group", "gate/up", "down", "shared", "combine", "rgc%", "grp TF/s", "dense TF/s", "dense path");
    for (uint32_t j = 0; j < o->m_count; j++) {
        for (int v = 0; v < bench_vary_count(&o->vary); v++) {
            char vbuf[160];
            const char *variant = bench_vary_label(&o->vary, v, vbuf, sizeof vbuf);
            bench_vary_apply(&o->vary, v);
            const uint32_t m = o->ms[j], slots = m * md->k;
            fp8_moe_layer_desc l = layer_desc(md, e, &dv, m, xb, lb, yb);
            l.scratch = sb;
            const double t_layer = time_ms(run_layer, &l, "layer"), t_layer_host = last_host_ms;
            if (profile) {
                /* Right after the timed layers, so the clocks are up: drop what they recorded, then one layer. */
                TRY(fp8_device_synchronize(dev));
                printf("  profile of one layer, M=%u:\n", m);
                TRY(fp8_moe_layer(dev, &l));
                profile_print = true;
                TRY(fp8_device_synchronize(dev));
                profile_print = false;
            }
            /* Active experts of this routing, from the layer's plan: the weights a layer must read at least once. */
            uint32_t *counts = malloc(e * 4), active = 0;
            TRY(fp8_buffer_read(sb, 64, counts, e * 4));
            for (uint32_t q = 0; q < e; q++) active += counts[q] != 0;
            free(counts);
            const double bytes = (double)active * (double)(gu.w_one + gu.s_one + dn.w_one + dn.s_one) +
                                 (md->is ? (double)(sgu.wbytes + sgu.sbytes + sdn.wbytes + sdn.sbytes) : 0.0);
            const double t_read = bytes / bw * 1e3;

            /* The pieces, on bf16 activations (the layer above quantizes them when the model is W8A8). */
            uint32_t a, rows;
            size_t pbytes;
            TRY(fp8_moe_row_align(dev, m, md->k, e, &a));
            TRY(fp8_moe_plan_size(m, md->k, e, a, &pbytes, &rows));
            const fp8_moe_plan plan = {.buffer = pb, .m = m, .top_k = md->k, .experts = e, .row_align = a};
            fp8_moe_route_desc rd = {.m = m, .experts = e, .top_k = md->k, .logits = l.logits, .router = l.router,
                                     .ids = {.buffer = ib, .dtype = FP8_I32}, .weights = {.buffer = wb, .dtype = FP8_F32}};
            const double t_route = time_ms(run_route, &rd, "route");
            const fp8_moe_group_desc gd = {.ids = rd.ids, .plan = plan};
            const double t_group = time_ms(run_group, &gd, "group");
            const fp8_moe_gemm_desc g1 = {.plan = plan, .n = gu_rows, .k = md->h, .weights = dv.w_gu,
                                          .x = {.buffer = xb, .dtype = FP8_BF16}, .x_gathered = 1,
                                          .activation = FP8_MOE_ACT_SWIGLU, .y = {.buffer = hb, .dtype = FP8_BF16}};
            const double t_g1 = time_ms(run_gemm, &g1, "gate/up");
            const fp8_moe_gemm_desc g2 = {.plan = plan, .n = md->h, .k = md->i, .weights = dv.w_dn,
                                          .x = {.buffer = hb, .dtype = FP8_BF16}, .y = {.buffer = ob, .dtype = FP8_BF16}};
            const double t_g2 = time_ms(run_gemm, &g2, "down");
            double t_sh = 0;
            if (md->is) {
                /* The shared expert: dense calls through the same kernels (into the h and o buffers' first rows). */
                const fp8_moe_plan dense = {.m = m, .top_k = 1, .experts = 1, .row_align = 1};
                const fp8_moe_gemm_desc s1 = {.plan = dense, .n = 2 * md->is, .k = md->h, .weights = dv.w_sgu,
                                              .x = {.buffer = xb, .dtype = FP8_BF16}, .activation = FP8_MOE_ACT_SWIGLU,
                                              .y = {.buffer = hb, .dtype = FP8_BF16}};
                const fp8_moe_gemm_desc s2 = {.plan = dense, .n = md->h, .k = md->is, .weights = dv.w_sdn,
                                              .x = {.buffer = hb, .dtype = FP8_BF16}, .y = {.buffer = ob, .dtype = FP8_BF16}};
                if (md->is <= md->i) /* h holds [m, Is] only then */
                    t_sh = time_ms(run_gemm, &s1, "shared gate/up") + time_ms(run_gemm, &s2, "shared down");
            }
            TRY(fp8_moe_grouped_gemm(dev, &g2)); /* o back to the routed rows for combine */
            const fp8_moe_combine_desc cd = {.plan = plan, .hidden = md->h, .rows = {.buffer = ob, .dtype = FP8_BF16},
                                             .weights = rd.weights, .y = {.buffer = yb, .dtype = FP8_BF16}};
            const double t_comb = time_ms(run_combine, &cd, "combine");
            const double share = (t_route + t_group + t_comb) / t_layer * 100.0;
            /* Dense comparison: one [2I, H] expert over all M*k routed rows, the FLOPs of the grouped gate/up. */
            fp8_gemm_desc dg = {.m = slots, .n = gu_rows, .k = md->h, .w = {.buffer = dv.gu.parts[0], .dtype = md->wdt},
                                .w_scales = {.layout = md->wl, .buffer = dv.gus}, .x = {.buffer = dxb, .dtype = FP8_BF16},
                                .y = {.buffer = dyb, .dtype = FP8_BF16}};
            fp8_path path = FP8_PATH_AUTO;
            fp8_gemm_select_path(dev, &dg, &path);
            const double t_dense = time_ms(run_dense, &dg, "dense gemm");
            const double flop = 2.0 * slots * gu_rows * md->h;
            const double tf_g = flop / (t_g1 * 1e-3) / 1e12, tf_d = flop / (t_dense * 1e-3) / 1e12;
            printf("  %5u %10.4f %9.4f %10.4f %6.2f | %8.4f %8.4f %9.4f %9.4f %8.4f %8.4f %5.1f%% | %9.3g %9.3g %s (A=%u) %s\n", m,
                   t_layer, t_layer_host, t_read, t_layer / t_read, t_route, t_group, t_g1, t_g2, t_sh, t_comb, share, tf_g, tf_d,
                   fp8_path_name(path), a, variant);
            if (json) {
                fprintf(json,
                        "%s    {\"model\": \"%s\", \"experts\": %u, \"m\": %u, \"row_align\": %u, \"active_experts\": %u, "
                        "\"layer_ms\": %.6g, \"weight_read_ms\": %.6g, \"route_ms\": %.6g, \"group_ms\": %.6g, "
                        "\"gate_up_ms\": %.6g, \"down_ms\": %.6g, \"shared_ms\": %.6g, \"combine_ms\": %.6g, "
                        "\"route_group_combine_share\": %.6g, \"grouped_tflops\": %.6g, \"dense_tflops\": %.6g, "
                        "\"dense_path\": \"%s\", \"layer_host_ms\": %.6g, \"variant\": \"%s\"}",
                        json_first ? "" : ",\n", md->name, e, m, a, active, t_layer, t_read, t_route, t_group, t_g1, t_g2,
                        t_sh, t_comb, share / 100.0, tf_g, tf_d, fp8_path_name(path), t_layer_host, variant);
                json_first = false;
                fflush(json); /* a run cut short by a time limit keeps the rows it finished (the file then lacks its end) */
            }
            fflush(stdout);
        }
        bench_vary_restore(&o->vary);
    }
free_all:;
    fp8_buffer *bufs[] = {xb, lb, yb, sb, pb, ib, wb, hb, ob, dxb, dyb};
    for (size_t q = 0; q < sizeof bufs / sizeof bufs[0]; q++) fp8_buffer_free(bufs[q]);
    free(xf); free(logits); free(x);
    dev_model_free(&dv);
out:
    free(gu.w); free(gu.s); free(dn.w); free(dn.s); free(sgu.w); free(sgu.s); free(sdn.w); free(sdn.s);
    free(bias);
}

static void usage(void)
{
    fprintf(stderr, "usage: fp8moebench [--quick] [--models qwen3,deepseek,gptoss] [--ms 1,8,64,512,4096]\n"
                    "                   [--device INDEX|BACKEND[:NAME]|NAME] [--json FILE] [--no-check] [--experts-per-buffer P]\n"
                    "                   [--float-activations] [--profile] [--samples] [--verbose]\n"
                    "                   [--vary NAME=value/value/...: each M checked and timed under each setting of a\n"
                    "                    knob the library reads per call, e.g. FP8_VK_MOE_GEMV; 'default' unsets it]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    options o = {.check = true};
    const char *ms = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) o.quick = true;
        else if (!strcmp(argv[i], "--no-check")) o.check = false;
        else if (!strcmp(argv[i], "--models") && i + 1 < argc) o.models = argv[++i];
        else if (!strcmp(argv[i], "--ms") && i + 1 < argc) ms = argv[++i];
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) o.device = argv[++i];
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) o.json = argv[++i];
        else if (!strcmp(argv[i], "--float-activations")) float_activations = true;
        else if (!strcmp(argv[i], "--profile")) profile = true;
        else if (!strcmp(argv[i], "--verbose")) verbose = true;
        else if (!strcmp(argv[i], "--samples")) timer.samples_out = stdout;
        else if (!strcmp(argv[i], "--experts-per-buffer") && i + 1 < argc) o.experts_per_buffer = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--vary") && i + 1 < argc) {
            if (!bench_vary_parse(&o.vary, argv[++i])) usage();
        }
        else usage();
    }
    if (!ms) ms = o.quick ? "1,8,64" : "1,8,64,512,4096";
    if (o.quick) timer.samples = 1, timer.warmup_ns = 0;
    for (const char *p = ms; *p && o.m_count < MAX_MS;) {
        char *end;
        const unsigned long v = strtoul(p, &end, 10);
        if (end == p || v == 0 || v > 65536) usage();
        o.ms[o.m_count++] = (uint32_t)v;
        p = *end == ',' ? end + 1 : end;
    }
    fp8_context *ctx = NULL;
    if (profile) setenv("FP8_VK_PROFILE", "1", 1); /* read when the device opens */
    fp8_context_options co = {.log = on_log, .log_level = profile || verbose ? FP8_LOG_INFO : FP8_LOG_WARN};
    TRY(fp8_context_create(&co, &ctx));
    /* By default the first Vulkan device (the backend that implements MoE on GPUs). */
    const char *spec = o.device ? o.device : "vulkan";
    uint32_t idx = 0;
    while (idx < fp8_context_device_count(ctx)) {
        fp8_device_info di;
        if (fp8_context_device_info(ctx, idx, &di) == FP8_OK && bench_device_matches(spec, idx, &di)) break;
        idx++;
    }
    if (idx == fp8_context_device_count(ctx)) DIE("no device matches --device %s", spec);
    fp8_device *dev = NULL;
    TRY(fp8_device_open(ctx, idx, &dev));
    timer.dev = dev;
    fp8_device_info info;
    TRY(fp8_device_get_info(dev, &info, NULL));
    printf("fp8moebench on %s (%s, %.1f GiB, %.2f GiB per buffer)\n", info.name, fp8_backend_name(info.backend),
           info.memory_bytes / 1073741824.0, info.max_buffer_range / 1073741824.0);
    const char *copy_how = "";
    const double bw = copy_bandwidth(dev, &info, &copy_how);
    if (!o.quick) bench_timer_guard_clocks(&timer, &info);
    printf("copy bandwidth (%s, read + write): %.1f GB/s\n", copy_how, bw / 1e9);
    const double disp = dispatch_us(dev);
    printf("one dependent dispatch (copy kernel on 4 KiB after a barrier): %.2f us\n", disp);
    printf("columns: layer = fp8_moe_layer; wread = active experts' weights (and the shared expert's) read once at the"
           " copy bandwidth; pieces on bf16 activations; rgc = route + group + combine share of the layer;"
           " TF/s of the grouped gate/up GEMM and of one dense fp8_gemm with the same FLOPs\n");
    if (o.json) {
        json = fopen(o.json, "w");
        if (!json) DIE("cannot write %s", o.json);
        fprintf(json, "{\"device\": \"%s\", \"copy_gbps\": %.6g, \"dispatch_us\": %.6g, \"quick\": %s, \"results\": [\n",
                info.name, bw / 1e9, isnan(disp) ? -1.0 : disp, o.quick ? "true" : "false");
    }
    for (int mi = 0; mi < 3; mi++)
        if (listed(o.models, full_models[mi].name)) run_model(&o, ctx, dev, &info, mi, bw);
    if (json) {
        fprintf(json, "\n], \"failures\": %d}\n", failures);
        fclose(json);
    }
    bench_timer_release(&timer);
    fp8_device_close(dev);
    fp8_context_destroy(ctx);
    printf("\n%s\n", failures ? "FAILED" : "done");
    return failures ? 1 : 0;
}
