/* fp8bench: measure libfp8's GEMV/GEMM paths per device against the device's own ceilings (copy bandwidth of a
 * streaming kernel, matrix peak, an fp32 SGEMM baseline), each timed configuration checked first against the CPU
 * oracle. Built on the public API only. */
#include <fp8.h>

#include "bench_device.h"
#include "bench_timing.h"
#include "bench_vary.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHAPES 16
#define MAX_MS 16
#define MAX_Y 8

typedef struct options {
    bool quick, cpu;
    const char *json;          /* NULL: no JSON; "-": stdout */
    const char *device;        /* name substring or index */
    uint32_t shapes[MAX_SHAPES][2];
    uint32_t shape_count;
    uint32_t ms[MAX_MS];
    uint32_t m_count;
    uint32_t reps;             /* timed batches per configuration */
    double batch_ns;           /* device time a timed batch lasts at least (--batch-us) */
    bool print_samples;        /* --samples: every timed batch */
    const char *paths;         /* comma-separated path names to run; NULL: all */
    const char *configs;       /* comma-separated weight configurations; NULL: all */
    const char *baselines;     /* comma-separated ceilings to measure (copy, peak, sgemm); NULL: all */
    bench_vary vary;           /* --vary: settings of a library knob, each configuration timed under each */
} options;

typedef struct wconfig {
    const char *name;
    fp8_dtype w;
    fp8_scale_layout ws;
} wconfig;

static const wconfig configs[] = {
    {"e4m3_block128", FP8_E4M3FN, {FP8_SCALE_BLOCK, FP8_F32, 128, 128}},
    {"e4m3_channel", FP8_E4M3FN, {FP8_SCALE_ROW, FP8_F32, 0, 0}},
    {"mxfp4", FP8_E2M1, {FP8_SCALE_BLOCK, FP8_E8M0, 1, 32}},
    {"nvfp4", FP8_E2M1, {FP8_SCALE_BLOCK, FP8_E4M3FN, 1, 16}},
};

static int failures;
static fp8_log_level shown_level = FP8_LOG_WARN; /* --verbose: INFO */
static FILE *json;
static bool json_first_device = true, json_first_result = true;

#define DIE(...) do { fprintf(stderr, "fp8bench: " __VA_ARGS__); fputc('\n', stderr); exit(2); } while (0)
#define TRY(expr) do { fp8_status st_ = (expr); if (st_ != FP8_OK) DIE("%s: %s", #expr, fp8_status_name(st_)); } while (0)

static void on_log(void *user, fp8_log_level level, const char *message)
{
    (void)user;
    /* Paths a device lacks are probed on purpose; their refusals are not news. */
    if (strstr(message, "cannot run this GEMM")) return;
    if (strstr(message, "no matrix peak kernel")) return; /* how measure_peak finds the last one */
    if (level >= shown_level) fprintf(stderr, "[libfp8] %s\n", message);
}

/* xorshift64*: reproducible data, never all zero. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static float uniform(void) { return (float)(rng() >> 40) / (float)(1u << 24) * 2.0f - 1.0f; }

/* Whether `name` is one of the comma-separated `list` (NULL: everything is). */
static bool listed(const char *list, const char *name)
{
    if (!list) return true;
    const size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return true;
        p += len + (end != NULL);
    }
    return false;
}

/* The timer of one device: bench_time's warm-up and clock guard (bench_timing.h) around batches of back-to-back
 * calls, so that the device never idles between calls waiting for the host, which would let its clocks drop and
 * count launch gaps as kernel time. Warm-up: 250 ms (--quick: 5 ms) and on while batches get faster; with run 1's
 * 30 ms the same GEMV measured anywhere from 22 to 100 us on the H100. */
static bench_timer device_timer(fp8_device *dev, const options *o)
{
    return (bench_timer){.dev = dev, .warmup_ns = o->quick ? 5e6 : 250e6, .region_ns = o->batch_ns, .max_calls = 4096,
                         .samples = o->reps > BENCH_MAX_SAMPLES ? BENCH_MAX_SAMPLES : (int)o->reps,
                         .samples_out = o->print_samples ? stdout : NULL};
}

/* Median device time in ns of one call of `op`, from timed batches that are multiples of `period` calls (the
 * rotation period of the job's buffer copies); host_ns (if not NULL): the median host time of the enqueues per
 * call. Where it is as long as the device time, the device waited for the host. */
