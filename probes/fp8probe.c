/* fp8probe: what each device can do with FP8, and which paths libfp8 takes there (text, JSON or a C fixture). */
#include <fp8.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 1

typedef enum { OUT_TEXT, OUT_JSON, OUT_FIXTURE } out_mode;

typedef struct options {
    out_mode mode;
    int device;             /* -1: all */
    fp8_backend backend;    /* 0: all */
    int verbose;
    const char *fixture_name;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fp8probe [--json] [--device N] [--backend vulkan|opencl|cpu] [--verbose]\n"
            "                [--c-fixture NAME --device N] [--help]\n"
            "Lists every device libfp8 finds, what it can do with FP8 and which GEMV/GEMM paths libfp8 takes.\n"
            "  --json            machine-readable output, schema in docs/fp8probe-json.md\n"
            "  --device N        only device N (its index in the full list)\n"
            "  --backend NAME    only devices of one backend\n"
            "  --verbose         also print the library's log (all levels, probe-kernel build logs included) on stderr\n"
            "  --c-fixture NAME  print device N's record as a C initializer for tests/fixtures\n"
            "Exit status: 0 when at least the CPU device is usable, 1 for bad arguments, 2 for an internal error.\n");
}

/* ------------------------------------------------------------------------------------------------ */

static const char *type_name(fp8_device_type t)
{
    switch (t) {
    case FP8_DEVICE_INTEGRATED_GPU: return "integrated_gpu";
    case FP8_DEVICE_DISCRETE_GPU: return "discrete_gpu";
    case FP8_DEVICE_VIRTUAL_GPU: return "virtual_gpu";
    case FP8_DEVICE_CPU: return "cpu";
    case FP8_DEVICE_OTHER: break;
    }
    return "other";
}

static const char *type_text(fp8_device_type t)
{
    switch (t) {
    case FP8_DEVICE_INTEGRATED_GPU: return "integrated GPU";
    case FP8_DEVICE_DISCRETE_GPU: return "discrete GPU";
    case FP8_DEVICE_VIRTUAL_GPU: return "virtual GPU";
    case FP8_DEVICE_CPU: return "CPU";
    case FP8_DEVICE_OTHER: break;
    }
    return "other device";
}

static const char *native_name(fp8_native_fp8 n)
{
    switch (n) {
    case FP8_NATIVE_NONE: return "none";
    case FP8_NATIVE_CONVERSION: return "conversion";
    case FP8_NATIVE_MATRIX: return "matrix";
    }
    return "unknown";
}

static const char *source_name(fp8_matrix_source s)
{
    switch (s) {
    case FP8_MATRIX_KHR_COOPMAT: return "khr_coopmat";
    case FP8_MATRIX_NV_COOPMAT: return "nv_coopmat";
    case FP8_MATRIX_NV_COOPMAT2: return "nv_coopmat2";
    case FP8_MATRIX_NV_COOPVEC: return "nv_coopvec";
    case FP8_MATRIX_INTEL_DPAS: return "intel_dpas";
    }
    return "unknown";
}

static const char *scope_name(uint32_t scope)
{
    switch (scope) {
    case 1: return "device";
    case 2: return "workgroup";
    case 3: return "subgroup";
    case 5: return "queue_family";
    default: return "none";
    }
}

/* A component type as text: the libfp8 name where one exists, else the Vulkan value. */
static const char *ctype_text(fp8_dtype t, int32_t native, char *buf, size_t size)
{
    if (t != FP8_DTYPE_INVALID) return fp8_dtype_name(t);
    switch (native) {
    case -1: return "-";
    case 2: return "f64";
    case 4: return "i16";
    case 6: return "i64";
    case 8: return "u16";
    case 10: return "u64";
    case 1000491000: return "i8_packed";
    case 1000491001: return "u8_packed";
    default: snprintf(buf, size, "type%d", native); return buf;
    }
}

static void format_bytes(uint64_t b, char *out, size_t size)
{
    if (b >= (1ull << 30)) snprintf(out, size, "%.1f GiB", (double)b / (double)(1ull << 30));
    else if (b >= (1ull << 20)) snprintf(out, size, "%.1f MiB", (double)b / (double)(1ull << 20));
    else if (b >= 1024) snprintf(out, size, "%.1f KiB", (double)b / 1024.0);
    else snprintf(out, size, "%llu B", (unsigned long long)b);
}

static const char *yn(int v) { return v ? "yes" : "no"; }

static int is_fp8(fp8_dtype t) { return t == FP8_E4M3FN || t == FP8_E5M2; }

/* ---- text ------------------------------------------------------------------------------------- */

