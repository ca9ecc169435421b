/* The SPIR-V of every shader variant this build compiled, embedded as uint32_t arrays (4-byte aligned, as
 * vkCreateShaderModule requires). The headers are generated into the build folder by shaders/meson.build. */
#include "vk_internal.h"

#define SPV(name) {#name, spv_##name, sizeof spv_##name}
#define NO_SPV(name) {#name, NULL, 0}

#ifdef FP8_HAVE_SPV_GEMV
static const uint32_t spv_gemv[] =
#include "shaders/gemv.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_GEMV_NOSG
static const uint32_t spv_gemv_nosg[] =
#include "shaders/gemv_nosg.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_GEMM_TILED
static const uint32_t spv_gemm_tiled[] =
#include "shaders/gemm_tiled.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_DECODE_CHECK
static const uint32_t spv_decode_check[] =
#include "shaders/decode_check.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_PEAK_FMA
static const uint32_t spv_peak_fma[] =
#include "shaders/peak_fma.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_COPY
static const uint32_t spv_copy[] =
#include "shaders/copy.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_GEMM_NV_COOPMAT
static const uint32_t spv_gemm_nv_coopmat[] =
#include "shaders/gemm_nv_coopmat.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_GEMM_COOPMAT_EMU
static const uint32_t spv_gemm_coopmat_emu[] =
#include "shaders/gemm_coopmat_emu.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_PEAK_NV_COOPMAT
static const uint32_t spv_peak_nv_coopmat[] =
#include "shaders/peak_nv_coopmat.spv.h"
    ;
#endif
/* The KHR variants may come from glslangValidator, whose header is a whole declaration. */
#ifdef FP8_HAVE_SPV_GEMM_KHR_COOPMAT
#ifdef FP8_SPV_GEMM_KHR_COOPMAT_IS_DECL
#include "shaders/gemm_khr_coopmat.spv.h"
#define spv_gemm_khr_coopmat fp8i_spv_gemm_khr_coopmat
#else
static const uint32_t spv_gemm_khr_coopmat[] =
#include "shaders/gemm_khr_coopmat.spv.h"
    ;
#endif
#endif
#ifdef FP8_HAVE_SPV_PEAK_KHR_COOPMAT
#ifdef FP8_SPV_PEAK_KHR_COOPMAT_IS_DECL
#include "shaders/peak_khr_coopmat.spv.h"
#define spv_peak_khr_coopmat fp8i_spv_peak_khr_coopmat
#else
static const uint32_t spv_peak_khr_coopmat[] =
#include "shaders/peak_khr_coopmat.spv.h"
    ;
#endif
#endif
#ifdef FP8_HAVE_SPV_COOPMAT_B_CHECK_NV
static const uint32_t spv_coopmat_b_check_nv[] =
#include "shaders/coopmat_b_check_nv.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_COOPMAT_B_CHECK_KHR
#ifdef FP8_SPV_COOPMAT_B_CHECK_KHR_IS_DECL
#include "shaders/coopmat_b_check_khr.spv.h"
#define spv_coopmat_b_check_khr fp8i_spv_coopmat_b_check_khr
#else
static const uint32_t spv_coopmat_b_check_khr[] =
#include "shaders/coopmat_b_check_khr.spv.h"
    ;
#endif
#endif
#ifdef FP8_HAVE_SPV_GEMM_NV_COOPMAT2 /* always from glslangValidator (Debian 12's glslc predates it) */
#include "shaders/gemm_nv_coopmat2.spv.h"
#define spv_gemm_nv_coopmat2 fp8i_spv_gemm_nv_coopmat2
#endif
#ifdef FP8_HAVE_SPV_PEAK_NV_COOPMAT2
#include "shaders/peak_nv_coopmat2.spv.h"
#define spv_peak_nv_coopmat2 fp8i_spv_peak_nv_coopmat2
#endif