static double time_op_host(const bench_timer *t, bench_call_fn op, const void *arg, uint32_t period, const char *what,
                           double *host_ns)
{
    bench_times r;
    const fp8_status st = bench_time(t, op, arg, period, what, &r);
    if (st != FP8_OK) DIE("timing %s: %s", what, fp8_status_name(st));
    if (host_ns) *host_ns = r.host_ns;
    return r.device_ns;
}

static double time_op(const bench_timer *t, bench_call_fn op, const void *arg, uint32_t period, const char *what)
{
    return time_op_host(t, op, arg, period, what, NULL);
}

static fp8_buffer *buffer(fp8_device *dev, size_t size)
{
    fp8_buffer *b = NULL;
    TRY(fp8_buffer_create(dev, size, &b));
    return b;
}

/* ---- copy bandwidth ---- */
typedef struct copy_job { fp8_buffer *dst, *src; size_t size; } copy_job;
static fp8_status copy_api_op(fp8_device *dev, const void *arg, uint32_t call)
{
    const copy_job *j = arg;
    return fp8_buffer_copy(j->dst, 0, j->src, 0, j->size);
}

static fp8_status copy_kernel_op(fp8_device *dev, const void *arg, uint32_t call)
{
    const copy_job *j = arg;
    return bench_copy_kernel(dev, j->src, j->dst);
}

/* GB/s (read + write) of copying 1 GiB: with the streaming kernel (*kernel_gbps, 0 where the backend has none)
 * and with the API's buffer copy (the return value). */
static double measure_copy(const bench_timer *t, const fp8_device_info *info, const options *o, double *kernel_gbps)
{
    fp8_device *dev = t->dev;
    size_t size = o->quick ? (8u << 20) : (1u << 30);
    if (info->max_buffer_range && size > info->max_buffer_range) size = (size_t)info->max_buffer_range & ~(size_t)4095;
    copy_job j = {buffer(dev, size), buffer(dev, size), size};
    /* Non-zero data: 4 MiB from the host, replicated on the device. */
    size_t chunk = size < (4u << 20) ? size : (4u << 20);
    uint32_t *h = malloc(chunk);
    for (size_t i = 0; i < chunk / 4; i++) h[i] = (uint32_t)rng();
    TRY(fp8_buffer_write(j.src, 0, h, chunk));
    for (size_t off = chunk; off < size; off += chunk)
        TRY(fp8_buffer_copy(j.src, off, j.src, 0, size - off < chunk ? size - off : chunk));
    free(h);
    *kernel_gbps = 0;
    fp8_status st = copy_kernel_op(dev, &j, 0);
    if (st == FP8_OK) {
        *kernel_gbps = 2.0 * (double)size / time_op(t, copy_kernel_op, &j, 1, "copy kernel");
        /* A copy that moved nothing would be fast too: check the last 4 MiB arrived. */
        uint32_t *a = malloc(chunk), *b = malloc(chunk);
        TRY(fp8_buffer_read(j.src, size - chunk, a, chunk));
        TRY(fp8_buffer_read(j.dst, size - chunk, b, chunk));
        if (memcmp(a, b, chunk) != 0) {
            failures++;
            fprintf(stderr, "fp8bench: WRONG RESULT: the copy kernel did not copy\n");
            *kernel_gbps = 0;
        }
        free(a);
        free(b);
    } else if (st != FP8_ERR_UNSUPPORTED) {
        fprintf(stderr, "fp8bench: copy kernel: %s\n", fp8_status_name(st));
    }
    double ns = time_op(t, copy_api_op, &j, 1, "buffer copy");
    fp8_buffer_free(j.dst);
    fp8_buffer_free(j.src);
    return 2.0 * (double)size / ns; /* GB/s: read + write */
}

/* ---- reference kernels ---- */
typedef struct bench_job { fp8_bench_desc d; double flop; } bench_job;
static fp8_status bench_op(fp8_device *dev, const void *arg, uint32_t call)
{
    const bench_job *j = arg;
    double flop;
    return fp8_device_bench_run(dev, &j->d, &flop);
}

/* Every peak kernel of the backend (fp8_bench_desc.m = 0, 1, ... until INVALID_ARGUMENT), each printed; the
 * fastest is the peak. On the H100 the NV and KHR subgroup kernels and the coopmat2 workgroup kernel differ by
 * up to 1.25x (docs/BENCHMARKS.md, run 59), so no single one of them stands for the device. */
