/* OpenCL MoE performance: the layer and its pieces on a DeepSeek-V2-Lite-like shape (E=64, k=6, H=2048, I=1408,
 * E4M3 experts with 128x128 f32 scales, SwiGLU) for M in {1, 4, 16, 64, 256, 1024}. Device time from profiling
 * events, median of repeated runs after a warm-up. The baseline of the same run is the device's copy
 * bandwidth: a grouped GEMM that reads each active expert's weights once can at best match it.
 *
 * Columns: the row alignment the device chose (1: GEMV kernel, else tiles), active experts, then microseconds
 * per piece; "GB/s" is the active experts' weight bytes (gate/up and down, read once) over the two GEMMs'
 * time, "TFLOP/s" is 2 * M * k * (3 * H * I) over the same time.
 *
 * FP8_TEST_CL_DEVICE=<name part> picks the device; FP8_PERF_MOE_SHAPE="E,k,H,I" changes the shape;
 * FP8_PERF_SMALL=1 (default on CPU devices) shrinks it; FP8_CL_MOE_KERNEL=gemv|tiled forces a kernel and
 * FP8_CL_MOE_ACC=ff|f64|f32 the sums (lib/opencl/cl_moe.c).
 *
 * Rows of decode plans (align 1) are followed by the previous decode kernel's gate_up and down times, taken in
 * the same process (FP8_CL_MOE_GEMV=old, which the library reads at every call), and the default's time over
 * it; FP8_PERF_MOE_OLD=0 leaves them out. */
#include "test_util.h"

#include <math.h>
#include <string.h>

static fp8_device *g_dev;

typedef test_run_fn run_fn;

/* Median device time in ns (tests/util/test_util.c). */
static double time_median(run_fn fn, void *user, int reps) { return test_time_median(g_dev, fn, user, reps); }

/* `bytes` of one random block, repeated `copies` times (experts need not differ to be read). */
static fp8_buffer *repeated_buffer(const void *block, size_t bytes, uint32_t copies)
{
    fp8_buffer *b = NULL;
    if (fp8_buffer_create(g_dev, bytes * copies, &b) != FP8_OK) return NULL;
    for (uint32_t i = 0; i < copies; i++) fp8_buffer_write(b, (size_t)i * bytes, block, bytes);
    return b;
}

static fp8_buffer *random_floats(test_rng *rng, size_t count, float amp)
{
    float *h = malloc(count * 4);
    for (size_t i = 0; i < count; i++) h[i] = amp * test_rng_normal(rng);
    fp8_buffer *b = NULL;
    if (fp8_buffer_create(g_dev, count * 4, &b) == FP8_OK) fp8_buffer_write(b, 0, h, count * 4);
    free(h);
    return b;
}

static fp8_buffer *random_experts(test_rng *rng, uint32_t e, size_t n, size_t k, fp8_buffer **scales)
{
    uint8_t *w = malloc(n * k);
    for (size_t i = 0; i < n * k; i++) w[i] = (uint8_t)fp8_encode_value(FP8_E4M3FN, test_rng_normal(rng) * 64.0f, FP8_OVERFLOW_SATURATE);
    const size_t sc = ((n + 127) / 128) * ((k + 127) / 128);
    float *s = malloc(sc * 4);
    for (size_t i = 0; i < sc; i++) s[i] = test_rng_uniform(rng, 0.5f, 2.0f) / (64.0f * sqrtf((float)k));
    fp8_buffer *b = repeated_buffer(w, n * k, e);
    *scales = repeated_buffer(s, sc * 4, e);
    free(w);
    free(s);
    return b;
}

typedef struct bench {
    uint32_t m, e, k, h, i, align, rows;
    fp8_moe_layer_desc layer;
    fp8_moe_route_desc route;
    fp8_moe_group_desc group;
    fp8_moe_gemm_desc gate_up, down;
    fp8_moe_combine_desc combine;
} bench;

static fp8_status run_route_group(void *u)
{
    bench *b = u;
    fp8_status st = fp8_moe_route(g_dev, &b->route);
    return st == FP8_OK ? fp8_moe_group(g_dev, &b->group) : st;
}
static fp8_status run_gate_up(void *u) { return fp8_moe_grouped_gemm(g_dev, &((bench *)u)->gate_up); }
static fp8_status run_down(void *u) { return fp8_moe_grouped_gemm(g_dev, &((bench *)u)->down); }
static fp8_status run_gemms(void *u)
{
    fp8_status st = run_gate_up(u);
    return st == FP8_OK ? run_down(u) : st;
}
static fp8_status run_combine(void *u) { return fp8_moe_combine(g_dev, &((bench *)u)->combine); }
static fp8_status run_layer(void *u) { return fp8_moe_layer(g_dev, &((bench *)u)->layer); }
/* fn's median time with FP8_CL_MOE_GEMV=old, the variable restored after. */
static double time_old_gemv(run_fn fn, void *user, int reps)
{
    const char *prev = getenv("FP8_CL_MOE_GEMV");
    char saved[64] = "";
    if (prev) snprintf(saved, sizeof saved, "%s", prev);
    setenv("FP8_CL_MOE_GEMV", "old", 1);
    const double ns = time_median(fn, user, reps);
    if (prev) setenv("FP8_CL_MOE_GEMV", saved, 1);
    else unsetenv("FP8_CL_MOE_GEMV");
    return ns;
}

