/* The verdict on fixture records of real devices: paths, native FP8 level, quirks, architecture, and how the
 * build's shader variants change the choice. Runs without any GPU. */
#include "test_util.h"

#include "device/device.h"
#include "device/quirks.h"
#include "fixtures/fixtures.h"
#include "ops/ops.h"

#include <string.h>

/* Build-feature sets to decide under. */
#define B_NONE 0u
#define B_NV (FP8_BUILD_VULKAN | FP8_BUILD_SHADER_NV_COOPMAT)
#define B_KHR (FP8_BUILD_VULKAN | FP8_BUILD_SHADER_KHR_COOPMAT)
#define B_NV_KHR (B_NV | B_KHR)
#define B_ALL (B_NV_KHR | FP8_BUILD_SHADER_FLOAT8 | FP8_BUILD_SHADER_INT_DOT | FP8_BUILD_OPENCL | FP8_BUILD_CLBLAST)
#define B_CL (FP8_BUILD_OPENCL)
#define B_CLBLAST (FP8_BUILD_OPENCL | FP8_BUILD_CLBLAST)

static fp8_device_verdict decide(const fp8_device_info *d, uint32_t build)
{
    fp8_device_verdict v;
    fp8i_decide(d, build, &v);
    return v;
}

static bool has_quirk(const fp8_device_verdict *v, uint32_t bit) { return (v->quirks & bit) != 0; }
static bool contains(const char *s, const char *needle) { return strstr(s, needle) != NULL; }

