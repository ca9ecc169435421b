/* FP8_VK_PROFILE=1: a device timestamp after every dispatch, reported at the next synchronize through the log
 * callback (INFO, one line per dispatch: what ran, and the device time since the mark before it, barrier and
 * launch included). It is for finding where a composed call such as the MoE layer spends its time, which the
 * whole-call timer cannot say; it is never on by default. The marks of one batch are timed from that batch's
 * start; marks past the pool's capacity are counted and dropped. Dispatches of a concurrent section
 * (fp8i_vk_concurrent) overlap, so there a line's time is from the previous mark, not the dispatch's own. */
#include "vk_internal.h"

#include <stdlib.h>

fp8_status fp8i_vk_profile_init(fp8i_vk_device *vd)
{
    if (!fp8i_env_flag("FP8_VK_PROFILE") || !vd->timestamp_bits) return FP8_OK;
    VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO, .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                .queryCount = FP8I_VK_PROFILE_MARKS};
    VkResult r = vkCreateQueryPool(vd->device, &qi, NULL, &vd->prof_pool);
    if (r != VK_SUCCESS) return fp8i_vk_status(vd->ctx, r, "vkCreateQueryPool(profile)");
    FP8I_INFO(vd->ctx, "vulkan: FP8_VK_PROFILE: a timestamp after every dispatch, reported at synchronize");
    return FP8_OK;
}

void fp8i_vk_profile_destroy(fp8i_vk_device *vd)
{
    if (vd->prof_pool) vkDestroyQueryPool(vd->device, vd->prof_pool, NULL);
    vd->prof_pool = VK_NULL_HANDLE;
}

/* what == NULL marks the start of a batch. */
void fp8i_vk_profile_mark(fp8i_vk_device *vd, VkCommandBuffer cb, const char *what)
{
    if (!vd->prof_pool) return;
    if (vd->prof_count >= FP8I_VK_PROFILE_MARKS) {
        vd->prof_dropped++;
        return;
    }
    const uint32_t q = vd->prof_count++;
    vd->prof_what[q] = what;
    /* One reset of the whole pool before the first mark of a report, rather than one before each mark: fewer
     * commands between the dispatches being timed (runs 33-35 of docs/BENCHMARKS.md had a reset per mark). */
    if (q == 0) vkCmdResetQueryPool(cb, vd->prof_pool, 0, FP8I_VK_PROFILE_MARKS);
    vkCmdWriteTimestamp(cb, what ? VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT : VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT,
                        vd->prof_pool, q);
}

/* After every batch has completed. */
void fp8i_vk_profile_report(fp8i_vk_device *vd)
{
    if (!vd->prof_pool || !vd->prof_count) return;
    uint64_t *t = malloc(sizeof *t * vd->prof_count);
    VkResult r = t ? vkGetQueryPoolResults(vd->device, vd->prof_pool, 0, vd->prof_count, sizeof *t * vd->prof_count, t,
                                           sizeof *t, VK_QUERY_RESULT_64_BIT)
                   : VK_ERROR_OUT_OF_HOST_MEMORY;
    if (r == VK_SUCCESS) {
        const uint64_t mask = vd->timestamp_bits >= 64 ? UINT64_MAX : ((uint64_t)1 << vd->timestamp_bits) - 1;
        const double period = vd->props.limits.timestampPeriod;
        double total = 0;
        for (uint32_t i = 0; i < vd->prof_count; i++) {
            if (!vd->prof_what[i] || i == 0) continue;
            const double us = (double)((t[i] - t[i - 1]) & mask) * period / 1e3;
            total += us;
            FP8I_INFO(vd->ctx, "vulkan profile: %-26s %9.2f us", vd->prof_what[i], us);
        }
        FP8I_INFO(vd->ctx, "vulkan profile: %-26s %9.2f us (%u marks, %u dropped)", "total", total, vd->prof_count,
                  vd->prof_dropped);
    } else {
        FP8I_WARN(vd->ctx, "vulkan: profile timestamps unreadable (%d)", (int)r);
    }
    free(t);
    vd->prof_count = 0;
    vd->prof_dropped = 0;
}
