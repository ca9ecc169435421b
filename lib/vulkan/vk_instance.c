/* The Vulkan instance of a context: creation (with the validation layer on request), device listing. */
#include "vk_internal.h"

#include <stdlib.h>
#include <string.h>

fp8_status fp8i_vk_status(const fp8_context *ctx, VkResult r, const char *what)
{
    switch (r) {
    case VK_SUCCESS: return FP8_OK;
    case VK_ERROR_OUT_OF_HOST_MEMORY: return FP8I_FAIL(ctx, FP8_ERR_OUT_OF_HOST_MEMORY, "%s: VkResult %d", what, (int)r);
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return FP8I_FAIL(ctx, FP8_ERR_OUT_OF_DEVICE_MEMORY, "%s: VkResult %d", what, (int)r);
    case VK_ERROR_DEVICE_LOST: return FP8I_FAIL(ctx, FP8_ERR_DEVICE_LOST, "%s: VkResult %d", what, (int)r);
    default: return FP8I_FAIL(ctx, FP8_ERR_BACKEND, "%s: VkResult %d", what, (int)r);
    }
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_debug_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                       VkDebugUtilsMessageTypeFlagsEXT types,
                                                       const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)types;
    fp8i_vk_instance *vk = user;
    if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        vk->validation_errors++;
        FP8I_ERROR(vk->ctx, "vulkan validation: %s", data && data->pMessage ? data->pMessage : "(no message)");
    } else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
        FP8I_WARN(vk->ctx, "vulkan validation: %s", data && data->pMessage ? data->pMessage : "(no message)");
    }
    return VK_FALSE;
}