#define CHECK_PATH(v, which, expected)                                                                             \
    CHECK((v).which##_path == (expected), "%s: got %s, want %s (%s)", #which, fp8_path_name((v).which##_path),     \
          fp8_path_name(expected), (v).which##_reason)
#define CHECK_NATIVE(v, expected)                                                                                  \
    CHECK((v).native_fp8 == (expected), "native_fp8 %d, want %d (%s)", (int)(v).native_fp8, (int)(expected),       \
          (v).native_reason)

/* Every fixture is well formed: names present, the declared shapes filled, nothing past the count. */
static void check_fixture_shape(const char *name, const fp8_device_info *d)
{
    CHECK(d->name[0] && d->driver_name[0] && d->api_version[0], "%s: identity fields empty", name);
    CHECK(d->backend >= FP8_BACKEND_CPU && d->backend <= FP8_BACKEND_OPENCL, "%s: backend %d", name, (int)d->backend);
    CHECK(d->caps.matrix_shape_count <= FP8_MAX_MATRIX_SHAPES, "%s: shape count", name);
    for (uint32_t i = 0; i < FP8_MAX_MATRIX_SHAPES; i++) {
        const fp8_matrix_shape *s = &d->caps.matrix_shapes[i];
        if (i < d->caps.matrix_shape_count) {
            CHECK(s->source != 0, "%s: shape %u has no source (count too large?)", name, i);
            if (s->source != FP8_MATRIX_NV_COOPVEC) CHECK(s->m && s->n && s->k, "%s: shape %u has a zero dimension", name, i);
        } else {
            CHECK(s->source == 0 && s->m == 0, "%s: shape %u filled beyond matrix_shape_count", name, i);
        }
    }
    if (d->caps.subgroup_min) {
        CHECK((d->caps.subgroup_min & (d->caps.subgroup_min - 1)) == 0, "%s: subgroup_min %u", name, d->caps.subgroup_min);
        CHECK(d->caps.subgroup_min <= d->caps.subgroup_max, "%s: subgroup range", name);
    }
}

static void test_amd(void)
{
    /* RDNA3 on RADV: KHR coopmat with a KHR shader; nothing to use without one (RADV has no NV coopmat). */
    fp8_device_verdict v = decide(&fixture_amd_rdna3_radv, B_NV_KHR);
    CHECK(!strcmp(v.arch, "amd-rdna3"), "arch %s", v.arch);
    CHECK_NATIVE(v, FP8_NATIVE_NONE);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_KHR_COOPMAT);
    CHECK_PATH(v, gemv, FP8_PATH_VK_GEMV);
    CHECK(v.gemm_shape.m == 16 && v.gemm_shape.n == 16 && v.gemm_shape.k == 16 && v.gemm_shape.a_type == FP8_F16 &&
              v.gemm_shape.result_type == FP8_F32,
          "gemm shape %ux%ux%u", v.gemm_shape.m, v.gemm_shape.n, v.gemm_shape.k);
    CHECK(v.expected_fast && v.matrix_supported && v.quirks == 0, "fast %d supported %d quirks %#x", v.expected_fast,
          v.matrix_supported, v.quirks);
    v = decide(&fixture_amd_rdna3_radv, B_NV);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_TILED);
    CHECK(!v.expected_fast && v.matrix_supported, "supported but not fast without a shader");
    CHECK(contains(v.gemm_reason, "no shader"), "reason: %s", v.gemm_reason);
    CHECK(v.gemm_shape.source == 0, "tiles use no matrix shape");

    /* The same chip under AMD's own driver: RDNA3 has WMMA, so no quirk. */
    fp8_device_info d = fixture_amd_rdna3_radv;
    d.driver_id = 1; /* VK_DRIVER_ID_AMD_PROPRIETARY */
    fp8i_strlcpy(d.name, "AMD Radeon RX 7900 XTX", sizeof d.name);
    v = decide(&d, B_KHR);
    CHECK(v.quirks == 0, "rdna3 proprietary quirks %#x", v.quirks);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_KHR_COOPMAT);

    /* RDNA2 under AMD's driver reports coopmat without WMMA: the quirk keeps us on tiles. */
    fp8i_strlcpy(d.name, "AMD Radeon RX 6800 XT", sizeof d.name);
    d.caps.int_dot_mixed_accelerated = 0;
    v = decide(&d, B_KHR);
    CHECK(!strcmp(v.arch, "amd-rdna2"), "arch %s", v.arch);
    CHECK(has_quirk(&v, FP8I_QUIRK_COOPMAT_UNRELIABLE), "quirks %#x", v.quirks);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_TILED);
    CHECK(contains(v.gemm_reason, "coopmat-unreliable"), "reason: %s", v.gemm_reason);
    CHECK(!v.expected_fast, "rdna2 coopmat not expected fast");
    /* AMDVLK (open-source AMD driver) is matched too; RADV is not. */
    d.driver_id = 2;
    v = decide(&d, B_KHR);
    CHECK(has_quirk(&v, FP8I_QUIRK_COOPMAT_UNRELIABLE), "amdvlk quirks %#x", v.quirks);
    d.driver_id = 3;
    v = decide(&d, B_KHR);
    CHECK(!has_quirk(&v, FP8I_QUIRK_COOPMAT_UNRELIABLE), "radv quirks %#x", v.quirks);
    /* GCN is told apart by its wave64-only subgroups even without a telling name. */
    d.driver_id = 1;
    fp8i_strlcpy(d.name, "AMD Radeon Graphics", sizeof d.name);
    d.caps.subgroup_min = d.caps.subgroup_max = 64;
    CHECK(!strcmp(fp8i_arch_of(&d), "amd-gcn"), "arch %s", fp8i_arch_of(&d));

    /* An integrated AMD GPU under AMD's driver: the property query itself is skipped. */
    d = fixture_amd_rdna3_radv;
    d.driver_id = 1;
    d.type = FP8_DEVICE_INTEGRATED_GPU;
    fp8i_strlcpy(d.name, "AMD Radeon(TM) 860M", sizeof d.name);
    d.caps.matrix_shape_count = 0;
    memset(d.caps.matrix_shapes, 0, sizeof d.caps.matrix_shapes);
    v = decide(&d, B_KHR);
    CHECK(has_quirk(&v, FP8I_QUIRK_COOPMAT_QUERY_CRASH), "quirks %#x", v.quirks);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_TILED);
    CHECK(contains(v.gemm_reason, "coopmat-query-crash"), "reason: %s", v.gemm_reason);

    /* RDNA4 with VK_EXT_shader_float8: native FP8 matrices when this build compiled FP8 shaders. */
    v = decide(&fixture_amd_rdna4_radv, B_ALL);
    CHECK(!strcmp(v.arch, "amd-rdna4"), "arch %s", v.arch);
    CHECK_NATIVE(v, FP8_NATIVE_MATRIX);
    CHECK(v.native_fp8_used, "native FP8 used with FP8 shaders built");
    CHECK(contains(v.native_reason, "shaderFloat8CooperativeMatrix"), "evidence: %s", v.native_reason);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_FLOAT8);
    CHECK(v.gemm_shape.a_type == FP8_E4M3FN && v.gemm_shape.b_type == FP8_E4M3FN && v.gemm_shape.k == 16,
          "E4M3 x E4M3 shape preferred, got %s x %s k%u", fp8_dtype_name(v.gemm_shape.a_type),
          fp8_dtype_name(v.gemm_shape.b_type), v.gemm_shape.k);
    v = decide(&fixture_amd_rdna4_radv, B_NV_KHR);
    CHECK_NATIVE(v, FP8_NATIVE_MATRIX);
    CHECK(!v.native_fp8_used, "no FP8 shader, native FP8 not used");
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_KHR_COOPMAT);
    CHECK(contains(v.gemm_reason, "no FP8 shader"), "reason: %s", v.gemm_reason);
    /* Only the conversion feature: native level drops to conversion. */
    d = fixture_amd_rdna4_radv;
    d.caps.shader_float8_cooperative_matrix = 0;
    v = decide(&d, B_ALL);
    CHECK_NATIVE(v, FP8_NATIVE_CONVERSION);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_KHR_COOPMAT);
}

