/* Capability record of an OpenCL device, from real queries and two tiny test kernels (half, inline PTX). */
#include "cl_internal.h"

#include <CL/cl_ext.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

/* A string query truncated to `size` (drivers reject buffers shorter than the whole string). */
static void get_string(const fp8_context *ctx, cl_device_id d, cl_device_info what, char *out, size_t size)
{
    out[0] = '\0';
    size_t n = 0;
    if (clGetDeviceInfo(d, what, 0, NULL, &n) != CL_SUCCESS || n == 0) return;
    char *tmp = fp8i_calloc(ctx, n + 1, 1);
    if (!tmp) return;
    if (clGetDeviceInfo(d, what, n, tmp, NULL) == CL_SUCCESS) fp8i_strlcpy(out, tmp, size);
    fp8i_free(ctx, tmp);
}

/* The extension string can run to kilobytes: sized by a query, owned by the caller. */
static char *get_extensions(const fp8_context *ctx, cl_device_id d)
{
    size_t n = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &n) != CL_SUCCESS || n == 0) return NULL;
    char *s = fp8i_calloc(ctx, n + 1, 1);
    if (s && clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, n, s, NULL) != CL_SUCCESS) s[0] = '\0';
    return s;
}

/* Whole-word match: "cl_khr_fp16" must not match "cl_khr_fp16_something". */
static bool has_ext(const char *exts, const char *name)
{
    if (!exts) return false;
    const size_t n = strlen(name);
    for (const char *p = exts; (p = strstr(p, name)) != NULL; p += n) {
        const bool start = p == exts || p[-1] == ' ';
        const bool end = p[n] == '\0' || p[n] == ' ';
        if (start && end) return true;
    }
    return false;
}

bool fp8i_cl_has_extension(const fp8_context *ctx, cl_device_id d, const char *name)
{
    char *exts = get_extensions(ctx, d);
    const bool has = has_ext(exts, name);
    fp8i_free(ctx, exts);
    return has;
}

static cl_uint get_uint(cl_device_id d, cl_device_info what)
{
    cl_uint v = 0;
    return clGetDeviceInfo(d, what, sizeof v, &v, NULL) == CL_SUCCESS ? v : 0;
}

/* ---- test kernels ----------------------------------------------------------------------------- */

/* out[i] = a*b + c in half, inputs as float triples. Row 2 makes an fp16 subnormal (2^-14 * 0.5), row 3
 * a value half cannot hold (2049 rounds to 2048), which shows real half storage rather than float. */
static const char half_source[] =
    "#pragma OPENCL EXTENSION cl_khr_fp16 : enable\n"
    "__kernel void fp8probe_half(__global const float *in, __global float *out)\n"
    "{\n"
    "    const size_t i = get_global_id(0);\n"
    "    const half a = (half)in[3 * i];\n"
    "    const half b = (half)in[3 * i + 1];\n"
    "    const half c = (half)in[3 * i + 2];\n"
    "    out[i] = (float)(a * b + c);\n"
    "}\n";

static const char ptx_source[] =
    "__kernel void fp8probe_ptx(__global uint *out)\n"
    "{\n"
    "    uint lane;\n"
    "    asm volatile(\"mov.u32 %0, %%laneid;\" : \"=r\"(lane));\n"
    "    out[get_global_id(0)] = lane;\n"
    "}\n";

/* PTX ISA 7.8, sm_89+: a goes to the upper byte, b to the lower. 1.0 and 2.0 are E4M3 0x38 and 0x40. */
static const char ptx_fp8_source[] =
    "__kernel void fp8probe_ptx_fp8(__global const float *in, __global ushort *out)\n"
    "{\n"
    "    ushort r;\n"
    "    asm volatile(\"cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\" : \"=h\"(r) : \"f\"(in[0]), \"f\"(in[1]));\n"
    "    out[get_global_id(0)] = r;\n"
    "}\n";

typedef struct probe_env {
    const fp8_context *ctx;
    const char *device_name;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
} probe_env;

