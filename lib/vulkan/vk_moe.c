/* MoE on Vulkan: the moe_* backend slots (routing, grouping, activation quantization, grouped GEMM, combine),
 * their pipelines and dispatch, and the per-device error word that fp8_device_synchronize reports.
 *
 * The MoE shaders need more buffers than the GEMM's six bindings (the plan, per-expert tensor scales, the
 * error word), so they have a descriptor set layout and pipeline layout of their own; their sets come from the
 * same per-slot descriptor pools (each counted as two of the pool's six-binding sets) and their commands join
 * the same batches, hazard tracking and barriers as every other command. The contract of each slot is the
 * top comment of lib/backend/moe.h; the kernels are shaders/moe_*.comp.
 *
 * Grouped GEMM kernels, by the plan's row_align (fp8_moe_row_align picks it from the rows per expert):
 *   1 or no tile height   moe_gemv.comp: per active expert, 1-4 rows a pass (decode)
 *   16, 32 (64, 128)      moe_gemm.comp: f32 tiles in shared memory
 *   64, 128               moe_gemm_coopmat.comp where the device's GEMM runs on cooperative matrices
 * Environment (for tuning and tests): FP8_VK_MOE_PRECISE_ACCUM=1 (two-float sums in moe_gemv),
 * FP8_VK_MOE_NO_COOPMAT=1, FP8_VK_EMULATE_COOPMAT=1 (the cooperative-matrix kernel's plain-FMA twin),
 * FP8_VK_MOE_STAGED_EPILOGUE=1 (that kernel's epilogue through shared memory), FP8_VK_NO_SUBGROUP=1,
 * FP8_VK_EXACT_DECODE=1. */
#include "vk_internal.h"

#include "../backend/moe.h"
#include "../device/quirks.h"
#include "../format/format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shaders hard-code these statuses (moe_common.glsl). */
_Static_assert(FP8_ERR_INVALID_ARGUMENT == -1 && FP8_ERR_EXPERT_ID == -16 && FP8_ERR_NOT_FINITE == -17,
               "moe_common.glsl's status codes");

/* Bindings of the MoE descriptor set (MB_* in shaders/moe_common.glsl). */
enum {
    MB_W = 0, MB_WS = 1, MB_X = 2, MB_XS = 3, MB_BIAS = 4, MB_Y = 5, MB_PLAN = 6, MB_TS = 7, MB_ERR = 8,
    MB_COUNT = 9
};
#define SETS_PER_DISPATCH 2u /* a 9-binding set takes as many descriptors as two 6-binding ones */
#define GRID_MAX 65535u      /* the workgroup count every device allows in y and z */

/* ------------------------------------------------------------------------------------------------
 * Shaders.
 * ---------------------------------------------------------------------------------------------- */
typedef enum moe_shader {
    MS_ROUTE, MS_ROUTE_NOSG, MS_GROUP, MS_QUANT, MS_GEMV, MS_GEMV_NOSG, MS_GEMM, MS_GEMM_NV_COOPMAT,
    MS_GEMM_KHR_COOPMAT, MS_GEMM_COOPMAT_EMU, MS_COMBINE, MS_COUNT
} moe_shader;

#ifdef FP8_HAVE_SPV_MOE_ROUTE
static const uint32_t spv_moe_route[] =
#include "shaders/moe_route.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_MOE_ROUTE_NOSG
static const uint32_t spv_moe_route_nosg[] =
#include "shaders/moe_route_nosg.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_MOE_GROUP
static const uint32_t spv_moe_group[] =
#include "shaders/moe_group.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_MOE_QUANT
static const uint32_t spv_moe_quant[] =
#include "shaders/moe_quant.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_MOE_GEMV
static const uint32_t spv_moe_gemv[] =
#include "shaders/moe_gemv.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_MOE_GEMV_NOSG
static const uint32_t spv_moe_gemv_nosg[] =
#include "shaders/moe_gemv_nosg.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_MOE_GEMM
static const uint32_t spv_moe_gemm[] =
#include "shaders/moe_gemm.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_MOE_GEMM_NV_COOPMAT
static const uint32_t spv_moe_gemm_nv_coopmat[] =
#include "shaders/moe_gemm_nv_coopmat.spv.h"
    ;
#endif
/* The KHR variant may come from glslangValidator, whose header is a whole declaration. */
#ifdef FP8_HAVE_SPV_MOE_GEMM_KHR_COOPMAT
#ifdef FP8_SPV_MOE_GEMM_KHR_COOPMAT_IS_DECL
#include "shaders/moe_gemm_khr_coopmat.spv.h"
#define spv_moe_gemm_khr_coopmat fp8i_spv_moe_gemm_khr_coopmat
#else
static const uint32_t spv_moe_gemm_khr_coopmat[] =
#include "shaders/moe_gemm_khr_coopmat.spv.h"
    ;
#endif
#endif
#ifdef FP8_HAVE_SPV_MOE_GEMM_COOPMAT_EMU
static const uint32_t spv_moe_gemm_coopmat_emu[] =
#include "shaders/moe_gemm_coopmat_emu.spv.h"
    ;
#endif
#ifdef FP8_HAVE_SPV_MOE_COMBINE
static const uint32_t spv_moe_combine[] =
#include "shaders/moe_combine.spv.h"
    ;
#endif

static fp8i_vk_spirv shader_code(moe_shader s)
{
#define CASE(id, name) case id: return (fp8i_vk_spirv){#name, spv_##name, sizeof spv_##name}
    switch (s) {
#ifdef FP8_HAVE_SPV_MOE_ROUTE
    CASE(MS_ROUTE, moe_route);
#endif
#ifdef FP8_HAVE_SPV_MOE_ROUTE_NOSG
    CASE(MS_ROUTE_NOSG, moe_route_nosg);
#endif
#ifdef FP8_HAVE_SPV_MOE_GROUP
    CASE(MS_GROUP, moe_group);
#endif
#ifdef FP8_HAVE_SPV_MOE_QUANT
    CASE(MS_QUANT, moe_quant);
#endif
#ifdef FP8_HAVE_SPV_MOE_GEMV
    CASE(MS_GEMV, moe_gemv);
#endif
#ifdef FP8_HAVE_SPV_MOE_GEMV_NOSG
    CASE(MS_GEMV_NOSG, moe_gemv_nosg);
#endif
#ifdef FP8_HAVE_SPV_MOE_GEMM
    CASE(MS_GEMM, moe_gemm);
#endif
#ifdef FP8_HAVE_SPV_MOE_GEMM_NV_COOPMAT
    CASE(MS_GEMM_NV_COOPMAT, moe_gemm_nv_coopmat);
#endif
#ifdef FP8_HAVE_SPV_MOE_GEMM_KHR_COOPMAT
    CASE(MS_GEMM_KHR_COOPMAT, moe_gemm_khr_coopmat);
#endif
#ifdef FP8_HAVE_SPV_MOE_GEMM_COOPMAT_EMU
    CASE(MS_GEMM_COOPMAT_EMU, moe_gemm_coopmat_emu);
#endif
#ifdef FP8_HAVE_SPV_MOE_COMBINE
    CASE(MS_COMBINE, moe_combine);
#endif
    default: return (fp8i_vk_spirv){"moe (not compiled)", NULL, 0};
    }
#undef CASE
}

/* ------------------------------------------------------------------------------------------------
 * Per-device state: layouts, pipelines, the error word.
 * ---------------------------------------------------------------------------------------------- */
#define MAX_SPEC 28u

typedef struct moe_pipeline {
    moe_shader shader;
    uint32_t spec[MAX_SPEC];
    VkPipeline pipeline;
} moe_pipeline;