static void test_intel(void)
{
    fp8_device_verdict v = decide(&fixture_intel_a770_anv, B_NV_KHR);
    CHECK(!strcmp(v.arch, "intel-xe-hpg"), "arch %s", v.arch);
    CHECK(has_quirk(&v, FP8I_QUIRK_COOPMAT_SLOW), "quirks %#x", v.quirks);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_TILED);
    CHECK(contains(v.gemm_reason, "coopmat-slow"), "reason: %s", v.gemm_reason);
    CHECK(v.matrix_supported && !v.expected_fast, "supported %d fast %d", v.matrix_supported, v.expected_fast);
    CHECK_NATIVE(v, FP8_NATIVE_NONE);

    v = decide(&fixture_intel_b580_anv, B_NV_KHR);
    CHECK(!strcmp(v.arch, "intel-xe2"), "arch %s", v.arch);
    CHECK(v.quirks == 0, "quirks %#x", v.quirks);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_KHR_COOPMAT);
    CHECK(v.gemm_shape.m == 8 && v.gemm_shape.n == 16 && v.gemm_shape.k == 16, "shape %ux%ux%u", v.gemm_shape.m,
          v.gemm_shape.n, v.gemm_shape.k);
    v = decide(&fixture_intel_b580_anv, B_NV);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_TILED); /* no NV coopmat on Intel */

    /* OpenCL: DPAS recorded with N = the smallest subgroup; no FP8 on OpenCL. */
    v = decide(&fixture_intel_a770_cl, B_CLBLAST);
    CHECK_PATH(v, gemm, FP8_PATH_CL_CLBLAST);
    CHECK_PATH(v, gemv, FP8_PATH_CL_GEMV);
    CHECK_NATIVE(v, FP8_NATIVE_NONE);
    CHECK(v.matrix_supported && contains(v.gemm_reason, "DPAS"), "dpas: %s", v.gemm_reason);
    CHECK(contains(v.gemm_reason, "HGEMM"), "half works there: %s", v.gemm_reason);
    CHECK(contains(v.gemv_reason, "subgroup"), "gemv: %s", v.gemv_reason);
    CHECK(!strcmp(v.arch, "intel-pre-xe2") || !strcmp(v.arch, "intel-xe-hpg"), "arch %s", v.arch);
    v = decide(&fixture_intel_b580_cl, B_CL);
    CHECK_PATH(v, gemm, FP8_PATH_CL_GEMM_TILED);
    CHECK(!strcmp(v.arch, "intel-xe2"), "arch %s", v.arch);
    CHECK(fixture_intel_b580_cl.caps.matrix_shapes[0].n == 16, "DPAS N on Xe2");
}

