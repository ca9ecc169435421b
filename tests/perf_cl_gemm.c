/* OpenCL GEMM performance against baselines measured in the same run: the device's copy bandwidth (GEMV),
 * an fp32 kernel of the same design reading fp32 weights (M <= 16), and CLBlast SGEMM on dequantized weights
 * (large M). Device time from profiling events, median of repeated runs after a warm-up, random data.
 *
 * FP8_TEST_CL_DEVICE=<name part> picks the device; FP8_PERF_SMALL=1 (default on CPU devices) shrinks shapes;
 * FP8_PERF_SWEEP=1 also times kernel shape variants (GEMV K-slices, GEMM tiles). */
#include "test_util.h"

#include "opencl/cl_internal.h"

#include <math.h>
#include <string.h>

static fp8_device *g_dev;
static bool g_small;

typedef test_run_fn run_fn;

/* Median device time in ns (tests/util/test_util.c). */
static double time_median(run_fn fn, void *user, int reps) { return test_time_median(g_dev, fn, user, reps); }

static fp8_buffer *random_buffer(size_t bytes, fp8_dtype dt, test_rng *rng)
{
    uint8_t *h = malloc(bytes);
    if (dt == FP8_F32) {
        for (size_t i = 0; i + 4 <= bytes; i += 4) {
            const float f = test_rng_uniform(rng, -1.0f, 1.0f);
            memcpy(h + i, &f, 4);
        }
    } else if (dt == FP8_F16) {
        for (size_t i = 0; i + 2 <= bytes; i += 2) {
            const uint16_t v = (uint16_t)fp8_encode_value(FP8_F16, test_rng_uniform(rng, -1.0f, 1.0f), FP8_OVERFLOW_CAST);
            memcpy(h + i, &v, 2);
        }
    } else {
        for (size_t i = 0; i < bytes; i++) {
            uint8_t c = (uint8_t)test_rng_next(rng);
            if (dt == FP8_E8M0) c = (uint8_t)(120 + c % 8);
            else if (dt == FP8_E4M3FN && (c & 0x7f) == 0x7f) c = 0; /* no NaN codes */
            h[i] = c;
        }
    }
    fp8_buffer *b = NULL;
    if (fp8_buffer_create(g_dev, bytes, &b) == FP8_OK) fp8_buffer_write(b, 0, h, bytes);
    free(h);
    return b;
}

/* ---- runners ---- */

typedef struct copy_job { fp8_buffer *a, *b; size_t bytes; } copy_job;
static fp8_status run_copy(void *u)
{
    copy_job *j = u;
    return fp8_buffer_copy(j->b, 0, j->a, 0, j->bytes);
}

static fp8_status run_gemm(void *u) { return fp8_gemm(g_dev, (const fp8_gemm_desc *)u); }

static fp8_status run_sgemm_fused(void *u) { return fp8i_cl_sgemm_fused(g_dev, (const fp8_bench_desc *)u); }

static fp8_status run_bench(void *u)
{
    double flop;
    return fp8_device_bench_run(g_dev, (const fp8_bench_desc *)u, &flop);
}

/* A quantized GEMM setup with random data: W [N,K] with `wl` scales, X [M,K] f32 or f16, Y f32. */
typedef struct gemm_setup {
    fp8_gemm_desc g;
    fp8_buffer *w, *ws, *x, *y;
    size_t w_bytes;
} gemm_setup;

static bool setup_gemm(gemm_setup *s, uint32_t m, uint32_t n, uint32_t k, fp8_dtype w, fp8_scale_layout wl,
                       fp8_dtype x, test_rng *rng)
{
    memset(s, 0, sizeof *s);
    size_t sc = 0, wb = 0;
    fp8_scale_count(&wl, n, k, &sc);
    fp8_dtype_storage_size(w, (size_t)n * k, &wb);
    s->w_bytes = wb;
    s->w = random_buffer(wb, w, rng);
    s->ws = sc ? random_buffer(sc * (fp8_dtype_bits(wl.dtype) / 8), wl.dtype, rng) : NULL;
    s->x = random_buffer((size_t)m * k * (fp8_dtype_bits(x) / 8), x, rng);
    if (fp8_buffer_create(g_dev, (size_t)m * n * 4, &s->y) != FP8_OK) s->y = NULL;
    if (!s->w || (sc && !s->ws) || !s->x || !s->y) return false;
    s->g = (fp8_gemm_desc){.m = m, .n = n, .k = k, .w = {s->w, 0, w, 0}, .w_scales = {wl, s->ws, 0, 0},
                           .x = {s->x, 0, x, 0}, .y = {s->y, 0, FP8_F32, 0}};
    return true;
}