struct fp8i_vk_moe {
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    moe_pipeline *pipelines;
    uint32_t pipeline_count, pipeline_cap;
    fp8_buffer err;               /* one word (16 bytes allocated), device-local, written by kernels with atomics */
    bool err_ready;
    VkBuffer readback;            /* host-visible copy of the word, made at synchronize */
    VkDeviceMemory readback_mem;
    volatile uint32_t *readback_map;
    bool shuffle;                 /* subgroupShuffleXor in compute (the exact GEMV reduction) */
    bool used;                    /* a MoE kernel ran since the last synchronize */
    bool fetched;                 /* the copy to readback is recorded, not yet read */
};

void fp8i_vk_moe_destroy(fp8i_vk_device *vd)
{
    fp8i_vk_moe *m = vd->moe;
    if (!m) return;
    if (m->err_ready) fp8i_vk_buffer_free(&m->err);
    for (uint32_t i = 0; i < m->pipeline_count; i++) vkDestroyPipeline(vd->device, m->pipelines[i].pipeline, NULL);
    fp8i_free(vd->ctx, m->pipelines);
    if (m->readback_map) vkUnmapMemory(vd->device, m->readback_mem);
    if (m->readback) vkDestroyBuffer(vd->device, m->readback, NULL);
    if (m->readback_mem) vkFreeMemory(vd->device, m->readback_mem, NULL);
    if (m->layout) vkDestroyPipelineLayout(vd->device, m->layout, NULL);
    if (m->set_layout) vkDestroyDescriptorSetLayout(vd->device, m->set_layout, NULL);
    fp8i_free(vd->ctx, m);
    vd->moe = NULL;
}

/* Create the state on first use: devices that never run MoE pay nothing. */
static fp8_status moe_state(fp8i_vk_device *vd, fp8i_vk_moe **out)
{
    if (vd->moe) {
        *out = vd->moe;
        return FP8_OK;
    }
    const fp8_context *ctx = vd->ctx;
    fp8i_vk_moe *m = fp8i_calloc(ctx, 1, sizeof *m);
    if (!m) return FP8_ERR_OUT_OF_HOST_MEMORY;
    vd->moe = m;
    VkDescriptorSetLayoutBinding b[MB_COUNT];
    for (uint32_t i = 0; i < MB_COUNT; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                          .bindingCount = MB_COUNT, .pBindings = b};
    VkResult r = vkCreateDescriptorSetLayout(vd->device, &li, NULL, &m->set_layout);
    fp8_status st = FP8_OK;
    if (r != VK_SUCCESS) { st = fp8i_vk_status(ctx, r, "vkCreateDescriptorSetLayout(moe)"); goto fail; }
    VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = FP8I_VK_PUSH_BYTES};
    VkPipelineLayoutCreateInfo pli = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                      .pSetLayouts = &m->set_layout, .pushConstantRangeCount = 1, .pPushConstantRanges = &pr};
    r = vkCreatePipelineLayout(vd->device, &pli, NULL, &m->layout);
    if (r != VK_SUCCESS) { st = fp8i_vk_status(ctx, r, "vkCreatePipelineLayout(moe)"); goto fail; }
    /* Word 0: the first data error; word 1: the fused routing's count of finished workgroups (moe_common.glsl). */
    m->err = (fp8_buffer){.dev = vd->dev, .size = 16};
    if ((st = fp8i_vk_buffer_create(&m->err)) != FP8_OK) goto fail;
    m->err_ready = true;
    st = fp8i_vk_alloc_buffer(vd, 16, VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                              VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, &m->readback,
                              &m->readback_mem);
    if (st != FP8_OK) goto fail;
    void *map = NULL;
    if ((r = vkMapMemory(vd->device, m->readback_mem, 0, VK_WHOLE_SIZE, 0, &map)) != VK_SUCCESS) {
        st = fp8i_vk_status(ctx, r, "vkMapMemory(moe error word)");
        goto fail;
    }
    m->readback_map = map;
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sg};
    vkGetPhysicalDeviceProperties2(vd->phys, &p2);
    m->shuffle = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && (sg.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    *out = m;
    return FP8_OK;
fail:
    fp8i_vk_moe_destroy(vd);
    return st;
}

static fp8_status get_pipeline(fp8i_vk_device *vd, fp8i_vk_moe *m, moe_shader shader, const uint32_t spec[MAX_SPEC],
                               VkPipeline *out)
{
    const fp8_context *ctx = vd->ctx;
    const fp8i_vk_spirv code = shader_code(shader);
    vd->prof_next = code.name; /* FP8_VK_PROFILE's label for the dispatch that follows */
    for (uint32_t i = 0; i < m->pipeline_count; i++)
        if (m->pipelines[i].shader == shader && memcmp(m->pipelines[i].spec, spec, sizeof m->pipelines[i].spec) == 0) {
            *out = m->pipelines[i].pipeline;
            return FP8_OK;
        }
    if (!code.code) return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED, "vulkan: MoE shader %d was not compiled into this build", (int)shader);
    if (m->pipeline_count == m->pipeline_cap) {
        const uint32_t cap = m->pipeline_cap ? 2 * m->pipeline_cap : 16;
        moe_pipeline *p = fp8i_calloc(ctx, cap, sizeof *p);
        if (!p) return FP8_ERR_OUT_OF_HOST_MEMORY;
        if (m->pipelines) memcpy(p, m->pipelines, m->pipeline_count * sizeof *p);
        fp8i_free(ctx, m->pipelines);
        m->pipelines = p;
        m->pipeline_cap = cap;
    }
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = code.size, .pCode = code.code};
    VkShaderModule module;
    VkResult r = vkCreateShaderModule(vd->device, &mi, NULL, &module);
    if (r != VK_SUCCESS) {
        fp8i_vk_status(ctx, r, "vkCreateShaderModule");
        return FP8I_FAIL(ctx, FP8_ERR_KERNEL_BUILD, "vulkan: shader module %s rejected", code.name);
    }
    VkSpecializationMapEntry map[MAX_SPEC];
    for (uint32_t i = 0; i < MAX_SPEC; i++) map[i] = (VkSpecializationMapEntry){i, i * 4, 4};
    VkSpecializationInfo si = {.mapEntryCount = MAX_SPEC, .pMapEntries = map, .dataSize = MAX_SPEC * 4, .pData = spec};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = module, .pName = "main", .pSpecializationInfo = &si},
        .layout = m->layout,
        .flags = vd->feat.pipeline_stats ? VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR : 0,
    };
    VkPipeline pipeline;
    r = vkCreateComputePipelines(vd->device, vd->pipeline_cache, 1, &ci, NULL, &pipeline);
    vkDestroyShaderModule(vd->device, module, NULL);
    if (r != VK_SUCCESS) {
        fp8i_vk_status(ctx, r, "vkCreateComputePipelines");
        return FP8I_FAIL(ctx, FP8_ERR_KERNEL_BUILD, "vulkan: pipeline for %s not created", code.name);
    }
    moe_pipeline *e = &m->pipelines[m->pipeline_count++];
    e->shader = shader;
    memcpy(e->spec, spec, sizeof e->spec);
    e->pipeline = pipeline;
    FP8I_DEBUG(ctx, "vulkan: created pipeline %s", code.name);
    if (vd->feat.pipeline_stats) fp8i_vk_log_pipeline_stats(vd, pipeline, code.name, spec, MAX_SPEC);
    *out = pipeline;
    return FP8_OK;
}

/* Bind the buffers (NULL: the dummy; the error word always), push constants, dispatch. The error word counts
 * as written by every MoE dispatch: without a barrier, two independent dispatches (say grouping bad ids and
 * routing NaN logits) run concurrently on a real GPU and either may win the compare-and-swap, so the error
 * reported would not be the first in submission order (seen on the H100; lavapipe serialises them). */
/* One dispatch with the MoE descriptor set: buffers bound whole, except the weights at w_window (when not NULL):
 * from that byte offset, as far as one binding addresses (the grouped GEMM's windows of experts). */
