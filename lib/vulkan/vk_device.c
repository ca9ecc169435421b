/* Vulkan device runtime: logical device and queue, command buffers submitted in batches, barriers, timestamps. */
#include "vk_internal.h"

#include <stdlib.h>
#include <string.h>

#define BATCH_MAX_COMMANDS 128u
#define STAGING_BYTES (32u << 20)

static bool has_extension(const VkExtensionProperties *ext, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(ext[i].extensionName, name) == 0) return true;
    return false;
}

/* Whether the physical device lists fp16 x fp16 -> fp32 16x16x16 at subgroup scope. */
static bool nv_coopmat_shape(fp8i_vk_device *vd)
{
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV get = (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)
        vkGetInstanceProcAddr(vd->instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
    if (!get) return false;
    uint32_t n = 0;
    if (get(vd->phys, &n, NULL) != VK_SUCCESS || n == 0) return false;
    VkCooperativeMatrixPropertiesNV *p = fp8i_calloc(vd->ctx, n, sizeof *p);
    if (!p) return false;
    for (uint32_t i = 0; i < n; i++) p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
    bool found = false;
    if (get(vd->phys, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = p[i].MSize == 16 && p[i].NSize == 16 && p[i].KSize == 16 && p[i].AType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                    p[i].BType == VK_COMPONENT_TYPE_FLOAT16_NV && p[i].CType == VK_COMPONENT_TYPE_FLOAT32_NV &&
                    p[i].DType == VK_COMPONENT_TYPE_FLOAT32_NV && p[i].scope == VK_SCOPE_SUBGROUP_NV;
    fp8i_free(vd->ctx, p);
    return found;
}

static bool khr_coopmat_shape(fp8i_vk_device *vd)
{
    fp8i_pfn_coopmat_props_khr get = (fp8i_pfn_coopmat_props_khr)vkGetInstanceProcAddr(
        vd->instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    if (!get) return false;
    uint32_t n = 0;
    if (get(vd->phys, &n, NULL) != VK_SUCCESS || n == 0) return false;
    fp8i_vk_coopmat_properties_khr *p = fp8i_calloc(vd->ctx, n, sizeof *p);
    if (!p) return false;
    for (uint32_t i = 0; i < n; i++) p[i].sType = FP8I_VK_STYPE_COOPMAT_PROPERTIES_KHR;
    bool found = false;
    if (get(vd->phys, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = p[i].MSize == 16 && p[i].NSize == 16 && p[i].KSize == 16 &&
                    p[i].AType == FP8I_VK_COMPONENT_FLOAT16_KHR && p[i].BType == FP8I_VK_COMPONENT_FLOAT16_KHR &&
                    p[i].CType == FP8I_VK_COMPONENT_FLOAT32_KHR && p[i].ResultType == FP8I_VK_COMPONENT_FLOAT32_KHR &&
                    p[i].scope == FP8I_VK_SCOPE_SUBGROUP_KHR;
    fp8i_free(vd->ctx, p);
    return found;
}

void fp8i_vk_query_properties(fp8i_vk_device *vd, bool size_control_props)
{
    VkPhysicalDeviceSubgroupSizeControlProperties sgsc_props = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
    VkPhysicalDeviceFloatControlsProperties float_props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FLOAT_CONTROLS_PROPERTIES,
                                                           .pNext = size_control_props ? &sgsc_props : NULL};
    VkPhysicalDeviceSubgroupProperties sg_props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
                                                   .pNext = &float_props};
    VkPhysicalDeviceProperties2 props2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sg_props};
    vkGetPhysicalDeviceProperties2(vd->phys, &props2);
    fp8i_vk_features *ft = &vd->feat;
    ft->subgroup_size = sg_props.subgroupSize;
    ft->subgroup_arith = (sg_props.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                         (sg_props.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) &&
                         (sg_props.supportedOperations & VK_SUBGROUP_FEATURE_BASIC_BIT);
    ft->subgroup_vote = (sg_props.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                        (sg_props.supportedOperations & VK_SUBGROUP_FEATURE_VOTE_BIT);
    ft->subgroup_min = sgsc_props.minSubgroupSize ? sgsc_props.minSubgroupSize : ft->subgroup_size;
    ft->subgroup_max = sgsc_props.maxSubgroupSize ? sgsc_props.maxSubgroupSize : ft->subgroup_size;
    ft->fp16_denormals = float_props.shaderDenormPreserveFloat16;
    ft->size_control_compute = (sgsc_props.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT) != 0;
    if (ft->nv_coopmat) ft->nv_coopmat_f16_16x16x16 = nv_coopmat_shape(vd);
    if (ft->khr_coopmat) ft->khr_coopmat_f16_16x16x16 = khr_coopmat_shape(vd);
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(vd->phys, &nq, NULL);
    VkQueueFamilyProperties *qf = fp8i_calloc(vd->ctx, nq ? nq : 1, sizeof *qf);
    if (qf) {
        vkGetPhysicalDeviceQueueFamilyProperties(vd->phys, &nq, qf);
        if (vd->queue_family < nq) vd->timestamp_bits = qf[vd->queue_family].timestampValidBits;
        fp8i_free(vd->ctx, qf);
    }
}

/* Query what the device has, then create it with what the shaders use. */
static fp8_status create_device(fp8i_vk_device *vd)
{
    const fp8_context *ctx = vd->ctx;
    if (VK_API_VERSION_MINOR(vd->props.apiVersion) < 2 && VK_API_VERSION_MAJOR(vd->props.apiVersion) == 1)
        return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED, "vulkan: %s is Vulkan %u.%u; libfp8 needs 1.2", vd->props.deviceName,
                         VK_API_VERSION_MAJOR(vd->props.apiVersion), VK_API_VERSION_MINOR(vd->props.apiVersion));
    const bool v13 = VK_API_VERSION_MINOR(vd->props.apiVersion) >= 3 && fp8i_vk_state(ctx) &&
                     VK_API_VERSION_MINOR(fp8i_vk_state(ctx)->api_version) >= 3;

    /* A compute queue that can write timestamps; the first such family. */
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(vd->phys, &nq, NULL);
    VkQueueFamilyProperties *qf = fp8i_calloc(ctx, nq ? nq : 1, sizeof *qf);
    if (!qf) return FP8_ERR_OUT_OF_HOST_MEMORY;
    vkGetPhysicalDeviceQueueFamilyProperties(vd->phys, &nq, qf);
    uint32_t family = UINT32_MAX;
    for (uint32_t i = 0; i < nq && family == UINT32_MAX; i++)
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && qf[i].timestampValidBits) family = i;
    for (uint32_t i = 0; i < nq && family == UINT32_MAX; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) family = i;
    if (family != UINT32_MAX) vd->timestamp_bits = qf[family].timestampValidBits;
    fp8i_free(ctx, qf);
    if (family == UINT32_MAX) return FP8I_FAIL(ctx, FP8_ERR_UNSUPPORTED, "vulkan: %s has no compute queue", vd->props.deviceName);
    vd->queue_family = family;

    uint32_t next = 0;
    vkEnumerateDeviceExtensionProperties(vd->phys, NULL, &next, NULL);
    VkExtensionProperties *ext = fp8i_calloc(ctx, next ? next : 1, sizeof *ext);
    if (!ext) return FP8_ERR_OUT_OF_HOST_MEMORY;
    vkEnumerateDeviceExtensionProperties(vd->phys, NULL, &next, ext);
    const bool has_nv = has_extension(ext, next, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    const bool has_khr = has_extension(ext, next, FP8I_VK_KHR_COOPMAT_NAME);
    const bool has_sgsc_ext = has_extension(ext, next, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    const bool has_cm2 = has_extension(ext, next, VK_NV_COOPERATIVE_MATRIX_2_EXTENSION_NAME);
    const bool has_pexec = has_extension(ext, next, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME) &&
                           fp8i_env_flag("FP8_VK_PIPELINE_STATS");
    fp8i_free(ctx, ext);


    /* Features. */
    VkPhysicalDeviceCooperativeMatrixFeaturesNV nv_feat = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    fp8i_vk_coopmat_features_khr khr_feat = {.sType = FP8I_VK_STYPE_COOPMAT_FEATURES_KHR};
    VkPhysicalDeviceCooperativeMatrix2FeaturesNV cm2_feat = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_FEATURES_NV};
    VkPhysicalDeviceSubgroupSizeControlFeatures sgsc_feat = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR pexec_feat = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR};
    VkPhysicalDeviceVulkan13Features f13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &f12};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
    void **tail = &f12.pNext;
    if (v13) { *tail = &f13; tail = &f13.pNext; }
    else if (has_sgsc_ext) { *tail = &sgsc_feat; tail = &sgsc_feat.pNext; }
    if (has_nv) { *tail = &nv_feat; tail = &nv_feat.pNext; }
    if (has_khr) { *tail = &khr_feat; tail = &khr_feat.pNext; }
    if (has_cm2) { *tail = &cm2_feat; tail = &cm2_feat.pNext; }
    if (has_pexec) { *tail = &pexec_feat; tail = &pexec_feat.pNext; }
    vkGetPhysicalDeviceFeatures2(vd->phys, &f2);

    fp8i_vk_features *ft = &vd->feat;
    ft->fp16 = f12.shaderFloat16;
    ft->int8 = f12.shaderInt8;
    ft->storage8 = f12.storageBuffer8BitAccess;
    ft->storage16 = f11.storageBuffer16BitAccess;
    ft->subgroup_size_control = v13 ? f13.subgroupSizeControl : sgsc_feat.subgroupSizeControl;
    ft->compute_full_subgroups = v13 ? f13.computeFullSubgroups : sgsc_feat.computeFullSubgroups;
    ft->memory_model = f12.vulkanMemoryModel;
    ft->nv_coopmat = has_nv && nv_feat.cooperativeMatrix;
    ft->khr_coopmat = has_khr && khr_feat.cooperativeMatrix;
    ft->nv_coopmat2 = has_cm2 && ft->khr_coopmat && v13 && f13.maintenance4 && ft->memory_model && ft->fp16 && ft->storage16 &&
                      f2.features.shaderInt16 && cm2_feat.cooperativeMatrixWorkgroupScope &&
                      cm2_feat.cooperativeMatrixFlexibleDimensions && cm2_feat.cooperativeMatrixTensorAddressing &&
                      cm2_feat.cooperativeMatrixPerElementOperations &&
                      !fp8i_env_flag("FP8_VK_NO_COOPMAT2");
    ft->pipeline_stats = has_pexec && pexec_feat.pipelineExecutableInfo;
    fp8i_vk_query_properties(vd, v13 || has_sgsc_ext);

    /* Enable exactly what we use, no more: a leaner device and honest validation. */
    VkPhysicalDeviceFeatures2 e2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    e2.features.shaderInt16 = f2.features.shaderInt16;
    VkPhysicalDeviceVulkan11Features e11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    e11.storageBuffer16BitAccess = f11.storageBuffer16BitAccess;
    VkPhysicalDeviceVulkan12Features e12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    e12.shaderFloat16 = f12.shaderFloat16;
    e12.shaderInt8 = f12.shaderInt8;
    e12.storageBuffer8BitAccess = f12.storageBuffer8BitAccess;
    e12.hostQueryReset = f12.hostQueryReset;
    /* GL_KHR_memory_scope_semantics (the cooperative-matrix shaders) compiles to the Vulkan memory model. */
    e12.vulkanMemoryModel = f12.vulkanMemoryModel;
    e12.vulkanMemoryModelDeviceScope = f12.vulkanMemoryModelDeviceScope;
    VkPhysicalDeviceVulkan13Features e13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    e13.subgroupSizeControl = f13.subgroupSizeControl;
    e13.computeFullSubgroups = f13.computeFullSubgroups;
    e13.maintenance4 = ft->nv_coopmat2; /* glslang 15 writes LocalSizeId for SPIR-V 1.6 (nv_coopmat2 checked it) */
    VkPhysicalDeviceSubgroupSizeControlFeatures esgsc = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
    esgsc.subgroupSizeControl = sgsc_feat.subgroupSizeControl;
    esgsc.computeFullSubgroups = sgsc_feat.computeFullSubgroups;
    VkPhysicalDeviceCooperativeMatrixFeaturesNV env = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV,
                                                       .cooperativeMatrix = VK_TRUE};
    fp8i_vk_coopmat_features_khr ekhr = {.sType = FP8I_VK_STYPE_COOPMAT_FEATURES_KHR, .cooperativeMatrix = VK_TRUE};
    VkPhysicalDeviceCooperativeMatrix2FeaturesNV ecm2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_FEATURES_NV,
        .cooperativeMatrixWorkgroupScope = VK_TRUE, .cooperativeMatrixFlexibleDimensions = VK_TRUE,
        .cooperativeMatrixPerElementOperations = VK_TRUE, .cooperativeMatrixTensorAddressing = VK_TRUE};
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR epexec = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
        .pipelineExecutableInfo = VK_TRUE};
    const char *exts[6];
    uint32_t ext_count = 0;
    e2.pNext = &e11;
    e11.pNext = &e12;
    tail = &e12.pNext;
    if (v13) { *tail = &e13; tail = &e13.pNext; }
    else if (has_sgsc_ext && ft->subgroup_size_control) {
        *tail = &esgsc; tail = &esgsc.pNext;
        exts[ext_count++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
    }
    if (ft->nv_coopmat) { *tail = &env; tail = &env.pNext; exts[ext_count++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME; }
    if (ft->khr_coopmat) { *tail = &ekhr; tail = &ekhr.pNext; exts[ext_count++] = FP8I_VK_KHR_COOPMAT_NAME; }
    if (ft->nv_coopmat2) { *tail = &ecm2; tail = &ecm2.pNext; exts[ext_count++] = VK_NV_COOPERATIVE_MATRIX_2_EXTENSION_NAME; }
    if (ft->pipeline_stats) {
        *tail = &epexec; tail = &epexec.pNext;
        exts[ext_count++] = VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME;
    }

    const float priority = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = family,
                                   .queueCount = 1, .pQueuePriorities = &priority};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &e2, .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci, .enabledExtensionCount = ext_count,
                              .ppEnabledExtensionNames = exts};
    VkResult r = vkCreateDevice(vd->phys, &dci, NULL, &vd->device);
    if (r != VK_SUCCESS) return fp8i_vk_status(ctx, r, "vkCreateDevice");
    vkGetDeviceQueue(vd->device, family, 0, &vd->queue);
    FP8I_INFO(ctx, "vulkan: opened %s (subgroup %u [%u..%u]%s, fp16 %d, int8 %d, storage8 %d, storage16 %d, NV coopmat %d, "
                   "KHR coopmat %d, NV coopmat2 %d)", vd->props.deviceName, ft->subgroup_size, ft->subgroup_min, ft->subgroup_max,
              ft->subgroup_arith ? ", arithmetic" : "", ft->fp16, ft->int8, ft->storage8, ft->storage16,
              ft->nv_coopmat_f16_16x16x16, ft->khr_coopmat_f16_16x16x16, ft->nv_coopmat2);
    return FP8_OK;
}

