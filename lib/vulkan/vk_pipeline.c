/* Vulkan pipelines: one descriptor layout for every shader, pipelines per (shader, specialization) created on
 * demand, a VkPipelineCache kept on disk, and the dispatch that binds whole buffers. */
#include "vk_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void cache_path(fp8i_vk_device *vd)
{
    vd->cache_path[0] = '\0';
    if (!vd->ctx->cache_dir[0]) return;
    /* The driver rejects foreign cache data anyway; a name per device and driver keeps caches from fighting. */
    char uuid[2 * VK_UUID_SIZE + 1];
    for (uint32_t i = 0; i < VK_UUID_SIZE; i++) snprintf(uuid + 2 * i, 3, "%02x", vd->props.pipelineCacheUUID[i]);
    snprintf(vd->cache_path, sizeof vd->cache_path, "%s/vk-%04x-%04x-%08x-%s.bin", vd->ctx->cache_dir,
             vd->props.vendorID, vd->props.deviceID, vd->props.driverVersion, uuid);
}

static void *load_file(const fp8_context *ctx, const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *data = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n > 0 && n < (64l << 20) && fseek(f, 0, SEEK_SET) == 0 && (data = fp8i_malloc(ctx, (size_t)n))) {
        if (fread(data, 1, (size_t)n, f) != (size_t)n) {
            fp8i_free(ctx, data);
            data = NULL;
        }
    }
    fclose(f);
    *size = data ? (size_t)n : 0;
    return data;
}

static void save_cache(fp8i_vk_device *vd)
{
    if (!vd->cache_path[0] || !vd->pipeline_cache) return;
    size_t n = 0;
    if (vkGetPipelineCacheData(vd->device, vd->pipeline_cache, &n, NULL) != VK_SUCCESS || n == 0) return;
    void *data = fp8i_malloc(vd->ctx, n);
    if (!data) return;
    if (vkGetPipelineCacheData(vd->device, vd->pipeline_cache, &n, data) == VK_SUCCESS) {
        /* Write then rename: a reader never sees half a file. */
        char tmp[640];
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", vd->cache_path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        bool ok = f && fwrite(data, 1, n, f) == n;
        if (f) ok = (fclose(f) == 0) && ok;
        if (ok && rename(tmp, vd->cache_path) == 0) FP8I_DEBUG(vd->ctx, "vulkan: pipeline cache saved to %s", vd->cache_path);
        else remove(tmp);
    }
    fp8i_free(vd->ctx, data);
}

fp8_status fp8i_vk_pipelines_init(fp8i_vk_device *vd)
{
    const fp8_context *ctx = vd->ctx;
    VkDescriptorSetLayoutBinding b[FP8I_VK_BINDINGS];
    for (uint32_t i = 0; i < FP8I_VK_BINDINGS; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                          .bindingCount = FP8I_VK_BINDINGS, .pBindings = b};
    VkResult r = vkCreateDescriptorSetLayout(vd->device, &li, NULL, &vd->set_layout);
    if (r != VK_SUCCESS) return fp8i_vk_status(ctx, r, "vkCreateDescriptorSetLayout");
    VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = FP8I_VK_PUSH_BYTES};
    VkPipelineLayoutCreateInfo pli = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                      .pSetLayouts = &vd->set_layout, .pushConstantRangeCount = 1,
                                      .pPushConstantRanges = &pr};
    r = vkCreatePipelineLayout(vd->device, &pli, NULL, &vd->pipeline_layout);
    if (r != VK_SUCCESS) return fp8i_vk_status(ctx, r, "vkCreatePipelineLayout");

    cache_path(vd);
    size_t size = 0;
    void *data = vd->cache_path[0] ? load_file(ctx, vd->cache_path, &size) : NULL;
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO, .initialDataSize = size,
                                    .pInitialData = data};
    r = vkCreatePipelineCache(vd->device, &ci, NULL, &vd->pipeline_cache);
    if (r != VK_SUCCESS && data) {
        /* A damaged file costs only compile time. */
        FP8I_WARN(ctx, "vulkan: ignoring unusable pipeline cache %s", vd->cache_path);
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = vkCreatePipelineCache(vd->device, &ci, NULL, &vd->pipeline_cache);
    }
    if (data) FP8I_DEBUG(ctx, "vulkan: pipeline cache loaded from %s (%zu bytes)", vd->cache_path, size);
    fp8i_free(ctx, data);
    if (r != VK_SUCCESS) vd->pipeline_cache = VK_NULL_HANDLE; /* optional */
    return FP8_OK;
}

