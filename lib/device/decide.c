/* The verdict: a pure function from a device's capability record and the build's features to paths. */
#include "device.h"
#include "quirks.h"

#include <stdio.h>
#include <string.h>

static bool has_shape(const fp8_device_info *d, fp8_matrix_source src, fp8_dtype a, fp8_dtype result)
{
    for (uint32_t i = 0; i < d->caps.matrix_shape_count && i < FP8_MAX_MATRIX_SHAPES; i++) {
        const fp8_matrix_shape *s = &d->caps.matrix_shapes[i];
        if (s->source == src && s->a_type == a && s->b_type == a && s->result_type == result) return true;
    }
    return false;
}

static bool has_fp8_shape(const fp8_device_info *d, fp8_matrix_source *src)
{
    for (uint32_t i = 0; i < d->caps.matrix_shape_count && i < FP8_MAX_MATRIX_SHAPES; i++) {
        const fp8_matrix_shape *s = &d->caps.matrix_shapes[i];
        bool fp8_a = s->a_type == FP8_E4M3FN || s->a_type == FP8_E5M2;
        bool fp8_b = s->b_type == FP8_E4M3FN || s->b_type == FP8_E5M2;
        if (fp8_a || fp8_b) { *src = s->source; return true; }
    }
    return false;
}

static void decide_native(const fp8_device_info *d, uint32_t build, fp8_device_verdict *v)
{
    const fp8_device_caps *c = &d->caps;
    fp8_matrix_source src;
    if (d->backend == FP8_BACKEND_VULKAN && c->shader_float8_cooperative_matrix) {
        v->native_fp8 = FP8_NATIVE_MATRIX;
        v->native_fp8_used = (build & FP8_BUILD_SHADER_FLOAT8) != 0;
        snprintf(v->native_reason, sizeof v->native_reason,
                 "VK_EXT_shader_float8: shaderFloat8CooperativeMatrix%s",
                 v->native_fp8_used ? "" : " (this build's glslang cannot compile FP8 shaders; emulated decode used)");
    } else if (d->backend == FP8_BACKEND_VULKAN && has_fp8_shape(d, &src)) {
        v->native_fp8 = FP8_NATIVE_MATRIX;
        v->native_fp8_used = 0;
        snprintf(v->native_reason, sizeof v->native_reason,
                 "%s lists FP8 E4M3/E5M2 matrix types (matrix-vector only; no FP8 cooperative matrix for GEMM); "
                 "emulated decode used",
                 src == FP8_MATRIX_NV_COOPVEC ? "VK_NV_cooperative_vector" : "a matrix extension");
    } else if (d->backend == FP8_BACKEND_VULKAN && c->shader_float8) {
        v->native_fp8 = FP8_NATIVE_CONVERSION;
        v->native_fp8_used = (build & FP8_BUILD_SHADER_FLOAT8) != 0;
        snprintf(v->native_reason, sizeof v->native_reason, "VK_EXT_shader_float8: shaderFloat8 (conversions only)");
    } else if (d->backend == FP8_BACKEND_OPENCL && c->cl_inline_ptx && c->nv_compute_major * 10 + c->nv_compute_minor >= 89) {
        v->native_fp8 = FP8_NATIVE_CONVERSION;
        v->native_fp8_used = 0;
        snprintf(v->native_reason, sizeof v->native_reason,
                 "NVIDIA compute capability %u.%u: PTX cvt e4m3x2/e5m2x2 reachable through inline asm (not used yet)",
                 c->nv_compute_major, c->nv_compute_minor);
    } else {
        v->native_fp8 = FP8_NATIVE_NONE;
        snprintf(v->native_reason, sizeof v->native_reason, "%s",
                 d->backend == FP8_BACKEND_OPENCL ? "OpenCL has no FP8 extension; emulated decode"
                 : d->backend == FP8_BACKEND_CPU  ? "reference decode on the host"
                                                  : "no VK_EXT_shader_float8 and no FP8 matrix types; emulated decode");
    }
}