static fp8_status dispatch_windowed(fp8i_vk_device *vd, fp8i_vk_moe *m, VkPipeline pipeline, fp8_buffer *const bufs[MB_COUNT],
                                    const VkDeviceSize *w_window, uint32_t written_mask, const void *push,
                                    uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz)
{
    const fp8_context *ctx = vd->ctx;
    const VkPhysicalDeviceLimits *lim = &vd->props.limits;
    if (gx == 0 || gy == 0 || gz == 0) return FP8_OK;
    if (gx > lim->maxComputeWorkGroupCount[0] || gy > lim->maxComputeWorkGroupCount[1] || gz > lim->maxComputeWorkGroupCount[2])
        return FP8I_FAIL(ctx, FP8_ERR_TOO_LARGE, "vulkan: MoE grid %ux%ux%u exceeds the device's workgroup counts", gx, gy, gz);
    if (push_size > FP8I_VK_PUSH_BYTES) return FP8I_FAIL(ctx, FP8_ERR_INTERNAL, "vulkan: MoE push constants too large");
    fp8_status st = fp8i_vk_check_bindable(vd, bufs, MB_COUNT, w_window ? 1u << MB_W : 0);
    if (st == FP8_OK) st = fp8i_vk_begin(vd);
    if (st != FP8_OK) return st;
    if (vd->slots[vd->cur].sets_used + SETS_PER_DISPATCH > FP8I_VK_SETS_PER_SLOT) {
        if ((st = fp8i_vk_submit(vd)) != FP8_OK || (st = fp8i_vk_begin(vd)) != FP8_OK) return st;
    }
    fp8i_vk_slot *s = &vd->slots[vd->cur];
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, .descriptorPool = s->pool,
                                      .descriptorSetCount = 1, .pSetLayouts = &m->set_layout};
    VkDescriptorSet set;
    VkResult r = vkAllocateDescriptorSets(vd->device, &ai, &set);
    if (r != VK_SUCCESS) return fp8i_vk_status(ctx, r, "vkAllocateDescriptorSets(moe)");
    s->sets_used += SETS_PER_DISPATCH;

    VkDescriptorBufferInfo info[MB_COUNT];
    VkWriteDescriptorSet w[MB_COUNT];
    fp8i_vk_buffer *reads[MB_COUNT], *writes[MB_COUNT];
    uint32_t nr = 0, nw = 0;
    for (uint32_t i = 0; i < MB_COUNT; i++) {
        fp8i_vk_buffer *b = i == MB_ERR ? fp8i_vk_buf(&m->err) : bufs[i] ? fp8i_vk_buf(bufs[i]) : NULL;
        info[i] = (VkDescriptorBufferInfo){.buffer = b ? b->buffer : vd->dummy, .offset = 0, .range = VK_WHOLE_SIZE};
        if (b && i == MB_W && w_window) {
            const VkDeviceSize rest = b->alloc_size - *w_window;
            info[i].offset = *w_window;
            info[i].range = rest < vd->max_buffer_bytes ? rest : vd->max_buffer_bytes;
        }
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set, .dstBinding = i,
                                      .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                      .pBufferInfo = &info[i]};
        if (b) {
            if (i == MB_ERR || (written_mask & (1u << i))) writes[nw++] = b;
            else reads[nr++] = b;
        }
    }
    vkUpdateDescriptorSets(vd->device, MB_COUNT, w, 0, NULL);
    fp8i_vk_hazard(vd, reads, nr, writes, nw);
    vkCmdBindPipeline(s->cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
    vkCmdBindDescriptorSets(s->cb, VK_PIPELINE_BIND_POINT_COMPUTE, m->layout, 0, 1, &set, 0, NULL);
    uint8_t pc[FP8I_VK_PUSH_BYTES] = {0};
    memcpy(pc, push, push_size);
    vkCmdPushConstants(s->cb, m->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, FP8I_VK_PUSH_BYTES, pc);
    vkCmdDispatch(s->cb, gx, gy, gz);
    fp8i_vk_profile_dispatch(vd, s->cb);
    m->used = true;
    return fp8i_vk_command_done(vd);
}

static fp8_status dispatch(fp8i_vk_device *vd, fp8i_vk_moe *m, VkPipeline pipeline, fp8_buffer *const bufs[MB_COUNT],
                           uint32_t written_mask, const void *push, uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz)
{
    return dispatch_windowed(vd, m, pipeline, bufs, NULL, written_mask, push, push_size, gx, gy, gz);
}

/* Large counts of workgroups go to a second grid dimension: count = hi * GRID_MAX + lo. */
static void split_grid(uint32_t count, uint32_t *lo, uint32_t *hi)
{
    *lo = count < GRID_MAX ? count : GRID_MAX;
    *hi = count / GRID_MAX + (count % GRID_MAX != 0);
    if (*hi == 0) *hi = 1;
}

static uint32_t div_up(uint32_t a, uint32_t b) { return a / b + (a % b != 0); }
static uint32_t pow2_at_least(uint32_t v, uint32_t lo)
{
    uint32_t p = lo;
    while (p < v) p *= 2;
    return p;
}
static uint32_t esize(fp8_dtype d) { return d == FP8_E2M1 ? 1 : fp8_dtype_bits(d) / 8; }
static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Subgroup arithmetic in compute, in groups small enough for the kernels' per-subgroup arrays. */
static bool use_subgroups(const fp8i_vk_device *vd)
{
    return vd->feat.subgroup_arith && vd->feat.subgroup_min >= 4 && !fp8i_env_flag("FP8_VK_NO_SUBGROUP");
}

static bool exact_decode(const fp8_device *dev)
{
    return !fp8i_vk_dev(dev)->fast_decode || (dev->entry->verdict.quirks & FP8I_QUIRK_NO_FP16_DENORMALS) ||
           fp8i_env_flag("FP8_VK_EXACT_DECODE");
}

static fp8_status need_shared(const fp8i_vk_device *vd, const char *what, uint64_t bytes)
{
    if (bytes <= vd->props.limits.maxComputeSharedMemorySize) return FP8_OK;
    return FP8I_FAIL(vd->ctx, FP8_ERR_UNSUPPORTED, "vulkan: %s needs %llu bytes of shared memory, %s has %u", what,
                     (unsigned long long)bytes, vd->props.deviceName, vd->props.limits.maxComputeSharedMemorySize);
}

/* ------------------------------------------------------------------------------------------------
 * The error word.
 * ---------------------------------------------------------------------------------------------- */
fp8_status fp8i_vk_moe_error_fetch(fp8i_vk_device *vd)
{
    fp8i_vk_moe *m = vd->moe;
    if (!m || !m->used) return FP8_OK;
    fp8_status st = fp8i_vk_begin(vd);
    if (st != FP8_OK) return st;
    VkCommandBuffer cb = vd->slots[vd->cur].cb;
    const VkMemoryBarrier before = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                                    .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &before, 0, NULL,
                         0, NULL);
    const VkBufferCopy c = {.srcOffset = 0, .dstOffset = 0, .size = 4};
    vkCmdCopyBuffer(cb, fp8i_vk_buf(&m->err)->buffer, m->readback, 1, &c);
    /* The read above, then the reset: a transfer-to-transfer dependency. */
    const VkMemoryBarrier between = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
                                     .dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &between, 0, NULL, 0,
                         NULL);
    vkCmdFillBuffer(cb, fp8i_vk_buf(&m->err)->buffer, 0, 16, 0);
    m->used = false;
    m->fetched = true;
    return fp8i_vk_command_done(vd);
}

fp8_status fp8i_vk_moe_error_take(fp8i_vk_device *vd)
{
    fp8i_vk_moe *m = vd->moe;
    if (!m || !m->fetched) return FP8_OK;
    m->fetched = false;
    const int32_t word = (int32_t)m->readback_map[0];
    m->readback_map[0] = 0;
    if (word == 0) return FP8_OK;
    if (word != FP8_ERR_EXPERT_ID && word != FP8_ERR_NOT_FINITE && word != FP8_ERR_INVALID_ARGUMENT)
        return FP8I_FAIL(vd->ctx, FP8_ERR_INTERNAL, "vulkan: MoE error word holds %d", word);
    return FP8I_FAIL(vd->ctx, (fp8_status)word, "vulkan: a MoE kernel met a data error (%s)", fp8_status_name((fp8_status)word));
}