void fp8i_vk_pipelines_destroy(fp8i_vk_device *vd)
{
    save_cache(vd);
    for (uint32_t i = 0; i < vd->pipeline_count; i++) vkDestroyPipeline(vd->device, vd->pipelines[i].pipeline, NULL);
    fp8i_free(vd->ctx, vd->pipelines);
    vd->pipelines = NULL;
    vd->pipeline_count = vd->pipeline_cap = 0;
    if (vd->pipeline_cache) vkDestroyPipelineCache(vd->device, vd->pipeline_cache, NULL);
    if (vd->pipeline_layout) vkDestroyPipelineLayout(vd->device, vd->pipeline_layout, NULL);
    if (vd->set_layout) vkDestroyDescriptorSetLayout(vd->device, vd->set_layout, NULL);
}

/* FP8_VK_PIPELINE_STATS=1: the driver's statistics of a new pipeline (register count, spills, shared memory,
 * as each driver names them), one INFO line, so that kernel tuning can see occupancy without vendor tools. */
void fp8i_vk_log_pipeline_stats(const fp8i_vk_device *vd, VkPipeline pipeline, const char *name, const uint32_t *spec,
                                uint32_t spec_count)
{
    PFN_vkGetPipelineExecutableStatisticsKHR get = (PFN_vkGetPipelineExecutableStatisticsKHR)vkGetDeviceProcAddr(
        vd->device, "vkGetPipelineExecutableStatisticsKHR");
    if (!get) return;
    VkPipelineExecutableInfoKHR ei = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR, .pipeline = pipeline};
    VkPipelineExecutableStatisticKHR stats[24];
    uint32_t count = sizeof stats / sizeof *stats;
    for (uint32_t i = 0; i < count; i++)
        stats[i] = (VkPipelineExecutableStatisticKHR){.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR};
    VkResult r = get(vd->device, &ei, &count, stats);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) return;
    char line[1024];
    size_t used = (size_t)snprintf(line, sizeof line, "vulkan: pipeline %s spec [", name);
    for (uint32_t i = 0; i < spec_count && used < sizeof line; i++)
        used += (size_t)snprintf(line + used, sizeof line - used, i ? " %u" : "%u", spec[i]);
    for (uint32_t i = 0; i < count && used < sizeof line; i++) {
        const VkPipelineExecutableStatisticKHR *st = &stats[i];
        used += (size_t)snprintf(line + used, sizeof line - used, i ? ", %s " : "]: %s ", st->name);
        if (used >= sizeof line) break;
        switch (st->format) {
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
            used += (size_t)snprintf(line + used, sizeof line - used, "%s", st->value.b32 ? "true" : "false");
            break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
            used += (size_t)snprintf(line + used, sizeof line - used, "%lld", (long long)st->value.i64);
            break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
            used += (size_t)snprintf(line + used, sizeof line - used, "%llu", (unsigned long long)st->value.u64);
            break;
        default:
            used += (size_t)snprintf(line + used, sizeof line - used, "%g", st->value.f64);
            break;
        }
    }
    FP8I_INFO(vd->ctx, "%s", line);
}

