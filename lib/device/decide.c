/* The verdict: a pure function from a device's capability record and the build's features to paths. */
#include "device.h"
#include "quirks.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool is_fp8(fp8_dtype t) { return t == FP8_E4M3FN || t == FP8_E5M2; }

static void say(char *dst, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void say(char *dst, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, FP8_REASON_MAX, fmt, ap);
    va_end(ap);
}

static uint32_t shape_count(const fp8_device_info *d)
{
    return d->caps.matrix_shape_count < FP8_MAX_MATRIX_SHAPES ? d->caps.matrix_shape_count : FP8_MAX_MATRIX_SHAPES;
}

/* How well a shape suits a GEMM that accumulates in fp32: subgroup scope, fp32 result, no saturation, and
 * 16x16x16 (the tile our shaders are written around) before larger, before smaller. 0: unusable. */
static uint64_t shape_score(const fp8_matrix_shape *s, fp8_matrix_source src, bool want_fp8)
{
    if (s->source != src || s->scope != 3 || s->saturating) return 0;
    if (s->result_type != FP8_F32 || s->c_type != FP8_F32) return 0;
    if (want_fp8) {
        if (!is_fp8(s->a_type) || !is_fp8(s->b_type)) return 0;
    } else if (s->a_type != FP8_F16 || s->b_type != FP8_F16) {
        return 0;
    }
    uint64_t score = 1 + (uint64_t)s->m * s->n * s->k;
    if (s->m == 16 && s->n == 16 && s->k == 16) score += 1u << 30;
    if (want_fp8 && s->a_type == FP8_E4M3FN && s->b_type == FP8_E4M3FN) score += 1ull << 31; /* weights are E4M3 */
    return score;
}

static const fp8_matrix_shape *best_shape(const fp8_device_info *d, fp8_matrix_source src, bool want_fp8)
{
    const fp8_matrix_shape *best = NULL;
    uint64_t best_score = 0;
    for (uint32_t i = 0; i < shape_count(d); i++) {
        const uint64_t sc = shape_score(&d->caps.matrix_shapes[i], src, want_fp8);
        if (sc > best_score) best_score = sc, best = &d->caps.matrix_shapes[i];
    }
    return best;
}

static const fp8_matrix_shape *first_fp8_shape(const fp8_device_info *d, fp8_matrix_source src)
{
    for (uint32_t i = 0; i < shape_count(d); i++) {
        const fp8_matrix_shape *s = &d->caps.matrix_shapes[i];
        if (s->source == src && (is_fp8(s->a_type) || is_fp8(s->b_type) || is_fp8(s->input_interpretation)))
            return s;
    }
    return NULL;
}

static bool any_shape(const fp8_device_info *d, fp8_matrix_source src)
{
    for (uint32_t i = 0; i < shape_count(d); i++)
        if (d->caps.matrix_shapes[i].source == src) return true;
    return false;
}

const fp8_matrix_shape *fp8i_coopmat2_shape(const fp8_device_info *d)
{
    const fp8_device_caps *c = &d->caps;
    if (!c->nv_cooperative_matrix2 || !c->khr_cooperative_matrix || !c->nv_coopmat2_workgroup_scope ||
        !c->nv_coopmat2_flexible_dimensions || !c->nv_coopmat2_tensor_addressing || !c->nv_coopmat2_per_element_operations)
        return NULL;
    const fp8_matrix_shape *best = NULL;
    for (uint32_t i = 0; i < shape_count(d); i++) {
        const fp8_matrix_shape *s = &c->matrix_shapes[i];
        if (s->source != FP8_MATRIX_NV_COOPMAT2 || s->scope != 2 || s->saturating || s->a_type != FP8_F16 ||
            s->b_type != FP8_F16 || s->c_type != FP8_F32 || s->result_type != FP8_F32)
            continue;
        if (!best || s->workgroup_invocations > best->workgroup_invocations) best = s; /* the kernel wants 256 */
    }
    return best;
}

/* ---- native FP8: what the device exposes to this backend, with the evidence ---------------------- */