/* Build `source` and return its kernel, or NULL with the build log at DEBUG level. */
static cl_kernel build_kernel(const probe_env *e, const char *source, const char *name, cl_program *program_out)
{
    cl_int err;
    const char *src = source;
    cl_program prog = clCreateProgramWithSource(e->context, 1, &src, NULL, &err);
    *program_out = NULL;
    if (err != CL_SUCCESS) return NULL;
    err = clBuildProgram(prog, 1, &e->device, "", NULL, NULL);
    if (err != CL_SUCCESS) {
        char log[2048] = "";
        clGetProgramBuildInfo(prog, e->device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
        log[sizeof log - 1] = '\0';
        FP8I_DEBUG(e->ctx, "opencl: %s: probe kernel %s did not build (cl error %d): %s", e->device_name, name, (int)err, log);
        clReleaseProgram(prog);
        return NULL;
    }
    cl_kernel k = clCreateKernel(prog, name, &err);
    if (err != CL_SUCCESS) {
        clReleaseProgram(prog);
        return NULL;
    }
    *program_out = prog;
    return k;
}

/* Run a built kernel over `items` work-items with an input and an output buffer; true when it ran. */
static bool run_kernel(const probe_env *e, cl_kernel k, const void *in, size_t in_bytes, void *out, size_t out_bytes,
                       size_t items)
{
    cl_int err;
    cl_mem bin = NULL, bout = NULL;
    bool ok = false;
    cl_uint arg = 0;
    if (in) {
        bin = clCreateBuffer(e->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, in_bytes, (void *)in, &err);
        if (err != CL_SUCCESS) goto done;
        if (clSetKernelArg(k, arg++, sizeof bin, &bin) != CL_SUCCESS) goto done;
    }
    bout = clCreateBuffer(e->context, CL_MEM_WRITE_ONLY, out_bytes, NULL, &err);
    if (err != CL_SUCCESS) goto done;
    if (clSetKernelArg(k, arg, sizeof bout, &bout) != CL_SUCCESS) goto done;
    if (clEnqueueNDRangeKernel(e->queue, k, 1, NULL, &items, &items, 0, NULL, NULL) != CL_SUCCESS) goto done;
    ok = clEnqueueReadBuffer(e->queue, bout, CL_TRUE, 0, out_bytes, out, 0, NULL, NULL) == CL_SUCCESS;
done:
    if (bin) clReleaseMemObject(bin);
    if (bout) clReleaseMemObject(bout);
    return ok;
}

static void probe_half(const probe_env *e, fp8_device_caps *caps)
{
    const float in[12] = {1.5f, 2.0f, 0.25f, -0.5f, 3.0f, 0.25f, 0x1p-14f, 0.5f, 0.0f, 2049.0f, 1.0f, 0.0f};
    float out[4] = {0};
    cl_program prog;
    cl_kernel k = build_kernel(e, half_source, "fp8probe_half", &prog);
    if (!k) return;
    if (run_kernel(e, k, in, sizeof in, out, sizeof out, 4)) {
        const bool exact = out[0] == 3.25f && out[1] == -1.25f && out[3] == 2048.0f;
        const bool sub_kept = out[2] == 0x1p-15f, sub_flushed = out[2] == 0.0f;
        caps->cl_fp16_compiles = exact && (sub_kept || sub_flushed);
        caps->fp16_denormals = caps->cl_fp16_compiles && sub_kept;
        if (!caps->cl_fp16_compiles)
            FP8I_INFO(e->ctx, "opencl: %s: the half kernel built but computed %g %g %g %g (want 3.25 -1.25 2^-15 2048)",
                      e->device_name, out[0], out[1], out[2], out[3]);
    }
    clReleaseKernel(k);
    clReleaseProgram(prog);
}

static void probe_ptx(const probe_env *e, fp8_device_caps *caps)
{
    enum { ITEMS = 32 };
    cl_uint lanes[ITEMS] = {0};
    cl_program prog;
    cl_kernel k = build_kernel(e, ptx_source, "fp8probe_ptx", &prog);
    if (!k) return;
    /* With 32 work-items in one work-group, lane i is work-item i on every NVIDIA GPU (warps of 32). */
    if (run_kernel(e, k, NULL, 0, lanes, sizeof lanes, ITEMS)) {
        bool ok = true;
        for (cl_uint i = 0; i < ITEMS; i++) ok = ok && lanes[i] == i;
        caps->cl_inline_ptx = ok;
    }
    clReleaseKernel(k);
    clReleaseProgram(prog);
    if (!caps->cl_inline_ptx || caps->nv_compute_major * 10 + caps->nv_compute_minor < 89) return;

    const float in[2] = {1.0f, 2.0f};
    cl_ushort out[1] = {0};
    k = build_kernel(e, ptx_fp8_source, "fp8probe_ptx_fp8", &prog);
    if (!k) return;
    if (run_kernel(e, k, in, sizeof in, out, sizeof out, 1)) {
        caps->cl_ptx_fp8_convert = out[0] == 0x3840;
        if (!caps->cl_ptx_fp8_convert)
            FP8I_INFO(e->ctx, "opencl: %s: PTX cvt e4m3x2 gave %#06x (want 0x3840)", e->device_name, (unsigned)out[0]);
    }
    clReleaseKernel(k);
    clReleaseProgram(prog);
}

/* Build and run the test kernels on a private context, released before returning. */
static void probe_kernels(const fp8_context *ctx, cl_device_id d, const fp8_device_info *info, fp8_device_caps *caps,
                          bool nvidia)
{
    cl_int err;
    probe_env e = {ctx, info->name, d, NULL, NULL};
    cl_bool compiler = CL_FALSE;
    clGetDeviceInfo(d, CL_DEVICE_COMPILER_AVAILABLE, sizeof compiler, &compiler, NULL);
    if (!compiler) {
        FP8I_INFO(ctx, "opencl: %s: no online compiler; kernel probes skipped", info->name);
        return;
    }
    e.context = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        FP8I_WARN(ctx, "opencl: %s: clCreateContext failed (%d); kernel probes skipped", info->name, (int)err);
        return;
    }
#ifdef CL_VERSION_2_0
    e.queue = clCreateCommandQueueWithProperties(e.context, d, NULL, &err);
#else
    e.queue = clCreateCommandQueue(e.context, d, 0, &err);
#endif
    if (err == CL_SUCCESS) {
        /* A CPU runtime that does not list cl_khr_fp16 has no half (PoCL), and its compiler prints the failed
         * build to stderr, which a library must not cause; GPUs are always asked, listed or not. */
        if (info->type != FP8_DEVICE_CPU || caps->cl_fp16_advertised) probe_half(&e, caps);
        else FP8I_DEBUG(ctx, "opencl: %s: CPU device without cl_khr_fp16; half kernel not tried", info->name);
        if (nvidia) probe_ptx(&e, caps);
        clReleaseCommandQueue(e.queue);
    }
    clReleaseContext(e.context);
}

