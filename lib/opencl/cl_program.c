/* OpenCL programs: the embedded sources built per device with per-device options, cached on disk as
 * binaries keyed by a hash of source, options, device and driver (PoCL and NVIDIA compile slowly). */
#include "cl_internal.h"

#include "cl/fp8_cl_kernels.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Bumped when the cache file format or the meaning of a key changes. */
#define CACHE_TAG "libfp8-opencl-1"

static const char *const prog_names[FP8I_CL_PROG_COUNT_] = {"gemv", "gemm", "util", "gemv_mma"};

static const char *prog_body(fp8i_cl_prog p)
{
    switch (p) {
    case FP8I_CL_PROG_GEMV: return fp8i_cl_src_gemv_cl;
    case FP8I_CL_PROG_GEMM: return fp8i_cl_src_gemm_cl;
    case FP8I_CL_PROG_GEMV_MMA: return fp8i_cl_src_gemv_mma_cl;
    default: return fp8i_cl_src_util_cl;
    }
}

/* Two FNV-1a 64 streams with different offsets: a 128-bit key, collision-free in practice. */
typedef struct hash128 { uint64_t a, b; } hash128;

static void hash_bytes(hash128 *h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h->a = (h->a ^ p[i]) * 0x100000001b3ULL;
        h->b = (h->b ^ p[i]) * 0x100000001b3ULL;
    }
    /* A separator, so that ("ab","c") and ("a","bc") differ. */
    const unsigned char sep[8] = {0xff, (unsigned char)n, (unsigned char)(n >> 8), (unsigned char)(n >> 16),
                                  (unsigned char)(n >> 24), 0xfe, 0xfd, 0xfc};
    for (size_t i = 0; i < sizeof sep; i++) {
        h->a = (h->a ^ sep[i]) * 0x100000001b3ULL;
        h->b = (h->b ^ sep[i]) * 0x100000001b3ULL;
    }
}

static void hash_str(hash128 *h, const char *s) { hash_bytes(h, s, strlen(s)); }

static void hash_device_info(hash128 *h, cl_platform_id platform, cl_device_id device, cl_device_info what)
{
    char buf[512] = "";
    clGetDeviceInfo(device, what, sizeof buf, buf, NULL);
    buf[sizeof buf - 1] = '\0';
    hash_str(h, buf);
    (void)platform;
}

static bool cache_path(const fp8_device *dev, const char *const *sources, size_t count, const char *options,
                       char *path, size_t size)
{
    const fp8i_cl_device *d = fp8i_cl_dev(dev);
    if (!dev->ctx->cache_dir[0]) return false;
    hash128 h = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL};
    hash_str(&h, CACHE_TAG);
    for (size_t i = 0; i < count; i++) hash_str(&h, sources[i]);
    hash_str(&h, options);
    hash_device_info(&h, d->platform, d->device, CL_DEVICE_NAME);
    hash_device_info(&h, d->platform, d->device, CL_DEVICE_VENDOR);
    hash_device_info(&h, d->platform, d->device, CL_DRIVER_VERSION);
    hash_device_info(&h, d->platform, d->device, CL_DEVICE_VERSION);
    char pver[256] = "";
    clGetPlatformInfo(d->platform, CL_PLATFORM_VERSION, sizeof pver, pver, NULL);
    pver[sizeof pver - 1] = '\0';
    hash_str(&h, pver);
    int n = snprintf(path, size, "%s/opencl-%016llx%016llx.bin", dev->ctx->cache_dir, (unsigned long long)h.a,
                     (unsigned long long)h.b);
    return n > 0 && (size_t)n < size;
}

/* Pass the build log to the log callback, in pieces that fit one message. */
static void log_build_log(const fp8_device *dev, cl_program program, fp8_log_level level)
{
    const fp8i_cl_device *d = fp8i_cl_dev(dev);
    size_t size = 0;
    if (clGetProgramBuildInfo(program, d->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &size) != CL_SUCCESS || size < 2)
        return;
    char *log = fp8i_malloc(dev->ctx, size + 1);
    if (!log) return;
    if (clGetProgramBuildInfo(program, d->device, CL_PROGRAM_BUILD_LOG, size, log, NULL) == CL_SUCCESS) {
        log[size] = '\0';
        const size_t piece = 900;
        const size_t len = strlen(log);
        for (size_t at = 0, part = 1; at < len && part <= 40; at += piece, part++)
            fp8i_log(dev->ctx, level, "opencl build log (%zu): %.*s", part, (int)piece, log + at);
    }
    fp8i_free(dev->ctx, log);
}