static void free_gemm(gemm_setup *s)
{
    fp8_buffer_free(s->w); fp8_buffer_free(s->ws); fp8_buffer_free(s->x); fp8_buffer_free(s->y);
}


static void report(const char *what, double ns, double bytes, double flop, const char *vs, double ratio)
{
    if (ns <= 0) {
        printf("%-44s FAILED\n", what);
        return;
    }
    printf("%-44s %9.3f ms", what, ns * 1e-6);
    if (bytes > 0) printf(" %8.1f GB/s", bytes / ns);
    if (flop > 0) printf(" %8.2f TFLOP/s", flop / ns * 1e-3);
    if (vs) printf("   %.2fx %s", ratio, vs);
    printf("\n");
}

/* One GEMV on the GEMV path: its median time (ns, -1 where it could not be set up), reported as a share of the copy
 * bandwidth over the bytes of weights, scales, activations and output. */
static double time_gemv(uint32_t m, uint32_t n, uint32_t k, fp8_dtype w, fp8_scale_layout wl, fp8_dtype x,
                        const char *label, test_rng *rng, int reps, double copy_bw)
{
    gemm_setup s;
    double t = -1;
    if (setup_gemm(&s, m, n, k, w, wl, x, rng)) {
        s.g.path = FP8_PATH_CL_GEMV;
        t = time_median(run_gemm, &s.g, reps);
        size_t sc = 0;
        fp8_scale_count(&wl, n, k, &sc);
        const double bytes = (double)s.w_bytes + (double)sc * (fp8_dtype_bits(wl.dtype) / 8) +
                             (double)m * k * (fp8_dtype_bits(x) / 8) + (double)m * n * 4;
        char what[96];
        snprintf(what, sizeof what, "%s M=%-2u N=%u K=%u", label, m, n, k);
        report(what, t, bytes, 2.0 * m * n * k, "of copy bandwidth", bytes / t / copy_bw);
    }
    free_gemm(&s);
    return t;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* results survive a timeout */
    fp8_context_options opts = {.log = test_log, .log_level = FP8_LOG_WARN, .disable_backends = 1u << FP8_BACKEND_VULKAN};
    fp8_context *ctx = NULL;
    if (fp8_context_create(&opts, &ctx) != FP8_OK) return 1;
    const uint32_t idx = test_find_opencl_device(ctx);
    if (fp8_device_open(ctx, idx, &g_dev) != FP8_OK) return 1;
    fp8_device_info info;
    fp8_device_get_info(g_dev, &info, NULL);
    g_small = info.type == FP8_DEVICE_CPU || fp8i_env_flag("FP8_PERF_SMALL");
    printf("device: %s, %s%s\n", info.name, info.driver_version, g_small ? " (small shapes)" : "");
    test_rng rng = {42};
    const int reps = g_small ? 5 : 25;

    /* Copy bandwidth: bytes read plus bytes written per second. */
    copy_job cj = {.bytes = g_small ? (16u << 20) : (512u << 20)};
    cj.a = random_buffer(cj.bytes, FP8_E5M2, &rng);
    fp8_buffer_create(g_dev, cj.bytes, &cj.b);
    const double t_copy = time_median(run_copy, &cj, reps);
    const double copy_bw = 2.0 * cj.bytes / t_copy;
    report("copy (read + write)", t_copy, 2.0 * cj.bytes, 0, NULL, 0);
    fp8_buffer_free(cj.a);
    fp8_buffer_free(cj.b);

    /* GEMV: weights larger than any last-level cache. */
    const uint32_t gn = g_small ? 2048 : 16384, gk = g_small ? 2048 : 8192;
    const fp8_scale_layout ds = {FP8_SCALE_BLOCK, FP8_F32, 128, 128}, mx = {FP8_SCALE_BLOCK, FP8_E8M0, 1, 32};
    const uint32_t ms[2] = {1, 16};
    for (int mi = 0; mi < 2; mi++) {
        const uint32_t m = ms[mi];
        char what[96];
        const double t_fp8 = time_gemv(m, gn, gk, FP8_E4M3FN, ds, FP8_F32, "gemv e4m3fn 128x128 ", &rng, reps, copy_bw);
        /* f16 activations: at 16 tokens the tensor-core GEMV where the device has it (cl/gemv_mma.cl) */
        const double t_fp8h = time_gemv(m, gn, gk, FP8_E4M3FN, ds, FP8_F16, "gemv e4m3fn x f16   ", &rng, reps, copy_bw);
        time_gemv(m, gn, gk, FP8_E2M1, mx, FP8_F32, "gemv mxfp4 1x32     ", &rng, reps, copy_bw);
        /* The same GEMV design reading fp32 weights. */
        fp8_bench_desc d = {FP8_BENCH_SGEMM_F32, m, gn, gk, NULL, NULL, NULL, 0};
        d.a = random_buffer((size_t)m * gk * 4, FP8_F32, &rng);
        d.b = random_buffer((size_t)gn * gk * 4, FP8_F32, &rng);
        fp8_buffer_create(g_dev, (size_t)m * gn * 4, &d.c);
        if (d.a && d.b && d.c) {
            const double t = time_median(run_sgemm_fused, &d, reps);
            snprintf(what, sizeof what, "gemv f32 weights     M=%-2u N=%u K=%u", m, gn, gk);
            report(what, t, (double)gn * gk * 4, 2.0 * m * gn * gk, "time of the e4m3fn gemv", t / t_fp8);
            if (t_fp8h > 0) printf("%-44s %.2fx the time of the e4m3fn x f16 gemv\n", "", t / t_fp8h);
        }
        fp8_buffer_free(d.a); fp8_buffer_free(d.b); fp8_buffer_free(d.c);
    }

    /* Large M: fused tiles and the CLBlast path on FP8 weights vs CLBlast SGEMM on fp32 weights. */
    const uint32_t bm = g_small ? 256 : 4096, bn = g_small ? 512 : 8192, bk = g_small ? 512 : 8192;
    gemm_setup s;
    char what[96];
    const double flop = 2.0 * bm * bn * bk;
    fp8_bench_desc d = {FP8_BENCH_SGEMM_F32, bm, bn, bk, NULL, NULL, NULL, 0};
    d.a = random_buffer((size_t)bm * bk * 4, FP8_F32, &rng);
    d.b = random_buffer((size_t)bn * bk * 4, FP8_F32, &rng);
    fp8_buffer_create(g_dev, (size_t)bm * bn * 4, &d.c);
    double t_sgemm = -1;
    if (d.a && d.b && d.c) {
        t_sgemm = time_median(run_bench, &d, reps);
        snprintf(what, sizeof what, "sgemm f32 (%s) M=%u N=%u K=%u",
                 (fp8_build_features() & FP8_BUILD_CLBLAST) ? "CLBlast" : "fused", bm, bn, bk);
        report(what, t_sgemm, 0, flop, NULL, 0);
        const double t = time_median(run_sgemm_fused, &d, reps);
        snprintf(what, sizeof what, "gemm_tiled f32 weights M=%u N=%u K=%u", bm, bn, bk);
        report(what, t, 0, flop, "of sgemm throughput", t_sgemm / t);
    }
    fp8_buffer_free(d.a); fp8_buffer_free(d.b); fp8_buffer_free(d.c);
    const fp8_path paths[2] = {FP8_PATH_CL_GEMM_TILED, FP8_PATH_CL_CLBLAST};
    const fp8_dtype xs[2] = {FP8_F32, FP8_F16};
    for (int xi = 0; xi < 2; xi++) {
        if (!setup_gemm(&s, bm, bn, bk, FP8_E4M3FN, ds, xs[xi], &rng)) { free_gemm(&s); continue; }
        for (int pi = 0; pi < 2; pi++) {
            s.g.path = paths[pi];
            fp8_path chosen;
            if (fp8_gemm_select_path(g_dev, &s.g, &chosen) != FP8_OK) continue;
            const double t = time_median(run_gemm, &s.g, reps);
            snprintf(what, sizeof what, "%s e4m3fn x %s M=%u N=%u K=%u", fp8_path_name(paths[pi]),
                     fp8_dtype_name(xs[xi]), bm, bn, bk);
            report(what, t, 0, flop, "of sgemm throughput", t_sgemm / t);
        }
        s.g.path = FP8_PATH_AUTO;
        fp8_path chosen = FP8_PATH_AUTO;
        fp8_gemm_select_path(g_dev, &s.g, &chosen);
        printf("%-44s %s\n", "  automatic choice (measured)", fp8_path_name(chosen));
        free_gemm(&s);
    }

    /* FP8_PERF_SWEEP=1: kernel shape variants through the backend's tuning hooks. */
    if (fp8i_env_flag("FP8_PERF_SWEEP")) {
        fp8i_cl_device *cd = fp8i_cl_dev(g_dev);
        for (int mi = 0; mi < 2; mi++) {
            gemm_setup gs;
            if (!setup_gemm(&gs, ms[mi], gn, gk, FP8_E4M3FN, ds, FP8_F32, &rng)) { free_gemm(&gs); continue; }
            gs.g.path = FP8_PATH_CL_GEMV;
            const double bytes = (double)gs.w_bytes;
            /* tokens per pass, rows per warp, loads in flight, warps per group */
            const fp8i_cl_gemv_shape shapes[] = {{1, 2, 2, 8, 1}, {1, 4, 2, 4, 1}, {1, 4, 1, 8, 1},
                                                 {4, 8, 1, 4, 1}, {8, 8, 1, 4, 1}, {8, 4, 1, 4, 1}};
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
                if ((shapes[i].tokens == 1) != (ms[mi] == 1)) continue;
                cd->gemv_shape = shapes[i];
                const double t = time_median(run_gemm, &gs.g, reps);
                snprintf(what, sizeof what, "  sweep gemv M=%u shape %ux%u, %u loads, %u warps", ms[mi],
                         shapes[i].tokens, shapes[i].rows, shapes[i].loads, shapes[i].warps);
                report(what, t, bytes, 0, "of copy bandwidth", bytes / t / copy_bw);
            }
            cd->gemv_shape = (fp8i_cl_gemv_shape){0, 0, 0, 0, 0};
            free_gemm(&gs);
        }
        const fp8i_cl_tiles keep = cd->tiles;
        const fp8i_cl_tiles shapes[] = {{128, 128, 32, 8, 8}, {128, 128, 16, 8, 8}, {64, 64, 32, 4, 4}};
        gemm_setup gs;
        if (setup_gemm(&gs, bm, bn, bk, FP8_E4M3FN, ds, FP8_F32, &rng)) {
            gs.g.path = FP8_PATH_CL_GEMM_TILED;
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
                cd->tiles = shapes[i];
                const double t = time_median(run_gemm, &gs.g, 5);
                snprintf(what, sizeof what, "  sweep tiles %ux%ux%u %ux%u", shapes[i].bm, shapes[i].bn, shapes[i].bk,
                         shapes[i].tm, shapes[i].tn);
                report(what, t, 0, flop, "of sgemm throughput", t_sgemm / t);
            }
        }
        cd->tiles = keep;
        free_gemm(&gs);
    }

    /* The FMA peak. */
    fp8_buffer *sink = NULL;
    if (fp8_buffer_create(g_dev, 4096, &sink) == FP8_OK) {
        fp8_bench_desc pk = {.kernel = FP8_BENCH_MATRIX_PEAK_F16, .c = sink};
        double pflop = 0;
        fp8_device_bench_run(g_dev, &pk, &pflop);
        const double t = time_median(run_bench, &pk, reps);
        report("fp32 FMA peak (registers only)", t, 0, pflop, NULL, 0);
    }
    fp8_buffer_free(sink);

    fp8_device_close(g_dev);
    fp8_context_destroy(ctx);
    return 0;
}
