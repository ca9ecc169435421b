/* Capability record of a Vulkan physical device, from real queries (extension structs only where listed). */
#include "vk_internal.h"

#include "../device/device.h"
#include "../device/quirks.h"

#include <stdio.h>
#include <string.h>

static const char *vendor_name(uint32_t id)
{
    switch (id) {
    case 0x1002: return "AMD";
    case 0x10DE: return "NVIDIA";
    case 0x8086: return "Intel";
    case 0x13B5: return "Arm";
    case 0x5143: return "Qualcomm";
    case 0x1010: return "Imagination";
    case 0x106B: return "Apple";
    case 0x144D: return "Samsung";
    case 0x10005: return "Mesa";
    default: return "unknown";
    }
}

static fp8_device_type device_type(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return FP8_DEVICE_INTEGRATED_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return FP8_DEVICE_DISCRETE_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return FP8_DEVICE_VIRTUAL_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return FP8_DEVICE_CPU;
    default: return FP8_DEVICE_OTHER;
    }
}

/* The driver's version number follows the vendor's own packing, not VK_MAKE_VERSION. */
static void format_driver_version(uint32_t vendor, uint32_t driver_id, uint32_t v, char *out, size_t size)
{
    if (vendor == 0x10DE)
        snprintf(out, size, "%u.%u.%u.%u", (v >> 22) & 0x3ff, (v >> 14) & 0xff, (v >> 6) & 0xff, v & 0x3f);
    else if (driver_id == VK_DRIVER_ID_INTEL_PROPRIETARY_WINDOWS)
        snprintf(out, size, "%u.%u", v >> 14, v & 0x3fff);
    else
        snprintf(out, size, "%u.%u.%u", VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v), VK_API_VERSION_PATCH(v));
}

typedef struct ext_list {
    uint32_t count;
    VkExtensionProperties *props;
} ext_list;

static bool has_ext(const ext_list *e, const char *name)
{
    for (uint32_t i = 0; i < e->count; i++)
        if (strcmp(e->props[i].extensionName, name) == 0) return true;
    return false;
}

static void list_extensions(const fp8_context *ctx, VkPhysicalDevice phys, ext_list *e)
{
    e->count = 0;
    e->props = NULL;
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(phys, NULL, &n, NULL) != VK_SUCCESS || n == 0) return;
    e->props = fp8i_calloc(ctx, n, sizeof *e->props);
    if (!e->props) return;
    VkResult r = vkEnumerateDeviceExtensionProperties(phys, NULL, &n, e->props);
    if (r == VK_SUCCESS || r == VK_INCOMPLETE) e->count = n;
}

/* Append `s` (whose first members are sType and pNext) to a pNext chain. */
typedef struct chain {
    VkBaseOutStructure *tail;
} chain;
static void link(chain *c, void *s, VkStructureType type)
{
    VkBaseOutStructure *b = s;
    b->sType = type;
    b->pNext = NULL;
    c->tail->pNext = b;
    c->tail = b;
}

static void add_shape(fp8_device_info *info, const fp8_matrix_shape *s)
{
    fp8_device_caps *c = &info->caps;
    if (c->matrix_shape_count >= FP8_MAX_MATRIX_SHAPES) {
        c->matrix_shapes_dropped++;
        return;
    }
    c->matrix_shapes[c->matrix_shape_count++] = *s;
}

static fp8_matrix_shape make_shape(uint32_t m, uint32_t n, uint32_t k, int32_t a, int32_t b, int32_t cc, int32_t r,
                                   fp8_matrix_source src, uint32_t scope, uint32_t saturating)
{
    fp8_matrix_shape s;
    memset(&s, 0, sizeof s);
    s.m = m, s.n = n, s.k = k;
    s.a_type = fp8i_dtype_from_vk_component(a);
    s.b_type = fp8i_dtype_from_vk_component(b);
    s.c_type = fp8i_dtype_from_vk_component(cc);
    s.result_type = fp8i_dtype_from_vk_component(r);
    s.input_interpretation = FP8_DTYPE_INVALID;
    s.native_types[0] = a, s.native_types[1] = b, s.native_types[2] = cc, s.native_types[3] = r;
    s.native_types[4] = -1;
    s.source = src;
    s.scope = scope;
    s.saturating = saturating;
    return s;
}