void fp8i_decide(const fp8_device_info *d, uint32_t build, fp8_device_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->quirks = fp8i_quirks_for(d);
    decide_native(d, build, v);
    const fp8_device_caps *c = &d->caps;

    switch (d->backend) {
    case FP8_BACKEND_CPU:
        v->gemv_path = v->gemm_path = FP8_PATH_CPU_REFERENCE;
        snprintf(v->gemv_reason, sizeof v->gemv_reason, "the host reference (double accumulation)");
        snprintf(v->gemm_reason, sizeof v->gemm_reason, "the host reference (double accumulation)");
        break;
    case FP8_BACKEND_VULKAN: {
        v->gemv_path = FP8_PATH_VK_GEMV;
        snprintf(v->gemv_reason, sizeof v->gemv_reason, "%s",
                 c->subgroup_arithmetic ? "decode in registers, subgroup reduction"
                                        : "decode in registers, shared-memory reduction (no subgroup arithmetic)");
        const bool coopmat_ok = !(v->quirks & FP8I_QUIRK_COOPMAT_UNRELIABLE);
        const bool coopmat_fast = !(v->quirks & FP8I_QUIRK_COOPMAT_SLOW);
        const bool khr = c->khr_cooperative_matrix && has_shape(d, FP8_MATRIX_KHR_COOPMAT, FP8_F16, FP8_F32);
        const bool nv = c->nv_cooperative_matrix && has_shape(d, FP8_MATRIX_NV_COOPMAT, FP8_F16, FP8_F32);
        if (khr && coopmat_ok && coopmat_fast && (build & FP8_BUILD_SHADER_KHR_COOPMAT)) {
            v->gemm_path = FP8_PATH_VK_GEMM_KHR_COOPMAT;
            v->expected_fast = 1;
            snprintf(v->gemm_reason, sizeof v->gemm_reason,
                     "VK_KHR_cooperative_matrix fp16 x fp16 -> fp32; FP8 decoded to fp16 in shared memory");
        } else if (nv && coopmat_ok && coopmat_fast && (build & FP8_BUILD_SHADER_NV_COOPMAT)) {
            v->gemm_path = FP8_PATH_VK_GEMM_NV_COOPMAT;
            v->expected_fast = 1;
            snprintf(v->gemm_reason, sizeof v->gemm_reason,
                     "VK_NV_cooperative_matrix fp16 x fp16 -> fp32%s; FP8 decoded to fp16 in shared memory",
                     khr ? " (KHR variant not compiled by this build's glslc)" : "");
        } else {
            v->gemm_path = FP8_PATH_VK_GEMM_TILED;
            snprintf(v->gemm_reason, sizeof v->gemm_reason, "%s",
                     (khr || nv) && !coopmat_ok  ? "cooperative matrices reported but unreliable here (quirk); fp32 tiles"
                     : (khr || nv) && !coopmat_fast ? "cooperative matrices slower than FMA tiles here (quirk); fp32 tiles"
                     : (khr || nv)                ? "cooperative matrices present but no matching shader in this build; fp32 tiles"
                                                  : "no fp16 cooperative matrix with fp32 result; shared-memory fp32 tiles");
        }
        break;
    }
    case FP8_BACKEND_OPENCL:
        v->gemv_path = FP8_PATH_CL_GEMV;
        snprintf(v->gemv_reason, sizeof v->gemv_reason, "decode in registers, work-group reduction");
        if (build & FP8_BUILD_CLBLAST) {
            v->gemm_path = FP8_PATH_CL_CLBLAST;
            snprintf(v->gemm_reason, sizeof v->gemm_reason,
                     "dequantize weight tiles to scratch, CLBlast %s (choice refined by measurement)",
                     (c->fp16 || c->cl_fp16_compiles) ? "HGEMM/SGEMM" : "SGEMM");
        } else {
            v->gemm_path = FP8_PATH_CL_GEMM_TILED;
            snprintf(v->gemm_reason, sizeof v->gemm_reason, "fused decode, local-memory tiles (built without CLBlast)");
        }
        break;
    }
}