static void print_shape_line(const fp8_matrix_shape *s)
{
    char b0[24], b1[24], b2[24], b3[24], b4[24];
    const char *a = ctype_text(s->a_type, s->native_types[0], b0, sizeof b0);
    const char *b = ctype_text(s->b_type, s->native_types[1], b1, sizeof b1);
    const char *c = ctype_text(s->c_type, s->native_types[2], b2, sizeof b2);
    const char *r = ctype_text(s->result_type, s->native_types[3], b3, sizeof b3);
    const int fp8 = is_fp8(s->a_type) || is_fp8(s->b_type) || is_fp8(s->input_interpretation);
    if (s->source == FP8_MATRIX_NV_COOPVEC) {
        const char *in = ctype_text(s->input_interpretation, s->native_types[4], b4, sizeof b4);
        printf("    %-12s input %s (as %s), matrix %s, bias %s -> %s%s%s\n", source_name(s->source), a, in, b, c, r,
               s->transpose ? ", transposable" : "", fp8 ? "   <- FP8" : "");
        return;
    }
    char mnk[40];
    snprintf(mnk, sizeof mnk, "%ux%ux%u", s->m, s->n, s->k);
    printf("    %-12s %-9s %s x %s + %s -> %s, %s%s", source_name(s->source), mnk, a, b, c, r, scope_name(s->scope),
           s->saturating ? ", saturating" : "");
    if (s->workgroup_invocations) printf(", %u invocations", s->workgroup_invocations);
    printf("%s\n", fp8 ? "   <- FP8" : "");
}

static void print_matrix_summary(const fp8_device_info *d)
{
    static const fp8_matrix_source sources[] = {FP8_MATRIX_KHR_COOPMAT, FP8_MATRIX_NV_COOPMAT, FP8_MATRIX_NV_COOPMAT2,
                                                FP8_MATRIX_NV_COOPVEC, FP8_MATRIX_INTEL_DPAS};
    int any = 0;
    printf("  configurations: ");
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        unsigned n = 0, n8 = 0;
        for (uint32_t j = 0; j < d->caps.matrix_shape_count && j < FP8_MAX_MATRIX_SHAPES; j++) {
            const fp8_matrix_shape *s = &d->caps.matrix_shapes[j];
            if (s->source != sources[i]) continue;
            n++;
            if (is_fp8(s->a_type) || is_fp8(s->b_type) || is_fp8(s->input_interpretation)) n8++;
        }
        if (!n) continue;
        printf("%s%s %u (FP8: %u)", any ? ", " : "", source_name(sources[i]), n, n8);
        any = 1;
    }
    printf("%s\n", any ? "" : "none reported");
}

static void print_quirks(uint32_t quirks)
{
    printf("  quirks:        ");
    if (!quirks) {
        printf("none\n");
        return;
    }
    int first = 1;
    for (unsigned b = 0; b < 32; b++) {
        if (!(quirks & (1u << b))) continue;
        const char *n = fp8_quirk_name(b);
        printf("%s%s", first ? "" : ", ", n ? n : "unknown");
        first = 0;
    }
    printf("\n");
}