static PFN_vkVoidFunction proc(const fp8i_vk_instance *vk, const char *name)
{
    return vkGetInstanceProcAddr(vk->instance, name);
}

static void query_khr_coopmat(const fp8i_vk_instance *vk, VkPhysicalDevice phys, fp8_device_info *info)
{
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR get =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)proc(vk, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    uint32_t n = 0;
    if (!get || get(phys, &n, NULL) != VK_SUCCESS || n == 0) return;
    VkCooperativeMatrixPropertiesKHR *p = fp8i_calloc(vk->ctx, n, sizeof *p);
    if (!p) return;
    for (uint32_t i = 0; i < n; i++) p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
    VkResult r = get(phys, &n, p);
    if (r == VK_SUCCESS || r == VK_INCOMPLETE) {
        for (uint32_t i = 0; i < n; i++) {
            fp8_matrix_shape s = make_shape(p[i].MSize, p[i].NSize, p[i].KSize, (int32_t)p[i].AType, (int32_t)p[i].BType,
                                            (int32_t)p[i].CType, (int32_t)p[i].ResultType, FP8_MATRIX_KHR_COOPMAT,
                                            (uint32_t)p[i].scope, p[i].saturatingAccumulation != 0);
            add_shape(info, &s);
        }
    }
    fp8i_free(vk->ctx, p);
}

static void query_nv_coopmat(const fp8i_vk_instance *vk, VkPhysicalDevice phys, fp8_device_info *info)
{
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV get =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)proc(vk, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
    uint32_t n = 0;
    if (!get || get(phys, &n, NULL) != VK_SUCCESS || n == 0) return;
    VkCooperativeMatrixPropertiesNV *p = fp8i_calloc(vk->ctx, n, sizeof *p);
    if (!p) return;
    for (uint32_t i = 0; i < n; i++) p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
    VkResult r = get(phys, &n, p);
    if (r == VK_SUCCESS || r == VK_INCOMPLETE) {
        for (uint32_t i = 0; i < n; i++) {
            /* VkComponentTypeNV shares its values with VkComponentTypeKHR. */
            fp8_matrix_shape s = make_shape(p[i].MSize, p[i].NSize, p[i].KSize, (int32_t)p[i].AType, (int32_t)p[i].BType,
                                            (int32_t)p[i].CType, (int32_t)p[i].DType, FP8_MATRIX_NV_COOPMAT,
                                            (uint32_t)p[i].scope, 0);
            add_shape(info, &s);
        }
    }
    fp8i_free(vk->ctx, p);
}

static void query_nv_coopmat2(const fp8i_vk_instance *vk, VkPhysicalDevice phys, fp8_device_info *info)
{
    PFN_vkGetPhysicalDeviceCooperativeMatrixFlexibleDimensionsPropertiesNV get =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixFlexibleDimensionsPropertiesNV)proc(
            vk, "vkGetPhysicalDeviceCooperativeMatrixFlexibleDimensionsPropertiesNV");
    uint32_t n = 0;
    if (!get || get(phys, &n, NULL) != VK_SUCCESS || n == 0) return;
    VkCooperativeMatrixFlexibleDimensionsPropertiesNV *p = fp8i_calloc(vk->ctx, n, sizeof *p);
    if (!p) return;
    for (uint32_t i = 0; i < n; i++) p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_FLEXIBLE_DIMENSIONS_PROPERTIES_NV;
    VkResult r = get(phys, &n, p);
    if (r == VK_SUCCESS || r == VK_INCOMPLETE) {
        for (uint32_t i = 0; i < n; i++) {
            fp8_matrix_shape s = make_shape(p[i].MGranularity, p[i].NGranularity, p[i].KGranularity, (int32_t)p[i].AType,
                                            (int32_t)p[i].BType, (int32_t)p[i].CType, (int32_t)p[i].ResultType,
                                            FP8_MATRIX_NV_COOPMAT2, (uint32_t)p[i].scope,
                                            p[i].saturatingAccumulation != 0);
            s.workgroup_invocations = p[i].workgroupInvocations;
            add_shape(info, &s);
        }
    }
    fp8i_free(vk->ctx, p);
}