static fp8_status run_copy(void *u)
{
    fp8_buffer **bufs = u;
    return fp8_buffer_copy(bufs[1], 0, bufs[0], 0, 256u << 20);
}

int main(void)
{
    fp8_context_options opts = {.log = test_log, .disable_backends = 1u << FP8_BACKEND_VULKAN};
    fp8_context *ctx = NULL;
    CHECK_STATUS(fp8_context_create(&opts, &ctx), FP8_OK);
    const uint32_t idx = test_find_opencl_device(ctx);
    CHECK_STATUS(fp8_device_open(ctx, idx, &g_dev), FP8_OK);
    if (!g_dev) return test_finish("perf_cl_moe");
    fp8_device_info info;
    fp8_device_get_info(g_dev, &info, NULL);
    const char *small_env = getenv("FP8_PERF_SMALL");
    const bool small = small_env ? atoi(small_env) != 0 : info.type == FP8_DEVICE_CPU;
    uint32_t E = 64, K = 6, H = 2048, I = 1408;
    if (small) { E = 16; K = 4; H = 256; I = 128; }
    const char *shape = getenv("FP8_PERF_MOE_SHAPE");
    if (shape && sscanf(shape, "%u,%u,%u,%u", &E, &K, &H, &I) != 4) test_skip("FP8_PERF_MOE_SHAPE=%s is not E,k,H,I", shape);
    printf("OpenCL device: %s (%s); E=%u k=%u H=%u I=%u, e4m3 128x128, swiglu, f32 activations\n", info.name,
           info.api_version, E, K, H, I);

    /* Baseline: copy bandwidth (read + write) over 256 MiB. */
    fp8_buffer *cb[2] = {NULL, NULL};
    double copy_gbs = 0;
    if (!small && fp8_buffer_create(g_dev, 256u << 20, &cb[0]) == FP8_OK && fp8_buffer_create(g_dev, 256u << 20, &cb[1]) == FP8_OK) {
        const double ns = time_median(run_copy, cb, 9);
        copy_gbs = ns > 0 ? 2.0 * (256u << 20) / ns : 0;
        printf("copy bandwidth: %.0f GB/s (read + write)\n", copy_gbs);
    }
    fp8_buffer_free(cb[0]);
    fp8_buffer_free(cb[1]);

    test_rng rng = {0x5eed};
    fp8_buffer *gus = NULL, *dns = NULL;
    fp8_buffer *gu = random_experts(&rng, E, 2 * (size_t)I, H, &gus), *dn = random_experts(&rng, E, H, I, &dns);
    CHECK(gu && dn && gus && dns, "cannot allocate %u experts", E);
    if (!gu || !dn) return test_finish("perf_cl_moe");
    const fp8_scale_layout blk = {.kind = FP8_SCALE_BLOCK, .dtype = FP8_F32, .block_rows = 128, .block_cols = 128};
    const fp8_moe_weights wgu = {.w = {.buffer = gu, .dtype = FP8_E4M3FN}, .scales = {.layout = blk, .buffer = gus}};
    const fp8_moe_weights wdn = {.w = {.buffer = dn, .dtype = FP8_E4M3FN}, .scales = {.layout = blk, .buffer = dns}};
    const double expert_bytes = 3.0 * H * I;
    const char *old_env = getenv("FP8_PERF_MOE_OLD");
    const bool old_too = !(old_env && strcmp(old_env, "0") == 0);

    printf("%6s %5s %6s %9s %9s %9s %9s %9s %8s %8s\n", "M", "align", "active", "route+grp", "gate_up", "down", "combine",
           "layer", "GB/s", "TFLOP/s");
    const uint32_t ms[] = {1, 4, 16, 64, 256, 1024};
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
        bench b = {.m = ms[mi], .e = E, .k = K, .h = H, .i = I};
        if (small && b.m > 64) break;
        fp8_moe_row_align(g_dev, b.m, K, E, &b.align);
        size_t pbytes;
        CHECK_STATUS(fp8_moe_plan_size(b.m, K, E, b.align, &pbytes, &b.rows), FP8_OK);
        fp8_buffer *x = random_floats(&rng, (size_t)b.m * H, 1.0f), *logits = random_floats(&rng, (size_t)b.m * E, 2.0f);
        fp8_buffer *ids = NULL, *wts = NULL, *plan = NULL, *hbuf = NULL, *obuf = NULL, *y = NULL, *scratch = NULL;
        fp8_buffer_create(g_dev, (size_t)b.m * K * 4, &ids);
        fp8_buffer_create(g_dev, (size_t)b.m * K * 4, &wts);
        fp8_buffer_create(g_dev, pbytes, &plan);
        fp8_buffer_create(g_dev, (size_t)b.rows * I * 4, &hbuf);
        fp8_buffer_create(g_dev, (size_t)b.rows * H * 4, &obuf);
        fp8_buffer_create(g_dev, (size_t)b.m * H * 4, &y);
        const fp8_moe_plan p = {.buffer = plan, .m = b.m, .top_k = K, .experts = E, .row_align = b.align};
        b.route = (fp8_moe_route_desc){.m = b.m, .experts = E, .top_k = K, .logits = {.buffer = logits, .dtype = FP8_F32},
                                       .router = {.renormalize = 1}, .ids = {.buffer = ids, .dtype = FP8_I32},
                                       .weights = {.buffer = wts, .dtype = FP8_F32}};
        b.group = (fp8_moe_group_desc){.ids = b.route.ids, .plan = p};
        b.gate_up = (fp8_moe_gemm_desc){.plan = p, .n = 2 * I, .k = H, .weights = wgu, .x = {.buffer = x, .dtype = FP8_F32},
                                        .x_gathered = 1, .activation = FP8_MOE_ACT_SWIGLU,
                                        .y = {.buffer = hbuf, .dtype = FP8_F32}};
        b.down = (fp8_moe_gemm_desc){.plan = p, .n = H, .k = I, .weights = wdn, .x = {.buffer = hbuf, .dtype = FP8_F32},
                                     .y = {.buffer = obuf, .dtype = FP8_F32}};
        b.combine = (fp8_moe_combine_desc){.plan = p, .hidden = H, .rows = {.buffer = obuf, .dtype = FP8_F32},
                                           .weights = b.route.weights, .y = {.buffer = y, .dtype = FP8_F32}};
        b.layer = (fp8_moe_layer_desc){.m = b.m, .experts = E, .top_k = K, .hidden = H, .intermediate = I,
                                       .x = {.buffer = x, .dtype = FP8_F32}, .y = {.buffer = y, .dtype = FP8_F32},
                                       .logits = b.route.logits, .router = b.route.router,
                                       .activation = FP8_MOE_ACT_SWIGLU, .gate_up = wgu, .down = wdn};
        size_t sbytes = 0;
        CHECK_STATUS(fp8_moe_layer_scratch_size(g_dev, &b.layer, &sbytes), FP8_OK);
        fp8_buffer_create(g_dev, sbytes, &scratch);
        b.layer.scratch = scratch;

        const int reps = b.m >= 256 ? 5 : 11;
        const double t_rg = time_median(run_route_group, &b, reps);
        uint32_t header[16] = {0};
        fp8_buffer_read(plan, 0, header, sizeof header);
        const uint32_t active = header[8];
        const double t_gu = time_median(run_gate_up, &b, reps), t_dn = time_median(run_down, &b, reps);
        const double t_both = time_median(run_gemms, &b, reps);
        const double t_cb = time_median(run_combine, &b, reps), t_ly = time_median(run_layer, &b, reps);
        CHECK(t_rg > 0 && t_gu > 0 && t_dn > 0 && t_cb > 0 && t_ly > 0 && t_both > 0, "M=%u: a piece failed", b.m);
        const double gbs = active * expert_bytes / t_both, tflops = 2.0 * b.m * K * expert_bytes / t_both * 1e-3;
        printf("%6u %5u %6u %9.1f %9.1f %9.1f %9.1f %9.1f %8.1f %8.3f\n", b.m, b.align, active, t_rg * 1e-3, t_gu * 1e-3,
               t_dn * 1e-3, t_cb * 1e-3, t_ly * 1e-3, gbs, tflops);
        const char *forced = getenv("FP8_CL_MOE_KERNEL");
        if (old_too && b.align == 1 && !(forced && strcmp(forced, "tiled") == 0)) {
            const double o_gu = time_old_gemv(run_gate_up, &b, reps), o_dn = time_old_gemv(run_down, &b, reps);
            CHECK(o_gu > 0 && o_dn > 0, "M=%u: the previous decode kernel failed", b.m);
            printf("%6s previous decode kernel: gate_up %.1f, down %.1f; this one's time over it %.2fx, %.2fx\n", "",
                   o_gu * 1e-3, o_dn * 1e-3, o_gu > 0 ? t_gu / o_gu : 0, o_dn > 0 ? t_dn / o_dn : 0);
        }
        fp8_buffer *bufs[] = {x, logits, ids, wts, plan, hbuf, obuf, y, scratch};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) fp8_buffer_free(bufs[i]);
    }
    if (copy_gbs > 0) printf("(copy bandwidth %.0f GB/s is the ceiling of the GB/s column)\n", copy_gbs);
    fp8_buffer_free(gu); fp8_buffer_free(dn); fp8_buffer_free(gus); fp8_buffer_free(dns);
    fp8_device_close(g_dev);
    fp8_context_destroy(ctx);
    return test_finish("perf_cl_moe");
}