#define MAX_PEAK_KERNELS 8
static double measure_peak(const bench_timer *t, const options *o, fp8_backend backend, double each[MAX_PEAK_KERNELS])
{
    fp8_device *dev = t->dev;
    static const char *const vk_names[] = {"default", "KHR subgroup 16x16x16", "NV coopmat2 workgroup 128x128x32"};
    fp8_buffer *sink = buffer(dev, 4096); /* one for every kernel: none reads it, none stores to it in practice */
    double best = 0;
    for (uint32_t v = 0; v < MAX_PEAK_KERNELS; v++) {
        bench_job j = {{.kernel = FP8_BENCH_MATRIX_PEAK_F16, .m = v, .c = sink, .repeat = o->quick ? 8 : 0}, 0};
        const fp8_status st = fp8_device_bench_run(dev, &j.d, &j.flop);
        each[v] = 0;
        if (st == FP8_ERR_INVALID_ARGUMENT) break;
        if (st == FP8_ERR_UNSUPPORTED) continue;
        if (st != FP8_OK) {
            fprintf(stderr, "fp8bench: matrix peak kernel %u: %s\n", v, fp8_status_name(st));
            continue;
        }
        const char *name = backend == FP8_BACKEND_VULKAN && v < 3 ? vk_names[v] : "default";
        char what[32];
        snprintf(what, sizeof what, "peak %u", v);
        each[v] = j.flop / time_op(t, bench_op, &j, 1, what) / 1e3;
        printf("  matrix peak kernel %u %10.2f TFLOP/s (%s)\n", v, each[v], name);
        if (each[v] > best) best = each[v];
    }
    fp8_buffer_free(sink);
    return best;
}

static double measure_sgemm(const bench_timer *t, const options *o, uint32_t *size)
{
    fp8_device *dev = t->dev;
    const uint32_t s = o->quick ? 128 : 4096;
    *size = s;
    bench_job j = {{.kernel = FP8_BENCH_SGEMM_F32, .m = s, .n = s, .k = s}, 0};
    const size_t bytes = (size_t)s * s * 4;
    float *h = malloc(bytes);
    for (size_t i = 0; i < (size_t)s * s; i++) h[i] = uniform();
    j.d.a = buffer(dev, bytes);
    j.d.b = buffer(dev, bytes);
    j.d.c = buffer(dev, bytes);
    TRY(fp8_buffer_write(j.d.a, 0, h, bytes));
    TRY(fp8_buffer_write(j.d.b, 0, h, bytes));
    free(h);
    double tflops = 0;
    fp8_status st = fp8_device_bench_run(dev, &j.d, &j.flop);
    if (st == FP8_OK) tflops = j.flop / time_op(t, bench_op, &j, 1, "sgemm") / 1e3;
    else fprintf(stderr, "fp8bench: SGEMM baseline: %s\n", fp8_status_name(st));
    fp8_buffer_free(j.d.a);
    fp8_buffer_free(j.d.b);
    fp8_buffer_free(j.d.c);
    return tflops;
}

/* ---- GEMM paths ---- */
typedef struct gemm_job {
    fp8_gemm_desc d;
    fp8_buffer *w[MAX_Y], *y[MAX_Y];
    uint32_t copies;  /* weight and output copies, rotated so that repeated runs do not hit a warm L2 */
} gemm_job;

static fp8_status gemm_op(fp8_device *dev, const void *arg, uint32_t call)
{
    const gemm_job *j = arg;
    fp8_gemm_desc d = j->d;
    d.w.buffer = j->w[call % j->copies];
    d.y.buffer = j->y[call % j->copies];
    return fp8_gemm(dev, &d);
}

static float half_to_float(uint16_t h) { return fp8_decode_value(FP8_F16, h); }

/* copy_gbps is the baseline every ratio uses: the copy kernel's where the backend has one, else the API copy's. */
typedef struct device_ceilings { double copy_gbps, copy_kernel_gbps, copy_api_gbps, peak_tflops, sgemm_tflops; } device_ceilings;