static void query_nv_coopvec(const fp8i_vk_instance *vk, VkPhysicalDevice phys, fp8_device_info *info)
{
    PFN_vkGetPhysicalDeviceCooperativeVectorPropertiesNV get =
        (PFN_vkGetPhysicalDeviceCooperativeVectorPropertiesNV)proc(vk, "vkGetPhysicalDeviceCooperativeVectorPropertiesNV");
    uint32_t n = 0;
    if (!get || get(phys, &n, NULL) != VK_SUCCESS || n == 0) return;
    VkCooperativeVectorPropertiesNV *p = fp8i_calloc(vk->ctx, n, sizeof *p);
    if (!p) return;
    for (uint32_t i = 0; i < n; i++) p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_VECTOR_PROPERTIES_NV;
    VkResult r = get(phys, &n, p);
    if (r == VK_SUCCESS || r == VK_INCOMPLETE) {
        for (uint32_t i = 0; i < n; i++) {
            /* a = input vector type, b = matrix interpretation, c = bias interpretation. */
            fp8_matrix_shape s = make_shape(0, 0, 0, (int32_t)p[i].inputType, (int32_t)p[i].matrixInterpretation,
                                            (int32_t)p[i].biasInterpretation, (int32_t)p[i].resultType,
                                            FP8_MATRIX_NV_COOPVEC, 0, 0);
            s.input_interpretation = fp8i_dtype_from_vk_component((int32_t)p[i].inputInterpretation);
            s.native_types[4] = (int32_t)p[i].inputInterpretation;
            s.transpose = p[i].transpose != 0;
            add_shape(info, &s);
        }
    }
    fp8i_free(vk->ctx, p);
}

static unsigned spirv_minor_for(uint32_t api, bool spirv_1_4)
{
    const uint32_t minor = VK_API_VERSION_MINOR(api);
    if (VK_API_VERSION_MAJOR(api) > 1 || minor >= 3) return 6;
    if (minor == 2) return 5;
    if (spirv_1_4) return 4;
    return minor == 1 ? 3 : 0;
}