static void test_mobile(void)
{
    fp8_device_verdict v = decide(&fixture_adreno_740_vk, B_ALL);
    CHECK(!strcmp(v.arch, "adreno-7xx"), "arch %s", v.arch);
    CHECK(has_quirk(&v, FP8I_QUIRK_SHADER_COMPILER_UNRELIABLE), "quirks %#x", v.quirks);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_TILED);
    CHECK(!v.matrix_supported && !v.expected_fast, "no matrix units");
    v = decide(&fixture_adreno_740_cl, B_CLBLAST);
    CHECK(v.quirks == 0, "OpenCL on Adreno has no quirk: %#x", v.quirks);
    CHECK_PATH(v, gemm, FP8_PATH_CL_CLBLAST);
    CHECK_NATIVE(v, FP8_NATIVE_NONE);

    v = decide(&fixture_mali_g715_vk, B_ALL);
    CHECK(!strcmp(v.arch, "mali-valhall"), "arch %s", v.arch);
    CHECK(v.quirks == 0, "quirks %#x", v.quirks);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_TILED);
    CHECK(contains(v.gemv_reason, "subgroup 16"), "gemv: %s", v.gemv_reason);
    v = decide(&fixture_mali_g715_cl, B_CL);
    CHECK_PATH(v, gemm, FP8_PATH_CL_GEMM_TILED);
    CHECK(fixture_mali_g715_cl.caps.cl_arm_int8_dot && fixture_mali_g715_cl.caps.int_dot, "arm dot recorded");

    /* An fp16 path that flushes subnormals is flagged for the decoder. */
    fp8_device_info d = fixture_mali_g715_vk;
    d.caps.fp16_denormals = 0;
    v = decide(&d, B_ALL);
    CHECK(has_quirk(&v, FP8I_QUIRK_NO_FP16_DENORMALS), "quirks %#x", v.quirks);
}