/* Command pool, per-slot command buffers, fences and descriptor pools, staging, dummy buffer, timestamps. */
static fp8_status create_runtime(fp8i_vk_device *vd)
{
    const fp8_context *ctx = vd->ctx;
    VkResult r;
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = vd->queue_family};
    if ((r = vkCreateCommandPool(vd->device, &pci, NULL, &vd->cmd_pool)) != VK_SUCCESS)
        return fp8i_vk_status(ctx, r, "vkCreateCommandPool");
    const VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, FP8I_VK_SETS_PER_SLOT * FP8I_VK_BINDINGS};
    for (uint32_t i = 0; i < FP8I_VK_SLOTS; i++) {
        fp8i_vk_slot *s = &vd->slots[i];
        VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = vd->cmd_pool,
                                          .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
        if ((r = vkAllocateCommandBuffers(vd->device, &ai, &s->cb)) != VK_SUCCESS)
            return fp8i_vk_status(ctx, r, "vkAllocateCommandBuffers");
        VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        if ((r = vkCreateFence(vd->device, &fci, NULL, &s->fence)) != VK_SUCCESS) return fp8i_vk_status(ctx, r, "vkCreateFence");
        VkDescriptorPoolCreateInfo dpi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                          .maxSets = FP8I_VK_SETS_PER_SLOT, .poolSizeCount = 1, .pPoolSizes = &ps};
        if ((r = vkCreateDescriptorPool(vd->device, &dpi, NULL, &s->pool)) != VK_SUCCESS)
            return fp8i_vk_status(ctx, r, "vkCreateDescriptorPool");
    }
    fp8_status st = fp8i_vk_alloc_buffer(vd, STAGING_BYTES, VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                                         VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                         &vd->staging, &vd->staging_mem);
    if (st != FP8_OK) return st;
    vd->staging_size = STAGING_BYTES;
    void *map = NULL;
    if ((r = vkMapMemory(vd->device, vd->staging_mem, 0, VK_WHOLE_SIZE, 0, &map)) != VK_SUCCESS)
        return fp8i_vk_status(ctx, r, "vkMapMemory(staging)");
    vd->staging_map = map;
    st = fp8i_vk_alloc_buffer(vd, 256, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                              VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, &vd->dummy, &vd->dummy_mem);
    if (st != FP8_OK) return st;
    if (vd->timestamp_bits) {
        VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO, .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                    .queryCount = 2};
        if ((r = vkCreateQueryPool(vd->device, &qi, NULL, &vd->timer_pool)) != VK_SUCCESS)
            return fp8i_vk_status(ctx, r, "vkCreateQueryPool");
    }
    vd->epoch = 1;
    if ((st = fp8i_vk_profile_init(vd)) != FP8_OK) return st;
    return fp8i_vk_pipelines_init(vd);
}