static bool layer_available(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return false;
    VkLayerProperties *props = calloc(n, sizeof *props);
    if (!props) return false;
    bool found = false;
    if (vkEnumerateInstanceLayerProperties(&n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = strcmp(props[i].layerName, name) == 0;
    free(props);
    return found;
}

static bool instance_extension_available(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(NULL, &n, NULL) != VK_SUCCESS || n == 0) return false;
    VkExtensionProperties *props = calloc(n, sizeof *props);
    if (!props) return false;
    bool found = false;
    if (vkEnumerateInstanceExtensionProperties(NULL, &n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = strcmp(props[i].extensionName, name) == 0;
    free(props);
    return found;
}

fp8_status fp8i_vk_enumerate(fp8_context *ctx)
{
    fp8i_vk_instance *vk = fp8i_calloc(ctx, 1, sizeof *vk);
    if (!vk) return FP8_ERR_OUT_OF_HOST_MEMORY;
    vk->ctx = ctx;
    uint32_t loader_version = VK_API_VERSION_1_0;
    PFN_vkEnumerateInstanceVersion enum_version =
        (PFN_vkEnumerateInstanceVersion)vkGetInstanceProcAddr(NULL, "vkEnumerateInstanceVersion");
    if (enum_version) enum_version(&loader_version);
    vk->api_version = loader_version;

    /* FP8_VK_VALIDATION=1 turns the layer on (tests do); VK_INSTANCE_LAYERS also works, through the loader. */
    const char *layers[1];
    uint32_t layer_count = 0;
    const bool want_validation = fp8i_env_flag("FP8_VK_VALIDATION");
    if (want_validation) {
        if (layer_available("VK_LAYER_KHRONOS_validation")) layers[layer_count++] = "VK_LAYER_KHRONOS_validation";
        else FP8I_WARN(ctx, "FP8_VK_VALIDATION is set but VK_LAYER_KHRONOS_validation is not installed");
    }
    const char *exts[2];
    uint32_t ext_count = 0;
    const bool debug_utils = instance_extension_available(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
    if (debug_utils) exts[ext_count++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    if (instance_extension_available(VK_KHR_GET_PHYSICAL_DEVICE_PROPERTIES_2_EXTENSION_NAME))
        exts[ext_count++] = VK_KHR_GET_PHYSICAL_DEVICE_PROPERTIES_2_EXTENSION_NAME;

    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "libfp8",
        .pEngineName = "libfp8",
        .engineVersion = FP8_VERSION_NUMBER,
        /* Ask for the newest the loader has: the driver clamps to what it supports. */
        .apiVersion = loader_version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : loader_version,
    };
    VkDebugUtilsMessengerCreateInfoEXT dbg = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT,
        .pfnUserCallback = on_debug_message,
        .pUserData = vk,
    };
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = debug_utils ? &dbg : NULL,
        .pApplicationInfo = &app,
        .enabledLayerCount = layer_count,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = ext_count,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = vkCreateInstance(&ci, NULL, &vk->instance);
    if (r != VK_SUCCESS) {
        /* No driver (VK_ERROR_INCOMPATIBLE_DRIVER) is the common case on machines without a GPU. */
        const bool no_driver = r == VK_ERROR_INCOMPATIBLE_DRIVER;
        fp8i_backend_note(ctx, FP8_BACKEND_VULKAN, no_driver ? FP8_BACKEND_STATE_NO_DRIVER : FP8_BACKEND_STATE_FAILED,
                          "vkCreateInstance returned %s (VkResult %d)%s",
                          no_driver ? "VK_ERROR_INCOMPATIBLE_DRIVER" : "an error", (int)r,
                          no_driver ? ": no Vulkan driver (ICD) is installed or none loaded" : "");
        FP8I_INFO(ctx, "vulkan: no instance (VkResult %d): %s", (int)r,
                  no_driver ? "no Vulkan driver installed" : "instance creation failed");
        fp8i_free(ctx, vk);
        return FP8_OK;
    }
    vk->validation = layer_count > 0;
    ctx->backend_state[FP8_BACKEND_VULKAN] = vk;
    if (debug_utils) {
        PFN_vkCreateDebugUtilsMessengerEXT create =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(vk->instance, "vkCreateDebugUtilsMessengerEXT");
        if (create) create(vk->instance, &dbg, NULL, &vk->messenger);
    }

    uint32_t n = 0;
    r = vkEnumeratePhysicalDevices(vk->instance, &n, NULL);
    if (r != VK_SUCCESS || n == 0) {
        /* Newer loaders create the instance without any ICD and report the absence here. */
        fp8i_backend_note(ctx, FP8_BACKEND_VULKAN, r == VK_SUCCESS ? FP8_BACKEND_STATE_NO_DRIVER : FP8_BACKEND_STATE_FAILED,
                          "vkEnumeratePhysicalDevices found no device (VkResult %d): no Vulkan driver (ICD) "
                          "reported a GPU", (int)r);
        FP8I_INFO(ctx, "vulkan: no physical devices (VkResult %d)", (int)r);
        return FP8_OK;
    }
    if (n > FP8I_MAX_DEVICES) n = FP8I_MAX_DEVICES;
    r = vkEnumeratePhysicalDevices(vk->instance, &n, vk->physical);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) return fp8i_vk_status(ctx, r, "vkEnumeratePhysicalDevices");
    vk->physical_count = n;
    for (uint32_t i = 0; i < n; i++) {
        fp8i_device_entry *e = fp8i_add_device(ctx, &fp8i_backend_vulkan, i);
        if (!e) break;
        uint32_t index = e->info.index;
        fp8i_vk_probe_device(vk, vk->physical[i], &e->info);
        e->info.backend = FP8_BACKEND_VULKAN;
        e->info.index = index;
    }
    return FP8_OK;
}

void fp8i_vk_shutdown(fp8_context *ctx)
{
    fp8i_vk_instance *vk = fp8i_vk_state(ctx);
    if (!vk) return;
    if (vk->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(vk->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy) destroy(vk->instance, vk->messenger, NULL);
    }
    vkDestroyInstance(vk->instance, NULL);
    fp8i_free(ctx, vk);
    ctx->backend_state[FP8_BACKEND_VULKAN] = NULL;
}

uint32_t fp8i_vk_validation_errors(const fp8_context *ctx)
{
    const fp8i_vk_instance *vk = fp8i_vk_state(ctx);
    return vk ? vk->validation_errors : 0;
}