static void print_text_device(const fp8_device_info *d, const fp8_device_verdict *v)
{
    const fp8_device_caps *c = &d->caps;
    char m0[32], m1[32], m2[32], m3[32];
    printf("\n[%u] %s: %s\n", d->index, fp8_backend_name(d->backend), d->name);
    printf("  %s, %s%s%s\n", type_text(d->type), d->vendor, v->arch[0] ? ", architecture " : "", v->arch);
    printf("  native FP8:    %s%s - %s\n", native_name(v->native_fp8),
           v->native_fp8 == FP8_NATIVE_NONE ? "" : v->native_fp8_used ? " (used)" : " (supported, not used by this build)",
           v->native_reason);
    printf("  GEMV path:     %s - %s\n", fp8_path_name(v->gemv_path), v->gemv_reason);
    printf("  GEMM path:     %s - %s\n", fp8_path_name(v->gemm_path), v->gemm_reason);
    printf("  matrix units:  supported %s, expected fast on the GEMM path %s\n", yn(v->matrix_supported),
           yn(v->expected_fast));
    print_quirks(v->quirks);
    print_matrix_summary(d);
    format_bytes(d->memory_bytes, m0, sizeof m0);
    format_bytes(d->max_allocation_bytes, m1, sizeof m1);
    format_bytes(d->max_buffer_range, m2, sizeof m2);
    format_bytes(d->shared_memory_bytes, m3, sizeof m3);
    printf("  memory:        %s; largest allocation %s; buffer range %s; shared %s\n", m0, m1, m2, m3);
    if (c->subgroups)
        printf("  subgroups:     %u (%u..%u), arithmetic %s, size control %s\n", c->subgroup_size, c->subgroup_min,
               c->subgroup_max, yn(c->subgroup_arithmetic), yn(c->subgroup_size_control));
    else if (c->subgroup_max)
        printf("  subgroups:     none in kernels (hardware width %u)\n", c->subgroup_max);
    else
        printf("  subgroups:     none\n");
    printf("  arithmetic:    fp16 %s", yn(c->fp16));
    if (d->backend != FP8_BACKEND_CPU && c->fp16) printf(" (subnormals %s)", c->fp16_denormals ? "kept" : "may flush");
    printf(", bf16 %s, int8 %s, fp64 %s\n", yn(c->bf16), yn(c->int8), yn(c->fp64));
    printf("  int dot:       %s (4x8 packed signed accelerated %s, mixed %s); storage 8-bit %s, 16-bit %s\n",
           yn(c->int_dot), yn(c->int_dot_accelerated), yn(c->int_dot_mixed_accelerated), yn(c->storage8),
           yn(c->storage16));

    printf("  details:\n");
    printf("    driver       %s %s", d->driver_name, d->driver_version);
    if (d->driver_id) printf(" (driver id %u, conformance %s)", d->driver_id, d->conformance_version);
    printf("\n    api          %s%s%s; %u extensions\n", d->api_version, d->language_version[0] ? "; " : "",
           d->language_version, d->extension_count);
    printf("    ids          vendor %#x, device %#x; %u compute units; workgroup up to %u\n", d->vendor_id,
           d->device_id, d->compute_units, d->max_workgroup_size);
    if (d->backend == FP8_BACKEND_VULKAN) {
        printf("    VK_EXT_shader_float8       %s", c->ext_shader_float8 ? "present" : "absent");
        if (c->ext_shader_float8)
            printf(" (shaderFloat8 %s, shaderFloat8CooperativeMatrix %s)", yn(c->shader_float8),
                   yn(c->shader_float8_cooperative_matrix));
        printf("\n    VK_KHR_cooperative_matrix  %s\n", yn(c->khr_cooperative_matrix));
        printf("    VK_NV_cooperative_matrix   %s\n", yn(c->nv_cooperative_matrix));
        printf("    VK_NV_cooperative_matrix2  %s", yn(c->nv_cooperative_matrix2));
        if (c->nv_cooperative_matrix2)
            printf(" (workgroup scope %s up to %u invocations, flexible dimensions %s up to %u, reductions %s, "
                   "conversions %s, per-element %s, tensor addressing %s, block loads %s, reserved shared %u B)",
                   yn(c->nv_coopmat2_workgroup_scope), c->nv_coopmat2_workgroup_max_invocations,
                   yn(c->nv_coopmat2_flexible_dimensions), c->nv_coopmat2_flexible_max_dimension,
                   yn(c->nv_coopmat2_reductions), yn(c->nv_coopmat2_conversions),
                   yn(c->nv_coopmat2_per_element_operations), yn(c->nv_coopmat2_tensor_addressing),
                   yn(c->nv_coopmat2_block_loads), c->nv_coopmat2_reserved_shared_memory);
        printf("\n    VK_NV_cooperative_vector   %s", yn(c->nv_cooperative_vector));
        if (c->nv_cooperative_vector)
            printf(" (max components %u, training %s)", c->nv_coopvec_max_components, yn(c->nv_coopvec_training));
        printf("\n    bf16 dot %s, bf16 coopmat %s", yn(c->bf16_dot), yn(c->bf16_cooperative_matrix));
        if (c->amd_wavefronts_per_simd) printf(", AMD wavefronts per SIMD %u", c->amd_wavefronts_per_simd);
        printf("\n");
    } else if (d->backend == FP8_BACKEND_OPENCL) {
        printf("    half         cl_khr_fp16 %s; a half kernel %s\n", c->cl_fp16_advertised ? "listed" : "not listed",
               c->cl_fp16_compiles ? "built and computed correctly" : "did not build or was not tried");
        printf("    subgroups    cl_khr_subgroups %s, cl_intel_subgroups %s\n", yn(c->cl_subgroups_khr),
               yn(c->cl_subgroups_intel));
        printf("    int dot      cl_khr_integer_dot_product %s, cl_arm_integer_dot_product %s\n", yn(c->cl_khr_int_dot),
               yn(c->cl_arm_int8_dot));
        printf("    Intel DPAS   %s\n", yn(c->cl_intel_dpas));
        if (c->nv_compute_major)
            printf("    NVIDIA       compute capability %u.%u; inline PTX %s; PTX FP8 cvt %s\n", c->nv_compute_major,
                   c->nv_compute_minor, c->cl_inline_ptx ? "accepted" : "rejected",
                   c->cl_ptx_fp8_convert ? "verified" : "not verified");
    }
    if (c->matrix_shape_count) {
        printf("    matrix configurations (%u%s):\n", c->matrix_shape_count,
               c->matrix_shapes_dropped ? ", more dropped" : "");
        for (uint32_t i = 0; i < c->matrix_shape_count && i < FP8_MAX_MATRIX_SHAPES; i++) print_shape_line(&c->matrix_shapes[i]);
    }
    if (v->gemm_shape.source)
        printf("    GEMM built on %s %ux%ux%u\n", source_name(v->gemm_shape.source), v->gemm_shape.m, v->gemm_shape.n,
               v->gemm_shape.k);
}