/* ------------------------------------------------------------------------------------------------
 * Routing.
 * ---------------------------------------------------------------------------------------------- */
typedef struct route_push {
    uint32_t m, experts, top_k;
    uint32_t n_group, topk_group, group_top2;
    uint32_t softmax, renormalize;
    float scaling;
    uint32_t l_off, l_stride, b_off, i_off, i_stride, w_off, w_stride;
    uint32_t grid_x;
    uint32_t row_align, rows, tiles, slots, base; /* the plan, when grouping too */
} route_push;

/* Shared memory of a plan built in one workgroup (moe_plan_one.glsl), past its histogram: sid[256], part[256]
 * and part_sum[16] (uvec3, 16 bytes each in the worst layout). */
#define PLAN_ONE_SHARED (256 * 4 + 256 * 16 + 16 * 16)

/* Routing, and with `plan` (a decode plan: one chunk of slots) the grouping of its ids in the same dispatch. */
static fp8_status route_dispatch(fp8_device *dev, const fp8i_moe_route_args *a, const fp8i_moe_plan *plan)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    fp8i_vk_moe *m;
    fp8_status st = moe_state(vd, &m);
    if (st != FP8_OK) return st;
    /* Grouping needs 256 invocations (moe_plan_one.glsl) and its histogram. */
    const uint32_t wg = plan || a->experts > 128 ? 256 : a->experts <= 64 ? 64 : 128;
    const uint32_t keys = pow2_at_least(a->experts, 64), ng = pow2_at_least(a->n_group, 1);
    const uint32_t hb = plan ? pow2_at_least(plan->experts, 256) : 1;
    const uint64_t group_bytes = plan ? (uint64_t)hb * 4 + PLAN_ONE_SHARED + 4 : 0;
    if ((st = need_shared(vd, plan ? "MoE routing and grouping" : "MoE routing",
                          (uint64_t)keys * 4 + (uint64_t)ng * 8 + 64 * 8 + wg * 8 + 12 + group_bytes)) != FP8_OK)
        return st;
    uint32_t spec[MAX_SPEC] = {0};
    spec[0] = wg;
    spec[1] = a->logits.dtype;
    spec[2] = a->bias.buffer != NULL;
    spec[3] = keys;
    spec[4] = ng;
    spec[5] = plan != NULL;
    spec[6] = hb;
    VkPipeline p;
    if ((st = get_pipeline(vd, m, use_subgroups(vd) ? MS_ROUTE : MS_ROUTE_NOSG, spec, &p)) != FP8_OK) return st;
    uint32_t gx, gy;
    split_grid(a->m, &gx, &gy);
    const route_push pc = {
        .m = a->m, .experts = a->experts, .top_k = a->top_k, .n_group = a->n_group, .topk_group = a->topk_group,
        .group_top2 = a->group_score == FP8_MOE_GROUP_SCORE_TOP2_SUM, .softmax = a->scoring == FP8_MOE_SCORE_SOFTMAX,
        .renormalize = a->renormalize, .scaling = a->scaling,
        .l_off = (uint32_t)(a->logits.offset / esize(a->logits.dtype)), .l_stride = (uint32_t)a->logits.row_stride,
        .b_off = a->bias.buffer ? (uint32_t)(a->bias.offset / 4) : 0,
        .i_off = (uint32_t)(a->ids.offset / 4), .i_stride = (uint32_t)a->ids.row_stride,
        .w_off = (uint32_t)(a->weights.offset / 4), .w_stride = (uint32_t)a->weights.row_stride, .grid_x = gx,
        .row_align = plan ? plan->row_align : 0, .rows = plan ? plan->rows : 0, .tiles = plan ? plan->tiles : 0,
        .slots = plan ? plan->slots : 0, .base = plan ? (uint32_t)(plan->offset / 4) : 0};
    fp8_buffer *b[MB_COUNT] = {0};
    b[MB_X] = a->logits.buffer;
    b[MB_BIAS] = a->bias.buffer;
    b[MB_Y] = a->ids.buffer;
    b[MB_W] = a->weights.buffer;
    b[MB_PLAN] = plan ? plan->buffer : NULL;
    return dispatch(vd, m, p, b, 1u << MB_Y | 1u << MB_W | (plan ? 1u << MB_PLAN : 0), &pc, sizeof pc, gx, gy, 1);
}

fp8_status fp8i_vk_moe_route(fp8_device *dev, const fp8i_moe_route_args *a) { return route_dispatch(dev, a, NULL); }

/* Route and group in one dispatch, for decode plans (one chunk of slots) whose ids are the routing's output:
 * one dependent dispatch fewer per decode layer. On the H100 it took 0.5-1.8% (run 43) and 7% (Qwen3, run 44)
 * off the one-token layers of Qwen3-30B-A3B and gpt-oss-20b and left eight tokens unchanged.
 * FP8_VK_MOE_FUSED_ROUTE=0 turns it off. FP8_ERR_UNSUPPORTED, with nothing recorded, sends the caller to the
 * two separate calls. */
fp8_status fp8i_vk_moe_route_group(fp8_device *dev, const fp8i_moe_route_args *r, const fp8i_moe_group_args *g)
{
    const fp8i_moe_plan *p = &g->plan;
    if (fp8i_env_off("FP8_VK_MOE_FUSED_ROUTE") || div_up(p->slots, FP8I_MOE_CHUNK) != 1 || p->m != r->m ||
        p->top_k != r->top_k || p->experts != r->experts || g->ids.buffer != r->ids.buffer ||
        g->ids.offset != r->ids.offset || g->ids.row_stride != r->ids.row_stride)
        return FP8_ERR_UNSUPPORTED;
    return route_dispatch(dev, r, p);
}

/* ------------------------------------------------------------------------------------------------
 * Grouping: four passes (shaders/moe_group.comp).
 * ---------------------------------------------------------------------------------------------- */
typedef struct group_push {
    uint32_t m, top_k, experts, row_align, rows, tiles, slots, chunks;
    uint32_t base, ids_off, ids_stride, grid_x;
} group_push;

fp8_status fp8i_vk_moe_group(fp8_device *dev, const fp8i_moe_group_args *a)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    fp8i_vk_moe *m;
    fp8_status st = moe_state(vd, &m);
    if (st != FP8_OK) return st;
    const fp8i_moe_plan *p = &a->plan;
    const uint32_t hb = pow2_at_least(p->experts, 256);
    if ((st = need_shared(vd, "MoE grouping", (uint64_t)hb * 4 + PLAN_ONE_SHARED)) != FP8_OK) return st;
    const uint32_t chunks = div_up(p->slots, FP8I_MOE_CHUNK);
    group_push pc = {.m = p->m, .top_k = p->top_k, .experts = p->experts, .row_align = p->row_align, .rows = p->rows,
                     .tiles = p->tiles, .slots = p->slots, .chunks = chunks, .base = (uint32_t)(p->offset / 4),
                     .ids_off = (uint32_t)(a->ids.offset / 4), .ids_stride = (uint32_t)a->ids.row_stride};
    const uint32_t groups[4] = {
        chunks > div_up(p->rows, 256) ? chunks : div_up(p->rows, 256),
        div_up(p->experts, 256),
        1,
        chunks > div_up(p->tiles, 256) ? chunks : div_up(p->tiles, 256),
    };
    fp8_buffer *b[MB_COUNT] = {0};
    b[MB_X] = a->ids.buffer;
    b[MB_PLAN] = p->buffer;
    if (chunks == 1) { /* decode: the whole plan in one workgroup, one dispatch */
        uint32_t spec[MAX_SPEC] = {0};
        spec[0] = 4;
        spec[1] = hb;
        VkPipeline pl;
        if ((st = get_pipeline(vd, m, MS_GROUP, spec, &pl)) != FP8_OK) return st;
        pc.grid_x = 1;
        return dispatch(vd, m, pl, b, 1u << MB_PLAN, &pc, sizeof pc, 1, 1, 1);
    }
    for (uint32_t pass = 0; pass < 4; pass++) {
        uint32_t spec[MAX_SPEC] = {0};
        spec[0] = pass;
        spec[1] = pass == 0 ? hb : 256;
        VkPipeline pl;
        if ((st = get_pipeline(vd, m, MS_GROUP, spec, &pl)) != FP8_OK) return st;
        uint32_t gx, gy;
        split_grid(groups[pass], &gx, &gy);
        pc.grid_x = gx;
        if ((st = dispatch(vd, m, pl, b, 1u << MB_PLAN, &pc, sizeof pc, gx, gy, 1)) != FP8_OK) return st;
    }
    return FP8_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Activation quantization.
 * ---------------------------------------------------------------------------------------------- */