static void json_result(const fp8_device_info *info, const wconfig *c, uint32_t m, uint32_t n, uint32_t k, fp8_path p,
                        const char *status, double us, double host_us, double gbps, double tflops, double err,
                        const device_ceilings *dc, const char *variant)
{
    if (!json) return;
    (void)info;
    fprintf(json, "%s\n      {\"config\": \"%s\", \"m\": %u, \"n\": %u, \"k\": %u, \"path\": \"%s\", \"status\": \"%s\"",
            json_first_result ? "" : ",", c->name, m, n, k, fp8_path_name(p), status);
    if (*variant) fprintf(json, ", \"variant\": \"%s\"", variant);
    json_first_result = false;
    if (us > 0)
        fprintf(json, ", \"us\": %.3f, \"host_us\": %.3f, \"gbps\": %.2f, \"tflops\": %.4f, \"rel_err\": %.3g, "
                      "\"copy_ratio\": %.4f, \"peak_ratio\": %.4f, \"sgemm_ratio\": %.4f",
                us, host_us, gbps, tflops, err, dc->copy_gbps > 0 ? gbps / dc->copy_gbps : 0,
                dc->peak_tflops > 0 ? tflops / dc->peak_tflops : 0, dc->sgemm_tflops > 0 ? tflops / dc->sgemm_tflops : 0);
    fputc('}', json);
    fflush(json); /* a run cut short by a time limit keeps the rows it finished (the file then lacks its end) */
}