static void destroy_runtime(fp8i_vk_device *vd)
{
    if (!vd->device) return;
    fp8i_vk_moe_destroy(vd);
    fp8i_vk_pipelines_destroy(vd);
    if (vd->timer_pool) vkDestroyQueryPool(vd->device, vd->timer_pool, NULL);
    fp8i_vk_profile_destroy(vd);
    if (vd->staging_map) vkUnmapMemory(vd->device, vd->staging_mem);
    if (vd->staging) vkDestroyBuffer(vd->device, vd->staging, NULL);
    if (vd->staging_mem) vkFreeMemory(vd->device, vd->staging_mem, NULL);
    if (vd->dummy) vkDestroyBuffer(vd->device, vd->dummy, NULL);
    if (vd->dummy_mem) vkFreeMemory(vd->device, vd->dummy_mem, NULL);
    for (uint32_t i = 0; i < FP8I_VK_SLOTS; i++) {
        fp8i_vk_slot *s = &vd->slots[i];
        if (s->fence) vkDestroyFence(vd->device, s->fence, NULL);
        if (s->pool) vkDestroyDescriptorPool(vd->device, s->pool, NULL);
    }
    if (vd->cmd_pool) vkDestroyCommandPool(vd->device, vd->cmd_pool, NULL);
}