void fp8i_vk_probe_device(const fp8i_vk_instance *vk, VkPhysicalDevice phys, fp8_device_info *info)
{
    const fp8_context *ctx = vk->ctx;
    fp8_device_caps *caps = &info->caps;
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(phys, &p);
    fp8i_strlcpy(info->name, p.deviceName, sizeof info->name);
    info->vendor_id = p.vendorID;
    info->device_id = p.deviceID;
    fp8i_strlcpy(info->vendor, vendor_name(p.vendorID), sizeof info->vendor);
    info->type = device_type(p.deviceType);
    snprintf(info->api_version, sizeof info->api_version, "Vulkan %u.%u.%u", VK_API_VERSION_MAJOR(p.apiVersion),
             VK_API_VERSION_MINOR(p.apiVersion), VK_API_VERSION_PATCH(p.apiVersion));
    info->max_buffer_range = p.limits.maxStorageBufferRange;
    info->shared_memory_bytes = p.limits.maxComputeSharedMemorySize;
    info->max_workgroup_size = p.limits.maxComputeWorkGroupInvocations;

    VkPhysicalDeviceMemoryProperties mem;
    vkGetPhysicalDeviceMemoryProperties(phys, &mem);
    for (uint32_t i = 0; i < mem.memoryHeapCount; i++)
        if ((mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && mem.memoryHeaps[i].size > info->memory_bytes)
            info->memory_bytes = mem.memoryHeaps[i].size;
    info->max_allocation_bytes = info->memory_bytes;

    VkPhysicalDeviceFeatures f10;
    vkGetPhysicalDeviceFeatures(phys, &f10);
    caps->fp64 = f10.shaderFloat64 != 0;

    ext_list ext;
    list_extensions(ctx, phys, &ext);
    info->extension_count = ext.count;

    const uint32_t api = VK_MAKE_API_VERSION(0, VK_API_VERSION_MAJOR(p.apiVersion), VK_API_VERSION_MINOR(p.apiVersion), 0);
    const bool v11 = api >= VK_API_VERSION_1_1, v12 = api >= VK_API_VERSION_1_2, v13 = api >= VK_API_VERSION_1_3;
    snprintf(info->language_version, sizeof info->language_version, "SPIR-V 1.%u",
             spirv_minor_for(p.apiVersion, has_ext(&ext, "VK_KHR_spirv_1_4")));
    format_driver_version(p.vendorID, 0, p.driverVersion, info->driver_version, sizeof info->driver_version);

    /* The *2 queries: core from 1.1, else the instance extension (vk_instance.c enables it when present). */
    PFN_vkGetPhysicalDeviceProperties2 props2 = NULL;
    PFN_vkGetPhysicalDeviceFeatures2 feats2 = NULL;
    if (v11 && VK_API_VERSION_MINOR(vk->api_version) >= 1) {
        props2 = (PFN_vkGetPhysicalDeviceProperties2)proc(vk, "vkGetPhysicalDeviceProperties2");
        feats2 = (PFN_vkGetPhysicalDeviceFeatures2)proc(vk, "vkGetPhysicalDeviceFeatures2");
    }
    if (!props2) props2 = (PFN_vkGetPhysicalDeviceProperties2)proc(vk, "vkGetPhysicalDeviceProperties2KHR");
    if (!feats2) feats2 = (PFN_vkGetPhysicalDeviceFeatures2)proc(vk, "vkGetPhysicalDeviceFeatures2KHR");
    if (!props2 || !feats2) {
        FP8I_INFO(ctx, "vulkan: %s: no vkGetPhysicalDeviceProperties2; extension features left unknown", info->name);
        fp8i_free(ctx, ext.props);
        return;
    }

    /* ---- properties ---- */
    VkPhysicalDeviceProperties2 pp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    VkPhysicalDeviceSubgroupProperties sub = {0};
    VkPhysicalDeviceDriverProperties drv = {0};
    VkPhysicalDeviceMaintenance3Properties m3 = {0};
    VkPhysicalDeviceSubgroupSizeControlProperties ssc = {0};
    VkPhysicalDeviceShaderIntegerDotProductProperties dotp = {0};
    VkPhysicalDeviceFloatControlsProperties fc = {0};
    VkPhysicalDeviceShaderCorePropertiesAMD amd = {0};
    VkPhysicalDeviceShaderCoreProperties2AMD amd2 = {0};
    VkPhysicalDeviceShaderSMBuiltinsPropertiesNV sm = {0};
    VkPhysicalDeviceShaderCoreBuiltinsPropertiesARM arm = {0};
    VkPhysicalDeviceCooperativeMatrix2PropertiesNV cm2p = {0};
    VkPhysicalDeviceCooperativeVectorPropertiesNV cvp = {0};
    const bool has_sub = v11, has_drv = v12 || has_ext(&ext, "VK_KHR_driver_properties");
    const bool has_m3 = v11 || has_ext(&ext, "VK_KHR_maintenance3");
    const bool has_ssc = v13 || has_ext(&ext, "VK_EXT_subgroup_size_control");
    const bool has_dot = v13 || has_ext(&ext, "VK_KHR_shader_integer_dot_product");
    const bool has_fc = v12 || has_ext(&ext, "VK_KHR_shader_float_controls");
    const bool has_amd = has_ext(&ext, "VK_AMD_shader_core_properties");
    const bool has_amd2 = has_ext(&ext, "VK_AMD_shader_core_properties2");
    const bool has_sm = has_ext(&ext, "VK_NV_shader_sm_builtins");
    const bool has_arm = has_ext(&ext, "VK_ARM_shader_core_builtins");
    const bool has_khr_cm = has_ext(&ext, VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME);
    const bool has_nv_cm = has_ext(&ext, "VK_NV_cooperative_matrix");
    const bool has_cm2 = has_ext(&ext, VK_NV_COOPERATIVE_MATRIX_2_EXTENSION_NAME);
    const bool has_cv = has_ext(&ext, VK_NV_COOPERATIVE_VECTOR_EXTENSION_NAME);
    const bool has_f8 = has_ext(&ext, VK_EXT_SHADER_FLOAT8_EXTENSION_NAME);
    const bool has_bf16 = has_ext(&ext, VK_KHR_SHADER_BFLOAT16_EXTENSION_NAME);
    chain c = {(VkBaseOutStructure *)&pp};
    if (has_sub) link(&c, &sub, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES);
    if (has_drv) link(&c, &drv, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES);
    if (has_m3) link(&c, &m3, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES);
    if (has_ssc) link(&c, &ssc, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES);
    if (has_dot) link(&c, &dotp, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES);
    if (has_fc) link(&c, &fc, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FLOAT_CONTROLS_PROPERTIES);
    if (has_amd) link(&c, &amd, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD);
    if (has_amd2) link(&c, &amd2, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_2_AMD);
    if (has_sm) link(&c, &sm, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV);
    if (has_arm) link(&c, &arm, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_BUILTINS_PROPERTIES_ARM);
    if (has_cm2) link(&c, &cm2p, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_PROPERTIES_NV);
    if (has_cv) link(&c, &cvp, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_VECTOR_PROPERTIES_NV);
    props2(phys, &pp);

    if (has_drv) {
        info->driver_id = (uint32_t)drv.driverID;
        fp8i_strlcpy(info->driver_name, drv.driverName, sizeof info->driver_name);
        if (drv.driverInfo[0]) fp8i_strlcpy(info->driver_version, drv.driverInfo, sizeof info->driver_version);
        snprintf(info->conformance_version, sizeof info->conformance_version, "%u.%u.%u.%u", drv.conformanceVersion.major,
                 drv.conformanceVersion.minor, drv.conformanceVersion.subminor, drv.conformanceVersion.patch);
        if (!drv.driverInfo[0])
            format_driver_version(p.vendorID, info->driver_id, p.driverVersion, info->driver_version,
                                  sizeof info->driver_version);
    }
    if (!info->driver_name[0]) fp8i_strlcpy(info->driver_name, vendor_name(p.vendorID), sizeof info->driver_name);
    if (has_m3 && m3.maxMemoryAllocationSize) info->max_allocation_bytes = m3.maxMemoryAllocationSize;
    if (has_sub) {
        caps->subgroup_size = sub.subgroupSize;
        caps->subgroup_min = caps->subgroup_max = sub.subgroupSize;
        const bool compute = (sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) != 0;
        caps->subgroups = compute && (sub.supportedOperations & VK_SUBGROUP_FEATURE_BASIC_BIT);
        caps->subgroup_arithmetic = compute && (sub.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
    }
    if (has_ssc && ssc.minSubgroupSize && (ssc.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT)) {
        caps->subgroup_min = ssc.minSubgroupSize;
        caps->subgroup_max = ssc.maxSubgroupSize;
    }
    if (has_dot) {
        caps->int_dot_accelerated = dotp.integerDotProduct4x8BitPackedSignedAccelerated != 0;
        caps->int_dot_mixed_accelerated = dotp.integerDotProduct4x8BitPackedMixedSignednessAccelerated != 0;
    }
    if (has_fc) caps->fp16_denormals = fc.shaderDenormPreserveFloat16 != 0;
    if (has_amd) {
        caps->amd_wavefronts_per_simd = amd.wavefrontsPerSimd;
        info->compute_units = amd.shaderEngineCount * amd.shaderArraysPerEngineCount * amd.computeUnitsPerShaderArray;
    }
    if (has_amd2 && amd2.activeComputeUnitCount) info->compute_units = amd2.activeComputeUnitCount;
    if (has_sm) info->compute_units = sm.shaderSMCount;
    if (has_arm) info->compute_units = arm.shaderCoreCount;
    if (has_cm2) {
        caps->nv_coopmat2_workgroup_max_invocations = cm2p.cooperativeMatrixWorkgroupScopeMaxWorkgroupSize;
        caps->nv_coopmat2_flexible_max_dimension = cm2p.cooperativeMatrixFlexibleDimensionsMaxDimension;
        caps->nv_coopmat2_reserved_shared_memory = cm2p.cooperativeMatrixWorkgroupScopeReservedSharedMemory;
    }
    if (has_cv) {
        caps->nv_coopvec_max_components = cvp.maxCooperativeVectorComponents;
        caps->nv_coopvec_training = cvp.cooperativeVectorTrainingFloat16Accumulation ||
                                    cvp.cooperativeVectorTrainingFloat32Accumulation;
    }

    /* ---- features ---- */
    VkPhysicalDeviceFeatures2 ff = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    VkPhysicalDeviceShaderFloat16Int8Features f16i8 = {0};
    VkPhysicalDevice8BitStorageFeatures s8 = {0};
    VkPhysicalDevice16BitStorageFeatures s16 = {0};
    VkPhysicalDeviceShaderIntegerDotProductFeatures dotf = {0};
    VkPhysicalDeviceSubgroupSizeControlFeatures sscf = {0};
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR khr_cm = {0};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV nv_cm = {0};
    VkPhysicalDeviceCooperativeMatrix2FeaturesNV cm2f = {0};
    VkPhysicalDeviceCooperativeVectorFeaturesNV cvf = {0};
    VkPhysicalDeviceShaderFloat8FeaturesEXT f8 = {0};
    VkPhysicalDeviceShaderBfloat16FeaturesKHR bf16 = {0};
    c.tail = (VkBaseOutStructure *)&ff;
    if (v12 || has_ext(&ext, "VK_KHR_shader_float16_int8"))
        link(&c, &f16i8, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES);
    if (v12 || has_ext(&ext, "VK_KHR_8bit_storage")) link(&c, &s8, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES);
    if (v11 || has_ext(&ext, "VK_KHR_16bit_storage"))
        link(&c, &s16, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES);
    if (has_dot) link(&c, &dotf, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES);
    if (has_ssc) link(&c, &sscf, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES);
    if (has_khr_cm) link(&c, &khr_cm, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR);
    if (has_nv_cm) link(&c, &nv_cm, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV);
    if (has_cm2) link(&c, &cm2f, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_FEATURES_NV);
    if (has_cv) link(&c, &cvf, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_VECTOR_FEATURES_NV);
    if (has_f8) link(&c, &f8, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT8_FEATURES_EXT);
    if (has_bf16) link(&c, &bf16, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_BFLOAT16_FEATURES_KHR);
    feats2(phys, &ff);

    caps->fp16 = f16i8.shaderFloat16 != 0;
    caps->int8 = f16i8.shaderInt8 != 0;
    caps->storage8 = s8.storageBuffer8BitAccess != 0;
    caps->storage16 = s16.storageBuffer16BitAccess != 0;
    caps->int_dot = dotf.shaderIntegerDotProduct != 0;
    if (!caps->int_dot) caps->int_dot_accelerated = caps->int_dot_mixed_accelerated = 0;
    caps->subgroup_size_control = sscf.subgroupSizeControl != 0 && sscf.computeFullSubgroups != 0;
    caps->khr_cooperative_matrix = khr_cm.cooperativeMatrix != 0;
    caps->nv_cooperative_matrix = nv_cm.cooperativeMatrix != 0;
    caps->nv_cooperative_matrix2 = has_cm2 && (cm2f.cooperativeMatrixWorkgroupScope || cm2f.cooperativeMatrixFlexibleDimensions ||
                                               cm2f.cooperativeMatrixTensorAddressing);
    caps->nv_coopmat2_workgroup_scope = cm2f.cooperativeMatrixWorkgroupScope != 0;
    caps->nv_coopmat2_flexible_dimensions = cm2f.cooperativeMatrixFlexibleDimensions != 0;
    caps->nv_coopmat2_reductions = cm2f.cooperativeMatrixReductions != 0;
    caps->nv_coopmat2_conversions = cm2f.cooperativeMatrixConversions != 0;
    caps->nv_coopmat2_per_element_operations = cm2f.cooperativeMatrixPerElementOperations != 0;
    caps->nv_coopmat2_tensor_addressing = cm2f.cooperativeMatrixTensorAddressing != 0;
    caps->nv_coopmat2_block_loads = cm2f.cooperativeMatrixBlockLoads != 0;
    caps->nv_cooperative_vector = cvf.cooperativeVector != 0;
    caps->nv_coopvec_training = caps->nv_coopvec_training && cvf.cooperativeVectorTraining;
    caps->ext_shader_float8 = has_f8;
    caps->shader_float8 = f8.shaderFloat8 != 0;
    caps->shader_float8_cooperative_matrix = f8.shaderFloat8CooperativeMatrix != 0;
    caps->bf16 = bf16.shaderBFloat16Type != 0;
    caps->bf16_dot = bf16.shaderBFloat16DotProduct != 0;
    caps->bf16_cooperative_matrix = bf16.shaderBFloat16CooperativeMatrix != 0;

    /* ---- matrix units: asked only where the feature is on, and never where a driver is known to crash ---- */
    const uint32_t quirks = fp8i_quirks_for(info);
    if (caps->khr_cooperative_matrix) {
        if (quirks & FP8I_QUIRK_COOPMAT_QUERY_CRASH)
            FP8I_WARN(ctx, "vulkan: %s: cooperative-matrix properties not queried (%s)", info->name,
                      fp8i_quirk_evidence(4));
        else
            query_khr_coopmat(vk, phys, info);
    }
    if (caps->nv_cooperative_matrix) query_nv_coopmat(vk, phys, info);
    /* Cooperative vectors before the (long) flexible-dimension list: they carry the FP8 evidence on NVIDIA. */
    if (caps->nv_cooperative_vector) query_nv_coopvec(vk, phys, info);
    if (caps->nv_coopmat2_flexible_dimensions) query_nv_coopmat2(vk, phys, info);
    if (caps->matrix_shapes_dropped)
        FP8I_WARN(ctx, "vulkan: %s: %u matrix configurations beyond the first %d were not recorded", info->name,
                  caps->matrix_shapes_dropped, FP8_MAX_MATRIX_SHAPES);

    FP8I_DEBUG(ctx,
               "vulkan: %s (%s %s): %u extensions, subgroup %u..%u, fp16 %d int8 %d int-dot %d/%d, coopmat khr %d nv %d "
               "nv2 %d vec %d, float8 %d/%d, %u matrix shapes",
               info->name, info->driver_name, info->driver_version, ext.count, caps->subgroup_min, caps->subgroup_max,
               caps->fp16, caps->int8, caps->int_dot, caps->int_dot_accelerated, caps->khr_cooperative_matrix,
               caps->nv_cooperative_matrix, caps->nv_cooperative_matrix2, caps->nv_cooperative_vector,
               caps->shader_float8, caps->shader_float8_cooperative_matrix, caps->matrix_shape_count);
    fp8i_free(ctx, ext.props);
}