static cl_program load_cached(fp8_device *dev, const char *path, const char *options)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    cl_program program = NULL;
    unsigned char *bin = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len > 0 && fseek(f, 0, SEEK_SET) == 0 && (bin = fp8i_malloc(dev->ctx, (size_t)len)) != NULL &&
        fread(bin, 1, (size_t)len, f) == (size_t)len) {
        const size_t blen = (size_t)len;
        const unsigned char *bins[1] = {bin};
        cl_int bin_status = CL_SUCCESS, err = CL_SUCCESS;
        program = clCreateProgramWithBinary(d->context, 1, &d->device, &blen, bins, &bin_status, &err);
        if (err != CL_SUCCESS || bin_status != CL_SUCCESS ||
            clBuildProgram(program, 1, &d->device, options, NULL, NULL) != CL_SUCCESS) {
            FP8I_INFO(dev->ctx, "opencl: cached program %s is unusable (cl error %d/%d); rebuilding", path, (int)err,
                      (int)bin_status);
            if (program) clReleaseProgram(program);
            program = NULL;
        }
    }
    fclose(f);
    fp8i_free(dev->ctx, bin);
    if (!program) remove(path);
    return program;
}

/* Best effort: a cache that cannot be written only costs compile time next run. */
static void save_cached(fp8_device *dev, const char *path, cl_program program)
{
    size_t size = 0;
    if (clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS || size == 0) return;
    unsigned char *bin = fp8i_malloc(dev->ctx, size);
    if (!bin) return;
    unsigned char *bins[1] = {bin};
    char tmp[600];
    if (clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS &&
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) < (int)sizeof tmp) {
        FILE *f = fopen(tmp, "wb");
        bool ok = f && fwrite(bin, 1, size, f) == size;
        if (f && fclose(f) != 0) ok = false;
        if (ok && rename(tmp, path) == 0) FP8I_DEBUG(dev->ctx, "opencl: cached program binary %s", path);
        else {
            if (f) remove(tmp);
            FP8I_INFO(dev->ctx, "opencl: could not write the program cache %s (%s)", path, strerror(errno));
        }
    }
    fp8i_free(dev->ctx, bin);
}

static fp8_status build(fp8_device *dev, const char *const *sources, size_t count, const char *options, bool quiet,
                        cl_program *out)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    *out = NULL;
    char path[600];
    const bool cached = cache_path(dev, sources, count, options, path, sizeof path);
    if (cached && (*out = load_cached(dev, path, options)) != NULL) {
        FP8I_DEBUG(dev->ctx, "opencl: program loaded from the cache %s", path);
        return FP8_OK;
    }
    cl_int err = CL_SUCCESS;
    cl_program program = clCreateProgramWithSource(d->context, (cl_uint)count, (const char **)sources, NULL, &err);
    if (err != CL_SUCCESS) return fp8i_cl_status(dev->ctx, err, "clCreateProgramWithSource");
    err = clBuildProgram(program, 1, &d->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        log_build_log(dev, program, quiet ? FP8_LOG_DEBUG : FP8_LOG_ERROR);
        clReleaseProgram(program);
        if (quiet) return FP8_ERR_KERNEL_BUILD;
        return FP8I_FAIL(dev->ctx, FP8_ERR_KERNEL_BUILD, "opencl: program build failed on %s (cl error %d, options \"%s\")",
                         dev->entry->info.name, (int)err, options);
    }
    log_build_log(dev, program, FP8_LOG_DEBUG); /* warnings, if any */
    if (cached) save_cached(dev, path, program);
    *out = program;
    return FP8_OK;
}

fp8_status fp8i_cl_build(fp8_device *dev, const char *const *sources, size_t count, const char *options,
                         cl_program *out)
{
    return build(dev, sources, count, options, false, out);
}

static fp8_status get_program(fp8_device *dev, fp8i_cl_prog prog, const char *defines, cl_program *out)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    char options[512];
    int n = snprintf(options, sizeof options, "%s%s %s %s", d->std_option, d->decode_options, defines,
                     d->test_extra_options);
    if (n < 0 || (size_t)n >= sizeof options) return FP8I_FAIL(dev->ctx, FP8_ERR_INTERNAL, "opencl: options too long");
    char key[FP8I_CL_KEY_MAX];
    n = snprintf(key, sizeof key, "%s|%s", prog_names[prog], options);
    if (n < 0 || (size_t)n >= sizeof key) return FP8I_FAIL(dev->ctx, FP8_ERR_INTERNAL, "opencl: program key too long");
    for (uint32_t i = 0; i < d->program_count; i++) {
        if (strcmp(d->programs[i].key, key) == 0) {
            *out = d->programs[i].program;
            return *out ? FP8_OK
                        : FP8I_FAIL(dev->ctx, FP8_ERR_KERNEL_BUILD, "opencl: program %s failed to build earlier", key);
        }
    }
    if (d->program_count >= FP8I_CL_MAX_PROGRAMS)
        return FP8I_FAIL(dev->ctx, FP8_ERR_INTERNAL, "opencl: too many program variants");

    const char *sources[3] = {fp8i_cl_src_params_h, fp8i_cl_src_decode_cl, prog_body(prog)};
    cl_program program = NULL;
    fp8_status st = fp8i_cl_build(dev, sources, 3, options, &program);
    /* A failure is remembered too: the same build would fail again. */
    fp8i_cl_program_entry *e = &d->programs[d->program_count++];
    fp8i_strlcpy(e->key, key, sizeof e->key);
    e->program = program;
    *out = program;
    return st;
}