typedef struct quant_push {
    uint32_t rows, cols, bc, nb;
    uint32_t s_off, s_stride, d_off, d_stride, c_off, c_stride;
    uint32_t plan_base, row_token_at;
    uint32_t qmax_bits, grid_y, cb;
} quant_push;

fp8_status fp8i_vk_moe_quantize_rows(fp8_device *dev, const fp8i_moe_quant_args *a)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    /* 16-bit storage for the bf16 store (its module declares it either way), as the grouped GEMM after it. */
    if (!vd->feat.storage8 || !vd->feat.storage16)
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "vulkan: MoE activation quantization needs 8- and 16-bit storage");
    fp8i_vk_moe *m;
    fp8_status st = moe_state(vd, &m);
    if (st != FP8_OK) return st;
    const bool has_plan = a->plan.buffer != NULL, wide = a->dst.dtype == FP8_BF16;
    uint32_t spec[MAX_SPEC] = {0};
    spec[1] = a->src.dtype;
    spec[2] = a->grid;
    spec[3] = has_plan;
    spec[4] = wide;
    VkPipeline p;
    if ((st = get_pipeline(vd, m, MS_QUANT, spec, &p)) != FP8_OK) return st;
    uint32_t gy, gz;
    split_grid(a->rows, &gy, &gz);
    /* Blocks per workgroup: about 256 columns, one per invocation (a row of one block stays one workgroup). */
    const uint32_t nb = div_up(a->cols, a->block_cols);
    const uint32_t cb = a->block_cols >= 256 ? 1 : 256 / a->block_cols;
    const uint32_t gx = div_up(nb, cb);
    const uint32_t base = has_plan ? (uint32_t)(a->plan.offset / 4) : 0;
    const quant_push pc = {
        .rows = a->rows, .cols = a->cols, .bc = a->block_cols, .nb = nb,
        .s_off = (uint32_t)(a->src.offset / esize(a->src.dtype)), .s_stride = (uint32_t)a->src.row_stride,
        .d_off = (uint32_t)(a->dst.offset / (wide ? 2 : 1)), .d_stride = (uint32_t)a->dst.row_stride,
        .c_off = (uint32_t)(a->scales.offset / 4), .c_stride = (uint32_t)a->scales.row_stride,
        .plan_base = base, .row_token_at = has_plan ? base + (uint32_t)a->plan.row_token_at : 0,
        .qmax_bits = f32_bits((float)fp8_dtype_max(a->grid)), .grid_y = gy, .cb = cb};
    fp8_buffer *b[MB_COUNT] = {0};
    b[MB_X] = a->src.buffer;
    b[MB_Y] = a->dst.buffer;
    b[MB_XS] = a->scales.buffer;
    b[MB_PLAN] = a->plan.buffer;
    return dispatch(vd, m, p, b, 1u << MB_Y | 1u << MB_XS | (has_plan ? 1u << MB_PLAN : 0), &pc, sizeof pc, gx, gy, gz);
}

/* ------------------------------------------------------------------------------------------------
 * Grouped GEMM: the tiled kernel where row_align is one of its tile heights, the per-expert kernel
 * otherwise (decode: row_align 1).
 * ---------------------------------------------------------------------------------------------- */
typedef struct gemm_push {
    uint32_t m, n, k, n_out;
    uint32_t rows, experts, top_k, row_align;
    uint32_t plan_base;
    uint32_t w_off, w_stride, w_estride;
    uint32_t ws_off, ws_bpr, ws_estride;
    float w_ts;
    uint32_t ts_off;
    uint32_t x_off, x_stride;
    uint32_t xs_off, xs_bpr;
    float x_ts;
    uint32_t y_off, y_stride;
    uint32_t b_off, b_stride;
    uint32_t grid_y;
    uint32_t e_lo, e_hi; /* the experts whose weights this dispatch binds */
} gemm_push;

/* Scale modes of moe_gemm_common.glsl. */
enum { SM_NONE = 0, SM_ROW = 1, SM_CHUNK = 2, SM_ELEM = 3 };

static uint32_t scale_mode(const fp8i_scales *s, uint32_t k)
{
    if (s->dtype == FP8_DTYPE_INVALID) return SM_NONE;
    if (s->block_cols >= k) return SM_ROW;
    if (s->block_cols % 16 == 0) return SM_CHUNK;
    return SM_ELEM;
}

/* Tile heights of the tiled kernel (16 TM rows); a plan grouped with another row_align uses the per-expert one. */
static bool tiled_align(uint32_t a) { return a == 16 || a == 32 || a == 64 || a == 128; }

/* The cooperative-matrix kernel for tiles of 64 and 128 rows: where the device's own GEMM verdict is a
 * cooperative-matrix path (the variant, NV or KHR, of that verdict where the device and the build have it,
 * else the other; subgroups of 32 either way), or its plain-FMA twin under FP8_VK_EMULATE_COOPMAT=1 (tests).
 * FP8_VK_MOE_NO_COOPMAT=1 keeps the f32 tiles. Its operands are fp16, so f32 activations lose bits there;
 * tiles of 16 and 32 rows (a caller's explicit row_align) stay on the f32 kernel, whose results are within
 * f32 rounding of the reference. */
static moe_shader coopmat_shader(const fp8_device *dev, uint32_t tile)
{
    const fp8i_vk_device *vd = fp8i_vk_dev(dev);
    if ((tile != 64 && tile != 128) || fp8i_env_flag("FP8_VK_MOE_NO_COOPMAT")) return MS_COUNT;
    if (fp8i_env_flag("FP8_VK_EMULATE_COOPMAT")) return shader_code(MS_GEMM_COOPMAT_EMU).code ? MS_GEMM_COOPMAT_EMU : MS_COUNT;
    const fp8_path gp = dev->entry->verdict.gemm_path;
    if (gp != FP8_PATH_VK_GEMM_NV_COOPMAT && gp != FP8_PATH_VK_GEMM_KHR_COOPMAT) return MS_COUNT;
    if (!vd->feat.fp16 || !vd->feat.memory_model || vd->feat.subgroup_size != 32) return MS_COUNT;
    const bool nv = vd->feat.nv_coopmat_f16_16x16x16 && shader_code(MS_GEMM_NV_COOPMAT).code;
    const bool khr = vd->feat.khr_coopmat_f16_16x16x16 && shader_code(MS_GEMM_KHR_COOPMAT).code;
    if (khr && (gp == FP8_PATH_VK_GEMM_KHR_COOPMAT || !nv)) return MS_GEMM_KHR_COOPMAT;
    return nv ? MS_GEMM_NV_COOPMAT : MS_COUNT;
}

/* Dense calls (shared experts) tile m tokens from 32 on (below, the per-expert kernel takes 4 tokens per
 * workgroup): on matrix units 64 and 128 rows, else 128 rows on GPUs for large m and 64 on CPU devices. */