fp8_status fp8i_vk_pipeline_get(fp8i_vk_device *vd, fp8i_vk_shader shader, const uint32_t *spec, uint32_t spec_count,
                                uint32_t required_subgroup, VkPipeline *out)
{
    const fp8_context *ctx = vd->ctx;
    if (spec_count > FP8I_VK_MAX_SPEC) return FP8I_FAIL(ctx, FP8_ERR_INTERNAL, "vulkan: too many specialization constants");
    for (uint32_t i = 0; i < vd->pipeline_count; i++) {
        const fp8i_vk_pipeline_entry *e = &vd->pipelines[i];
        if (e->shader == shader && e->spec_count == spec_count && e->required_subgroup == required_subgroup &&
            (spec_count == 0 || memcmp(e->spec, spec, spec_count * sizeof *spec) == 0)) {
            *out = e->pipeline;
            return FP8_OK;
        }
    }
    const fp8i_vk_spirv *code = fp8i_vk_shader_code(shader);
    if (!code || !code->code)
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED, "vulkan: shader %d was not compiled into this build", (int)shader);
    if (vd->pipeline_count == vd->pipeline_cap) {
        uint32_t cap = vd->pipeline_cap ? vd->pipeline_cap * 2 : 16;
        fp8i_vk_pipeline_entry *p = fp8i_calloc(ctx, cap, sizeof *p);
        if (!p) return FP8_ERR_OUT_OF_HOST_MEMORY;
        if (vd->pipelines) memcpy(p, vd->pipelines, vd->pipeline_count * sizeof *p);
        fp8i_free(ctx, vd->pipelines);
        vd->pipelines = p;
        vd->pipeline_cap = cap;
    }
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = code->size,
                                   .pCode = code->code};
    VkShaderModule module;
    VkResult r = vkCreateShaderModule(vd->device, &mi, NULL, &module);
    if (r != VK_SUCCESS) {
        fp8i_vk_status(ctx, r, "vkCreateShaderModule");
        return FP8I_FAIL(ctx, FP8_ERR_KERNEL_BUILD, "vulkan: shader module %s rejected", code->name);
    }
    VkSpecializationMapEntry map[FP8I_VK_MAX_SPEC];
    for (uint32_t i = 0; i < spec_count; i++) map[i] = (VkSpecializationMapEntry){i, i * 4, 4};
    VkSpecializationInfo si = {.mapEntryCount = spec_count, .pMapEntries = map, .dataSize = spec_count * 4, .pData = spec};
    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo rs = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO,
        .requiredSubgroupSize = required_subgroup};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .pNext = required_subgroup ? &rs : NULL,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = module,
                  .pName = "main",
                  .pSpecializationInfo = spec_count ? &si : NULL},
        .flags = vd->feat.pipeline_stats ? VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR : 0,
        .layout = vd->pipeline_layout,
    };
    VkPipeline pipeline;
    r = vkCreateComputePipelines(vd->device, vd->pipeline_cache, 1, &ci, NULL, &pipeline);
    vkDestroyShaderModule(vd->device, module, NULL);
    if (r != VK_SUCCESS) {
        fp8i_vk_status(ctx, r, "vkCreateComputePipelines");
        return FP8I_FAIL(ctx, FP8_ERR_KERNEL_BUILD, "vulkan: pipeline for %s not created", code->name);
    }
    fp8i_vk_pipeline_entry *e = &vd->pipelines[vd->pipeline_count++];
    memset(e, 0, sizeof *e);
    e->shader = shader;
    e->spec_count = spec_count;
    if (spec_count) memcpy(e->spec, spec, spec_count * sizeof *spec);
    e->required_subgroup = required_subgroup;
    e->pipeline = pipeline;
    FP8I_DEBUG(ctx, "vulkan: created pipeline %s (%u specialization constants)", code->name, spec_count);
    if (vd->feat.pipeline_stats) fp8i_vk_log_pipeline_stats(vd, pipeline, code->name, spec, spec_count);
    *out = pipeline;
    return FP8_OK;
}

fp8_status fp8i_vk_check_bindable(const fp8i_vk_device *vd, fp8_buffer *const *bufs, uint32_t count, uint32_t windowed_mask)
{
    for (uint32_t i = 0; i < count; i++) {
        const fp8i_vk_buffer *b = bufs[i] && !(windowed_mask >> i & 1u) ? fp8i_vk_buf(bufs[i]) : NULL;
        if (!b || b->alloc_size <= vd->max_buffer_bytes) continue;
        return FP8I_FAIL(vd->ctx, FP8_ERR_TOO_LARGE,
                         "vulkan: binding %u: a %llu-byte buffer exceeds what one shader binding addresses on %s (%llu "
                         "bytes, maxStorageBufferRange); only MoE expert weights may be larger, split other tensors",
                         i, (unsigned long long)b->alloc_size, vd->props.deviceName,
                         (unsigned long long)vd->max_buffer_bytes);
    }
    return FP8_OK;
}