/* One workgroup of an open-time check shader whose only binding is Y: its `bytes` of results into out. */
static fp8_status run_check(fp8_device *dev, fp8i_vk_device *vd, VkPipeline pipeline, void *out, size_t bytes)
{
    fp8_buffer y = {.dev = dev, .size = bytes};
    fp8_status st = fp8i_vk_buffer_create(&y);
    if (st != FP8_OK) return st;
    fp8_buffer *b[FP8I_VK_BINDINGS] = {0};
    b[FP8I_VK_BIND_Y] = &y;
    st = fp8i_vk_dispatch(vd, pipeline, b, 1u << FP8I_VK_BIND_Y, NULL, 0, 1, 1, 1);
    if (st == FP8_OK) st = fp8i_vk_buffer_read(&y, 0, out, bytes);
    fp8i_vk_buffer_free(&y);
    return st;
}

/* Run decode_check.comp: the packed decoders rely on f16 -> f32 conversions keeping fp16 denormals, which is
 * what hardware conversions do, but not every driver promises it. Where they differ, the scalar path is used. */
static fp8_status check_decode(fp8_device *dev, fp8i_vk_device *vd)
{
    vd->fast_decode = false;
    if (!fp8i_vk_shader_code(FP8I_VK_SHADER_DECODE_CHECK)->code) return FP8_OK;
    VkPipeline pipeline;
    fp8_status st = fp8i_vk_pipeline_get(vd, FP8I_VK_SHADER_DECODE_CHECK, NULL, 0, 0, &pipeline);
    if (st != FP8_OK) return FP8_OK; /* no check, no fast path */
    uint32_t counts[256];
    if ((st = run_check(dev, vd, pipeline, counts, sizeof counts)) != FP8_OK) return st;
    uint32_t bad = 0;
    for (int i = 0; i < 256; i++) bad += counts[i];
    vd->fast_decode = bad == 0;
    if (bad)
        FP8I_INFO(vd->ctx, "vulkan: %u packed-decode mismatches on %s (fp16 denormals flushed?); using scalar decode",
                  bad, vd->props.deviceName);
    return FP8_OK;
}