static void test_nvidia(void)
{
    /* Ada with VK_EXT_shader_float8: each build variant picks a different path. */
    fp8_device_verdict v = decide(&fixture_nvidia_ada_vk, B_ALL);
    CHECK(!strcmp(v.arch, "nvidia-ada"), "arch %s", v.arch);
    CHECK_NATIVE(v, FP8_NATIVE_MATRIX);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_FLOAT8);
    CHECK(v.gemm_shape.k == 32 && v.gemm_shape.m == 16 && v.gemm_shape.n == 16 && v.gemm_shape.result_type == FP8_F32,
          "fp8 shape %ux%ux%u -> %s", v.gemm_shape.m, v.gemm_shape.n, v.gemm_shape.k,
          fp8_dtype_name(v.gemm_shape.result_type));
    v = decide(&fixture_nvidia_ada_vk, B_NV_KHR);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_KHR_COOPMAT);
    CHECK(v.gemm_shape.m == 16 && v.gemm_shape.n == 16 && v.gemm_shape.k == 16, "16x16x16 preferred");
    v = decide(&fixture_nvidia_ada_vk, B_NV);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_NV_COOPMAT);
    CHECK(contains(v.gemm_reason, "no KHR coopmat shader"), "reason: %s", v.gemm_reason);
    CHECK(v.gemm_shape.source == FP8_MATRIX_NV_COOPMAT, "NV shape");
    v = decide(&fixture_nvidia_ada_vk, B_NONE);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_TILED);
    CHECK(!v.native_fp8_used, "nothing used without shaders");

    v = decide(&fixture_nvidia_ada_cl, B_CLBLAST);
    CHECK_NATIVE(v, FP8_NATIVE_MATRIX); /* mma.sync e4m3 is native on sm_89 */
    /* the verified cvt is what the OpenCL kernels decode with; an unverified one is not used */
    CHECK(v.native_fp8_used && v.quirks == 0, "used %d quirks %#x", v.native_fp8_used, v.quirks);
    CHECK(contains(v.native_reason, "8.9") && contains(v.native_reason, "verified"), "evidence: %s", v.native_reason);
    {
        fp8_device_info d = fixture_nvidia_ada_cl;
        d.caps.cl_ptx_fp8_convert = 0;
        v = decide(&d, B_CLBLAST);
        CHECK(!v.native_fp8_used && contains(v.native_reason, "not verified"), "unverified cvt used %d: %s",
              v.native_fp8_used, v.native_reason);
    }

    /* H100: no VK_EXT_shader_float8, FP8 only through cooperative vectors (matrix-vector). */
    v = decide(&fixture_nvidia_h100_vk, B_NV);
    CHECK(!strcmp(v.arch, "nvidia-hopper"), "arch %s", v.arch);
    CHECK_NATIVE(v, FP8_NATIVE_MATRIX);
    CHECK(!v.native_fp8_used, "no cooperative-vector path");
    CHECK(contains(v.native_reason, "VK_NV_cooperative_vector") && contains(v.native_reason, "read as e4m3fn") &&
              contains(v.native_reason, "overflow"),
          "evidence: %s", v.native_reason);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_NV_COOPMAT);
    CHECK(v.expected_fast && v.quirks == 0, "fast %d quirks %#x", v.expected_fast, v.quirks);
    v = decide(&fixture_nvidia_h100_vk, B_ALL);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_KHR_COOPMAT); /* FP8 shaders cannot help without the extension */
    v = decide(&fixture_nvidia_h100_vk, B_NONE);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_TILED);

    /* The H100's coopmat2 record (as captured): the workgroup-scope build can run there with 256 invocations
     * and 32x32x16 granularity, but the verdict stays on KHR (measured as fast) and says so; a missing feature
     * bit the kernel uses, or subgroup-only shapes, leave no coopmat2 shape at all. */
    {
        fp8_device_info d = fixture_nvidia_h100_vk;
        const fp8_matrix_shape *s = fp8i_coopmat2_shape(&d);
        CHECK(s && s->workgroup_invocations == 256 && s->m == 32 && s->n == 32 && s->k == 16,
              "coopmat2 shape %ux%ux%u, %u invocations", s ? s->m : 0, s ? s->n : 0, s ? s->k : 0,
              s ? s->workgroup_invocations : 0);
        v = decide(&d, B_ALL | FP8_BUILD_SHADER_NV_COOPMAT2);
        CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_KHR_COOPMAT);
        CHECK(contains(v.gemm_reason, "measured no faster"), "reason: %s", v.gemm_reason);
        v = decide(&d, B_ALL);
        CHECK(contains(v.gemm_reason, "no coopmat2 shader"), "reason: %s", v.gemm_reason);
        d.caps.nv_coopmat2_per_element_operations = 0; /* the kernel's epilogue */
        CHECK(!fp8i_coopmat2_shape(&d), "no coopmat2 shape without per-element operations");
        d.caps.nv_coopmat2_per_element_operations = 1;
        d.caps.nv_coopmat2_block_loads = 0; /* not used */
        CHECK(fp8i_coopmat2_shape(&d) != NULL, "block loads are not needed");
        for (uint32_t i = 0; i < d.caps.matrix_shape_count; i++)
            if (d.caps.matrix_shapes[i].source == FP8_MATRIX_NV_COOPMAT2) d.caps.matrix_shapes[i].scope = 3;
        CHECK(!fp8i_coopmat2_shape(&d), "no coopmat2 shape at subgroup scope only");
    }

    v = decide(&fixture_nvidia_h100_cl, B_CLBLAST);
    CHECK(!strcmp(v.arch, "nvidia-hopper"), "arch %s", v.arch);
    CHECK(has_quirk(&v, FP8I_QUIRK_PTX_FP8_MMA_EMULATED), "quirks %#x", v.quirks);
    CHECK_NATIVE(v, FP8_NATIVE_CONVERSION);
    CHECK(contains(v.native_reason, "9.0") && contains(v.native_reason, "emulated"), "evidence: %s", v.native_reason);
    CHECK(v.native_fp8_used, "the verified cvt is used on the H100 too");
    CHECK_PATH(v, gemm, FP8_PATH_CL_CLBLAST);
    CHECK(contains(v.gemm_reason, "HGEMM"), "half compiles although not advertised: %s", v.gemm_reason);
    v = decide(&fixture_nvidia_h100_cl, B_CL);
    CHECK_PATH(v, gemm, FP8_PATH_CL_GEMM_TILED);
    /* Without inline PTX there is nothing native. */
    fp8_device_info d = fixture_nvidia_h100_cl;
    d.caps.cl_inline_ptx = 0;
    v = decide(&d, B_CL);
    CHECK_NATIVE(v, FP8_NATIVE_NONE);
    CHECK(!has_quirk(&v, FP8I_QUIRK_PTX_FP8_MMA_EMULATED), "quirk needs inline PTX");
}