static void native_vulkan(const fp8_device_info *d, uint32_t build, fp8_device_verdict *v)
{
    const fp8_device_caps *c = &d->caps;
    const fp8_matrix_shape *khr8 = first_fp8_shape(d, FP8_MATRIX_KHR_COOPMAT);
    const fp8_matrix_shape *vec8 = first_fp8_shape(d, FP8_MATRIX_NV_COOPVEC);
    const fp8_matrix_shape *flex8 = first_fp8_shape(d, FP8_MATRIX_NV_COOPMAT2);
    if (c->shader_float8_cooperative_matrix && khr8) {
        v->native_fp8 = FP8_NATIVE_MATRIX;
        v->native_fp8_used = (build & FP8_BUILD_SHADER_FLOAT8) != 0;
        say(v->native_reason,
            "VK_EXT_shader_float8 shaderFloat8CooperativeMatrix; VK_KHR_cooperative_matrix %ux%ux%u %s x %s -> %s%s",
            khr8->m, khr8->n, khr8->k, fp8_dtype_name(khr8->a_type), fp8_dtype_name(khr8->b_type),
            fp8_dtype_name(khr8->result_type),
            v->native_fp8_used ? "" : " (not used: this build compiled no GL_EXT_float_e4m3 shader)");
    } else if (vec8 || flex8) {
        const fp8_matrix_shape *s = vec8 ? vec8 : flex8;
        v->native_fp8 = FP8_NATIVE_MATRIX;
        v->native_fp8_used = 0;
        /* Not used where the result is f16: the driver reads the input vector as FP8 too (no scale of its own),
         * and FP8 data at its quantized scale has products up to 448 x 448, past f16's 65504, so sums would
         * overflow unless the inputs were scaled down into FP8's subnormals, which loses their small values. */
        if (vec8)
            say(v->native_reason,
                "VK_NV_cooperative_vector: %s input read as %s, %s matrix, %s result (matrix-vector only; not used: "
                "%s)",
                fp8_dtype_name(s->a_type), fp8_dtype_name(s->input_interpretation), fp8_dtype_name(s->b_type),
                fp8_dtype_name(s->result_type),
                s->result_type == FP8_F16 ? "FP8 x FP8 sums at quantized scale (each product up to 448 x 448) overflow its f16 result"
                                          : "no cooperative-vector path in this build");
        else
            say(v->native_reason,
                "VK_NV_cooperative_matrix2 flexible dimensions with %s x %s (not used: the coopmat2 GEMM decodes FP8 "
                "to f16)",
                fp8_dtype_name(s->a_type), fp8_dtype_name(s->b_type));
    } else if (c->shader_float8) {
        v->native_fp8 = FP8_NATIVE_CONVERSION;
        v->native_fp8_used = (build & FP8_BUILD_SHADER_FLOAT8) != 0;
        say(v->native_reason, "VK_EXT_shader_float8 shaderFloat8 (conversions; no FP8 cooperative matrix)%s",
            v->native_fp8_used ? "" : " (not used: this build compiled no GL_EXT_float_e4m3 shader)");
    } else {
        v->native_fp8 = FP8_NATIVE_NONE;
        say(v->native_reason, "%s; FP8 is decoded in the shader",
            c->ext_shader_float8 ? "VK_EXT_shader_float8 listed but its features are off"
                                 : "no VK_EXT_shader_float8 and no FP8 matrix types");
    }
}

static void native_opencl(const fp8_device_info *d, fp8_device_verdict *v)
{
    const fp8_device_caps *c = &d->caps;
    const uint32_t cc = c->nv_compute_major * 10 + c->nv_compute_minor;
    if (c->cl_inline_ptx && cc >= 89) {
        /* PTX has FP8 conversions from sm_89 on; FP8 mma.sync is native on sm_89 but emulated on sm_90 (quirk). */
        const bool mma = !(v->quirks & FP8I_QUIRK_PTX_FP8_MMA_EMULATED);
        v->native_fp8 = mma ? FP8_NATIVE_MATRIX : FP8_NATIVE_CONVERSION;
        /* The kernels decode E4M3FN/E5M2 with the cvt only where the probe ran it and checked its bits. */
        v->native_fp8_used = c->cl_ptx_fp8_convert != 0;
        say(v->native_reason,
            "NVIDIA compute capability %u.%u with inline PTX: cvt e4m3x2/e5m2x2%s%s%s%s", c->nv_compute_major,
            c->nv_compute_minor, c->cl_ptx_fp8_convert ? " (verified on the device)" : "", mma ? " and mma.sync e4m3" : "",
            mma ? "" : "; mma.sync e4m3 is emulated on this architecture",
            c->cl_ptx_fp8_convert ? "; the kernels decode E4M3FN/E5M2 with the cvt, the GEMV multiplies on f16 mma.sync"
                                  : "; not verified, so the kernels decode in software");
    } else {
        v->native_fp8 = FP8_NATIVE_NONE;
        say(v->native_reason, "%s",
            c->nv_compute_major && !c->cl_inline_ptx ? "OpenCL has no FP8 extension and inline PTX did not build"
            : c->nv_compute_major                   ? "OpenCL has no FP8 extension; PTX FP8 needs compute capability 8.9"
                                                    : "OpenCL has no FP8 extension; FP8 is decoded in the kernel");
    }
}