/* Run coopmat_b_check.comp for each cooperative-matrix build this device can run: where its B fragments hold
 * their elements where shaders/coopmat_b_direct.glsl says, the GEMM may build them from registers (W_DIRECT in
 * gemm_coopmat.comp). The layout is the driver's choice; a device whose check differs, or cannot run, keeps the
 * GEMM that stages weights through shared memory. */
static fp8_status check_coopmat_b(fp8_device *dev, fp8i_vk_device *vd)
{
    vd->coop_b_direct[0] = vd->coop_b_direct[1] = false;
    if (!fp8i_vk_subgroup32(vd) || !vd->feat.fp16 || !vd->feat.memory_model || !vd->feat.subgroup_vote) return FP8_OK;
    for (int nv = 0; nv < 2; nv++) {
        const fp8i_vk_shader sh = nv ? FP8I_VK_SHADER_COOPMAT_B_CHECK_NV : FP8I_VK_SHADER_COOPMAT_B_CHECK_KHR;
        if (!fp8i_vk_shader_code(sh)->code || !(nv ? vd->feat.nv_coopmat_f16_16x16x16 : vd->feat.khr_coopmat_f16_16x16x16))
            continue;
        VkPipeline pipeline;
        if (fp8i_vk_pipeline_get(vd, sh, NULL, 0, vd->feat.subgroup_size == 32 ? 0 : 32, &pipeline) != FP8_OK) continue;
        uint32_t wrong[32];
        const fp8_status st = run_check(dev, vd, pipeline, wrong, sizeof wrong);
        if (st != FP8_OK) return st;
        uint32_t bad = 0;
        for (int i = 0; i < 32; i++) bad += wrong[i];
        vd->coop_b_direct[nv] = bad == 0;
        if (!bad)
            FP8I_INFO(vd->ctx, "vulkan: %s B fragments are in the direct-weight layout on %s", nv ? "NV" : "KHR",
                      vd->props.deviceName);
        else
            FP8I_INFO(vd->ctx, "vulkan: %s B fragments differ from the direct-weight layout in %u elements on %s; "
                      "the GEMM stages weights through shared memory", nv ? "NV" : "KHR", bad, vd->props.deviceName);
    }
    return FP8_OK;
}

