/* fp8_device_import_vulkan: libfp8 on the application's own VkInstance/VkDevice/queue. A GEMV matches the CPU
 * oracle, and after fp8_device_close the borrowed device still works and is destroyed by its owner. */
#include "test_util.h"

#include "fp8_vulkan.h"
#include "vulkan/vk_internal.h"

#include <math.h>
#include <string.h>

static uint32_t app_validation_errors;

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                 VkDebugUtilsMessageTypeFlagsEXT types,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)types; (void)user;
    if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        app_validation_errors++;
        fprintf(stderr, "validation: %s\n", data->pMessage);
    }
    return VK_FALSE;
}

int main(void)
{
    /* The application's side: its own instance (with the validation layer when asked) and device. */
    const bool validate = getenv("FP8_VK_VALIDATION") && strcmp(getenv("FP8_VK_VALIDATION"), "0") != 0;
    const char *layer = "VK_LAYER_KHRONOS_validation", *ext = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .apiVersion = VK_API_VERSION_1_2};
    VkDebugUtilsMessengerCreateInfoEXT dbg = {.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
                                              .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
                                              .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT,
                                              .pfnUserCallback = on_message};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pNext = validate ? &dbg : NULL,
                                .pApplicationInfo = &app, .enabledLayerCount = validate, .ppEnabledLayerNames = &layer,
                                .enabledExtensionCount = validate, .ppEnabledExtensionNames = &ext};
    VkInstance instance;
    if (vkCreateInstance(&ici, NULL, &instance) != VK_SUCCESS) test_skip("no Vulkan instance");
    uint32_t n = 1;
    VkPhysicalDevice phys;
    if (vkEnumeratePhysicalDevices(instance, &n, &phys) < 0 || n == 0) {
        vkDestroyInstance(instance, NULL);
        test_skip("no Vulkan physical device");
    }
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(phys, &nq, NULL);
    VkQueueFamilyProperties qf[16];
    if (nq > 16) nq = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(phys, &nq, qf);
    uint32_t family = 0;
    while (family < nq && !(qf[family].queueFlags & VK_QUEUE_COMPUTE_BIT)) family++;
    CHECK(family < nq, "no compute queue");
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                            .pNext = &f12, .storageBuffer16BitAccess = VK_TRUE};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
    const float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = family,
                                   .queueCount = 1, .pQueuePriorities = &prio};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &f2, .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci};
    VkDevice device;
    if (vkCreateDevice(phys, &dci, NULL, &device) != VK_SUCCESS) {
        vkDestroyInstance(instance, NULL);
        test_skip("vkCreateDevice failed (no 16-bit storage?)");
    }
    VkQueue queue;
    vkGetDeviceQueue(device, family, 0, &queue);
    VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
    if (validate) {
        PFN_vkCreateDebugUtilsMessengerEXT create =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(instance, "vkCreateDebugUtilsMessengerEXT");
        if (create) create(instance, &dbg, NULL, &messenger);
    }

    /* libfp8 on top of it. */
    fp8_context *ctx = NULL;
    fp8_context_options o = {.log = test_log};
    CHECK_STATUS(fp8_context_create(&o, &ctx), FP8_OK);
    fp8_vulkan_import im = {instance, phys, device, queue, family, &f2};
    fp8_device *dev = NULL, *cpu = NULL;
    CHECK_STATUS(fp8_device_import_vulkan(ctx, NULL, &dev), FP8_ERR_NULL_POINTER);
    fp8_vulkan_import bad = im;
    bad.queue = VK_NULL_HANDLE;
    CHECK_STATUS(fp8_device_import_vulkan(ctx, &bad, &dev), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_device_import_vulkan(ctx, &im, &dev), FP8_OK);
    uint32_t ci;
    fp8_device_filter fc = {.backend = FP8_BACKEND_CPU};
    CHECK_STATUS(fp8_context_find_device(ctx, &fc, &ci), FP8_OK);
    CHECK_STATUS(fp8_device_open(ctx, ci, &cpu), FP8_OK);
    if (dev && cpu) {
        fp8_device_info info;
        CHECK_STATUS(fp8_device_get_info(dev, &info, NULL), FP8_OK);
        CHECK(info.backend == FP8_BACKEND_VULKAN, "imported device reports backend %d", (int)info.backend);
        enum { M = 2, N = 40, K = 96 };
        uint8_t w[N * K];
        float x[M * K], y[M * N], ref[M * N];
        double refd[M * N];
        test_rng r = {11};
        for (int i = 0; i < N * K; i++) {
            do w[i] = (uint8_t)test_rng_next(&r); while ((w[i] & 0x7F) == 0x7F);
        }
        for (int i = 0; i < M * K; i++) x[i] = test_rng_normal(&r);
        fp8_device *devs[2] = {dev, cpu};
        for (int d = 0; d < 2; d++) {
            fp8_buffer *bw = NULL, *bx = NULL, *by = NULL;
            CHECK_STATUS(fp8_buffer_create(devs[d], sizeof w, &bw), FP8_OK);
            CHECK_STATUS(fp8_buffer_create(devs[d], sizeof x, &bx), FP8_OK);
            CHECK_STATUS(fp8_buffer_create(devs[d], sizeof y, &by), FP8_OK);
            if (!bw || !bx || !by) break;
            fp8_buffer_write(bw, 0, w, sizeof w);
            fp8_buffer_write(bx, 0, x, sizeof x);
            fp8_gemm_desc g = {.m = M, .n = N, .k = K, .w = {bw, 0, FP8_E4M3FN, 0}, .x = {bx, 0, FP8_F32, 0},
                               .y = {by, 0, FP8_F32, 0}, .path = d ? FP8_PATH_CPU_REFERENCE : FP8_PATH_VK_GEMV};
            CHECK_STATUS(fp8_gemm(devs[d], &g), FP8_OK);
            CHECK_STATUS(fp8_buffer_read(by, 0, d ? ref : y, sizeof y), FP8_OK);
            fp8_buffer_free(bw);
            fp8_buffer_free(bx);
            fp8_buffer_free(by);
        }
        for (int i = 0; i < M * N; i++) refd[i] = ref[i];
        double err = test_rel_frobenius(y, refd, M * N);
        CHECK(err < 1e-5, "imported GEMV relative error %g", err);
    }
    fp8_device_close(dev);
    fp8_device_close(cpu);
    CHECK(fp8i_vk_validation_errors(ctx) == 0, "%u validation errors in libfp8's instance", fp8i_vk_validation_errors(ctx));
    fp8_context_destroy(ctx);

    /* Still the application's: usable, then destroyed by it. */
    CHECK(vkDeviceWaitIdle(device) == VK_SUCCESS, "borrowed device unusable after fp8_device_close");
    vkDestroyDevice(device, NULL);
    if (messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy) destroy(instance, messenger, NULL);
    }
    vkDestroyInstance(instance, NULL);
    CHECK(app_validation_errors == 0, "%u validation errors on the imported device", app_validation_errors);
    return test_finish("vk_import");
}