/* ---- the record ------------------------------------------------------------------------------- */

static void add_dpas_shapes(fp8_device_caps *caps)
{
    /* cl_intel_subgroup_matrix_multiply_accumulate: M up to 8 rows, N = the subgroup size (8 before Xe2, 16
     * from Xe2/PVC on), K = 32 for 8-bit integers and 16 for fp16/bf16 (the *_k32 / *_k16 built-ins). */
    const uint32_t n = caps->subgroup_min == 16 ? 16 : 8;
    const struct { uint32_t k; fp8_dtype ab, cr; int32_t vab, vcr; } rows[] = {
        {32, FP8_I8, FP8_I32, 3, 5}, {32, FP8_U8, FP8_I32, 7, 5}, {16, FP8_F16, FP8_F32, 0, 1}, {16, FP8_BF16, FP8_F32, 1000141000, 1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0] && caps->matrix_shape_count < FP8_MAX_MATRIX_SHAPES; i++) {
        fp8_matrix_shape *s = &caps->matrix_shapes[caps->matrix_shape_count++];
        memset(s, 0, sizeof *s);
        s->m = 8, s->n = n, s->k = rows[i].k;
        s->a_type = s->b_type = rows[i].ab;
        s->c_type = s->result_type = rows[i].cr;
        s->source = FP8_MATRIX_INTEL_DPAS;
        s->scope = 3;
        s->native_types[0] = s->native_types[1] = rows[i].vab;
        s->native_types[2] = s->native_types[3] = rows[i].vcr;
        s->native_types[4] = -1;
    }
}