/* ---- GEMM/GEMV paths ------------------------------------------------------------------------------ */

static void paths_vulkan(const fp8_device_info *d, uint32_t build, fp8_device_verdict *v)
{
    const fp8_device_caps *c = &d->caps;
    v->gemv_path = FP8_PATH_VK_GEMV;
    if (c->subgroup_arithmetic)
        say(v->gemv_reason, "decode in registers, subgroup reduction (subgroup %u)", c->subgroup_size);
    else
        say(v->gemv_reason, "decode in registers, shared-memory reduction (no subgroup arithmetic in compute)");

    const fp8_matrix_shape *f8 = c->shader_float8_cooperative_matrix ? best_shape(d, FP8_MATRIX_KHR_COOPMAT, true) : NULL;
    const fp8_matrix_shape *khr = c->khr_cooperative_matrix ? best_shape(d, FP8_MATRIX_KHR_COOPMAT, false) : NULL;
    const fp8_matrix_shape *nv = c->nv_cooperative_matrix ? best_shape(d, FP8_MATRIX_NV_COOPMAT, false) : NULL;
    v->matrix_supported = f8 || khr || nv || any_shape(d, FP8_MATRIX_NV_COOPVEC);

    const uint32_t q = v->quirks;
    const char *blocked = (q & FP8I_QUIRK_COOPMAT_UNRELIABLE) ? "reported but not backed by matrix hardware (quirk coopmat-unreliable)"
                          : (q & FP8I_QUIRK_COOPMAT_SLOW) ? "slower than FMA tiles here (quirk coopmat-slow)"
                          : (q & FP8I_QUIRK_SHADER_COMPILER_UNRELIABLE) ? "not tried: the driver's compiler fails on large shaders (quirk shader-compiler-unreliable)"
                          : NULL;
    if (q & FP8I_QUIRK_COOPMAT_QUERY_CRASH) blocked = "not queried: the driver crashes in the property query (quirk coopmat-query-crash)";

    if (!blocked && f8 && (build & FP8_BUILD_SHADER_FLOAT8)) {
        v->gemm_path = FP8_PATH_VK_GEMM_FLOAT8;
        v->gemm_shape = *f8;
        v->expected_fast = 1;
        say(v->gemm_reason, "native FP8 cooperative matrices %ux%ux%u %s x %s -> f32 (VK_EXT_shader_float8)", f8->m,
            f8->n, f8->k, fp8_dtype_name(f8->a_type), fp8_dtype_name(f8->b_type));
        return;
    }
    const char *f8_note = f8 && !(build & FP8_BUILD_SHADER_FLOAT8) ? "; FP8 coopmat present but no FP8 shader in this build" : "";
    /* The coopmat2 build of the GEMM is not the verdict: on the H100 it measured 0.98-1.05x the KHR build (run
     * 74, docs/BENCHMARKS.md), faster only with per-channel scales, and the MoE kernels follow the verdict's
     * subgroup kind. It stays selectable (FP8_PATH=vk_gemm_nv_coopmat2). */
    const fp8_matrix_shape *cm2 = fp8i_coopmat2_shape(d);
    const char *cm2_note = !cm2 ? ""
                           : (build & FP8_BUILD_SHADER_NV_COOPMAT2)
                               ? "; the VK_NV_cooperative_matrix2 build is there but measured no faster overall"
                               : "; VK_NV_cooperative_matrix2 present, no coopmat2 shader in this build";
    if (!blocked && khr && (build & FP8_BUILD_SHADER_KHR_COOPMAT)) {
        v->gemm_path = FP8_PATH_VK_GEMM_KHR_COOPMAT;
        v->gemm_shape = *khr;
        v->expected_fast = 1;
        say(v->gemm_reason, "VK_KHR_cooperative_matrix %ux%ux%u f16 x f16 -> f32, FP8 decoded to f16 in shared memory%s%s",
            khr->m, khr->n, khr->k, f8_note, cm2_note);
        return;
    }
    if (!blocked && nv && (build & FP8_BUILD_SHADER_NV_COOPMAT)) {
        v->gemm_path = FP8_PATH_VK_GEMM_NV_COOPMAT;
        v->gemm_shape = *nv;
        v->expected_fast = 1;
        say(v->gemm_reason, "VK_NV_cooperative_matrix %ux%ux%u f16 x f16 -> f32, FP8 decoded to f16 in shared memory%s%s",
            nv->m, nv->n, nv->k, khr ? " (no KHR coopmat shader in this build)" : "", f8_note);
        return;
    }
    v->gemm_path = FP8_PATH_VK_GEMM_TILED;
    if (blocked && (khr || nv || f8))
        say(v->gemm_reason, "cooperative matrices %s; shared-memory fp32 tiles", blocked);
    else if (blocked && (q & (FP8I_QUIRK_COOPMAT_QUERY_CRASH | FP8I_QUIRK_SHADER_COMPILER_UNRELIABLE)))
        say(v->gemm_reason, "cooperative matrices %s; shared-memory fp32 tiles", blocked);
    else if (khr || nv || f8)
        say(v->gemm_reason, "cooperative matrices present (%s) but this build compiled no shader for them; "
                            "shared-memory fp32 tiles",
            khr ? "KHR" : nv ? "NV" : "FP8");
    else if (c->khr_cooperative_matrix || c->nv_cooperative_matrix)
        say(v->gemm_reason, "cooperative matrices offer no subgroup f16 x f16 -> f32 shape; shared-memory fp32 tiles");
    else
        say(v->gemm_reason, "no cooperative matrices; shared-memory fp32 tiles");
}

