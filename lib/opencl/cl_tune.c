/* Which GEMM path runs a shape fastest on this device, CLBlast on dequantized bands or the fused tiles:
 * measured on first use per shape class and remembered in the cache directory. */
#include "cl_internal.h"

#include <stdio.h>
#include <string.h>

/* Shapes are measured with at most this many rows of X (the ratio no longer moves much beyond it). */
#define TUNE_MAX_M 4096u

#ifdef FP8_HAVE_CLBLAST

static uint32_t m_bucket(uint32_t m)
{
    uint32_t b = 1;
    while (b < m && b < (1u << 30)) b <<= 1;
    return b;
}

/* cache_dir/opencl-tune-<hash of device and driver>.txt */
static bool tune_path(const fp8_device *dev, char *path, size_t size)
{
    if (!dev->ctx->cache_dir[0]) return false;
    const fp8_device_info *info = &dev->entry->info;
    uint64_t h = 0xcbf29ce484222325ULL;
    const char *parts[3] = {info->name, info->driver_version, info->vendor};
    for (int i = 0; i < 3; i++)
        for (const char *c = parts[i]; ; c++) {
            h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
            if (!*c) break;
        }
    const int n = snprintf(path, size, "%s/opencl-tune-%016llx.txt", dev->ctx->cache_dir, (unsigned long long)h);
    return n > 0 && (size_t)n < size;
}

static void load_tune(const fp8_device *dev, fp8i_cl_device *d)
{
    d->tune_loaded = true;
    char path[600];
    if (!tune_path(dev, path, sizeof path)) return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[256];
    while (d->tune_count < FP8I_CL_MAX_TUNE && fgets(line, sizeof line, f)) {
        fp8i_cl_tune_entry e = {0};
        char name[40];
        if (sscanf(line, "%u %u %u %u %u %39s %lf %lf", &e.m_bucket, &e.n, &e.k, &e.w_dtype, &e.x_dtype, name,
                   &e.ns_tiled, &e.ns_clblast) != 8)
            continue;
        e.path = fp8_path_from_name(name);
        if (e.path == FP8_PATH_CL_GEMM_TILED || e.path == FP8_PATH_CL_CLBLAST) d->tune[d->tune_count++] = e;
    }
    fclose(f);
    FP8I_DEBUG(dev->ctx, "opencl: %u measured path choices loaded from %s", d->tune_count, path);
}

static void save_tune(const fp8_device *dev, const fp8i_cl_tune_entry *e)
{
    char path[600];
    if (!tune_path(dev, path, sizeof path)) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%u %u %u %u %u %s %.0f %.0f\n", e->m_bucket, e->n, e->k, e->w_dtype, e->x_dtype,
            fp8_path_name(e->path), e->ns_tiled, e->ns_clblast);
    fclose(f);
}

/* Device time of one run of `path`, after a warm-up run (which also builds kernels); < 0 on failure. */
static double time_path(fp8_device *dev, fp8i_gemm_args *a, fp8_path path)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    a->path = path;
    if (fp8i_cl_gemm(dev, a) != FP8_OK || clFinish(d->queue) != CL_SUCCESS) return -1.0;
    double best = -1.0;
    for (int rep = 0; rep < 3; rep++) {
        double ns = 0.0;
        if (fp8i_cl_timer_start(dev) != FP8_OK) return -1.0;
        const fp8_status st = fp8i_cl_gemm(dev, a);
        if (fp8i_cl_timer_stop(dev, &ns) != FP8_OK || st != FP8_OK) return -1.0;
        if (best < 0 || ns < best) best = ns;
    }
    return best;
}

/* Run both paths on the caller's W and X into a scratch Y; the caller's timer region, if any, is set aside. */
static fp8_path measure(fp8_device *dev, const fp8i_gemm_args *args, fp8i_cl_tune_entry *e)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    fp8i_gemm_args a = *args;
    a.m = args->m < TUNE_MAX_M ? args->m : TUNE_MAX_M;
    size_t esize = 0, bytes = 0;
    fp8_dtype_storage_size(a.y.dtype, 1, &esize);
    fp8_buffer ybuf = {.dev = dev};
    cl_mem mem = NULL;
    if (!fp8i_mul_size((size_t)a.m * a.n, esize, &bytes) || fp8i_cl_alloc(dev, bytes, &mem) != FP8_OK)
        return FP8_PATH_CL_GEMM_TILED;
    ybuf.size = bytes;
    ybuf.impl = mem;
    a.y = (fp8i_matrix){&ybuf, 0, args->y.dtype, args->n};

    const bool timing = d->timing;
    cl_event first = d->ev_first, last = d->ev_last;
    d->timing = false;
    d->ev_first = d->ev_last = NULL;
    e->ns_tiled = time_path(dev, &a, FP8_PATH_CL_GEMM_TILED);
    e->ns_clblast = time_path(dev, &a, FP8_PATH_CL_CLBLAST);
    d->timing = timing;
    d->ev_first = first;
    d->ev_last = last;
    clReleaseMemObject(mem);

    if (e->ns_clblast < 0) return FP8_PATH_CL_GEMM_TILED;
    if (e->ns_tiled < 0) return FP8_PATH_CL_CLBLAST;
    return e->ns_clblast < e->ns_tiled ? FP8_PATH_CL_CLBLAST : FP8_PATH_CL_GEMM_TILED;
}

#endif

fp8_path fp8i_cl_refine_path(const fp8_device *cdev, const fp8i_gemm_args *a, fp8_path chosen)
{
    if (chosen == FP8_PATH_CL_GEMV) return chosen; /* decode-sized M (lib/ops/gemm.c): nothing to measure */
#ifdef FP8_HAVE_CLBLAST
    /* The device is the caller's, only declared const by the path query: measuring runs work on it. */
    fp8_device *dev = (fp8_device *)cdev;
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    if (!fp8i_cl_clblast_supports(dev, a)) return FP8_PATH_CL_GEMM_TILED;
    if (!d->tune_loaded) load_tune(dev, d);
    fp8i_cl_tune_entry e = {.m_bucket = m_bucket(a->m), .n = a->n, .k = a->k, .w_dtype = (uint32_t)a->w.dtype,
                            .x_dtype = (uint32_t)a->x.dtype};
    for (uint32_t i = 0; i < d->tune_count; i++) {
        const fp8i_cl_tune_entry *t = &d->tune[i];
        if (t->m_bucket == e.m_bucket && t->n == e.n && t->k == e.k && t->w_dtype == e.w_dtype && t->x_dtype == e.x_dtype)
            return t->path;
    }
    e.path = measure(dev, a, &e);
    FP8I_INFO(dev->ctx, "opencl: measured M~%u N=%u K=%u %s x %s on %s: fused tiles %.3f ms, CLBlast %.3f ms -> %s",
              e.m_bucket, e.n, e.k, fp8_dtype_name(a->w.dtype), fp8_dtype_name(a->x.dtype), dev->entry->info.name,
              e.ns_tiled * 1e-6, e.ns_clblast * 1e-6, fp8_path_name(e.path));
    if (d->tune_count < FP8I_CL_MAX_TUNE) d->tune[d->tune_count++] = e;
    save_tune(dev, &e);
    return e.path;
#else
    (void)cdev; (void)chosen;
    return FP8_PATH_CL_GEMM_TILED;
#endif
}