static void bench_shape(const bench_timer *t, fp8_device *cpu, const fp8_device_info *info, const options *o, uint32_t n,
                        uint32_t k, const wconfig *c, const device_ceilings *dc)
{
    fp8_device *dev = t->dev;
    const char *prefix = info->backend == FP8_BACKEND_VULKAN ? "vk_" : info->backend == FP8_BACKEND_OPENCL ? "cl_" : "cpu";
    if (c->w == FP8_E2M1 && (k & 1)) return;
    /* Weights: random finite codes of moderate size with scales near 1/64, so outputs stay inside f16. */
    size_t w_bytes = 0, scale_count = 0;
    fp8_dtype_storage_size(c->w, (size_t)n * k, &w_bytes);
    TRY(fp8_scale_count(&c->ws, n, k, &scale_count));
    const size_t scale_bytes = scale_count * (c->ws.dtype == FP8_F32 ? 4 : 1);
    uint8_t *wh = malloc(w_bytes), *sh = malloc(scale_bytes);
    for (size_t i = 0; i < w_bytes; i++) {
        uint8_t b;
        do b = (uint8_t)rng(); while (c->w != FP8_E2M1 && (!isfinite(fp8_decode_value(c->w, b)) || fabsf(fp8_decode_value(c->w, b)) > 16));
        wh[i] = b;
    }
    for (size_t i = 0; i < scale_count; i++) {
        if (c->ws.dtype == FP8_F32) { float s = (1.0f + 0.5f * uniform()) / 64.0f; memcpy(sh + 4 * i, &s, 4); }
        else if (c->ws.dtype == FP8_E8M0) sh[i] = (uint8_t)(121 + rng() % 3); /* 2^-6 .. 2^-4 */
        else sh[i] = (uint8_t)(0x08 + rng() % 3);                         /* E4M3FN: 2^-6 x 1, 1.125, 1.25 */
    }
    gemm_job j = {0};
    j.copies = (uint32_t)((256u << 20) / w_bytes + 1);
    if (j.copies > MAX_Y) j.copies = MAX_Y;
    if (o->quick) j.copies = 2;
    for (uint32_t i = 0; i < j.copies; i++) {
        j.w[i] = buffer(dev, w_bytes);
        if (i == 0) TRY(fp8_buffer_write(j.w[0], 0, wh, w_bytes));
        else TRY(fp8_buffer_copy(j.w[i], 0, j.w[0], 0, w_bytes));
    }
    fp8_buffer *sbuf = buffer(dev, scale_bytes), *cw = buffer(cpu, w_bytes), *cs = buffer(cpu, scale_bytes);
    TRY(fp8_buffer_write(sbuf, 0, sh, scale_bytes));
    TRY(fp8_buffer_write(cw, 0, wh, w_bytes));
    TRY(fp8_buffer_write(cs, 0, sh, scale_bytes));
    free(wh);
    free(sh);

    for (uint32_t mi = 0; mi < o->m_count; mi++) {
        const uint32_t m = o->ms[mi];
        const size_t x_bytes = (size_t)m * k * 2, y_bytes = (size_t)m * n * 2;
        uint16_t *xh = malloc(x_bytes);
        for (size_t i = 0; i < (size_t)m * k; i++) xh[i] = (uint16_t)fp8_encode_value(FP8_F16, uniform(), FP8_OVERFLOW_SATURATE);
        fp8_buffer *xb = buffer(dev, x_bytes);
        TRY(fp8_buffer_write(xb, 0, xh, x_bytes));
        /* Weight copies only matter where the weights are the traffic (small M); large M reuses them anyway. */
        const uint32_t all_copies = j.copies;
        if (m > 64) j.copies = 1;
        for (uint32_t i = 0; i < j.copies; i++) j.y[i] = buffer(dev, y_bytes);
        /* The oracle: rows 0 and M-1 of Y on the CPU device, from the same data. */
        const uint32_t rows[2] = {0, m - 1}, nrows = m > 1 ? 2 : 1;
        fp8_buffer *cx = buffer(cpu, (size_t)nrows * k * 2), *cy = buffer(cpu, (size_t)nrows * n * 4);
        for (uint32_t r = 0; r < nrows; r++) TRY(fp8_buffer_write(cx, (size_t)r * k * 2, xh + (size_t)rows[r] * k, (size_t)k * 2));
        free(xh);
        fp8_gemm_desc cd = {.m = nrows, .n = n, .k = k, .w = {cw, 0, c->w, 0}, .w_scales = {c->ws, cs, 0, 0},
                            .x = {cx, 0, FP8_F16, 0}, .y = {cy, 0, FP8_F32, 0}, .path = FP8_PATH_CPU_REFERENCE};
        TRY(fp8_gemm(cpu, &cd));
        float *ref = malloc((size_t)nrows * n * 4);
        uint16_t *got = malloc((size_t)n * 2);
        TRY(fp8_buffer_read(cy, 0, ref, (size_t)nrows * n * 4));

        j.d = (fp8_gemm_desc){.m = m, .n = n, .k = k, .w = {j.w[0], 0, c->w, 0}, .w_scales = {c->ws, sbuf, 0, 0},
                              .x = {xb, 0, FP8_F16, 0}, .y = {j.y[0], 0, FP8_F16, 0}};
        for (int p = 1; p < FP8_PATH_COUNT_; p++) {
            if (strncmp(fp8_path_name((fp8_path)p), prefix, 3) != 0) continue;
            const bool gemv = strstr(fp8_path_name((fp8_path)p), "gemv") != NULL;
            if (gemv && m > 16) continue; /* the decode kernel: small M only */
            if (!listed(o->paths, fp8_path_name((fp8_path)p))) continue;
            j.d.path = (fp8_path)p;
            for (int v = 0; v < bench_vary_count(&o->vary); v++) {
                char vbuf[160];
                const char *variant = bench_vary_label(&o->vary, v, vbuf, sizeof vbuf);
                bench_vary_apply(&o->vary, v);
                fp8_path chosen;
                if (fp8_gemm_select_path(dev, &j.d, &chosen) != FP8_OK) {
                    json_result(info, c, m, n, k, (fp8_path)p, "unsupported", 0, 0, 0, 0, 0, dc, variant);
                    continue;
                }
                /* Correctness first: never time a wrong kernel. The rows checked start as NaN, so that a kernel
                 * that leaves them unwritten fails instead of passing on the previous run's output. */
                memset(got, 0xFF, (size_t)n * 2);
                for (uint32_t r = 0; r < nrows; r++) TRY(fp8_buffer_write(j.y[0], (size_t)rows[r] * n * 2, got, (size_t)n * 2));
                TRY(gemm_op(dev, &j, 0));
                double num = 0, den = 0;
                for (uint32_t r = 0; r < nrows; r++) {
                    TRY(fp8_buffer_read(j.y[0], (size_t)rows[r] * n * 2, got, (size_t)n * 2));
                    for (uint32_t i = 0; i < n; i++) {
                        double g = half_to_float(got[i]), e = ref[(size_t)r * n + i];
                        num += (g - e) * (g - e);
                        den += e * e;
                        if (isnan(g)) num = INFINITY;
                    }
                }
                const double err = den > 0 ? sqrt(num / den) : INFINITY;
                if (!(err <= 5e-3)) {
                    failures++;
                    fprintf(stderr, "fp8bench: WRONG RESULT: %s %s M=%u N=%u K=%u%s%s: relative error %.3g against the CPU oracle\n",
                            fp8_path_name((fp8_path)p), c->name, m, n, k, *variant ? " " : "", variant, err);
                    json_result(info, c, m, n, k, (fp8_path)p, "wrong", 0, 0, 0, 0, err, dc, variant);
                    continue;
                }
                char what[256];
                snprintf(what, sizeof what, "%s %s M=%u N=%u K=%u %s", c->name, fp8_path_name((fp8_path)p), m, n, k, variant);
                double host_ns = 0;
                const double ns = time_op_host(t, gemm_op, &j, j.copies, what, &host_ns);
                const double bytes = (double)w_bytes + (double)scale_bytes + (double)x_bytes;
                const double gbps = bytes / ns, tflops = 2.0 * m * n * k / ns / 1e3;
                printf("  %-14s %-20s M=%-5u N=%-6u K=%-6u %10.1f us %8.1f GB/s %8.2f TFLOP/s  copy %5.1f%%  peak %5.1f%%  "
                       "sgemm x%.2f  err %.1e  host %.1f us  %s\n",
                       c->name, fp8_path_name((fp8_path)p), m, n, k, ns / 1e3, gbps, tflops,
                       dc->copy_gbps > 0 ? 100 * gbps / dc->copy_gbps : 0, dc->peak_tflops > 0 ? 100 * tflops / dc->peak_tflops : 0,
                       dc->sgemm_tflops > 0 ? tflops / dc->sgemm_tflops : 0, err, host_ns / 1e3, variant);
                fflush(stdout);
                json_result(info, c, m, n, k, (fp8_path)p, "ok", ns / 1e3, host_ns / 1e3, gbps, tflops, err, dc, variant);
            }
            bench_vary_restore(&o->vary);
        }
        free(ref);
        free(got);
        fp8_buffer_free(cx);
        fp8_buffer_free(cy);
        fp8_buffer_free(xb);
        for (uint32_t i = 0; i < j.copies; i++) fp8_buffer_free(j.y[i]);
        j.copies = all_copies;
    }
    for (uint32_t i = 0; i < j.copies; i++) fp8_buffer_free(j.w[i]);
    fp8_buffer_free(sbuf);
    fp8_buffer_free(cw);
    fp8_buffer_free(cs);
}

