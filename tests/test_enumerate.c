/* Enumeration on the machine's real drivers (lavapipe and PoCL in CI): sane records, backend states, the
 * FP8_DISABLE_* switches, options.disable_backends, device filters. */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

static bool pow2_or_zero(uint32_t v) { return (v & (v - 1)) == 0; }

static fp8_context *make_context(uint32_t disable)
{
    fp8_context_options o = {0};
    o.log = test_log;
    o.log_level = FP8_LOG_WARN;
    o.disable_backends = disable;
    fp8_context *ctx = NULL;
    CHECK_STATUS(fp8_context_create(&o, &ctx), FP8_OK);
    return ctx;
}

static uint32_t count_backend(const fp8_context *ctx, fp8_backend b)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < fp8_context_device_count(ctx); i++) {
        fp8_device_info d;
        if (fp8_context_device_info(ctx, i, &d) == FP8_OK && d.backend == b) n++;
    }
    return n;
}

static fp8_backend_state state_of(const fp8_context *ctx, fp8_backend b, char *why, size_t size)
{
    fp8_backend_state st = FP8_BACKEND_STATE_FAILED;
    CHECK_STATUS(fp8_context_backend_status(ctx, b, &st, why, size), FP8_OK);
    return st;
}

/* Every record, whatever its device: the fields fp8probe and the paths rely on. */
static void check_record(const fp8_device_info *d, const fp8_device_verdict *v, uint32_t index)
{
    CHECK(d->index == index, "index %u at position %u", d->index, index);
    CHECK(d->name[0] != '\0', "device %u: empty name", index);
    CHECK(d->driver_name[0] != '\0', "device %u (%s): empty driver name", index, d->name);
    CHECK(d->api_version[0] != '\0', "device %u (%s): empty API version", index, d->name);
    CHECK(d->memory_bytes > 0, "device %u (%s): no memory", index, d->name);
    CHECK(d->max_allocation_bytes > 0 && d->max_buffer_range > 0, "device %u (%s): allocation limits", index, d->name);
    CHECK(d->backend == FP8_BACKEND_CPU || d->max_workgroup_size >= 64, "device %u: workgroup %u", index,
          d->max_workgroup_size);
    CHECK(pow2_or_zero(d->caps.subgroup_min) && pow2_or_zero(d->caps.subgroup_max) && pow2_or_zero(d->caps.subgroup_size),
          "device %u (%s): subgroup sizes %u/%u/%u", index, d->name, d->caps.subgroup_size, d->caps.subgroup_min,
          d->caps.subgroup_max);
    CHECK(d->caps.subgroup_min <= d->caps.subgroup_max, "device %u: subgroup range", index);
    CHECK(d->caps.matrix_shape_count <= FP8_MAX_MATRIX_SHAPES, "device %u: shape count", index);
    CHECK(v->gemv_path != FP8_PATH_AUTO && v->gemm_path != FP8_PATH_AUTO, "device %u: AUTO path", index);
    CHECK(v->gemv_reason[0] && v->gemm_reason[0] && v->native_reason[0], "device %u: empty reason", index);
}