static uint32_t dense_tile(const fp8_device *dev, uint32_t m)
{
    const fp8i_vk_device *vd = fp8i_vk_dev(dev);
    if (coopmat_shader(dev, 64) != MS_COUNT) return m >= 128 ? 128 : m >= 64 ? 64 : m >= 32 ? 32 : 0;
    if (m < 32) return 0;
    return vd->props.deviceType != VK_PHYSICAL_DEVICE_TYPE_CPU && m >= 256 ? 128 : 64;
}

/* W8A8 layers on decode plans hand the per-expert GEMV (moe_gemv.comp) the bf16 values of their activation
 * codes. It widens every activation it reads next to the weights, 16 values per load and team: bf16 takes one
 * bit operation a value, FP8 codes about four. On the H100 (run 127, against 56489fa, with moe_gemv's changes
 * of the same commit range) the W8A8 decode layers took 0.80-0.87x the time: DeepSeek-V3 0.2615 -> 0.2309 ms
 * at one token and 1.4326 -> 1.1693 at eight, Qwen3-30B-A3B 0.0799 -> 0.0689 and 0.2419 -> 0.2009. The tiled
 * kernels convert a tile once into shared memory and keep the codes (a shared expert's dense call that takes
 * tiles from 32 tokens reads the same bf16 values, correctly, as a float input with scales). */
bool fp8i_vk_moe_act_bf16(const fp8_device *dev, uint32_t row_align)
{
    (void)dev; /* 16-bit storage is checked where it is needed: the quantization and the grouped GEMM */
    return !tiled_align(row_align);
}

/* Rows an expert gets on average decide: few, and the per-expert kernel reads each expert's weights once per
 * pass of up to 4 rows (row_align 1); more, and row tiles reuse each weight across the tile. Matrix units
 * make padded rows cheap, so there tiles start sooner. On the H100 (runs 88-89) 64-row tiles beat 128-row
 * ones at M = 4096 (128-512 rows an expert: layer time 0.74x DeepSeek-V3, 0.79x Qwen3-30B-A3B, 0.94x
 * gpt-oss-20b): a group pads to fewer rows, and 64-row tiles take the faster slices. At 2048 rows an expert
 * (gpt-oss-20b, M = 16384) the two tie (26.6 against 26.4 ms), and 128-row tiles read the weights half as
 * often, so they take over there. */
#define CM_ROWS_128 2048u
uint32_t fp8i_vk_moe_row_align(const fp8_device *dev, uint32_t m, uint32_t top_k, uint32_t experts)
{
    const fp8i_vk_device *vd = fp8i_vk_dev(dev);
    const uint64_t per = (uint64_t)m * top_k / (experts ? experts : 1);
    /* FP8_VK_MOE_ROW_ALIGN=1, 16, 32, 64 or 128 overrides the choice, for tuning on a device. */
    const char *env = getenv("FP8_VK_MOE_ROW_ALIGN");
    const unsigned forced = env ? (unsigned)strtoul(env, NULL, 10) : 0;
    if (forced == 1 || forced == 16 || forced == 32 || forced == 64 || forced == 128) return forced;
    if (vd && coopmat_shader(dev, 64) != MS_COUNT) {
        if (per < 8) return 1;
        return per < CM_ROWS_128 ? 64 : 128;
    }
    if (per < 16) return 1;
    const bool cpu = vd && vd->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    if (per >= 128 && !cpu) return 128;
    return per >= 64 ? 64 : per >= 32 ? 32 : 16;
}

/* Expert weights larger than one binding addresses (DeepSeek-V3's 256 experts hold 7.5 GB of gate/up) are
 * bound a window of whole experts at a time, one dispatch per window, each skipping the other windows'
 * experts. Windows start on the storage offset alignment (a multiple of 16, so the alignment flags chosen
 * from w.offset still hold for the offset inside the window). The buffer bound in b[MB_W] holds `count`
 * experts from byte w_off, the first of them pc->e_lo. */
static fp8_status dispatch_windows(fp8_device *dev, fp8i_vk_device *vd, fp8i_vk_moe *m, VkPipeline pl,
                                   fp8_buffer *const b[MB_COUNT], const fp8i_moe_gemm_args *a, size_t w_off,
                                   uint32_t count, gemm_push *pc, uint32_t gx, uint32_t gy, uint32_t gz)
{
    const uint64_t min_align = vd->props.limits.minStorageBufferOffsetAlignment;
    const uint64_t align = min_align > 16 ? min_align : 16;
    const uint64_t row_bytes = a->w.dtype == FP8_E2M1 ? ((uint64_t)a->k + 1) / 2 : a->k;
    const uint64_t expert_bytes = (uint64_t)(a->n - 1) * pc->w_stride + row_bytes + 16; /* word loads may pass the end */
    const uint64_t room = vd->max_buffer_bytes - (align - 1); /* a window may start align - 1 bytes early */
    if (expert_bytes > room || a->w_expert_stride > UINT32_MAX)
        return FP8I_FAIL(dev->ctx, FP8_ERR_TOO_LARGE,
                         "vulkan: one expert's weights (%llu bytes, %zu apart) exceed what one shader binding addresses "
                         "on %s (%llu)",
                         (unsigned long long)expert_bytes, a->w_expert_stride, vd->props.deviceName,
                         (unsigned long long)vd->max_buffer_bytes);
    const uint64_t w_est = a->w_expert_stride;
    const uint64_t per_window = w_est ? 1 + (room - expert_bytes) / w_est : count;
    const uint32_t e_first = pc->e_lo;
    for (uint64_t e0 = 0; e0 < count; e0 += per_window) {
        const uint64_t start = w_off + e0 * w_est;
        const VkDeviceSize base = start - start % align;
        pc->w_off = (uint32_t)(start - base);
        pc->e_lo = (uint32_t)(e_first + e0);
        pc->e_hi = (uint32_t)(e_first + (e0 + per_window < count ? e0 + per_window : count));
        fp8_status st = dispatch_windowed(vd, m, pl, b, &base, 1u << MB_Y, pc, sizeof *pc, gx, gy, gz);
        if (st != FP8_OK) return st;
    }
    return FP8_OK;
}