/* Shared by open and import (vk_import.c): everything after the VkDevice and queue exist. On failure frees vd
 * (and destroys the VkDevice unless borrowed). */
fp8_status fp8i_vk_finish_open(fp8_device *dev, fp8i_vk_device *vd)
{
    uint64_t range = vd->props.limits.maxStorageBufferRange;
    /* Shaders index bytes with 32-bit integers: a larger binding would wrap. */
    if (range > UINT32_MAX) range = UINT32_MAX;
    /* FP8_VK_MAX_BINDING_BYTES lowers it (tests: the MoE weight windows on a device whose range is large). */
    const char *cap = getenv("FP8_VK_MAX_BINDING_BYTES");
    unsigned long long want = cap ? strtoull(cap, NULL, 10) : 0;
    if (want >= (1u << 20) && want < range) range = want - want % 256;
    vd->max_buffer_bytes = range;
    dev->impl = vd;
    fp8_status st = create_runtime(vd);
    if (st == FP8_OK) st = check_decode(dev, vd);
    if (st == FP8_OK) st = check_coopmat_b(dev, vd);
    if (st != FP8_OK) {
        dev->impl = NULL;
        destroy_runtime(vd);
        if (!vd->borrowed && vd->device) vkDestroyDevice(vd->device, NULL);
        fp8i_free(dev->ctx, vd);
        return st;
    }
    return FP8_OK;
}

