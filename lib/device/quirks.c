/* The quirk table: which driver behaviours we work around, matched on backend, vendor, driver, architecture. */
#include "quirks.h"
#include "device.h"

#include <string.h>

enum {
    COND_REPORTS_COOPMAT = 1u << 0, /* VK_KHR or VK_NV cooperative matrix reported */
    COND_FP16_FLUSHES = 1u << 1,    /* fp16 arithmetic present, subnormals not preserved */
    COND_INLINE_PTX = 1u << 2,      /* OpenCL kernels accept inline PTX */
};

#define DRV(id) (1u << (id)) /* VkDriverId as a mask bit */

typedef struct quirk_rule {
    uint32_t bit;
    fp8_backend backend;        /* 0: any */
    uint32_t vendor_id;         /* 0: any */
    uint32_t driver_mask;       /* DRV(VkDriverId) bits; 0: any */
    const char *arch_in;        /* '|'-separated fp8i_arch_of() values; NULL: any */
    fp8_device_type type;       /* FP8_DEVICE_OTHER (0): any */
    uint32_t when;              /* COND_* bits that must all hold */
    const char *evidence;       /* the public report behind the rule */
} quirk_rule;

static const quirk_rule rules[] = {
    /* AMD's proprietary driver and AMDVLK report VK_KHR_cooperative_matrix on every GPU, including GCN, RDNA1
     * and RDNA2, which have no WMMA instructions (RDNA3 is the first: RDNA3 ISA guide section 7.9, cited in
     * IREE PR #11868). ggml-vulkan keeps coopmat off there (llama.cpp PR #11074, "workaround for AMD's
     * proprietary Vulkan driver and amdvlk reporting support for cooperative matrix on GPUs without the
     * necessary hardware"). RADV reports it only where WMMA exists, so it is not matched. */
    {FP8I_QUIRK_COOPMAT_UNRELIABLE, FP8_BACKEND_VULKAN, 0x1002, DRV(1) | DRV(2), "amd-gcn|amd-rdna1|amd-rdna2|amd",
     0, COND_REPORTS_COOPMAT,
     "llama.cpp PR #11074: AMD proprietary/AMDVLK report cooperative matrices on GPUs without WMMA"},
    /* On AMD integrated GPUs under the AMD driver (Radeon 860M, Adrenalin 26.3.1), the cooperative-matrix
     * property query itself access-violates inside the driver (AMDVLK issue #422; llama.cpp PR #22750 skips
     * coopmat on integrated AMD GPUs). The probe consults this before it queries. */
    {FP8I_QUIRK_COOPMAT_QUERY_CRASH, FP8_BACKEND_VULKAN, 0x1002, DRV(1) | DRV(2), NULL, FP8_DEVICE_INTEGRATED_GPU, 0,
     "AMDVLK issue #422: vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR crashes on AMD integrated GPUs"},
    /* Intel Arc A-series (Xe-HPG, discrete): ANV first emulated coopmat on the shader cores (llama.cpp PR #10597,
     * Dec 2024); with the Windows driver 32.0.101.8826 an A770 still showed severe regressions with coopmat on
     * (llama.cpp PR #24404, 2026), which enabled it for Xe2 and integrated Xe-LPG Plus only. */
    {FP8I_QUIRK_COOPMAT_SLOW, FP8_BACKEND_VULKAN, 0x8086, 0, "intel-xe-hpg|intel-pre-xe2", FP8_DEVICE_DISCRETE_GPU,
     COND_REPORTS_COOPMAT, "llama.cpp PRs #10597 and #24404: cooperative matrices slower than FMA tiles on Arc A770"},
    /* lavapipe limits maxStorageBufferRange to 128 MiB whatever the host memory (FACTS.md, Mesa 22.3). */
    {FP8I_QUIRK_SMALL_BUFFER_RANGE, FP8_BACKEND_VULKAN, 0, DRV(13), NULL, 0, 0,
     "lavapipe: maxStorageBufferRange is 128 MiB"},
    /* Qualcomm's proprietary Vulkan compiler fails pipeline creation for larger compute shaders ("Known issue
     * with Qualcomm's shader compiler. Currently Adreno GPUs just don't work", llama.cpp issue #12421; Adreno 740
     * "Failed to link shaders" in #19746, where OpenCL works on the same device; Adreno 830 VK_ERROR_UNKNOWN in
     * #28635). */
    {FP8I_QUIRK_SHADER_COMPILER_UNRELIABLE, FP8_BACKEND_VULKAN, 0x5143, DRV(8), NULL, 0, 0,
     "llama.cpp issues #12421, #19746, #28635: Adreno Vulkan pipeline creation fails for larger compute shaders"},
    /* The E4M3 -> fp16 bit-trick decode produces fp16 subnormals for E4M3 subnormals; where the implementation
     * may flush them (Vulkan shaderDenormPreserveFloat16 = false, or an OpenCL half kernel that flushed), the
     * decode must use a table instead. Not a bug: a property, kept here so kernels look in one place. */
    {FP8I_QUIRK_NO_FP16_DENORMALS, FP8_BACKEND_VULKAN, 0, 0, NULL, 0, COND_FP16_FLUSHES,
     "Vulkan shaderDenormPreserveFloat16 is false"},
    {FP8I_QUIRK_NO_FP16_DENORMALS, FP8_BACKEND_OPENCL, 0, 0, NULL, 0, COND_FP16_FLUSHES,
     "the probe's half kernel flushed an fp16 subnormal"},
    /* PTX mma.sync.m16n8k32 with e4m3/e5m2 operands is native on sm_89 (Ada) only; on sm_90 the compiler
     * converts to fp16 and uses the fp16 tensor cores (NVIDIA/cutlass issue #1986, maintainer's answer). Hopper's
     * native FP8 path is wgmma, which needs sm_90a and is out of reach of OpenCL's PTX JIT. */
    {FP8I_QUIRK_PTX_FP8_MMA_EMULATED, FP8_BACKEND_OPENCL, 0x10DE, 0, "nvidia-hopper", 0, COND_INLINE_PTX,
     "NVIDIA/cutlass issue #1986: mma.sync e4m3 is emulated on sm_90"},
};