static void print_build_text(uint32_t f)
{
    printf("libfp8 %s (probe compiled against %d.%d.%d)\n", fp8_version_string(), FP8_VERSION_MAJOR, FP8_VERSION_MINOR,
           FP8_VERSION_PATCH);
    printf("build: vulkan %s, opencl %s, clblast %s\n", yn(f & FP8_BUILD_VULKAN), yn(f & FP8_BUILD_OPENCL),
           yn(f & FP8_BUILD_CLBLAST));
    printf("shader variants: nv_coopmat %s, khr_coopmat %s, float8 %s, int_dot %s\n", yn(f & FP8_BUILD_SHADER_NV_COOPMAT),
           yn(f & FP8_BUILD_SHADER_KHR_COOPMAT), yn(f & FP8_BUILD_SHADER_FLOAT8), yn(f & FP8_BUILD_SHADER_INT_DOT));
}

static const char *state_text(fp8_backend_state s)
{
    switch (s) {
    case FP8_BACKEND_STATE_NOT_BUILT: return "not built";
    case FP8_BACKEND_STATE_DISABLED: return "disabled";
    case FP8_BACKEND_STATE_NO_DRIVER: return "no driver";
    case FP8_BACKEND_STATE_NO_DEVICE: return "no device";
    case FP8_BACKEND_STATE_FAILED: return "failed";
    case FP8_BACKEND_STATE_READY: return "ready";
    }
    return "unknown";
}

static const fp8_backend all_backends[] = {FP8_BACKEND_VULKAN, FP8_BACKEND_OPENCL, FP8_BACKEND_CPU};

static void print_backends_text(const fp8_context *ctx)
{
    printf("backends:\n");
    for (size_t i = 0; i < sizeof all_backends / sizeof all_backends[0]; i++) {
        fp8_backend_state st = FP8_BACKEND_STATE_FAILED;
        char why[FP8_REASON_MAX] = "";
        fp8_context_backend_status(ctx, all_backends[i], &st, why, sizeof why);
        printf("  %-7s %-10s %s\n", fp8_backend_name(all_backends[i]), state_text(st), why);
        /* The line people look for when nothing shows up. */
        if (st == FP8_BACKEND_STATE_NO_DRIVER)
            printf("  -> no %s driver found on this machine: %s devices are unavailable\n",
                   all_backends[i] == FP8_BACKEND_VULKAN ? "Vulkan" : "OpenCL",
                   all_backends[i] == FP8_BACKEND_VULKAN ? "Vulkan" : "OpenCL");
    }
}

/* ---- JSON ------------------------------------------------------------------------------------- */

static void json_str(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        const unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch == '\n') printf("\\n");
        else if (ch == '\t') printf("\\t");
        else if (ch < 0x20 || ch == 0x7f) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void json_key(int *first, const char *key)
{
    printf("%s\"%s\": ", *first ? "" : ", ", key);
    *first = 0;
}
static void jb(int *first, const char *key, int v) { json_key(first, key), printf("%s", v ? "true" : "false"); }
static void ju(int *first, const char *key, unsigned long long v) { json_key(first, key), printf("%llu", v); }
static void js(int *first, const char *key, const char *v) { json_key(first, key), json_str(v); }

static void json_dtype(int *first, const char *key, fp8_dtype t)
{
    json_key(first, key);
    if (t == FP8_DTYPE_INVALID) printf("null");
    else json_str(fp8_dtype_name(t));
}

static void json_shape(const fp8_matrix_shape *s)
{
    int f = 1;
    printf("{");
    js(&f, "source", source_name(s->source));
    ju(&f, "m", s->m), ju(&f, "n", s->n), ju(&f, "k", s->k);
    json_dtype(&f, "a", s->a_type), json_dtype(&f, "b", s->b_type), json_dtype(&f, "c", s->c_type);
    json_dtype(&f, "result", s->result_type), json_dtype(&f, "input_interpretation", s->input_interpretation);
    js(&f, "scope", scope_name(s->scope));
    jb(&f, "saturating", s->saturating), jb(&f, "transpose", s->transpose);
    ju(&f, "workgroup_invocations", s->workgroup_invocations);
    json_key(&f, "native_types");
    printf("[%d, %d, %d, %d, %d]", s->native_types[0], s->native_types[1], s->native_types[2], s->native_types[3],
           s->native_types[4]);
    printf("}");
}