fp8_status fp8i_vk_device_open(fp8_device *dev)
{
    const fp8_context *ctx = dev->ctx;
    fp8i_vk_instance *vk = fp8i_vk_state(ctx);
    if (!vk || dev->entry->backend_index >= vk->physical_count)
        return FP8I_FAIL(ctx, FP8_ERR_NO_DEVICE, "vulkan: no instance or no such physical device");
    fp8i_vk_device *vd = fp8i_calloc(ctx, 1, sizeof *vd);
    if (!vd) return FP8_ERR_OUT_OF_HOST_MEMORY;
    vd->dev = dev;
    vd->ctx = ctx;
    vd->instance = vk->instance;
    vd->phys = vk->physical[dev->entry->backend_index];
    vkGetPhysicalDeviceProperties(vd->phys, &vd->props);
    vkGetPhysicalDeviceMemoryProperties(vd->phys, &vd->mem);
    fp8_status st = create_device(vd);
    if (st != FP8_OK) {
        if (vd->device) vkDestroyDevice(vd->device, NULL);
        fp8i_free(ctx, vd);
        return st;
    }
    return fp8i_vk_finish_open(dev, vd);
}

void fp8i_vk_device_close(fp8_device *dev)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    if (!vd) return;
    fp8i_vk_finish(vd);
    destroy_runtime(vd);
    if (!vd->borrowed) vkDestroyDevice(vd->device, NULL);
    fp8i_free(dev->ctx, vd);
    dev->impl = NULL;
}

static void full_barrier(VkCommandBuffer cb)
{
    const VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                                .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                                .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                                 VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
    const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vkCmdPipelineBarrier(cb, stages, stages, 0, 1, &mb, 0, NULL, 0, NULL);
}

static fp8_status wait_slot(fp8i_vk_device *vd, fp8i_vk_slot *s)
{
    if (!s->pending) return FP8_OK;
    VkResult r = vkWaitForFences(vd->device, 1, &s->fence, VK_TRUE, UINT64_MAX);
    s->pending = false;
    if (r != VK_SUCCESS) return fp8i_vk_status(vd->ctx, r, "vkWaitForFences");
    vkResetFences(vd->device, 1, &s->fence);
    return FP8_OK;
}

fp8_status fp8i_vk_begin(fp8i_vk_device *vd)
{
    if (vd->recording) return FP8_OK;
    fp8i_vk_slot *s = &vd->slots[vd->cur];
    fp8_status st = wait_slot(vd, s);
    if (st != FP8_OK) return st;
    vkResetDescriptorPool(vd->device, s->pool, 0);
    s->sets_used = 0;
    vkResetCommandBuffer(s->cb, 0);
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = vkBeginCommandBuffer(s->cb, &bi);
    if (r != VK_SUCCESS) return fp8i_vk_status(vd->ctx, r, "vkBeginCommandBuffer");
    /* Orders this batch after the previous ones (submission order alone does not). */
    full_barrier(s->cb);
    fp8i_vk_profile_mark(vd, s->cb, NULL);
    vd->epoch++;
    vd->epoch_used = false;
    vd->recording = true;
    vd->batch_commands = 0;
    return FP8_OK;
}

fp8_status fp8i_vk_submit(fp8i_vk_device *vd)
{
    if (!vd->recording) return FP8_OK;
    fp8i_vk_slot *s = &vd->slots[vd->cur];
    /* Make device writes visible to host reads after the fence. */
    const VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                                .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                                .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(s->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    vd->recording = false;
    VkResult r = vkEndCommandBuffer(s->cb);
    if (r != VK_SUCCESS) return fp8i_vk_status(vd->ctx, r, "vkEndCommandBuffer");
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &s->cb};
    r = vkQueueSubmit(vd->queue, 1, &si, s->fence);
    if (r != VK_SUCCESS) return fp8i_vk_status(vd->ctx, r, "vkQueueSubmit");
    s->pending = true;
    vd->cur = (vd->cur + 1) % FP8I_VK_SLOTS;
    return FP8_OK;
}

fp8_status fp8i_vk_finish(fp8i_vk_device *vd)
{
    fp8_status st = fp8i_vk_submit(vd);
    for (uint32_t i = 0; i < FP8I_VK_SLOTS; i++) {
        fp8_status w = wait_slot(vd, &vd->slots[i]);
        if (st == FP8_OK) st = w;
    }
    vd->staging_used = 0;
    if (st == FP8_OK) fp8i_vk_profile_report(vd);
    return st;
}

/* Besides waiting, report (and clear) the first data error a MoE kernel recorded in the device's error word
 * since the last synchronize: its copy to the host rides in the batch being finished. */