static bool arch_matches(const char *list, const char *arch)
{
    const size_t n = strlen(arch);
    for (const char *p = list; *p;) {
        const char *bar = strchr(p, '|');
        const size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, arch, n) == 0) return true;
        if (!bar) break;
        p = bar + 1;
    }
    return false;
}

static uint32_t conditions_of(const fp8_device_info *d)
{
    const fp8_device_caps *c = &d->caps;
    uint32_t cond = 0;
    if (c->khr_cooperative_matrix || c->nv_cooperative_matrix) cond |= COND_REPORTS_COOPMAT;
    if ((c->fp16 || c->cl_fp16_compiles) && !c->fp16_denormals) cond |= COND_FP16_FLUSHES;
    if (c->cl_inline_ptx) cond |= COND_INLINE_PTX;
    return cond;
}

uint32_t fp8i_quirks_for(const fp8_device_info *d)
{
    const char *arch = fp8i_arch_of(d);
    const uint32_t cond = conditions_of(d);
    uint32_t q = 0;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const quirk_rule *r = &rules[i];
        if (r->backend && r->backend != d->backend) continue;
        if (r->vendor_id && r->vendor_id != d->vendor_id) continue;
        if (r->driver_mask && (d->driver_id >= 32 || !(r->driver_mask & DRV(d->driver_id)))) continue;
        if (r->arch_in && !arch_matches(r->arch_in, arch)) continue;
        if (r->type && r->type != d->type) continue;
        if ((cond & r->when) != r->when) continue;
        q |= r->bit;
    }
    return q;
}

const char *fp8i_quirk_evidence(unsigned bit)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (bit < 32 && rules[i].bit == (1u << bit)) return rules[i].evidence;
    return NULL;
}

const char *fp8_quirk_name(unsigned bit)
{
    static const char *const names[FP8I_QUIRK_COUNT_] = {
        "coopmat-unreliable", "coopmat-slow", "no-fp16-denormals", "small-buffer-range",
        "coopmat-query-crash", "shader-compiler-unreliable", "ptx-fp8-mma-emulated",
    };
    return bit < FP8I_QUIRK_COUNT_ ? names[bit] : NULL;
}