static void paths_opencl(const fp8_device_info *d, uint32_t build, fp8_device_verdict *v)
{
    const fp8_device_caps *c = &d->caps;
    v->gemv_path = FP8_PATH_CL_GEMV;
    say(v->gemv_reason, "decode in registers, %s reduction",
        c->subgroup_arithmetic ? "subgroup" : "work-group (local memory)");
    v->matrix_supported = any_shape(d, FP8_MATRIX_INTEL_DPAS) ||
                          (c->cl_inline_ptx && c->nv_compute_major * 10 + c->nv_compute_minor >= 70);
    const bool half = c->fp16; /* on OpenCL: a half kernel built and computed correctly */
    const char *unused = any_shape(d, FP8_MATRIX_INTEL_DPAS) ? "; Intel DPAS present, no DPAS kernel yet"
                         : c->cl_inline_ptx ? "; tensor cores reachable through inline PTX, no such kernel yet"
                                            : "";
    if (build & FP8_BUILD_CLBLAST) {
        v->gemm_path = FP8_PATH_CL_CLBLAST;
        say(v->gemm_reason, "dequantize weight tiles to scratch, CLBlast %s%s", half ? "HGEMM/SGEMM" : "SGEMM", unused);
    } else {
        v->gemm_path = FP8_PATH_CL_GEMM_TILED;
        say(v->gemm_reason, "fused decode, local-memory tiles (built without CLBlast)%s", unused);
    }
}

void fp8i_decide(const fp8_device_info *d, uint32_t build, fp8_device_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->quirks = fp8i_quirks_for(d);
    fp8i_strlcpy(v->arch, fp8i_arch_of(d), sizeof v->arch);

    switch (d->backend) {
    case FP8_BACKEND_VULKAN:
        native_vulkan(d, build, v);
        paths_vulkan(d, build, v);
        return;
    case FP8_BACKEND_OPENCL:
        native_opencl(d, v);
        paths_opencl(d, build, v);
        return;
    case FP8_BACKEND_CPU:
        break;
    }
    v->native_fp8 = FP8_NATIVE_NONE;
    say(v->native_reason, "reference decode on the host");
    v->gemv_path = v->gemm_path = FP8_PATH_CPU_REFERENCE;
    say(v->gemv_reason, "the host reference (double accumulation)");
    say(v->gemm_reason, "the host reference (double accumulation)");
}