fp8_status fp8i_vk_synchronize(fp8_device *dev)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    fp8_status st = fp8i_vk_moe_error_fetch(vd);
    const fp8_status fin = fp8i_vk_finish(vd);
    if (st == FP8_OK) st = fin;
    const fp8_status data = fp8i_vk_moe_error_take(vd);
    return st != FP8_OK ? st : data;
}

void fp8i_vk_hazard(fp8i_vk_device *vd, fp8i_vk_buffer *const *reads, uint32_t nreads, fp8i_vk_buffer *const *writes,
                    uint32_t nwrites)
{
    bool need = false;
    for (uint32_t i = 0; i < nreads && !need; i++) need = reads[i] && reads[i]->write_epoch == vd->epoch;
    for (uint32_t i = 0; i < nwrites && !need; i++)
        need = writes[i] && (writes[i]->write_epoch == vd->epoch || writes[i]->read_epoch == vd->epoch);
    if (need && !vd->concurrent) {
        full_barrier(vd->slots[vd->cur].cb);
        vd->epoch++;
    }
    vd->epoch_used = true;
    for (uint32_t i = 0; i < nreads; i++)
        if (reads[i]) reads[i]->read_epoch = vd->epoch;
    for (uint32_t i = 0; i < nwrites; i++)
        if (writes[i]) writes[i]->write_epoch = vd->epoch;
}

fp8_status fp8i_vk_concurrent(fp8_device *dev, bool begin)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    if (!begin) {
        if (vd->concurrent) vd->concurrent--;
        return FP8_OK;
    }
    if (!vd->concurrent) {
        /* Everything recorded so far goes to an earlier epoch, so no command of the section can depend on
         * anything in the section's own epoch but its siblings, which it does not. */
        fp8_status st = fp8i_vk_begin(vd);
        if (st != FP8_OK) return st;
        if (vd->epoch_used) {
            full_barrier(vd->slots[vd->cur].cb);
            vd->epoch++;
            vd->epoch_used = false;
        }
    }
    vd->concurrent++;
    return FP8_OK;
}

fp8_status fp8i_vk_command_done(fp8i_vk_device *vd)
{
    if (++vd->batch_commands >= BATCH_MAX_COMMANDS) return fp8i_vk_submit(vd);
    return FP8_OK;
}

fp8_status fp8i_vk_timer_start(fp8_device *dev)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    if (!vd->timer_pool) return FP8I_FAIL(dev->ctx, FP8_ERR_UNSUPPORTED, "vulkan: the compute queue has no timestamps");
    /* Earlier work must not be counted: let it finish first. */
    fp8_status st = fp8i_vk_finish(vd);
    if (st == FP8_OK) st = fp8i_vk_begin(vd);
    if (st != FP8_OK) return st;
    VkCommandBuffer cb = vd->slots[vd->cur].cb;
    vkCmdResetQueryPool(cb, vd->timer_pool, 0, 2);
    vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, vd->timer_pool, 0);
    vd->timer_running = true;
    return FP8_OK;
}

fp8_status fp8i_vk_timer_stop(fp8_device *dev, double *elapsed_ns)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    if (!vd->timer_running) return FP8I_FAIL(dev->ctx, FP8_ERR_INVALID_ARGUMENT, "vulkan: timer_stop without timer_start");
    vd->timer_running = false;
    fp8_status st = fp8i_vk_begin(vd);
    if (st != FP8_OK) return st;
    vkCmdWriteTimestamp(vd->slots[vd->cur].cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, vd->timer_pool, 1);
    if ((st = fp8i_vk_finish(vd)) != FP8_OK) return st;
    uint64_t t[2];
    VkResult r = vkGetQueryPoolResults(vd->device, vd->timer_pool, 0, 2, sizeof t, t, sizeof t[0],
                                       VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (r != VK_SUCCESS) return fp8i_vk_status(dev->ctx, r, "vkGetQueryPoolResults");
    const uint64_t mask = vd->timestamp_bits >= 64 ? UINT64_MAX : ((uint64_t)1 << vd->timestamp_bits) - 1;
    const uint64_t ticks = (t[1] - t[0]) & mask;
    *elapsed_ns = (double)ticks * (double)vd->props.limits.timestampPeriod;
    return FP8_OK;
}