const fp8i_vk_spirv *fp8i_vk_shader_code(fp8i_vk_shader shader)
{
    static const fp8i_vk_spirv table[FP8I_VK_SHADER_COUNT_] = {
#ifdef FP8_HAVE_SPV_GEMV
        [FP8I_VK_SHADER_GEMV] = SPV(gemv),
#else
        [FP8I_VK_SHADER_GEMV] = NO_SPV(gemv),
#endif
#ifdef FP8_HAVE_SPV_GEMV_NOSG
        [FP8I_VK_SHADER_GEMV_NOSG] = SPV(gemv_nosg),
#else
        [FP8I_VK_SHADER_GEMV_NOSG] = NO_SPV(gemv_nosg),
#endif
#ifdef FP8_HAVE_SPV_GEMM_TILED
        [FP8I_VK_SHADER_GEMM_TILED] = SPV(gemm_tiled),
#else
        [FP8I_VK_SHADER_GEMM_TILED] = NO_SPV(gemm_tiled),
#endif
#ifdef FP8_HAVE_SPV_GEMM_NV_COOPMAT
        [FP8I_VK_SHADER_GEMM_NV_COOPMAT] = SPV(gemm_nv_coopmat),
#else
        [FP8I_VK_SHADER_GEMM_NV_COOPMAT] = NO_SPV(gemm_nv_coopmat),
#endif
#ifdef FP8_HAVE_SPV_GEMM_KHR_COOPMAT
        [FP8I_VK_SHADER_GEMM_KHR_COOPMAT] = SPV(gemm_khr_coopmat),
#else
        [FP8I_VK_SHADER_GEMM_KHR_COOPMAT] = NO_SPV(gemm_khr_coopmat),
#endif
#ifdef FP8_HAVE_SPV_GEMM_COOPMAT_EMU
        [FP8I_VK_SHADER_GEMM_COOPMAT_EMU] = SPV(gemm_coopmat_emu),
#else
        [FP8I_VK_SHADER_GEMM_COOPMAT_EMU] = NO_SPV(gemm_coopmat_emu),
#endif
#ifdef FP8_HAVE_SPV_DECODE_CHECK
        [FP8I_VK_SHADER_DECODE_CHECK] = SPV(decode_check),
#else
        [FP8I_VK_SHADER_DECODE_CHECK] = NO_SPV(decode_check),
#endif
#ifdef FP8_HAVE_SPV_PEAK_FMA
        [FP8I_VK_SHADER_PEAK_FMA] = SPV(peak_fma),
#else
        [FP8I_VK_SHADER_PEAK_FMA] = NO_SPV(peak_fma),
#endif
#ifdef FP8_HAVE_SPV_COPY
        [FP8I_VK_SHADER_COPY] = SPV(copy),
#else
        [FP8I_VK_SHADER_COPY] = NO_SPV(copy),
#endif
#ifdef FP8_HAVE_SPV_PEAK_NV_COOPMAT
        [FP8I_VK_SHADER_PEAK_NV_COOPMAT] = SPV(peak_nv_coopmat),
#else
        [FP8I_VK_SHADER_PEAK_NV_COOPMAT] = NO_SPV(peak_nv_coopmat),
#endif
#ifdef FP8_HAVE_SPV_PEAK_KHR_COOPMAT
        [FP8I_VK_SHADER_PEAK_KHR_COOPMAT] = SPV(peak_khr_coopmat),
#else
        [FP8I_VK_SHADER_PEAK_KHR_COOPMAT] = NO_SPV(peak_khr_coopmat),
#endif
#ifdef FP8_HAVE_SPV_GEMM_NV_COOPMAT2
        [FP8I_VK_SHADER_GEMM_NV_COOPMAT2] = SPV(gemm_nv_coopmat2),
#else
        [FP8I_VK_SHADER_GEMM_NV_COOPMAT2] = NO_SPV(gemm_nv_coopmat2),
#endif
#ifdef FP8_HAVE_SPV_PEAK_NV_COOPMAT2
        [FP8I_VK_SHADER_PEAK_NV_COOPMAT2] = SPV(peak_nv_coopmat2),
#else
        [FP8I_VK_SHADER_PEAK_NV_COOPMAT2] = NO_SPV(peak_nv_coopmat2),
#endif
#ifdef FP8_HAVE_SPV_COOPMAT_B_CHECK_KHR
        [FP8I_VK_SHADER_COOPMAT_B_CHECK_KHR] = SPV(coopmat_b_check_khr),
#else
        [FP8I_VK_SHADER_COOPMAT_B_CHECK_KHR] = NO_SPV(coopmat_b_check_khr),
#endif
#ifdef FP8_HAVE_SPV_COOPMAT_B_CHECK_NV
        [FP8I_VK_SHADER_COOPMAT_B_CHECK_NV] = SPV(coopmat_b_check_nv),
#else
        [FP8I_VK_SHADER_COOPMAT_B_CHECK_NV] = NO_SPV(coopmat_b_check_nv),
#endif
    };
    if ((unsigned)shader >= FP8I_VK_SHADER_COUNT_) return NULL;
    return &table[shader];
}