fp8_status fp8i_vk_moe_grouped_gemm(fp8_device *dev, const fp8i_moe_gemm_args *a)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    if (!vd->feat.storage16)
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "vulkan: the MoE GEMM needs 16-bit storage");
    fp8i_vk_moe *m;
    fp8_status st = moe_state(vd, &m);
    if (st != FP8_OK) return st;
    const fp8i_moe_plan *p = &a->plan;
    const bool dense = p->buffer == NULL;
    const bool gated = a->n_out != a->n;
    const uint32_t tile = dense ? dense_tile(dev, p->m) : tiled_align(p->row_align) ? p->row_align : 0;

    const fp8i_scales *ws = &a->w_scales, *xs = &a->x_scales;
    uint32_t spec[MAX_SPEC] = {0};
    spec[1] = a->w.dtype;
    spec[2] = a->x.dtype;
    spec[3] = a->y.dtype;
    spec[4] = a->bias.buffer ? a->bias.dtype : 0;
    spec[5] = ws->dtype;
    spec[6] = scale_mode(ws, a->k);
    spec[7] = xs->dtype;
    spec[8] = scale_mode(xs, a->k);
    spec[9] = exact_decode(dev);
    spec[10] = a->activation;
    spec[11] = a->x_gathered;
    spec[12] = dense;
    spec[13] = a->w_tensor_scales.buffer != NULL;
    spec[14] = ws->dtype != FP8_DTYPE_INVALID ? ws->block_rows : 1;
    spec[15] = ws->dtype != FP8_DTYPE_INVALID ? ws->block_cols : 1;
    spec[16] = xs->dtype != FP8_DTYPE_INVALID ? xs->block_rows : 1;
    spec[17] = xs->dtype != FP8_DTYPE_INVALID ? xs->block_cols : 1;

    const uint32_t w_stride = (uint32_t)(a->w.dtype == FP8_E2M1 ? a->w.row_stride / 2 : a->w.row_stride);
    const uint32_t w_est = (uint32_t)a->w_expert_stride;
    const bool w16 = a->w.offset % 16 == 0 && w_stride % 16 == 0 && (dense || w_est % 16 == 0);
    moe_shader shader;
    uint32_t gx, work;
    const moe_shader coop = tile ? coopmat_shader(dev, tile) : MS_COUNT;
    if (coop != MS_COUNT) {
        /* SG_M x SG_N subgroups of 32 (FM x FN tiles of 16 each): tile x 128 weight rows per workgroup. */
        const uint32_t sg_m = 2, sg_n = 4, fm = tile / 32, fn = 2;
        spec[0] = sg_m * sg_n * 32;
        spec[18] = sg_m;
        spec[19] = sg_n;
        spec[20] = fm;
        spec[21] = fn;
        spec[22] = a->w.offset % 4 == 0 && w_stride % 4 == 0 && (dense || w_est % 4 == 0);
        const uint32_t xa = a->x.dtype == FP8_F32 ? 4 : a->x.dtype == FP8_F16 || a->x.dtype == FP8_BF16 ? 8 : 4;
        spec[23] = (a->x.offset / esize(a->x.dtype)) % xa == 0 && a->x.row_stride % xa == 0;
        spec[24] = w16;
        spec[26] = !fp8i_env_flag("FP8_VK_MOE_STAGED_EPILOGUE");
        /* K slices: the dense kernel's choice (the H100's 48 KiB takes 64 deep through one buffer; lavapipe's
         * 32 KiB 16 through two at a 128-row tile), except that 64-row tiles take 32 deep through one buffer
         * where it fits. On the H100 (runs 85-86) that made the grouped gate/up GEMM at M = 512, whose experts
         * get a few dozen rows each, 1.43x (Qwen3-30B-A3B) and 1.66x (gpt-oss-20b) as fast as 64 deep; at
         * 128-row tiles (M = 4096) 32 deep lost 22-23%, as it does in the dense GEMM. FP8_VK_MOE_COOPMAT_SLICE=
         * bk,stages forces one where it fits (else 16 through two), for comparisons. */
        const uint32_t bn = sg_n * fn * 16;
        const bool emulated = coop == MS_GEMM_COOPMAT_EMU;
        uint32_t bk, stages, fbk = 0, fst = 0;
        const char *env = getenv("FP8_VK_MOE_COOPMAT_SLICE");
        if (env && sscanf(env, "%u,%u", &fbk, &fst) == 2 && (fbk == 16 || fbk == 32 || fbk == 64) && (fst == 1 || fst == 2)) {
            const bool fits = fp8i_vk_coop_shared_bytes(tile, bn, fbk, fst, sg_m * sg_n, emulated) <=
                              vd->props.limits.maxComputeSharedMemorySize;
            bk = fits ? fbk : 16;
            stages = fits ? fst : 2;
        } else if (tile == 64 && fp8i_vk_coop_shared_bytes(tile, bn, 32, 1, sg_m * sg_n, emulated) <=
                                     vd->props.limits.maxComputeSharedMemorySize) {
            bk = 32;
            stages = 1;
        } else {
            fp8i_vk_coop_slice(vd, tile, bn, sg_m * sg_n, emulated, &bk, &stages);
        }
        spec[25] = bk;
        spec[27] = stages;
        if ((st = need_shared(vd, "the MoE cooperative-matrix GEMM",
                              fp8i_vk_coop_shared_bytes(tile, bn, bk, stages, sg_m * sg_n, emulated))) != FP8_OK)
            return st;
        shader = coop;
        gx = div_up(a->n_out, (uint32_t)(gated ? bn / 2 : bn));
        work = dense ? div_up(p->m, tile) : p->tiles;
    } else if (tile) {
        const uint32_t tm = tile / 16, tn = 8;
        spec[0] = 256;
        spec[18] = tm;
        spec[19] = tn;
        spec[20] = a->w.dtype == FP8_E2M1 ? a->w.offset % 4 == 0 && w_stride % 4 == 0 && (dense || w_est % 4 == 0) : w16;
        if ((st = need_shared(vd, "the MoE GEMM", (uint64_t)16 * (tile + 4 + 16 * tn + 4) * 4 + tile * 4 + 16)) != FP8_OK)
            return st;
        shader = MS_GEMM;
        gx = div_up(a->n_out, gated ? 8 * tn : 16 * tn);
        work = dense ? div_up(p->m, tile) : p->tiles;
    } else {
        const uint32_t per = (uint32_t)((uint64_t)p->slots / p->experts);
        /* f32 sums, as every other GEMM path; two-float sums (FP8_VK_MOE_PRECISE_ACCUM=1, pre-activations to
         * about 2^-40) took 1.7-2.1x the time of gate/up + down at one token on the H100, and double the
         * accumulators: 4 rows per pass at most then. One token gives each expert one row; fewer slots than
         * experts, mostly one or two. */
        const bool precise = fp8i_env_flag("FP8_VK_MOE_PRECISE_ACCUM");
        uint32_t nrw = 2, mt = p->m == 1 ? 1 : p->slots < p->experts ? 2 : !precise && per > 4 ? 8 : 4;
        /* Subgroups each own a block of weight rows (moe_gemv.comp); a workgroup of four of them holds four
         * blocks of the same expert. Without subgroup operations the workgroup is one team of 64. Blocks of
         * two rows (gated: one gate and one up row) beat four on the H100 in all three of fp8moebench's models
         * at one and eight tokens (gate/up + down 3-17% faster), and eight were slower still. */
        const bool sg = use_subgroups(vd) && (!precise || m->shuffle);
        uint32_t wg = sg ? 4 * vd->feat.subgroup_size : 64;
        /* Each team takes two blocks one after the other where a plan routes the rows: half the workgroups, each
         * walking the plan (dependent reads before its first weight load) once for twice the rows. On the H200
         * (run 156, fp8moebench's decode layers, two blocks / one / two in one process) the layers took 0.97x
         * (Qwen3-30B-A3B, one and eight tokens), 0.97x and 0.94x (DeepSeek-V3) and 0.97x (gpt-oss-20b, eight
         * tokens) the time. Two exceptions lost, and keep one block: E2M1 weights at one token (gpt-oss-20b's
         * layer 1.04x, its gate/up 23.2 -> 24.7 µs; by our reading because its decode costs the most per byte
         * and half the workgroups fill less than one wave of the H200's warp slots), and GEMVs without a plan
         * (a shared expert: DeepSeek-V3's took 30 µs instead of 21 at one token, run 154). */
        uint32_t blocks = sg && !dense && !(a->w.dtype == FP8_E2M1 && p->m == 1) ? 2 : 1;
        /* FP8_VK_MOE_GEMV=wg,rows[,mt[,blocks]] (rows even, 2..16; mt 1..8, 0 keeps the default; blocks 1..8 per
         * team, taken one after another; one where the field is missing) for tuning on a device. */
        const char *env = getenv("FP8_VK_MOE_GEMV");
        uint32_t ewg = 0, enrw = 0, emt = 0, eblk = 0;
        const int got = env ? sscanf(env, "%u,%u,%u,%u", &ewg, &enrw, &emt, &eblk) : 0;
        if (got >= 2 && ewg >= 32 && ewg <= 1024 && (ewg & (ewg - 1)) == 0 && enrw >= 2 && enrw <= 16 && enrw % 2 == 0 &&
            (got < 3 || emt <= 8) && (got < 4 || (eblk >= 1 && eblk <= 8)))
            wg = ewg, nrw = enrw, mt = got >= 3 && emt ? emt : mt, blocks = got == 4 ? eblk : 1;
        if (wg < vd->feat.subgroup_size && vd->feat.subgroup_size <= 128) wg = vd->feat.subgroup_size;
        const uint32_t bpw = blocks * (sg ? (wg / vd->feat.subgroup_size ? wg / vd->feat.subgroup_size : 1) : 1);
        spec[0] = wg;
        spec[18] = nrw;
        spec[19] = mt;
        spec[20] = w16;
        const uint32_t xa = a->x.dtype == FP8_F32 ? 4 : a->x.dtype == FP8_BF16 ? 8 : a->x.dtype == FP8_F16 ? 0 : 16;
        spec[21] = xa && (a->x.offset / esize(a->x.dtype)) % xa == 0 && a->x.row_stride % xa == 0;
        spec[22] = precise;
        spec[23] = bpw;
        shader = sg ? MS_GEMV : MS_GEMV_NOSG;
        if (!sg && (st = need_shared(vd, "the MoE GEMV", (uint64_t)wg * mt * nrw * 4 * (precise ? 2 : 1))) != FP8_OK)
            return st;
        gx = div_up(a->n_out, (gated ? nrw / 2 : nrw) * bpw);
        work = dense ? div_up(p->m, mt) : (p->slots < p->experts ? p->slots : p->experts);
    }
    VkPipeline pl;
    if ((st = get_pipeline(vd, m, shader, spec, &pl)) != FP8_OK) return st;
    uint32_t gy, gz;
    split_grid(work, &gy, &gz);
    const uint32_t wse = ws->dtype != FP8_DTYPE_INVALID ? esize(ws->dtype) : 1;
    const uint32_t xse = xs->dtype != FP8_DTYPE_INVALID ? esize(xs->dtype) : 1;
    gemm_push pc = {
        .m = p->m, .n = a->n, .k = a->k, .n_out = a->n_out,
        .rows = p->rows, .experts = p->experts, .top_k = p->top_k, .row_align = p->row_align,
        .plan_base = dense ? 0 : (uint32_t)(p->offset / 4),
        .w_off = (uint32_t)a->w.offset, .w_stride = w_stride, .w_estride = w_est,
        .ws_off = ws->dtype != FP8_DTYPE_INVALID ? (uint32_t)(ws->offset / wse) : 0, .ws_bpr = ws->blocks_per_row,
        .ws_estride = (uint32_t)(a->w_scales_expert_stride / wse), .w_ts = ws->tensor_scale,
        .ts_off = a->w_tensor_scales.buffer ? (uint32_t)(a->w_tensor_scales.offset / 4) : 0,
        .x_off = (uint32_t)(a->x.offset / esize(a->x.dtype)), .x_stride = (uint32_t)a->x.row_stride,
        .xs_off = xs->dtype != FP8_DTYPE_INVALID ? (uint32_t)(xs->offset / xse) : 0, .xs_bpr = xs->blocks_per_row,
        .x_ts = xs->tensor_scale,
        .y_off = (uint32_t)(a->y.offset / esize(a->y.dtype)), .y_stride = (uint32_t)a->y.row_stride,
        .b_off = a->bias.buffer ? (uint32_t)(a->bias.offset / esize(a->bias.dtype)) : 0,
        .b_stride = a->bias.buffer ? (uint32_t)a->bias.row_stride : 0, .grid_y = gy, .e_lo = 0, .e_hi = p->experts};
    fp8_buffer *b[MB_COUNT] = {0};
    b[MB_W] = a->w.buffer;
    b[MB_WS] = ws->buffer;
    b[MB_X] = a->x.buffer;
    b[MB_XS] = xs->buffer;
    b[MB_BIAS] = a->bias.buffer;
    b[MB_Y] = a->y.buffer;
    b[MB_PLAN] = p->buffer;
    b[MB_TS] = a->w_tensor_scales.buffer;
    /* One dispatch per buffer of experts (the caller's spread, or the one buffer), each skipping the other
     * buffers' experts; within a buffer larger than one binding addresses, one per window of it. They write
     * the rows of disjoint experts and can record only FP8_ERR_INVALID_ARGUMENT (a bad plan), so they may
     * overlap: at one token each has a few experts' work, far from filling the device. */
    const uint32_t per_buffer = a->w_buffers ? a->w_experts_per_buffer : p->experts;
    size_t off0;
    const bool several = per_buffer < p->experts ||
                         fp8i_vk_buf(fp8i_moe_expert_w(a, 0, &off0))->alloc_size > vd->max_buffer_bytes;
    if (several && (st = fp8i_vk_concurrent(dev, true)) != FP8_OK) return st;
    for (uint32_t e0 = 0; e0 < p->experts && st == FP8_OK; e0 += per_buffer) {
        const uint32_t e1 = p->experts - e0 > per_buffer ? e0 + per_buffer : p->experts;
        size_t w_off;
        b[MB_W] = fp8i_moe_expert_w(a, e0, &w_off);
        pc.e_lo = e0;
        pc.e_hi = e1;
        if (fp8i_vk_buf(b[MB_W])->alloc_size <= vd->max_buffer_bytes) {
            pc.w_off = (uint32_t)w_off;
            st = dispatch(vd, m, pl, b, 1u << MB_Y, &pc, sizeof pc, gx, gy, gz);
        } else {
            st = dispatch_windows(dev, vd, m, pl, b, a, w_off, e1 - e0, &pc, gx, gy, gz);
        }
    }
    if (several) fp8i_vk_concurrent(dev, false);
    return st;
}

