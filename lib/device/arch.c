/* Which architecture a capability record describes, from its vendor, driver, limits and name. */
#include "device.h"

#include <ctype.h>
#include <string.h>

static bool has(const char *hay, const char *needle)
{
    const size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return true;
    }
    return false;
}

static bool has_any(const char *hay, const char *const *needles)
{
    for (; *needles; needles++)
        if (has(hay, *needles)) return true;
    return false;
}

/* AMD. RADV names carry the chip ("RADV NAVI31", "RADV GFX1201"), ROCm OpenCL names the target ("gfx1100");
 * AMD's own driver names only the product, so the limits decide there: GCN runs wave64 only, RDNA1 has 20
 * wavefronts per SIMD, RDNA3 added mixed-signedness dot4 (the test ggml-vulkan uses for its WMMA gate). */
static const char *amd_arch(const fp8_device_info *d)
{
    static const char *const rdna4[] = {"GFX12", "NAVI4", "RX 90", "R9700", "R9600", NULL};
    static const char *const rdna3[] = {"GFX11", "NAVI3", "PHOENIX", "STRIX", "RX 7", "W7", "780M", "760M", "890M", "880M", "860M", NULL};
    static const char *const rdna2[] = {"GFX103", "NAVI2", "VANGOGH", "REMBRANDT", "RAPHAEL", "RX 6", "W6", "680M", "660M", NULL};
    static const char *const rdna1[] = {"GFX101", "NAVI1", "RX 5300", "RX 5500", "RX 5600", "RX 5700", "W5500", "W5700", NULL};
    static const char *const cdna[] = {"GFX908", "GFX90A", "GFX94", "GFX95", "MI100", "MI2", "MI3", NULL};
    static const char *const gcn[] = {"GFX9", "GFX8", "VEGA", "POLARIS", "RX 4", "RX 5", "MI50", "MI60", NULL};
    const fp8_device_caps *c = &d->caps;
    if (has_any(d->name, rdna4) || c->ext_shader_float8) return "amd-rdna4";
    if (has_any(d->name, rdna3) || c->int_dot_mixed_accelerated) return "amd-rdna3";
    if (has_any(d->name, rdna2)) return "amd-rdna2";
    if (has_any(d->name, rdna1) || c->amd_wavefronts_per_simd == 20) return "amd-rdna1";
    if (has_any(d->name, cdna)) return "amd-cdna"; /* Instinct: wave64 like GCN, but with MFMA matrix units */
    if (c->subgroup_min == 64 && c->subgroup_max == 64) return "amd-gcn";
    if (has_any(d->name, gcn)) return "amd-gcn";
    if (c->subgroup_min == 32 && c->subgroup_max == 64) return "amd-rdna2";
    return "amd";
}

/* Intel. Xe2 runs SIMD16 natively, so its smallest subgroup is 16; older Xe and Gen report 8. */
static const char *intel_arch(const fp8_device_info *d)
{
    static const char *const xe2[] = {"BMG", "LNL", "Arc(TM) B", "Arc(tm) B", "Arc B", "140V", "130V", NULL};
    static const char *const hpg[] = {"DG2", "Arc(TM) A", "Arc(tm) A", "Arc A", NULL};
    if (d->caps.subgroup_min == 16 || has_any(d->name, xe2)) return "intel-xe2";
    if (has_any(d->name, hpg)) return "intel-xe-hpg";
    if (d->caps.subgroup_min == 8) return "intel-pre-xe2";
    return "intel";
}

static const char *nvidia_from_cc(uint32_t major, uint32_t minor)
{
    if (major >= 10) return "nvidia-blackwell";
    if (major == 9) return "nvidia-hopper";
    if (major == 8) return minor >= 9 ? "nvidia-ada" : "nvidia-ampere";
    if (major == 7) return minor >= 5 ? "nvidia-turing" : "nvidia-volta";
    if (major > 0) return "nvidia-pre-volta";
    return NULL;
}