static void print_json_device(const fp8_device_info *d, const fp8_device_verdict *v)
{
    const fp8_device_caps *c = &d->caps;
    int f = 1, g;
    printf("    {");
    ju(&f, "index", d->index);
    js(&f, "backend", fp8_backend_name(d->backend));
    js(&f, "name", d->name), js(&f, "vendor", d->vendor);
    ju(&f, "vendor_id", d->vendor_id), ju(&f, "device_id", d->device_id);
    js(&f, "type", type_name(d->type));
    json_key(&f, "driver");
    g = 1, printf("{"), js(&g, "name", d->driver_name), js(&g, "version", d->driver_version), ju(&g, "id", d->driver_id),
    js(&g, "conformance", d->conformance_version), printf("}");
    js(&f, "api_version", d->api_version), js(&f, "language_version", d->language_version);
    ju(&f, "extension_count", d->extension_count);
    json_key(&f, "memory");
    g = 1, printf("{"), ju(&g, "device_local_bytes", d->memory_bytes), ju(&g, "max_allocation_bytes", d->max_allocation_bytes),
    ju(&g, "max_buffer_range_bytes", d->max_buffer_range), ju(&g, "shared_memory_bytes", d->shared_memory_bytes), printf("}");
    ju(&f, "compute_units", d->compute_units), ju(&f, "max_workgroup_size", d->max_workgroup_size);
    json_key(&f, "subgroups");
    g = 1, printf("{"), jb(&g, "supported", c->subgroups), jb(&g, "arithmetic", c->subgroup_arithmetic),
    jb(&g, "size_control", c->subgroup_size_control), ju(&g, "default", c->subgroup_size), ju(&g, "min", c->subgroup_min),
    ju(&g, "max", c->subgroup_max), printf("}");
    json_key(&f, "arithmetic");
    g = 1, printf("{"), jb(&g, "fp16", c->fp16), jb(&g, "fp16_denormals", c->fp16_denormals), jb(&g, "bf16", c->bf16),
    jb(&g, "bf16_dot", c->bf16_dot), jb(&g, "int8", c->int8), jb(&g, "fp64", c->fp64), printf("}");
    json_key(&f, "storage");
    g = 1, printf("{"), jb(&g, "int8", c->storage8), jb(&g, "int16", c->storage16), printf("}");
    json_key(&f, "int_dot");
    g = 1, printf("{"), jb(&g, "supported", c->int_dot), jb(&g, "packed_4x8_signed_accelerated", c->int_dot_accelerated),
    jb(&g, "packed_4x8_mixed_accelerated", c->int_dot_mixed_accelerated), printf("}");
    json_key(&f, "vulkan");
    g = 1, printf("{");
    jb(&g, "khr_cooperative_matrix", c->khr_cooperative_matrix), jb(&g, "nv_cooperative_matrix", c->nv_cooperative_matrix);
    jb(&g, "ext_shader_float8", c->ext_shader_float8), jb(&g, "shader_float8", c->shader_float8);
    jb(&g, "shader_float8_cooperative_matrix", c->shader_float8_cooperative_matrix);
    jb(&g, "bf16_cooperative_matrix", c->bf16_cooperative_matrix);
    json_key(&g, "nv_cooperative_matrix2");
    {
        int h = 1;
        printf("{");
        jb(&h, "supported", c->nv_cooperative_matrix2), jb(&h, "workgroup_scope", c->nv_coopmat2_workgroup_scope);
        jb(&h, "flexible_dimensions", c->nv_coopmat2_flexible_dimensions), jb(&h, "reductions", c->nv_coopmat2_reductions);
        jb(&h, "conversions", c->nv_coopmat2_conversions);
        jb(&h, "per_element_operations", c->nv_coopmat2_per_element_operations);
        jb(&h, "tensor_addressing", c->nv_coopmat2_tensor_addressing), jb(&h, "block_loads", c->nv_coopmat2_block_loads);
        ju(&h, "workgroup_max_invocations", c->nv_coopmat2_workgroup_max_invocations);
        ju(&h, "flexible_max_dimension", c->nv_coopmat2_flexible_max_dimension);
        ju(&h, "reserved_shared_memory", c->nv_coopmat2_reserved_shared_memory);
        printf("}");
    }
    json_key(&g, "nv_cooperative_vector");
    {
        int h = 1;
        printf("{");
        jb(&h, "supported", c->nv_cooperative_vector), jb(&h, "training", c->nv_coopvec_training);
        ju(&h, "max_components", c->nv_coopvec_max_components);
        printf("}");
    }
    ju(&g, "amd_wavefronts_per_simd", c->amd_wavefronts_per_simd);
    printf("}");
    json_key(&f, "opencl");
    g = 1, printf("{");
    jb(&g, "fp16_advertised", c->cl_fp16_advertised), jb(&g, "fp16_compiles", c->cl_fp16_compiles);
    jb(&g, "subgroups_khr", c->cl_subgroups_khr), jb(&g, "subgroups_intel", c->cl_subgroups_intel);
    jb(&g, "khr_integer_dot_product", c->cl_khr_int_dot), jb(&g, "arm_integer_dot_product_int8", c->cl_arm_int8_dot);
    jb(&g, "intel_dpas", c->cl_intel_dpas), jb(&g, "inline_ptx", c->cl_inline_ptx);
    jb(&g, "ptx_fp8_convert", c->cl_ptx_fp8_convert);
    json_key(&g, "nv_compute_capability");
    if (c->nv_compute_major) printf("\"%u.%u\"", c->nv_compute_major, c->nv_compute_minor);
    else printf("null");
    printf("}");
    json_key(&f, "matrix_shapes");
    printf("[");
    for (uint32_t i = 0; i < c->matrix_shape_count && i < FP8_MAX_MATRIX_SHAPES; i++) {
        printf("%s\n      ", i ? "," : "");
        json_shape(&c->matrix_shapes[i]);
    }
    printf("%s]", c->matrix_shape_count ? "\n    " : "");
    ju(&f, "matrix_shapes_dropped", c->matrix_shapes_dropped);
    json_key(&f, "verdict");
    g = 1, printf("{");
    js(&g, "arch", v->arch);
    js(&g, "native_fp8", native_name(v->native_fp8)), jb(&g, "native_fp8_used", v->native_fp8_used);
    js(&g, "native_reason", v->native_reason);
    jb(&g, "matrix_supported", v->matrix_supported), jb(&g, "expected_fast", v->expected_fast);
    json_key(&g, "gemv");
    {
        int h = 1;
        printf("{"), js(&h, "path", fp8_path_name(v->gemv_path)), js(&h, "reason", v->gemv_reason), printf("}");
    }
    json_key(&g, "gemm");
    {
        int h = 1;
        printf("{"), js(&h, "path", fp8_path_name(v->gemm_path)), js(&h, "reason", v->gemm_reason);
        json_key(&h, "shape");
        if (v->gemm_shape.source) json_shape(&v->gemm_shape);
        else printf("null");
        printf("}");
    }
    json_key(&g, "quirks");
    printf("[");
    int qf = 1;
    for (unsigned b = 0; b < 32; b++) {
        if (!(v->quirks & (1u << b))) continue;
        const char *n = fp8_quirk_name(b);
        printf("%s{\"bit\": %u, \"name\": ", qf ? "" : ", ", b);
        json_str(n ? n : "unknown");
        printf("}");
        qf = 0;
    }
    printf("]}");
    printf("}");
}

