/* The quirk table: which driver behaviours we work around, matched by vendor, driver and name. */
#include "quirks.h"

#include <string.h>

typedef struct quirk_rule {
    const char *why;            /* the observation behind the rule, for the log */
    uint32_t bit;
    fp8_backend backend;        /* 0: any */
    uint32_t vendor_id;         /* 0: any */
    const char *driver_contains;/* NULL: any */
    const char *name_contains;  /* NULL: any */
} quirk_rule;

static const quirk_rule rules[] = {
    /* AMD's proprietary Vulkan driver (AMDVLK/Radeon Software) exposes VK_KHR_cooperative_matrix on RDNA2 and
     * older, which have no WMMA: the driver emulates it, slower than FMA tiles. */
    {"amd-proprietary-coopmat-emulated", FP8I_QUIRK_COOPMAT_SLOW, FP8_BACKEND_VULKAN, 0x1002, "AMD proprietary", "RX 6"},
    /* Intel Arc (Xe-HPG) under ANV: cooperative matrix shaders measured slower than the tiled path. */
    {"intel-arc-coopmat-slow", FP8I_QUIRK_COOPMAT_SLOW, FP8_BACKEND_VULKAN, 0x8086, NULL, "Arc(TM) A"},
    /* lavapipe: a 128 MiB storage buffer range on machines with far more memory. */
    {"lavapipe-small-buffer-range", FP8I_QUIRK_SMALL_BUFFER_RANGE, FP8_BACKEND_VULKAN, 0, NULL, "llvmpipe"},
};

static bool contains(const char *hay, const char *needle) { return !needle || (hay && strstr(hay, needle)); }

uint32_t fp8i_quirks_for(const fp8_device_info *d)
{
    uint32_t q = 0;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const quirk_rule *r = &rules[i];
        if (r->backend && r->backend != d->backend) continue;
        if (r->vendor_id && r->vendor_id != d->vendor_id) continue;
        if (!contains(d->driver_name, r->driver_contains) || !contains(d->name, r->name_contains)) continue;
        q |= r->bit;
    }
    return q;
}

const char *fp8_quirk_name(unsigned bit)
{
    static const char *const names[] = {"coopmat-unreliable", "coopmat-slow", "no-fp16-denormals", "small-buffer-range"};
    return bit < sizeof names / sizeof names[0] ? names[bit] : NULL;
}