static void bench_device(fp8_context *ctx, uint32_t index, fp8_device *cpu, const options *o)
{
    fp8_device_info info;
    fp8_device_verdict v;
    fp8_context_device_info(ctx, index, &info);
    fp8_context_device_verdict(ctx, index, &v);
    fp8_device *dev = NULL;
    fp8_status st = fp8_device_open(ctx, index, &dev);
    if (st != FP8_OK) {
        fprintf(stderr, "fp8bench: [%u] %s did not open: %s\n", index, info.name, fp8_status_name(st));
        return;
    }
    printf("[%u] %s: %s (%s)\n", index, fp8_backend_name(info.backend), info.name, info.driver_version);
    bench_timer timer = device_timer(dev, o);
    device_ceilings dc = {0};
    uint32_t sg_size = 0;
    if (listed(o->baselines, "copy")) {
        dc.copy_api_gbps = measure_copy(&timer, &info, o, &dc.copy_kernel_gbps);
        dc.copy_gbps = dc.copy_kernel_gbps > 0 ? dc.copy_kernel_gbps : dc.copy_api_gbps;
        if (dc.copy_kernel_gbps > 0)
            printf("  copy bandwidth      %10.1f GB/s (read + write; streaming copy kernel: the baseline)\n", dc.copy_kernel_gbps);
        printf("  buffer copy (API)   %10.1f GB/s (read + write; fp8_buffer_copy)\n", dc.copy_api_gbps);
    }
    /* The clock guard from here on (the copy measured above is itself the heavy load it runs). Not where that
     * measurement found no copy kernel: a second try would only repeat the library's warning. --quick: none, as
     * its seconds of copies on a CPU device would dwarf the smoke test. */
    if (!o->quick && (!listed(o->baselines, "copy") || dc.copy_kernel_gbps > 0)) bench_timer_guard_clocks(&timer, &info);
    double peaks[MAX_PEAK_KERNELS] = {0};
    if (listed(o->baselines, "peak")) {
        dc.peak_tflops = measure_peak(&timer, o, info.backend, peaks);
        printf("  matrix peak (fp16)  %10.2f TFLOP/s (the fastest kernel: the baseline)\n", dc.peak_tflops);
    }
    if (listed(o->baselines, "sgemm")) {
        dc.sgemm_tflops = measure_sgemm(&timer, o, &sg_size);
        printf("  fp32 SGEMM %u^3   %10.2f TFLOP/s\n", sg_size, dc.sgemm_tflops);
    }
    if (json) {
        fprintf(json, "%s\n    {\"index\": %u, \"backend\": \"%s\", \"name\": \"%s\", \"driver\": \"%s\", "
                      "\"gemv_path\": \"%s\", \"gemm_path\": \"%s\", \"copy_gbps\": %.2f, \"copy_kernel_gbps\": %.2f, "
                      "\"copy_api_gbps\": %.2f, \"peak_tflops\": %.4f, \"sgemm_size\": %u, \"sgemm_tflops\": %.4f, ",
                json_first_device ? "" : ",", index, fp8_backend_name(info.backend), info.name, info.driver_version,
                fp8_path_name(v.gemv_path), fp8_path_name(v.gemm_path), dc.copy_gbps, dc.copy_kernel_gbps,
                dc.copy_api_gbps, dc.peak_tflops, sg_size, dc.sgemm_tflops);
        fprintf(json, "\"peak_kernels_tflops\": [");
        for (uint32_t i = 0; i < MAX_PEAK_KERNELS; i++) fprintf(json, "%s%.4f", i ? ", " : "", peaks[i]);
        fprintf(json, "], \"results\": [");
        json_first_device = false;
        json_first_result = true;
    }
    for (uint32_t s = 0; s < o->shape_count; s++)
        for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++)
            if (listed(o->configs, configs[c].name)) bench_shape(&timer, cpu, &info, o, o->shapes[s][0], o->shapes[s][1], &configs[c], &dc);
    if (json) fprintf(json, "\n    ]}");
    bench_timer_release(&timer);
    fp8_device_close(dev);
}