static void print_json_header(const fp8_context *ctx, uint32_t f)
{
    int g;
    printf("{\n  \"schema\": %d,\n", SCHEMA_VERSION);
    printf("  \"library\": {\"version\": ");
    json_str(fp8_version_string());
    printf(", \"version_number\": %u},\n", fp8_version_number());
    printf("  \"build\": {\"feature_bits\": %u, \"vulkan\": %s, \"opencl\": %s, \"clblast\": %s, \"shaders\": {", f,
           (f & FP8_BUILD_VULKAN) ? "true" : "false", (f & FP8_BUILD_OPENCL) ? "true" : "false",
           (f & FP8_BUILD_CLBLAST) ? "true" : "false");
    g = 1;
    jb(&g, "nv_coopmat", f & FP8_BUILD_SHADER_NV_COOPMAT), jb(&g, "khr_coopmat", f & FP8_BUILD_SHADER_KHR_COOPMAT);
    jb(&g, "float8", f & FP8_BUILD_SHADER_FLOAT8), jb(&g, "int_dot", f & FP8_BUILD_SHADER_INT_DOT);
    printf("}},\n  \"backends\": [");
    for (size_t i = 0; i < sizeof all_backends / sizeof all_backends[0]; i++) {
        fp8_backend_state st = FP8_BACKEND_STATE_FAILED;
        char why[FP8_REASON_MAX] = "";
        fp8_context_backend_status(ctx, all_backends[i], &st, why, sizeof why);
        g = 1;
        printf("%s\n    {", i ? "," : "");
        js(&g, "name", fp8_backend_name(all_backends[i])), js(&g, "state", fp8_backend_state_name(st));
        js(&g, "reason", why);
        printf("}");
    }
    printf("\n  ],\n  \"devices\": [");
}

/* ---- C fixture -------------------------------------------------------------------------------- */