fp8_status fp8i_cl_kernel(fp8_device *dev, fp8i_cl_prog prog, const char *defines, const char *name, cl_kernel *out)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    cl_program program;
    fp8_status st = get_program(dev, prog, defines, &program);
    if (st != FP8_OK) return st;
    for (uint32_t i = 0; i < d->kernel_count; i++) {
        if (d->kernels[i].program == program && strcmp(d->kernels[i].name, name) == 0) {
            *out = d->kernels[i].kernel;
            return FP8_OK;
        }
    }
    if (d->kernel_count >= FP8I_CL_MAX_KERNELS) return FP8I_FAIL(dev->ctx, FP8_ERR_INTERNAL, "opencl: too many kernels");
    cl_int err = CL_SUCCESS;
    cl_kernel k = clCreateKernel(program, name, &err);
    if (err != CL_SUCCESS) return fp8i_cl_status(dev->ctx, err, "clCreateKernel");
    fp8i_cl_kernel_entry *e = &d->kernels[d->kernel_count++];
    e->program = program;
    fp8i_strlcpy(e->name, name, sizeof e->name);
    e->kernel = k;
    *out = k;
    return FP8_OK;
}

fp8_status fp8i_cl_kernel_defined(fp8_device *dev, fp8i_cl_prog prog, const char *name, const fp8i_cl_define *defines,
                                  uint32_t count, cl_kernel *out, size_t *max_wg)
{
    fp8i_cl_device *d = fp8i_cl_dev(dev);
    if (count > FP8I_CL_MAX_DEFINES) return FP8I_FAIL(dev->ctx, FP8_ERR_INTERNAL, "opencl: too many kernel defines");
    /* The test hook that adds build options bypasses the memo, whose kernels were built without them. */
    const bool memo = !d->test_extra_options[0];
    for (uint32_t i = 0; memo && i < d->memo_count; i++) {
        const fp8i_cl_memo *e = &d->memo[i];
        bool same = e->prog == prog && e->name == name && e->count == count;
        for (uint32_t j = 0; same && j < count; j++)
            same = e->defines[j].name == defines[j].name && e->defines[j].value == defines[j].value;
        if (same) {
            *out = e->kernel;
            *max_wg = e->max_wg;
            return FP8_OK;
        }
    }
    char text[FP8I_CL_MAX_DEFINES * 24] = "";
    size_t used = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (defines[i].value == FP8I_CL_OMIT) continue;
        const int n = snprintf(text + used, sizeof text - used, " -D%s=%u", defines[i].name, defines[i].value);
        if (n < 0 || (size_t)n >= sizeof text - used)
            return FP8I_FAIL(dev->ctx, FP8_ERR_INTERNAL, "opencl: kernel defines too long");
        used += (size_t)n;
    }
    fp8_status st = fp8i_cl_kernel(dev, prog, text, name, out);
    if (st != FP8_OK) return st;
    *max_wg = fp8i_cl_kernel_max_wg(dev, *out);
    if (memo) { /* full: the oldest entry goes */
        uint32_t slot = d->memo_count;
        if (slot < FP8I_CL_MEMO_SIZE) {
            d->memo_count++;
        } else {
            slot = d->memo_next;
            d->memo_next = (slot + 1) % FP8I_CL_MEMO_SIZE;
        }
        fp8i_cl_memo *e = &d->memo[slot];
        *e = (fp8i_cl_memo){.prog = prog, .name = name, .count = count, .kernel = *out, .max_wg = *max_wg};
        for (uint32_t j = 0; j < count; j++) e->defines[j] = defines[j];
    }
    return FP8_OK;
}

size_t fp8i_cl_kernel_max_wg(const fp8_device *dev, cl_kernel kernel)
{
    const fp8i_cl_device *d = fp8i_cl_dev(dev);
    size_t max = 0;
    if (clGetKernelWorkGroupInfo(kernel, d->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof max, &max, NULL) != CL_SUCCESS ||
        max == 0 || max > d->max_wg)
        max = d->max_wg;
    return max;
}

void fp8i_cl_programs_release(fp8i_cl_device *d)
{
    for (uint32_t i = 0; i < d->kernel_count; i++) clReleaseKernel(d->kernels[i].kernel);
    for (uint32_t i = 0; i < d->program_count; i++)
        if (d->programs[i].program) clReleaseProgram(d->programs[i].program);
    d->kernel_count = d->program_count = d->memo_count = d->memo_next = 0;
}