fp8_status fp8i_vk_dispatch(fp8i_vk_device *vd, VkPipeline pipeline, fp8_buffer *const bufs[FP8I_VK_BINDINGS],
                            uint32_t written_mask, const void *push, uint32_t push_size, uint32_t gx, uint32_t gy,
                            uint32_t gz)
{
    const fp8_context *ctx = vd->ctx;
    const VkPhysicalDeviceLimits *lim = &vd->props.limits;
    if (gx > lim->maxComputeWorkGroupCount[0] || gy > lim->maxComputeWorkGroupCount[1] ||
        gz > lim->maxComputeWorkGroupCount[2])
        return FP8I_FAIL(ctx, FP8_ERR_TOO_LARGE, "vulkan: grid %ux%ux%u exceeds the device's workgroup counts", gx, gy, gz);
    if (push_size > FP8I_VK_PUSH_BYTES) return FP8I_FAIL(ctx, FP8_ERR_INTERNAL, "vulkan: push constants too large");
    fp8_status st = fp8i_vk_check_bindable(vd, bufs, FP8I_VK_BINDINGS, 0);
    if (st == FP8_OK) st = fp8i_vk_begin(vd);
    if (st != FP8_OK) return st;
    if (vd->slots[vd->cur].sets_used >= FP8I_VK_SETS_PER_SLOT) {
        if ((st = fp8i_vk_submit(vd)) != FP8_OK || (st = fp8i_vk_begin(vd)) != FP8_OK) return st;
    }
    fp8i_vk_slot *s = &vd->slots[vd->cur];
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, .descriptorPool = s->pool,
                                      .descriptorSetCount = 1, .pSetLayouts = &vd->set_layout};
    VkDescriptorSet set;
    VkResult r = vkAllocateDescriptorSets(vd->device, &ai, &set);
    if (r != VK_SUCCESS) return fp8i_vk_status(ctx, r, "vkAllocateDescriptorSets");
    s->sets_used++;

    VkDescriptorBufferInfo info[FP8I_VK_BINDINGS];
    VkWriteDescriptorSet w[FP8I_VK_BINDINGS];
    fp8i_vk_buffer *reads[FP8I_VK_BINDINGS], *writes[FP8I_VK_BINDINGS];
    uint32_t nr = 0, nw = 0;
    for (uint32_t i = 0; i < FP8I_VK_BINDINGS; i++) {
        fp8i_vk_buffer *b = bufs[i] ? fp8i_vk_buf(bufs[i]) : NULL;
        /* Whole buffers: element offsets travel as push constants, so storage offset alignment never matters. */
        info[i] = (VkDescriptorBufferInfo){.buffer = b ? b->buffer : vd->dummy, .offset = 0, .range = VK_WHOLE_SIZE};
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set, .dstBinding = i,
                                      .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                      .pBufferInfo = &info[i]};
        if (b) {
            if (written_mask & (1u << i)) writes[nw++] = b;
            else reads[nr++] = b;
        }
    }
    vkUpdateDescriptorSets(vd->device, FP8I_VK_BINDINGS, w, 0, NULL);
    fp8i_vk_hazard(vd, reads, nr, writes, nw);
    vkCmdBindPipeline(s->cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
    vkCmdBindDescriptorSets(s->cb, VK_PIPELINE_BIND_POINT_COMPUTE, vd->pipeline_layout, 0, 1, &set, 0, NULL);
    uint8_t pc[FP8I_VK_PUSH_BYTES] = {0};
    if (push_size) memcpy(pc, push, push_size);
    vkCmdPushConstants(s->cb, vd->pipeline_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, FP8I_VK_PUSH_BYTES, pc);
    vkCmdDispatch(s->cb, gx, gy, gz);
    fp8i_vk_profile_dispatch(vd, s->cb);
    return fp8i_vk_command_done(vd);
}