static const char *dtype_enum(fp8_dtype t)
{
    static const char *const names[] = {"FP8_DTYPE_INVALID", "FP8_E4M3FN", "FP8_E5M2", "FP8_E4M3FNUZ", "FP8_E5M2FNUZ",
                                        "FP8_E2M1", "FP8_E8M0", "FP8_F16", "FP8_BF16", "FP8_F32",
                                        "FP8_I8", "FP8_U8", "FP8_I32", "FP8_U32"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "FP8_DTYPE_INVALID";
}

static const char *source_enum(fp8_matrix_source s)
{
    switch (s) {
    case FP8_MATRIX_KHR_COOPMAT: return "FP8_MATRIX_KHR_COOPMAT";
    case FP8_MATRIX_NV_COOPMAT: return "FP8_MATRIX_NV_COOPMAT";
    case FP8_MATRIX_NV_COOPMAT2: return "FP8_MATRIX_NV_COOPMAT2";
    case FP8_MATRIX_NV_COOPVEC: return "FP8_MATRIX_NV_COOPVEC";
    case FP8_MATRIX_INTEL_DPAS: return "FP8_MATRIX_INTEL_DPAS";
    }
    return "0";
}

static void c_str(const char *key, const char *v)
{
    printf("    .%s = ", key);
    json_str(v); /* the JSON escapes are valid C escapes */
    printf(",\n");
}

static void print_fixture(const fp8_device_info *d, const char *name)
{
    static const char *const backend_enum[] = {"0", "FP8_BACKEND_CPU", "FP8_BACKEND_VULKAN", "FP8_BACKEND_OPENCL"};
    static const char *const type_enum[] = {"FP8_DEVICE_OTHER", "FP8_DEVICE_INTEGRATED_GPU", "FP8_DEVICE_DISCRETE_GPU",
                                            "FP8_DEVICE_VIRTUAL_GPU", "FP8_DEVICE_CPU"};
    const fp8_device_caps *c = &d->caps;
    printf("/* %s: captured by `fp8probe --c-fixture %s --device %u` (libfp8 %s). */\n", d->name, name, d->index,
           fp8_version_string());
    printf("#include \"fixtures.h\"\n\nconst fp8_device_info %s = {\n", name);
    printf("    .backend = %s,\n", (unsigned)d->backend < 4 ? backend_enum[d->backend] : "0");
    c_str("name", d->name);
    printf("    .vendor_id = %#x,\n    .device_id = %#x,\n", d->vendor_id, d->device_id);
    c_str("vendor", d->vendor);
    printf("    .type = %s,\n", (unsigned)d->type < 5 ? type_enum[d->type] : "FP8_DEVICE_OTHER");
    c_str("driver_name", d->driver_name);
    c_str("driver_version", d->driver_version);
    c_str("api_version", d->api_version);
    c_str("language_version", d->language_version);
    printf("    .memory_bytes = %lluull,\n    .max_allocation_bytes = %lluull,\n    .max_buffer_range = %lluull,\n",
           (unsigned long long)d->memory_bytes, (unsigned long long)d->max_allocation_bytes,
           (unsigned long long)d->max_buffer_range);
    printf("    .compute_units = %u,\n    .shared_memory_bytes = %u,\n    .max_workgroup_size = %u,\n", d->compute_units,
           d->shared_memory_bytes, d->max_workgroup_size);
    printf("    .driver_id = %u,\n", d->driver_id);
    c_str("conformance_version", d->conformance_version);
    printf("    .extension_count = %u,\n", d->extension_count);
    printf("    .caps = {\n");
#define F(field) printf("        ." #field " = %u,\n", (unsigned)c->field)
    F(fp16); F(bf16); F(int8); F(fp64); F(storage8); F(storage16); F(int_dot); F(int_dot_accelerated);
    F(subgroups); F(subgroup_arithmetic); F(subgroup_size_control); F(subgroup_min); F(subgroup_max);
    F(khr_cooperative_matrix); F(nv_cooperative_matrix); F(nv_cooperative_matrix2); F(nv_cooperative_vector);
    F(ext_shader_float8); F(shader_float8); F(shader_float8_cooperative_matrix);
    F(cl_fp16_advertised); F(cl_fp16_compiles); F(cl_intel_dpas); F(cl_arm_int8_dot); F(cl_khr_int_dot); F(cl_inline_ptx);
    F(nv_compute_major); F(nv_compute_minor);
    F(fp16_denormals); F(int_dot_mixed_accelerated); F(bf16_dot); F(bf16_cooperative_matrix); F(subgroup_size);
    F(nv_coopmat2_workgroup_scope); F(nv_coopmat2_flexible_dimensions); F(nv_coopmat2_reductions);
    F(nv_coopmat2_conversions); F(nv_coopmat2_per_element_operations); F(nv_coopmat2_tensor_addressing);
    F(nv_coopmat2_block_loads); F(nv_coopmat2_workgroup_max_invocations); F(nv_coopmat2_flexible_max_dimension);
    F(nv_coopmat2_reserved_shared_memory); F(nv_coopvec_training); F(nv_coopvec_max_components);
    F(cl_subgroups_khr); F(cl_subgroups_intel); F(cl_ptx_fp8_convert); F(amd_wavefronts_per_simd);
    F(matrix_shapes_dropped);
#undef F
    printf("        .matrix_shape_count = %u,\n", c->matrix_shape_count);
    if (!c->matrix_shape_count) {
        printf("    },\n};\n");
        return;
    }
    printf("        .matrix_shapes = {\n");
    for (uint32_t i = 0; i < c->matrix_shape_count && i < FP8_MAX_MATRIX_SHAPES; i++) {
        const fp8_matrix_shape *s = &c->matrix_shapes[i];
        printf("            {%u, %u, %u, %s, %s, %s, %s, %s, %u, %u, %s, %u, %u, {%d, %d, %d, %d, %d}},\n", s->m, s->n,
               s->k, dtype_enum(s->a_type), dtype_enum(s->b_type), dtype_enum(s->c_type), dtype_enum(s->result_type),
               source_enum(s->source), s->scope, s->saturating, dtype_enum(s->input_interpretation), s->transpose,
               s->workgroup_invocations, s->native_types[0], s->native_types[1], s->native_types[2],
               s->native_types[3], s->native_types[4]);
    }
    printf("        },\n    },\n};\n");
}

/* ---- main ------------------------------------------------------------------------------------- */

static void on_log(void *user, fp8_log_level level, const char *message)
{
    (void)user;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    fprintf(stderr, "libfp8 %s: %s\n", (unsigned)level < 4 ? names[level] : "?", message);
}

static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->device = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o->mode = OUT_JSON;
        } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
            o->verbose = 1;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--device") && i + 1 < argc) {
            char *end;
            errno = 0;
            long n = strtol(argv[++i], &end, 10);
            if (errno || *end || n < 0 || n > 1000000) {
                fprintf(stderr, "fp8probe: --device needs a device index, not '%s'\n", argv[i]);
                return 1;
            }
            o->device = (int)n;
        } else if (!strcmp(a, "--backend") && i + 1 < argc) {
            const char *b = argv[++i];
            if (!strcmp(b, "vulkan")) o->backend = FP8_BACKEND_VULKAN;
            else if (!strcmp(b, "opencl")) o->backend = FP8_BACKEND_OPENCL;
            else if (!strcmp(b, "cpu")) o->backend = FP8_BACKEND_CPU;
            else {
                fprintf(stderr, "fp8probe: unknown backend '%s' (vulkan, opencl or cpu)\n", b);
                return 1;
            }
        } else if (!strcmp(a, "--c-fixture") && i + 1 < argc) {
            o->mode = OUT_FIXTURE;
            o->fixture_name = argv[++i];
            for (const char *p = o->fixture_name; *p; p++)
                if (!(isalnum((unsigned char)*p) || *p == '_') || isdigit((unsigned char)o->fixture_name[0])) {
                    fprintf(stderr, "fp8probe: '%s' is not a C identifier\n", o->fixture_name);
                    return 1;
                }
        } else {
            fprintf(stderr, "fp8probe: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 1;
        }
    }
    if (o->mode == OUT_FIXTURE && o->device < 0) {
        fprintf(stderr, "fp8probe: --c-fixture needs --device N\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;

    fp8_context_options copts = {0};
    if (o.verbose) copts.log = on_log, copts.log_level = FP8_LOG_DEBUG;
    fp8_context *ctx = NULL;
    fp8_status st = fp8_context_create(&copts, &ctx);
    if (st != FP8_OK) {
        fprintf(stderr, "fp8probe: fp8_context_create failed: %s (%s)\n", fp8_status_string(st), fp8_status_name(st));
        return 2;
    }
    const uint32_t count = fp8_context_device_count(ctx);
    if (o.device >= 0 && (uint32_t)o.device >= count) {
        fprintf(stderr, "fp8probe: no device %d (this machine has %u: 0..%u)\n", o.device, count, count ? count - 1 : 0);
        fp8_context_destroy(ctx);
        return 1;
    }
    const uint32_t features = fp8_build_features();
    if (o.mode == OUT_JSON) print_json_header(ctx, features);
    else if (o.mode == OUT_TEXT) print_build_text(features), print_backends_text(ctx);

    int printed = 0, cpu_ok = 0;
    for (uint32_t i = 0; i < count; i++) {
        fp8_device_info info;
        fp8_device_verdict verdict;
        if (fp8_context_device_info(ctx, i, &info) != FP8_OK || fp8_context_device_verdict(ctx, i, &verdict) != FP8_OK) {
            fprintf(stderr, "fp8probe: device %u vanished from the context\n", i);
            rc = 2;
            continue;
        }
        if (info.backend == FP8_BACKEND_CPU) cpu_ok = 1;
        if (o.device >= 0 && (uint32_t)o.device != i) continue;
        if (o.backend && info.backend != o.backend) continue;
        if (o.mode == OUT_JSON) printf("%s\n", printed ? "," : ""), print_json_device(&info, &verdict);
        else if (o.mode == OUT_FIXTURE) print_fixture(&info, o.fixture_name);
        else print_text_device(&info, &verdict);
        printed++;
    }
    if (o.mode == OUT_JSON) printf("%s]\n}\n", printed ? "\n  " : "");
    else if (o.mode == OUT_TEXT && !printed) printf("\nno device matches the selection\n");
    fp8_context_destroy(ctx);
    if (!cpu_ok) {
        fprintf(stderr, "fp8probe: the CPU device is missing: this is a bug in libfp8\n");
        return 2;
    }
    return rc;
}