static void test_all_records(void)
{
    fp8_context *ctx = make_context(0);
    if (!ctx) return;
    const uint32_t n = fp8_context_device_count(ctx);
    CHECK(n >= 1, "no device at all");
    for (uint32_t i = 0; i < n; i++) {
        fp8_device_info d;
        fp8_device_verdict v;
        CHECK_STATUS(fp8_context_device_info(ctx, i, &d), FP8_OK);
        CHECK_STATUS(fp8_context_device_verdict(ctx, i, &v), FP8_OK);
        check_record(&d, &v, i);
    }
    fp8_device_info d;
    CHECK_STATUS(fp8_context_device_info(ctx, n, &d), FP8_ERR_NO_DEVICE);
    /* The state of each backend agrees with the device list. */
    const fp8_backend all[] = {FP8_BACKEND_VULKAN, FP8_BACKEND_OPENCL, FP8_BACKEND_CPU};
    for (size_t i = 0; i < 3; i++) {
        char why[FP8_REASON_MAX];
        fp8_backend_state st = state_of(ctx, all[i], why, sizeof why);
        CHECK((st == FP8_BACKEND_STATE_READY) == (count_backend(ctx, all[i]) > 0), "%s: state %s with %u devices",
              fp8_backend_name(all[i]), fp8_backend_state_name(st), count_backend(ctx, all[i]));
        CHECK(why[0] != '\0', "%s: no reason", fp8_backend_name(all[i]));
    }
    CHECK(state_of(ctx, FP8_BACKEND_CPU, NULL, 0) == FP8_BACKEND_STATE_READY, "cpu not ready");
    CHECK((fp8_build_features() & FP8_BUILD_VULKAN) || state_of(ctx, FP8_BACKEND_VULKAN, NULL, 0) == FP8_BACKEND_STATE_NOT_BUILT,
          "vulkan not built but state says otherwise");
    /* Argument checks and truncation of the reason. */
    char small[8];
    CHECK_STATUS(fp8_context_backend_status(ctx, FP8_BACKEND_CPU, NULL, small, sizeof small), FP8_OK);
    CHECK(strlen(small) == 7, "reason truncated to the buffer: '%s'", small);
    CHECK_STATUS(fp8_context_backend_status(ctx, (fp8_backend)9, NULL, NULL, 0), FP8_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(fp8_context_backend_status(NULL, FP8_BACKEND_CPU, NULL, NULL, 0), FP8_ERR_NULL_POINTER);
    CHECK(strcmp(fp8_backend_state_name((fp8_backend_state)77), "unknown") == 0, "unknown state name");
    fp8_context_destroy(ctx);
}

/* lavapipe: the software Vulkan driver every CI machine here has. */
static bool test_lavapipe(void)
{
    fp8_context *ctx = make_context(0);
    if (!ctx) return false;
    uint32_t idx;
    fp8_device_filter f = {.backend = FP8_BACKEND_VULKAN, .name_contains = "LLVMPIPE"};
    if (fp8_context_find_device(ctx, &f, &idx) != FP8_OK) {
        printf("note: no lavapipe device (Vulkan %s)\n",
               (fp8_build_features() & FP8_BUILD_VULKAN) ? "built" : "not built");
        fp8_context_destroy(ctx);
        return false;
    }
    fp8_device_info d;
    fp8_device_verdict v;
    CHECK_STATUS(fp8_context_device_info(ctx, idx, &d), FP8_OK);
    CHECK_STATUS(fp8_context_device_verdict(ctx, idx, &v), FP8_OK);
    CHECK(d.driver_id == 13, "lavapipe driver id %u (want VK_DRIVER_ID_MESA_LLVMPIPE)", d.driver_id);
    CHECK(strcmp(d.driver_name, "llvmpipe") == 0, "driver name %s", d.driver_name);
    CHECK(strncmp(d.driver_version, "Mesa ", 5) == 0, "driver version %s (driverInfo)", d.driver_version);
    CHECK(strncmp(d.api_version, "Vulkan 1.", 9) == 0, "api %s", d.api_version);
    CHECK(strncmp(d.language_version, "SPIR-V 1.", 9) == 0, "language %s", d.language_version);
    CHECK(d.conformance_version[0] != '\0' && d.extension_count > 20, "conformance '%s', %u extensions",
          d.conformance_version, d.extension_count);
    CHECK(d.type == FP8_DEVICE_CPU, "lavapipe type %d", (int)d.type);
    /* The vector width in the name ("256 bits") sets the subgroup size: 32-bit lanes. */
    const char *bits = strstr(d.name, " bits");
    if (bits) {
        const char *p = bits;
        while (p > d.name && p[-1] >= '0' && p[-1] <= '9') p--;
        CHECK(d.caps.subgroup_size == (uint32_t)atoi(p) / 32, "subgroup %u for %s", d.caps.subgroup_size, d.name);
    }
    CHECK(d.caps.subgroups && d.caps.subgroup_arithmetic, "lavapipe has subgroup arithmetic");
    CHECK(d.caps.fp16 && d.caps.int8 && d.caps.storage8 && d.caps.storage16, "fp16/int8/storage");
    CHECK(d.caps.int_dot && !d.caps.int_dot_accelerated, "int dot present, not accelerated");
    CHECK(!d.caps.khr_cooperative_matrix && !d.caps.nv_cooperative_matrix && d.caps.matrix_shape_count == 0,
          "lavapipe has no cooperative matrix");
    CHECK(!d.caps.ext_shader_float8 && !d.caps.nv_cooperative_vector, "no FP8 extensions");
    CHECK(d.max_buffer_range <= d.max_allocation_bytes || d.max_buffer_range <= d.memory_bytes, "buffer range");
    CHECK(d.shared_memory_bytes >= 16384, "shared memory %u", d.shared_memory_bytes);
    CHECK(v.native_fp8 == FP8_NATIVE_NONE && !v.matrix_supported && !v.expected_fast, "no native FP8, no matrices");
    CHECK(v.gemm_path == FP8_PATH_VK_GEMM_TILED && v.gemv_path == FP8_PATH_VK_GEMV, "paths %s/%s",
          fp8_path_name(v.gemv_path), fp8_path_name(v.gemm_path));
    CHECK(strcmp(v.arch, "llvmpipe") == 0, "arch %s", v.arch);
    CHECK(v.quirks & (1u << 3), "small-buffer-range quirk on lavapipe (quirks %#x)", v.quirks);
    fp8_context_destroy(ctx);
    return true;
}

/* PoCL: the CPU OpenCL platform every CI machine here has. */
static bool test_pocl(void)
{
    fp8_context *ctx = make_context(0);
    if (!ctx) return false;
    bool found = false;
    for (uint32_t i = 0; i < fp8_context_device_count(ctx); i++) {
        fp8_device_info d;
        fp8_device_verdict v;
        CHECK_STATUS(fp8_context_device_info(ctx, i, &d), FP8_OK);
        if (d.backend != FP8_BACKEND_OPENCL || !strstr(d.driver_name, "Portable Computing Language")) continue;
        CHECK_STATUS(fp8_context_device_verdict(ctx, i, &v), FP8_OK);
        found = true;
        CHECK(d.type == FP8_DEVICE_CPU, "PoCL type %d", (int)d.type);
        CHECK(strncmp(d.api_version, "OpenCL ", 7) == 0, "api %s", d.api_version);
        CHECK(strstr(d.language_version, "OpenCL C") != NULL, "language %s", d.language_version);
        CHECK(!d.caps.cl_fp16_advertised, "PoCL 3.1 does not advertise cl_khr_fp16");
        CHECK(!d.caps.fp16 && !d.caps.cl_fp16_compiles, "no half arithmetic on PoCL");
        CHECK(!d.caps.cl_intel_dpas && !d.caps.cl_inline_ptx && d.caps.nv_compute_major == 0, "no vendor extras");
        CHECK(d.caps.int8 && d.caps.storage8 && d.caps.storage16, "OpenCL C narrow integers");
        CHECK(d.extension_count > 0 && d.compute_units > 0, "extensions %u, compute units %u", d.extension_count,
              d.compute_units);
        CHECK(v.native_fp8 == FP8_NATIVE_NONE, "native %d", (int)v.native_fp8);
        CHECK(v.gemm_path == ((fp8_build_features() & FP8_BUILD_CLBLAST) ? FP8_PATH_CL_CLBLAST : FP8_PATH_CL_GEMM_TILED),
              "gemm %s", fp8_path_name(v.gemm_path));
        CHECK(v.gemv_path == FP8_PATH_CL_GEMV, "gemv %s", fp8_path_name(v.gemv_path));
    }
    if (!found)
        printf("note: no PoCL device (OpenCL %s)\n", (fp8_build_features() & FP8_BUILD_OPENCL) ? "built" : "not built");
    fp8_context_destroy(ctx);
    return found;
}

static void test_switches(void)
{
    fp8_context *ctx = make_context(0);
    if (!ctx) return;
    const uint32_t vk = count_backend(ctx, FP8_BACKEND_VULKAN), cl = count_backend(ctx, FP8_BACKEND_OPENCL);
    fp8_context_destroy(ctx);

    setenv("FP8_DISABLE_VULKAN", "1", 1);
    ctx = make_context(0);
    if (ctx) {
        char why[FP8_REASON_MAX];
        CHECK(count_backend(ctx, FP8_BACKEND_VULKAN) == 0, "FP8_DISABLE_VULKAN=1 left Vulkan devices");
        CHECK(count_backend(ctx, FP8_BACKEND_OPENCL) == cl, "disabling Vulkan changed OpenCL");
        CHECK(count_backend(ctx, FP8_BACKEND_CPU) == 1, "CPU missing");
        if (fp8_build_features() & FP8_BUILD_VULKAN) {
            CHECK(state_of(ctx, FP8_BACKEND_VULKAN, why, sizeof why) == FP8_BACKEND_STATE_DISABLED, "vulkan state");
            CHECK(strstr(why, "FP8_DISABLE_VULKAN") != NULL, "reason names the variable: %s", why);
        }
        fp8_context_destroy(ctx);
    }
    setenv("FP8_DISABLE_OPENCL", "yes", 1);
    ctx = make_context(0);
    if (ctx) {
        CHECK(fp8_context_device_count(ctx) == 1 && count_backend(ctx, FP8_BACKEND_CPU) == 1,
              "both disabled: %u devices", fp8_context_device_count(ctx));
        fp8_device_info d;
        CHECK_STATUS(fp8_context_device_info(ctx, 0, &d), FP8_OK);
        CHECK(d.index == 0 && d.backend == FP8_BACKEND_CPU, "the CPU is device 0");
        fp8_context_destroy(ctx);
    }
    unsetenv("FP8_DISABLE_VULKAN");
    setenv("FP8_DISABLE_OPENCL", "0", 1); /* a false value does not disable */
    ctx = make_context(0);
    if (ctx) {
        CHECK(count_backend(ctx, FP8_BACKEND_OPENCL) == cl && count_backend(ctx, FP8_BACKEND_VULKAN) == vk,
              "FP8_DISABLE_OPENCL=0 must not disable");
        fp8_context_destroy(ctx);
    }
    setenv("FP8_DISABLE_OPENCL", "1", 1);
    ctx = make_context(0);
    if (ctx) {
        CHECK(count_backend(ctx, FP8_BACKEND_OPENCL) == 0, "FP8_DISABLE_OPENCL=1 left OpenCL devices");
        CHECK(count_backend(ctx, FP8_BACKEND_VULKAN) == vk, "disabling OpenCL changed Vulkan");
        fp8_context_destroy(ctx);
    }
    unsetenv("FP8_DISABLE_OPENCL");
    /* The same through the options, and the CPU cannot be switched off. */
    ctx = make_context((1u << FP8_BACKEND_VULKAN) | (1u << FP8_BACKEND_OPENCL) | (1u << FP8_BACKEND_CPU));
    if (ctx) {
        char why[FP8_REASON_MAX];
        CHECK(fp8_context_device_count(ctx) == 1 && count_backend(ctx, FP8_BACKEND_CPU) == 1, "options: %u devices",
              fp8_context_device_count(ctx));
        if (fp8_build_features() & FP8_BUILD_OPENCL)
            CHECK(state_of(ctx, FP8_BACKEND_OPENCL, why, sizeof why) == FP8_BACKEND_STATE_DISABLED && strstr(why, "disable_backends"),
                  "opencl state by option: %s", why);
        fp8_context_destroy(ctx);
    }
}

static void test_filters(void)
{
    fp8_context *ctx = make_context(0);
    if (!ctx) return;
    uint32_t idx = 99;
    fp8_device_filter f = {.name_contains = "no such device anywhere"};
    CHECK_STATUS(fp8_context_find_device(ctx, &f, &idx), FP8_ERR_NO_DEVICE);
    fp8_device_filter cpu = {.backend = FP8_BACKEND_CPU, .type = FP8_DEVICE_CPU};
    CHECK_STATUS(fp8_context_find_device(ctx, &cpu, &idx), FP8_OK);
    CHECK(idx == fp8_context_device_count(ctx) - 1, "the CPU is listed last (index %u)", idx);
    /* GPUs first: with no filter the first device is not the CPU unless it is the only one. */
    CHECK_STATUS(fp8_context_find_device(ctx, NULL, &idx), FP8_OK);
    CHECK(idx == 0, "first match %u", idx);
    fp8_context_destroy(ctx);
}

int main(void)
{
    /* Keep PoCL's kernel cache out of $HOME (meson sets it; direct runs get a temporary one). */
    if (!getenv("POCL_CACHE_DIR")) setenv("POCL_CACHE_DIR", "/tmp/fp8-test-pocl-cache", 1);
    unsetenv("FP8_DISABLE_VULKAN");
    unsetenv("FP8_DISABLE_OPENCL");
    test_all_records();
    test_switches();
    test_filters();
    const bool lvp = test_lavapipe();
    const bool pocl = test_pocl();
    if (!lvp && !pocl && test_failures == 0)
        test_skip("neither lavapipe nor PoCL is installed; only the generic checks ran");
    return test_finish("enumerate");
}