/* ------------------------------------------------------------------------------------------------
 * Combine.
 * ---------------------------------------------------------------------------------------------- */
typedef struct combine_push {
    uint32_t m, top_k, experts, row_align, rows, hidden;
    uint32_t plan_base, slot_row_at;
    uint32_t r_off, r_stride, w_off, w_stride, s_off, s_stride, y_off, y_stride;
    uint32_t grid_y;
} combine_push;

fp8_status fp8i_vk_moe_combine(fp8_device *dev, const fp8i_moe_combine_args *a)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    if (!vd->feat.storage16)
        return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "vulkan: MoE combine needs 16-bit storage");
    fp8i_vk_moe *m;
    fp8_status st = moe_state(vd, &m);
    if (st != FP8_OK) return st;
    const fp8i_moe_plan *p = &a->plan;
    uint32_t spec[MAX_SPEC] = {0};
    spec[1] = a->rows.dtype;
    spec[2] = a->shared.buffer ? a->shared.dtype : 0;
    spec[3] = a->y.dtype;
    VkPipeline pl;
    if ((st = get_pipeline(vd, m, MS_COMBINE, spec, &pl)) != FP8_OK) return st;
    uint32_t gy, gz;
    split_grid(p->m, &gy, &gz);
    const uint32_t base = (uint32_t)(p->offset / 4);
    const combine_push pc = {
        .m = p->m, .top_k = p->top_k, .experts = p->experts, .row_align = p->row_align, .rows = p->rows,
        .hidden = a->hidden, .plan_base = base, .slot_row_at = base + (uint32_t)p->slot_row_at,
        .r_off = (uint32_t)(a->rows.offset / esize(a->rows.dtype)), .r_stride = (uint32_t)a->rows.row_stride,
        .w_off = (uint32_t)(a->weights.offset / 4), .w_stride = (uint32_t)a->weights.row_stride,
        .s_off = a->shared.buffer ? (uint32_t)(a->shared.offset / esize(a->shared.dtype)) : 0,
        .s_stride = a->shared.buffer ? (uint32_t)a->shared.row_stride : 0,
        .y_off = (uint32_t)(a->y.offset / esize(a->y.dtype)), .y_stride = (uint32_t)a->y.row_stride, .grid_y = gy};
    fp8_buffer *b[MB_COUNT] = {0};
    b[MB_X] = a->rows.buffer;
    b[MB_W] = a->weights.buffer;
    b[MB_BIAS] = a->shared.buffer;
    b[MB_Y] = a->y.buffer;
    b[MB_PLAN] = p->buffer;
    return dispatch(vd, m, pl, b, 1u << MB_Y, &pc, sizeof pc, div_up(a->hidden, 256), gy, gz);
}