static void test_cpu_side(void)
{
    fp8_device_verdict v = decide(&fixture_lavapipe_mesa22, B_ALL);
    CHECK(!strcmp(v.arch, "llvmpipe"), "arch %s", v.arch);
    CHECK(has_quirk(&v, FP8I_QUIRK_SMALL_BUFFER_RANGE) && has_quirk(&v, FP8I_QUIRK_NO_FP16_DENORMALS), "quirks %#x",
          v.quirks);
    CHECK_PATH(v, gemm, FP8_PATH_VK_GEMM_TILED);
    CHECK_PATH(v, gemv, FP8_PATH_VK_GEMV);
    CHECK_NATIVE(v, FP8_NATIVE_NONE);
    CHECK(!v.matrix_supported, "lavapipe has no matrix units");

    v = decide(&fixture_pocl_cpu, B_CLBLAST);
    CHECK_PATH(v, gemm, FP8_PATH_CL_CLBLAST);
    CHECK(contains(v.gemm_reason, "SGEMM") && !contains(v.gemm_reason, "HGEMM"), "no half on PoCL: %s", v.gemm_reason);
    CHECK(contains(v.gemv_reason, "work-group"), "no subgroups on PoCL: %s", v.gemv_reason);
    CHECK(v.quirks == 0 && !strcmp(v.arch, ""), "quirks %#x arch %s", v.quirks, v.arch);

    v = decide(&fixture_cpu, B_ALL);
    CHECK_PATH(v, gemm, FP8_PATH_CPU_REFERENCE);
    CHECK_PATH(v, gemv, FP8_PATH_CPU_REFERENCE);
    CHECK_NATIVE(v, FP8_NATIVE_NONE);
}

static void test_purity_and_tables(void)
{
    static const struct { const char *name; const fp8_device_info *d; } all[] = {
        {"rdna3", &fixture_amd_rdna3_radv}, {"rdna4", &fixture_amd_rdna4_radv}, {"a770", &fixture_intel_a770_anv},
        {"a770-cl", &fixture_intel_a770_cl}, {"b580", &fixture_intel_b580_anv}, {"b580-cl", &fixture_intel_b580_cl},
        {"adreno", &fixture_adreno_740_vk}, {"adreno-cl", &fixture_adreno_740_cl}, {"mali", &fixture_mali_g715_vk},
        {"mali-cl", &fixture_mali_g715_cl}, {"ada", &fixture_nvidia_ada_vk}, {"ada-cl", &fixture_nvidia_ada_cl},
        {"h100", &fixture_nvidia_h100_vk}, {"h100-cl", &fixture_nvidia_h100_cl}, {"lavapipe", &fixture_lavapipe_mesa22},
        {"pocl", &fixture_pocl_cpu}, {"cpu", &fixture_cpu},
    };
    const uint32_t builds[] = {B_NONE, B_NV, B_KHR, B_NV_KHR, B_ALL, B_CL, B_CLBLAST};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        check_fixture_shape(all[i].name, all[i].d);
        for (size_t b = 0; b < sizeof builds / sizeof builds[0]; b++) {
            /* Pure: same record, same build -> byte-identical verdict; the record is untouched. */
            fp8_device_info copy = *all[i].d;
            fp8_device_verdict v1, v2;
            memset(&v1, 0xAB, sizeof v1);
            memset(&v2, 0xCD, sizeof v2);
            fp8i_decide(&copy, builds[b], &v1);
            fp8i_decide(&copy, builds[b], &v2);
            CHECK(memcmp(&v1, &v2, sizeof v1) == 0, "%s: verdict not deterministic", all[i].name);
            CHECK(memcmp(&copy, all[i].d, sizeof copy) == 0, "%s: decide changed the record", all[i].name);
            CHECK(v1.gemv_path != FP8_PATH_AUTO && v1.gemm_path != FP8_PATH_AUTO, "%s: AUTO in a verdict", all[i].name);
            CHECK(v1.gemv_reason[0] && v1.gemm_reason[0] && v1.native_reason[0], "%s: empty reason", all[i].name);
            CHECK(v1.native_reason[FP8_REASON_MAX - 1] == '\0', "%s: reason not terminated", all[i].name);
            /* Paths belong to the device's backend. */
            const bool vk = v1.gemm_path >= FP8_PATH_VK_GEMV && v1.gemm_path <= FP8_PATH_VK_GEMM_FLOAT8;
            const bool cl = v1.gemm_path >= FP8_PATH_CL_GEMV && v1.gemm_path <= FP8_PATH_CL_CLBLAST;
            CHECK(all[i].d->backend == FP8_BACKEND_VULKAN ? vk : all[i].d->backend == FP8_BACKEND_OPENCL ? cl
                                                                 : v1.gemm_path == FP8_PATH_CPU_REFERENCE,
                  "%s: path %s outside its backend", all[i].name, fp8_path_name(v1.gemm_path));
            /* A native level above none always comes with evidence naming an extension or the compute capability. */
            if (v1.native_fp8 != FP8_NATIVE_NONE)
                CHECK(contains(v1.native_reason, "VK_") || contains(v1.native_reason, "compute capability"),
                      "%s: evidence: %s", all[i].name, v1.native_reason);
            /* The FP8 path only where the build compiled FP8 shaders. */
            if (v1.gemm_path == FP8_PATH_VK_GEMM_FLOAT8) CHECK(builds[b] & FP8_BUILD_SHADER_FLOAT8, "%s", all[i].name);
            if (v1.gemm_path == FP8_PATH_VK_GEMM_KHR_COOPMAT) CHECK(builds[b] & FP8_BUILD_SHADER_KHR_COOPMAT, "%s", all[i].name);
            if (v1.gemm_path == FP8_PATH_VK_GEMM_NV_COOPMAT) CHECK(builds[b] & FP8_BUILD_SHADER_NV_COOPMAT, "%s", all[i].name);
            CHECK(v1.expected_fast == (v1.gemm_shape.source != 0), "%s: expected_fast follows the matrix path", all[i].name);
        }
    }
    /* Quirk names: one per bit in use, NULL beyond; every bit has its evidence. */
    for (unsigned b = 0; b < FP8I_QUIRK_COUNT_; b++) {
        CHECK(fp8_quirk_name(b) != NULL, "quirk %u unnamed", b);
        CHECK(fp8i_quirk_evidence(b) != NULL, "quirk %u without evidence", b);
    }
    CHECK(fp8_quirk_name(FP8I_QUIRK_COUNT_) == NULL && fp8_quirk_name(31) == NULL, "names past the table");
    /* Component-type mapping, FP8 values from the registry. */
    CHECK(fp8i_dtype_from_vk_component(1000491002) == FP8_E4M3FN, "E4M3");
    CHECK(fp8i_dtype_from_vk_component(1000491003) == FP8_E5M2, "E5M2");
    CHECK(fp8i_dtype_from_vk_component(1000141000) == FP8_BF16, "BF16");
    CHECK(fp8i_dtype_from_vk_component(1000491000) == FP8_DTYPE_INVALID, "packed int8 has no dtype");
    CHECK(fp8i_dtype_from_vk_component(2) == FP8_DTYPE_INVALID, "f64 has no dtype");
}