static uint32_t parse_list(const char *s, uint32_t *out, uint32_t max)
{
    uint32_t n = 0;
    while (*s && n < max) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v == 0 || v > UINT32_MAX) DIE("bad number in '%s'", s);
        out[n++] = (uint32_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') DIE("bad list '%s'", s);
    }
    return n;
}

static void usage(void)
{
    puts("usage: fp8bench [--quick] [--json FILE|-] [--device INDEX|BACKEND[:NAME]|NAME] [--shapes NxK,...] [--ms M,...]\n"
         "                [--reps N] [--cpu] [--paths vk_gemv,...] [--configs e4m3_block128,e4m3_channel,mxfp4,nvfp4]\n"
         "                [--baselines copy,peak,sgemm] [--batch-us US] [--samples] [--verbose]\n"
         "                [--vary NAME=value/value/...]\n"
         "Measures copy bandwidth (a streaming copy kernel, and the API's buffer copy), the fp16 matrix peak and an\n"
         "fp32 SGEMM per device, then every GEMV/GEMM path on E4M3 weights with 128x128 block and per-channel scales\n"
         "and on MXFP4 and NVFP4 (E4M3 scales per 16), each checked against the CPU oracle, then timed in N batches\n"
         "(median) of back-to-back calls lasting at least US microseconds (default 2000; 0: the buffer rotation\n"
         "period only). GPU clocks fall when idle: each timing starts with 200 ms of the streaming copy and at least\n"
         "250 ms of warm-up (on while batches get faster), and every batch follows a few ms of the copy (--quick: 5 ms\n"
         "of warm-up, no copy).\n"
         "--samples prints every timed batch (ms per call).\n"
         "--verbose shows the library's INFO messages (with FP8_VK_PIPELINE_STATS=1: each pipeline's registers).\n"
         "--vary NAME=v1/v2/... times every configuration under each setting of a knob the library reads per call\n"
         "(FP8_VK_GEMV, FP8_VK_COOPMAT_TILE, FP8_VK_COOPMAT_DIRECT, ...; 'default' unsets it), each checked first.");
}