static const char *nvidia_arch(const fp8_device_info *d)
{
    const char *cc = nvidia_from_cc(d->caps.nv_compute_major, d->caps.nv_compute_minor);
    if (cc) return cc;
    /* Vulkan gives no compute capability: the product name does. Ada before Ampere ("RTX 6000 Ada"). */
    static const char *const blackwell[] = {"RTX 50", "B100", "B200", "B300", "GB10", "RTX PRO", "Thor", NULL};
    static const char *const hopper[] = {"H100", "H200", "H800", "H20", "GH200", NULL};
    static const char *const ada[] = {"RTX 40", " Ada", "L40", "L4", "L20", NULL};
    static const char *const ampere[] = {"RTX 30", "RTX A", "A100", "A800", "A10", "A16", "A30", "A40", "A2", "Orin", NULL};
    static const char *const turing[] = {"RTX 20", "GTX 16", "TITAN RTX", "Quadro RTX", "T4", "T1000", "T600", "T400", NULL};
    if (has_any(d->name, blackwell)) return "nvidia-blackwell";
    if (has_any(d->name, hopper)) return "nvidia-hopper";
    if (has_any(d->name, ada)) return "nvidia-ada";
    if (has_any(d->name, ampere)) return "nvidia-ampere";
    if (has_any(d->name, turing)) return "nvidia-turing";
    return "nvidia";
}

static const char *adreno_arch(const fp8_device_info *d)
{
    const char *p = strstr(d->name, "Adreno");
    if (p) {
        while (*p && !isdigit((unsigned char)*p)) p++;
        switch (*p) {
        case '5': return "adreno-5xx";
        case '6': return "adreno-6xx";
        case '7': return "adreno-7xx";
        case '8': return "adreno-8xx";
        default: break;
        }
    }
    return "adreno";
}

/* Arm Mali: Valhall (G57..G715, G310..G615) before the 5th generation (G720, G620, G925 and Immortalis). */
static const char *mali_arch(const fp8_device_info *d)
{
    static const char *const gen5[] = {"G720", "G620", "G925", "G725", "G625", NULL};
    static const char *const valhall[] = {"G57", "G68", "G77", "G78", "G310", "G510", "G610", "G710", "G615", "G715", NULL};
    static const char *const bifrost[] = {"G31", "G51", "G52", "G71", "G72", "G76", NULL};
    if (has_any(d->name, gen5)) return "mali-5th-gen";
    if (has_any(d->name, valhall)) return "mali-valhall";
    if (has_any(d->name, bifrost)) return "mali-bifrost";
    return "mali";
}

const char *fp8i_arch_of(const fp8_device_info *d)
{
    if (d->backend == FP8_BACKEND_CPU) return "";
    switch (d->vendor_id) {
    case 0x1002: return amd_arch(d);
    case 0x8086: return d->type == FP8_DEVICE_CPU ? "" : intel_arch(d);
    case 0x10DE: return nvidia_arch(d);
    case 0x5143: return adreno_arch(d);
    case 0x13B5: return mali_arch(d);
    default: break;
    }
    /* Drivers that run on the CPU: lavapipe (Mesa's vendor id 0x10005) and friends. */
    if (d->driver_id == 13 /* VK_DRIVER_ID_MESA_LLVMPIPE */) return "llvmpipe";
    return "";
}

fp8_dtype fp8i_dtype_from_vk_component(int32_t t)
{
    switch (t) {
    case 0: return FP8_F16;
    case 1: return FP8_F32;
    case 3: return FP8_I8;
    case 5: return FP8_I32;
    case 7: return FP8_U8;
    case 9: return FP8_U32;
    case 1000141000: return FP8_BF16;   /* VK_COMPONENT_TYPE_BFLOAT16_KHR */
    case 1000491002: return FP8_E4M3FN; /* VK_COMPONENT_TYPE_FLOAT8_E4M3_EXT (= FLOAT_E4M3_NV) */
    case 1000491003: return FP8_E5M2;   /* VK_COMPONENT_TYPE_FLOAT8_E5M2_EXT (= FLOAT_E5M2_NV) */
    default: return FP8_DTYPE_INVALID;  /* f64, int16, int64, packed int8 */
    }
}