/* Which token counts take the GEMV: up to 16 without matrix units, 15 with them (16 for FP8 weights), 4 on
 * OpenCL CPU devices. */
static void test_decode_batch(void)
{
    const fp8_backend vk = FP8_BACKEND_VULKAN, cl = FP8_BACKEND_OPENCL;
    const fp8_device_type gpu = FP8_DEVICE_DISCRETE_GPU, cpu = FP8_DEVICE_CPU;
    CHECK(fp8i_gemm_decode_sized(vk, gpu, false, 16, FP8_E2M1), "16 tokens, no matrix units: GEMV");
    CHECK(!fp8i_gemm_decode_sized(vk, gpu, false, 17, FP8_E4M3FN), "17 tokens: GEMM");
    CHECK(fp8i_gemm_decode_sized(vk, gpu, true, 15, FP8_E2M1), "15 tokens on matrix units: GEMV");
    CHECK(!fp8i_gemm_decode_sized(vk, gpu, true, 16, FP8_E2M1), "16 tokens of E2M1 weights: matrix units");
    CHECK(fp8i_gemm_decode_sized(vk, gpu, true, 16, FP8_E4M3FN), "16 tokens of E4M3 weights: GEMV");
    CHECK(fp8i_gemm_decode_sized(vk, gpu, true, 16, FP8_E5M2FNUZ), "16 tokens of E5M2FNUZ weights: GEMV");
    CHECK(!fp8i_gemm_decode_sized(vk, gpu, true, 17, FP8_E4M3FN), "17 tokens of E4M3 weights: matrix units");
    CHECK(fp8i_gemm_decode_sized(cl, cpu, false, 4, FP8_E4M3FN), "PoCL, 4 tokens: GEMV");
    CHECK(!fp8i_gemm_decode_sized(cl, cpu, false, 5, FP8_E4M3FN), "PoCL, 5 tokens: GEMM");
}

int main(void)
{
    test_decode_batch();
    test_amd();
    test_intel();
    test_mobile();
    test_nvidia();
    test_cpu_side();
    test_purity_and_tables();
    return test_finish("decide");
}