void fp8i_cl_probe_device(const fp8_context *ctx, cl_platform_id platform, cl_device_id d, fp8_device_info *info)
{
    fp8_device_caps *caps = &info->caps;
    get_string(ctx, d, CL_DEVICE_NAME, info->name, sizeof info->name);
    get_string(ctx, d, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    get_string(ctx, d, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
    get_string(ctx, d, CL_DEVICE_VERSION, info->api_version, sizeof info->api_version);
    get_string(ctx, d, CL_DEVICE_OPENCL_C_VERSION, info->language_version, sizeof info->language_version);
    /* The platform is the driver: "NVIDIA CUDA", "Portable Computing Language", "Intel(R) OpenCL Graphics". */
    size_t pn = 0;
    char *pname = NULL;
    if (clGetPlatformInfo(platform, CL_PLATFORM_NAME, 0, NULL, &pn) == CL_SUCCESS && pn && (pname = fp8i_calloc(ctx, pn + 1, 1)))
        if (clGetPlatformInfo(platform, CL_PLATFORM_NAME, pn, pname, NULL) == CL_SUCCESS)
            fp8i_strlcpy(info->driver_name, pname, sizeof info->driver_name);
    fp8i_free(ctx, pname);

    cl_ulong mem = 0, alloc = 0, local = 0;
    size_t wg = 0;
    cl_device_type type = 0;
    cl_bool unified = CL_FALSE;
    info->vendor_id = get_uint(d, CL_DEVICE_VENDOR_ID);
    info->compute_units = get_uint(d, CL_DEVICE_MAX_COMPUTE_UNITS);
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof alloc, &alloc, NULL);
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local, &local, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    clGetDeviceInfo(d, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified, NULL);
    info->memory_bytes = mem;
    info->max_allocation_bytes = alloc;
    info->max_buffer_range = alloc;
    info->shared_memory_bytes = local > UINT32_MAX ? UINT32_MAX : (uint32_t)local;
    info->max_workgroup_size = wg > UINT32_MAX ? UINT32_MAX : (uint32_t)wg;
    info->type = (type & CL_DEVICE_TYPE_GPU) ? (unified ? FP8_DEVICE_INTEGRATED_GPU : FP8_DEVICE_DISCRETE_GPU)
                 : (type & CL_DEVICE_TYPE_CPU) ? FP8_DEVICE_CPU
                                               : FP8_DEVICE_OTHER;

    char *exts = get_extensions(ctx, d);
    for (const char *p = exts; p && *p;) {
        while (*p == ' ') p++;
        if (!*p) break;
        info->extension_count++;
        while (*p && *p != ' ') p++;
    }
    /* OpenCL C has 8- and 16-bit integer buffers and arithmetic everywhere. */
    caps->int8 = caps->storage8 = caps->storage16 = 1;
    cl_ulong dfp = 0;
    clGetDeviceInfo(d, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof dfp, &dfp, NULL);
    caps->fp64 = has_ext(exts, "cl_khr_fp64") || dfp != 0;
    caps->cl_fp16_advertised = has_ext(exts, "cl_khr_fp16");

    caps->cl_subgroups_khr = has_ext(exts, "cl_khr_subgroups");
    caps->cl_subgroups_intel = has_ext(exts, "cl_intel_subgroups");
    cl_uint max_subgroups = 0;
#ifdef CL_VERSION_2_1
    clGetDeviceInfo(d, CL_DEVICE_MAX_NUM_SUB_GROUPS, sizeof max_subgroups, &max_subgroups, NULL);
#endif
    caps->subgroups = caps->cl_subgroups_khr || caps->cl_subgroups_intel || max_subgroups > 0;
    caps->subgroup_arithmetic = caps->cl_subgroups_khr || has_ext(exts, "cl_khr_subgroup_non_uniform_arithmetic");
    if (has_ext(exts, "cl_intel_required_subgroup_size")) {
        size_t sizes[8] = {0}, bytes = 0;
        if (clGetDeviceInfo(d, CL_DEVICE_SUB_GROUP_SIZES_INTEL, sizeof sizes, sizes, &bytes) == CL_SUCCESS) {
            for (size_t i = 0; i < bytes / sizeof sizes[0] && i < 8; i++) {
                const uint32_t s = (uint32_t)sizes[i];
                if (!caps->subgroup_min || s < caps->subgroup_min) caps->subgroup_min = s;
                if (s > caps->subgroup_max) caps->subgroup_max = s;
            }
        }
    } else if (has_ext(exts, "cl_nv_device_attribute_query")) {
        caps->subgroup_min = caps->subgroup_max = get_uint(d, CL_DEVICE_WARP_SIZE_NV);
    } else if (has_ext(exts, "cl_amd_device_attribute_query")) {
        caps->subgroup_min = caps->subgroup_max = get_uint(d, CL_DEVICE_WAVEFRONT_WIDTH_AMD);
    }
    caps->subgroup_size = caps->subgroup_max;

    caps->cl_khr_int_dot = has_ext(exts, "cl_khr_integer_dot_product");
    if (caps->cl_khr_int_dot) {
        cl_device_integer_dot_product_capabilities_khr dc = 0;
        clGetDeviceInfo(d, CL_DEVICE_INTEGER_DOT_PRODUCT_CAPABILITIES_KHR, sizeof dc, &dc, NULL);
        caps->int_dot = (dc & CL_DEVICE_INTEGER_DOT_PRODUCT_INPUT_4x8BIT_PACKED_KHR) != 0;
        cl_device_integer_dot_product_acceleration_properties_khr acc;
        memset(&acc, 0, sizeof acc);
        if (clGetDeviceInfo(d, CL_DEVICE_INTEGER_DOT_PRODUCT_ACCELERATION_PROPERTIES_4x8BIT_PACKED_KHR, sizeof acc, &acc,
                            NULL) == CL_SUCCESS) {
            caps->int_dot_accelerated = acc.signed_accelerated != 0;
            caps->int_dot_mixed_accelerated = acc.mixed_signedness_accelerated != 0;
        }
    }
    caps->cl_arm_int8_dot = has_ext(exts, "cl_arm_integer_dot_product_int8") ||
                            has_ext(exts, "cl_arm_integer_dot_product_accumulate_int8");
    if (caps->cl_arm_int8_dot) caps->int_dot = 1;
    caps->cl_intel_dpas = has_ext(exts, "cl_intel_subgroup_matrix_multiply_accumulate");
    if (caps->cl_intel_dpas) add_dpas_shapes(caps);

    const bool nvidia = info->vendor_id == 0x10DE || strstr(info->driver_name, "NVIDIA") != NULL;
    if (has_ext(exts, "cl_nv_device_attribute_query")) {
        caps->nv_compute_major = get_uint(d, CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV);
        caps->nv_compute_minor = get_uint(d, CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV);
    }
    fp8i_free(ctx, exts);

    /* Never trust the extension string for half: NVIDIA compiles it without advertising cl_khr_fp16. */
    probe_kernels(ctx, d, info, caps, nvidia);
    caps->fp16 = caps->cl_fp16_compiles;
    FP8I_DEBUG(ctx,
               "opencl: %s (%s): fp16 advertised %d, compiles %d (denormals %d); subgroups %d (%u..%u); int dot %d/%d; "
               "dpas %d; cc %u.%u; inline ptx %d, ptx fp8 cvt %d",
               info->name, info->driver_name, caps->cl_fp16_advertised, caps->cl_fp16_compiles, caps->fp16_denormals,
               caps->subgroups, caps->subgroup_min, caps->subgroup_max, caps->int_dot, caps->int_dot_accelerated,
               caps->cl_intel_dpas, caps->nv_compute_major, caps->nv_compute_minor, caps->cl_inline_ptx,
               caps->cl_ptx_fp8_convert);
}