int main(int argc, char **argv)
{
    options o = {.reps = 0, .batch_ns = 2e6};
    const char *shapes = NULL, *ms = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick")) o.quick = true;
        else if (!strcmp(a, "--cpu")) o.cpu = true;
        else if (!strcmp(a, "--verbose")) shown_level = FP8_LOG_INFO;
        else if (!strcmp(a, "--json") && i + 1 < argc) o.json = argv[++i];
        else if (!strcmp(a, "--device") && i + 1 < argc) o.device = argv[++i];
        else if (!strcmp(a, "--shapes") && i + 1 < argc) shapes = argv[++i];
        else if (!strcmp(a, "--ms") && i + 1 < argc) ms = argv[++i];
        else if (!strcmp(a, "--reps") && i + 1 < argc) o.reps = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(a, "--paths") && i + 1 < argc) o.paths = argv[++i];
        else if (!strcmp(a, "--configs") && i + 1 < argc) o.configs = argv[++i];
        else if (!strcmp(a, "--baselines") && i + 1 < argc) o.baselines = argv[++i];
        else if (!strcmp(a, "--batch-us") && i + 1 < argc) o.batch_ns = 1e3 * atof(argv[++i]);
        else if (!strcmp(a, "--samples")) o.print_samples = true;
        else if (!strcmp(a, "--vary") && i + 1 < argc) {
            if (!bench_vary_parse(&o.vary, argv[++i])) DIE("bad --vary '%s' (want NAME=value/value/..., 'default' unsets)", argv[i]);
        }
        else { usage(); return !strcmp(a, "--help") || !strcmp(a, "-h") ? 0 : 2; }
    }
    if (!o.reps) o.reps = o.quick ? 2 : 7;
    if (shapes) {
        for (const char *s = shapes; *s && o.shape_count < MAX_SHAPES;) {
            unsigned n = 0, k = 0;
            int used = 0;
            if (sscanf(s, "%ux%u%n", &n, &k, &used) != 2 || !n || !k) DIE("bad shape list '%s' (want NxK,...)", shapes);
            o.shapes[o.shape_count][0] = n;
            o.shapes[o.shape_count++][1] = k;
            s += used;
            if (*s == ',') s++;
        }
    } else if (o.quick) {
        o.shapes[0][0] = 96, o.shapes[0][1] = 256, o.shape_count = 1;
    } else {
        static const uint32_t def[4][2] = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {7168, 2048}};
        memcpy(o.shapes, def, sizeof def);
        o.shape_count = 4;
    }
    if (ms) o.m_count = parse_list(ms, o.ms, MAX_MS);
    else if (o.quick) { static const uint32_t q[] = {1, 4, 33}; memcpy(o.ms, q, sizeof q); o.m_count = 3; }
    else { static const uint32_t d[] = {1, 4, 16, 512, 2048, 4096}; memcpy(o.ms, d, sizeof d); o.m_count = 6; }

    fp8_context *ctx = NULL;
    fp8_context_options co = {.log = on_log, .log_level = shown_level};
    TRY(fp8_context_create(&co, &ctx));
    uint32_t cpu_index;
    fp8_device_filter cf = {.backend = FP8_BACKEND_CPU};
    TRY(fp8_context_find_device(ctx, &cf, &cpu_index));
    fp8_device *cpu = NULL;
    TRY(fp8_device_open(ctx, cpu_index, &cpu));
    if (o.json) {
        json = strcmp(o.json, "-") ? fopen(o.json, "w") : stdout;
        if (!json) DIE("cannot write %s", o.json);
        fprintf(json, "{\"libfp8\": \"%s\", \"quick\": %s, \"devices\": [", fp8_version_string(), o.quick ? "true" : "false");
    }
    uint32_t benched = 0;
    for (uint32_t i = 0; i < fp8_context_device_count(ctx); i++) {
        fp8_device_info info;
        fp8_context_device_info(ctx, i, &info);
        if (info.backend == FP8_BACKEND_CPU && !o.cpu) continue;
        if (o.device && !bench_device_matches(o.device, i, &info)) continue;
        bench_device(ctx, i, cpu, &o);
        benched++;
    }
    if (json) {
        fprintf(json, "\n  ]}\n");
        if (json != stdout) fclose(json);
    }
    fp8_device_close(cpu);
    fp8_context_destroy(ctx);
    if (!benched) fprintf(stderr, "fp8bench: no device matched\n");
    if (failures) fprintf(stderr, "fp8bench: %d configuration(s) gave WRONG results\n", failures);
    return failures ? 1 : benched ? 0 : 3;
}
