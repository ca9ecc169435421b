/* libfp8 public API: contexts, devices, buffers, number formats, quantization, GEMM and MoE. */
#ifndef FP8_H
#define FP8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && !defined(FP8_STATIC)
#  ifdef FP8_BUILDING
#    define FP8_API __declspec(dllexport)
#  else
#    define FP8_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__)
#  define FP8_API __attribute__((visibility("default")))
#else
#  define FP8_API
#endif

/* ------------------------------------------------------------------------------------------------
 * Version. The macros give the version compiled against; fp8_version_number() the one linked.
 * Before 1.0 a minor version may change descriptor structs (0.2 added fp8_moe_weights' buffer list):
 * rebuild against the new header; the soname carries only the major version.
 * ---------------------------------------------------------------------------------------------- */
#define FP8_VERSION_MAJOR 0
#define FP8_VERSION_MINOR 2
#define FP8_VERSION_PATCH 0
#define FP8_VERSION_NUMBER (FP8_VERSION_MAJOR * 10000 + FP8_VERSION_MINOR * 100 + FP8_VERSION_PATCH)

/** Version of the linked library as MAJOR*10000 + MINOR*100 + PATCH. */
FP8_API unsigned fp8_version_number(void);
/** Version of the linked library as "MAJOR.MINOR.PATCH"; a static string. */
FP8_API const char *fp8_version_string(void);

/* ------------------------------------------------------------------------------------------------
 * Status codes: one table. 0 is success, every error is negative. Released numbers never change.
 * ---------------------------------------------------------------------------------------------- */
#define FP8_STATUS_LIST(X)                                                                          \
    X(FP8_OK, 0, "success")                                                                         \
    X(FP8_ERR_INVALID_ARGUMENT, -1, "invalid argument")                                             \
    X(FP8_ERR_NULL_POINTER, -2, "a required pointer is NULL")                                       \
    X(FP8_ERR_UNSUPPORTED_DTYPE, -3, "data type not valid or not supported here")                   \
    X(FP8_ERR_SHAPE, -4, "invalid or mismatched shape")                                             \
    X(FP8_ERR_STRIDE, -5, "row stride smaller than the row or misaligned")                          \
    X(FP8_ERR_SCALE_LAYOUT, -6, "scale layout invalid or does not match the tensor")                \
    X(FP8_ERR_SIZE_OVERFLOW, -7, "a size computation overflows")                                    \
    X(FP8_ERR_BUFFER_TOO_SMALL, -8, "a buffer is smaller than the operation needs")                 \
    X(FP8_ERR_OUT_OF_HOST_MEMORY, -9, "out of host memory")                                         \
    X(FP8_ERR_OUT_OF_DEVICE_MEMORY, -10, "out of device memory")                                    \
    X(FP8_ERR_NO_DEVICE, -11, "no such device")                                                     \
    X(FP8_ERR_BACKEND_UNAVAILABLE, -12, "backend not compiled in, disabled or without a driver")    \
    X(FP8_ERR_UNSUPPORTED, -13, "operation or path not supported on this device")                   \
    X(FP8_ERR_BACKEND, -14, "a backend API call failed (details in the log)")                       \
    X(FP8_ERR_KERNEL_BUILD, -15, "kernel or pipeline build failed (details in the log)")            \
    X(FP8_ERR_EXPERT_ID, -16, "expert id out of range")                                             \
    X(FP8_ERR_NOT_FINITE, -17, "input contains NaN or infinity")                                    \
    X(FP8_ERR_WRONG_DEVICE, -18, "buffer belongs to another device")                                \
    X(FP8_ERR_DEVICE_LOST, -19, "device lost")                                                      \
    X(FP8_ERR_TOO_LARGE, -20, "larger than the device can address in one buffer")                   \
    X(FP8_ERR_INTERNAL, -21, "internal error (a bug in libfp8)")

typedef enum fp8_status {
#define FP8_STATUS_ENUM_(name, value, text) name = value,
    FP8_STATUS_LIST(FP8_STATUS_ENUM_)
#undef FP8_STATUS_ENUM_
} fp8_status;

/** Short English text for any status value; never NULL (unknown codes give "unknown status"). */
FP8_API const char *fp8_status_string(fp8_status status);
/** Symbolic name of a status ("FP8_ERR_SHAPE"); never NULL. */
FP8_API const char *fp8_status_name(fp8_status status);
/** Non-zero when status is an error. */
static inline int fp8_is_error(fp8_status status) { return status < 0; }

/* ------------------------------------------------------------------------------------------------
 * Number formats.
 * ---------------------------------------------------------------------------------------------- */
typedef enum fp8_dtype {
    FP8_DTYPE_INVALID = 0,
    FP8_E4M3FN = 1,   /* OCP FP8: bias 7, max 448, no Inf, NaN = S.1111.111 */
    FP8_E5M2 = 2,     /* OCP FP8: bias 15, max 57344, IEEE-like Inf/NaN */
    FP8_E4M3FNUZ = 3, /* bias 8, max 240, no Inf, no -0, NaN = 0x80 only (AMD MI300) */
    FP8_E5M2FNUZ = 4, /* bias 16, max 57344, no Inf, no -0, NaN = 0x80 only */
    FP8_E2M1 = 5,     /* FP4: +-{0,.5,1,1.5,2,3,4,6}; two per byte, element 2i in the LOW nibble */
    FP8_E8M0 = 6,     /* scale type: 2^(code-127), 0xFF = NaN, no zero */
    FP8_F16 = 7,
    FP8_BF16 = 8,
    FP8_F32 = 9,
    /* Integer component types: appear in capability reports (matrix units) only. */
    FP8_I8 = 10,
    FP8_U8 = 11,
    FP8_I32 = 12,
    FP8_U32 = 13,
    FP8_DTYPE_COUNT_
} fp8_dtype;

/** Name of a dtype ("e4m3fn", "f16", ...); never NULL ("invalid" for unknown values). */
FP8_API const char *fp8_dtype_name(fp8_dtype dtype);
/** Storage bits of one element (4 for E2M1); 0 for an invalid dtype. */
FP8_API unsigned fp8_dtype_bits(fp8_dtype dtype);
/** Bytes needed for `count` packed elements, rounded up to whole bytes. Returns FP8_ERR_SIZE_OVERFLOW
 *  or FP8_ERR_UNSUPPORTED_DTYPE instead of wrapping. */
FP8_API fp8_status fp8_dtype_storage_size(fp8_dtype dtype, size_t count, size_t *bytes);
/** Largest finite value of a floating dtype (448 for E4M3FN); 0 for an invalid dtype. */
FP8_API double fp8_dtype_max(fp8_dtype dtype);

/** What encoding does with finite values beyond the format's largest finite value. */
typedef enum fp8_overflow {
    FP8_OVERFLOW_SATURATE = 0, /* clamp to +-max (NaN stays NaN, +-Inf becomes +-max); quantization uses this */
    FP8_OVERFLOW_CAST = 1      /* plain cast: Inf where the format has it, otherwise NaN */
} fp8_overflow;

/** Encode one float to `dtype` (any floating dtype, E8M0 included), round to nearest even, the
 *  overflow rule of `mode`. Returns the code (low 4 bits for E2M1, 16 bits for F16/BF16; F32 gives
 *  the float's bits). An invalid dtype gives 0. */
FP8_API uint32_t fp8_encode_value(fp8_dtype dtype, float value, fp8_overflow mode);
/** Decode one code of `dtype` to float (exact for every format here). An invalid dtype gives NaN. */
FP8_API float fp8_decode_value(fp8_dtype dtype, uint32_t code);

/** Encode `count` floats into packed `dtype` storage at dst, which holds dst_bytes bytes (at least
 *  fp8_dtype_storage_size(dtype, count)). An odd E2M1 count leaves the last high nibble zero. */
FP8_API fp8_status fp8_encode_array(fp8_dtype dtype, const float *src, size_t count, void *dst, size_t dst_bytes,
                                    fp8_overflow mode);
/** Decode `count` packed elements of `dtype` from src (src_bytes long) into floats. */
FP8_API fp8_status fp8_decode_array(fp8_dtype dtype, const void *src, size_t src_bytes, size_t count, float *dst);

/* ------------------------------------------------------------------------------------------------
 * Scale layouts. A quantized matrix of R rows and C columns carries a scale tensor of
 * ceil(R/bh) x ceil(C/bw) elements, row-major and packed, where (bh, bw) follows from the kind:
 *   NONE   - no scale tensor (every scale is 1)            TENSOR - bh = R, bw = C (one scale)
 *   ROW    - bh = 1, bw = C (per output channel of a weight, per token of an activation)
 *   COL    - bh = R, bw = 1                                 BLOCK  - bh = block_rows, bw = block_cols
 * Edge blocks may be partial. Common schemes:
 *   DeepSeek-V3 weight: BLOCK 128x128 F32;  activation: BLOCK 1x128 F32
 *   MXFP4 (OCP MX):     BLOCK 1x32 E8M0 over E2M1 elements
 *   NVFP4:              BLOCK 1x16 E4M3FN plus a second-level f32 tensor_scale
 * Dequantized value = decode(q) * decode(scale) * tensor_scale.
 * ---------------------------------------------------------------------------------------------- */
typedef enum fp8_scale_kind {
    FP8_SCALE_NONE = 0,
    FP8_SCALE_TENSOR = 1,
    FP8_SCALE_ROW = 2,
    FP8_SCALE_COL = 3,
    FP8_SCALE_BLOCK = 4
} fp8_scale_kind;

typedef struct fp8_scale_layout {
    fp8_scale_kind kind;
    fp8_dtype dtype;      /* F32, E8M0 or E4M3FN; FP8_DTYPE_INVALID (0) means F32 */
    uint32_t block_rows;  /* BLOCK only, >= 1 */
    uint32_t block_cols;  /* BLOCK only, >= 1 */
} fp8_scale_layout;

/** Number of scale elements for a rows x cols matrix (0 for NONE). Errors: FP8_ERR_SCALE_LAYOUT
 *  for a bad kind, dtype or zero block, FP8_ERR_SHAPE for a zero dimension. */
FP8_API fp8_status fp8_scale_count(const fp8_scale_layout *layout, uint32_t rows, uint32_t cols, size_t *count);

/** Host-side quantization of a matrix to a quantized dtype plus a separate scale tensor. The caller
 *  owns every buffer. Sizes are capacities in bytes; strides are in elements (0 = packed). */
typedef struct fp8_quantize_desc {
    uint32_t rows, cols;
    fp8_dtype src_dtype;        /* F32, F16 or BF16 */
    const void *src;
    size_t src_row_stride;      /* elements; 0 = cols */
    fp8_dtype dst_dtype;        /* E4M3FN, E5M2, E4M3FNUZ, E5M2FNUZ, E2M1 */
    void *dst;
    size_t dst_bytes;
    size_t dst_row_stride;      /* elements; 0 = cols (must be even for E2M1) */
    fp8_scale_layout scale_layout;
    void *scale;                /* scale tensor out; NULL only for FP8_SCALE_NONE */
    size_t scale_bytes;
    float *tensor_scale;        /* out: second-level scale; required for E4M3FN scales (NVFP4), else may be NULL */
} fp8_quantize_desc;

/** Quantize. Scale rule per scale dtype, with amax the block's largest magnitude:
 *   F32:    s = amax / max(dst_dtype) (1 when amax is 0); q = encode_sat(x / s)
 *   E8M0:   OCP MX: e = floor(log2(amax)) - emax(dst_dtype), clamped to [-127,127]; q = encode_sat(x / 2^e)
 *           emax = floor(log2(max(dst))): 2 for E2M1, 8 for E4M3FN, 7 for E4M3FNUZ, 15 for E5M2(FNUZ).
 *           An all-zero block gets e = -127 (code 0), as the OCP reference code does.
 *   E4M3FN: NVFP4: t = amax_tensor / (448 * max(dst)) (1 when amax_tensor is 0); s = e4m3_sat(amax / max(dst) / t);
 *           q = encode_sat(x / (s*t)). A block whose s rounds to 0 quantizes to zeros.
 * Divisions are in f32. The source is checked whole before anything is written: FP8_ERR_NOT_FINITE if it
 * holds NaN or Inf (nothing sensible to scale). Row padding (and an E2M1 row's unused high nibble) is
 * left untouched; *tensor_scale, when given, receives t (1 unless the scales are E4M3FN). */
FP8_API fp8_status fp8_quantize(const fp8_quantize_desc *desc);

/** The inverse: quantized matrix + scales to f32. Same field meanings, with src/dst roles swapped:
 *  src_dtype is the quantized dtype, dst_dtype must be F32, scale is read (const in effect).
 *  *tensor_scale is read when given (required for E4M3FN scales) and multiplies every element as in
 *  fp8_scales: 0 means 1, NaN or Inf gives FP8_ERR_NOT_FINITE. Each value is rounded once to f32. */
FP8_API fp8_status fp8_dequantize(const fp8_quantize_desc *desc);

/* ------------------------------------------------------------------------------------------------
 * Context: logging, allocation, backends, device list.
 * ---------------------------------------------------------------------------------------------- */
typedef struct fp8_context fp8_context;
typedef struct fp8_device fp8_device;
typedef struct fp8_buffer fp8_buffer;

typedef enum fp8_log_level { FP8_LOG_DEBUG = 0, FP8_LOG_INFO = 1, FP8_LOG_WARN = 2, FP8_LOG_ERROR = 3 } fp8_log_level;
/** Receives every message of the library; the library never prints. `message` lives for the call. */
typedef void (*fp8_log_fn)(void *user, fp8_log_level level, const char *message);

/** Optional allocator for host memory. `alloc` returns memory aligned to at least `align` or NULL. */
typedef struct fp8_allocator {
    void *(*alloc)(void *user, size_t size, size_t align);
    void (*free)(void *user, void *ptr);
    void *user;
} fp8_allocator;

typedef enum fp8_backend { FP8_BACKEND_CPU = 1, FP8_BACKEND_VULKAN = 2, FP8_BACKEND_OPENCL = 3 } fp8_backend;
/** "cpu", "vulkan", "opencl"; never NULL. */
FP8_API const char *fp8_backend_name(fp8_backend backend);

/** Options for fp8_context_create; zero-initialise, then set what you need. */
typedef struct fp8_context_options {
    fp8_log_fn log;                 /* NULL: messages are dropped */
    void *log_user;
    fp8_log_level log_level;        /* lowest level passed to `log` (0 = DEBUG) */
    const fp8_allocator *allocator; /* NULL: malloc/free */
    uint32_t disable_backends;      /* bit (1 << fp8_backend) per backend to skip, besides FP8_DISABLE_* env vars */
    const char *cache_dir;          /* pipeline/program caches; NULL: $FP8_CACHE_DIR, else $XDG_CACHE_HOME/libfp8, else none */
} fp8_context_options;

/** Create a context and enumerate the devices of every available backend. Backends whose driver
 *  is missing are skipped (a log message says why); the CPU device is always present.
 *  Environment: FP8_DISABLE_VULKAN=1, FP8_DISABLE_OPENCL=1. Free with fp8_context_destroy. */
FP8_API fp8_status fp8_context_create(const fp8_context_options *options, fp8_context **out);
/** Destroy a context; all its devices must be closed first. NULL is accepted. */
FP8_API void fp8_context_destroy(fp8_context *ctx);

/** What became of a backend when the context enumerated devices. */
typedef enum fp8_backend_state {
    FP8_BACKEND_STATE_NOT_BUILT = 0, /* not compiled into this library */
    FP8_BACKEND_STATE_DISABLED = 1,  /* switched off: FP8_DISABLE_<NAME>=1 or options.disable_backends */
    FP8_BACKEND_STATE_NO_DRIVER = 2, /* compiled in, but no driver: no Vulkan ICD, no OpenCL platform */
    FP8_BACKEND_STATE_NO_DEVICE = 3, /* a driver answered but listed no device */
    FP8_BACKEND_STATE_FAILED = 4,    /* enumeration failed (the log has the details) */
    FP8_BACKEND_STATE_READY = 5      /* at least one device of this backend is in the context's list */
} fp8_backend_state;
/** "not_built", "disabled", "no_driver", "no_device", "failed", "ready"; never NULL ("unknown"). */
FP8_API const char *fp8_backend_state_name(fp8_backend_state state);
/** The state of `backend` in this context, and a one-line reason in English (for example
 *  "vkCreateInstance: VK_ERROR_INCOMPATIBLE_DRIVER (no Vulkan driver installed)"). `state` may be NULL;
 *  `why` may be NULL, else it receives a NUL-terminated, possibly truncated string of at most why_size
 *  bytes (FP8_REASON_MAX is always enough). Errors: FP8_ERR_NULL_POINTER for a NULL context,
 *  FP8_ERR_INVALID_ARGUMENT for an unknown backend value. */
FP8_API fp8_status fp8_context_backend_status(const fp8_context *ctx, fp8_backend backend, fp8_backend_state *state,
                                              char *why, size_t why_size);

/** Build-time features, a bit set of fp8_build_feature. */
typedef enum fp8_build_feature {
    FP8_BUILD_VULKAN = 1u << 0,
    FP8_BUILD_OPENCL = 1u << 1,
    FP8_BUILD_CLBLAST = 1u << 2,
    FP8_BUILD_SHADER_NV_COOPMAT = 1u << 3,  /* GL_NV_cooperative_matrix GEMM compiled */
    FP8_BUILD_SHADER_KHR_COOPMAT = 1u << 4, /* GL_KHR_cooperative_matrix GEMM compiled */
    FP8_BUILD_SHADER_FLOAT8 = 1u << 5,      /* GL_EXT_float_e4m3 shaders compiled */
    FP8_BUILD_SHADER_INT_DOT = 1u << 6,     /* GL_EXT_integer_dot_product shaders compiled */
    FP8_BUILD_SHADER_NV_COOPMAT2 = 1u << 7  /* GL_NV_cooperative_matrix2 GEMM compiled */
} fp8_build_feature;
FP8_API uint32_t fp8_build_features(void);

/* ------------------------------------------------------------------------------------------------
 * Devices: capability record and the library's verdict on how to run FP8 there.
 * ---------------------------------------------------------------------------------------------- */
typedef enum fp8_device_type {
    FP8_DEVICE_OTHER = 0, FP8_DEVICE_INTEGRATED_GPU = 1, FP8_DEVICE_DISCRETE_GPU = 2,
    FP8_DEVICE_VIRTUAL_GPU = 3, FP8_DEVICE_CPU = 4
} fp8_device_type;

/** Where a matrix-unit shape came from. */
typedef enum fp8_matrix_source {
    FP8_MATRIX_KHR_COOPMAT = 1,  /* VK_KHR_cooperative_matrix */
    FP8_MATRIX_NV_COOPMAT = 2,   /* VK_NV_cooperative_matrix */
    FP8_MATRIX_NV_COOPMAT2 = 3,  /* VK_NV_cooperative_matrix2 flexible dimensions */
    FP8_MATRIX_NV_COOPVEC = 4,   /* VK_NV_cooperative_vector (matrix-vector) */
    FP8_MATRIX_INTEL_DPAS = 5    /* cl_intel_subgroup_matrix_multiply_accumulate */
} fp8_matrix_source;

/** One matrix-unit configuration: A[MxK] * B[KxN] + C -> Result. For cooperative vectors M/N/K
 *  are 0, a_type is the input vector type, b_type the matrix interpretation, c_type the bias
 *  interpretation. For NV_COOPMAT2 flexible dimensions M/N/K are the granularities. Component types
 *  without an fp8_dtype (int16, 64-bit, packed int8) read FP8_DTYPE_INVALID; native_types keeps the
 *  API's own value for every one. */
typedef struct fp8_matrix_shape {
    uint32_t m, n, k;
    fp8_dtype a_type, b_type, c_type, result_type;
    fp8_matrix_source source;
    uint32_t scope;      /* 3 = subgroup, 2 = workgroup (Vulkan scope values); 0 if not applicable */
    uint32_t saturating; /* saturating accumulation */
    fp8_dtype input_interpretation; /* NV_COOPVEC: how the input vector is read; else FP8_DTYPE_INVALID */
    uint32_t transpose;             /* NV_COOPVEC: the matrix may be used transposed */
    uint32_t workgroup_invocations; /* NV_COOPMAT2 at workgroup scope: the workgroup size it needs; else 0 */
    /* VkComponentTypeKHR values of a, b, c, result, input_interpretation as the API reported them
     * (1000491002 = FLOAT8_E4M3, 1000491003 = FLOAT8_E5M2); -1 where the API has no such field. */
    int32_t native_types[5];
} fp8_matrix_shape;

#define FP8_MAX_MATRIX_SHAPES 256
#define FP8_NAME_MAX 128

/** Everything the library learned about a device. Filled by real queries. */
typedef struct fp8_device_caps {
    /* arithmetic in shaders/kernels */
    uint8_t fp16, bf16, int8, fp64;
    /* storage widths in buffers */
    uint8_t storage8, storage16;
    /* integer dot product: present / hardware-accelerated (4x8-bit packed, signed) */
    uint8_t int_dot, int_dot_accelerated;
    /* subgroups */
    uint8_t subgroups, subgroup_arithmetic, subgroup_size_control;
    uint32_t subgroup_min, subgroup_max;
    /* Vulkan matrix extensions and FP8 */
    uint8_t khr_cooperative_matrix, nv_cooperative_matrix, nv_cooperative_matrix2, nv_cooperative_vector;
    uint8_t ext_shader_float8, shader_float8, shader_float8_cooperative_matrix;
    /* OpenCL specifics */
    uint8_t cl_fp16_advertised; /* cl_khr_fp16 in the extension string */
    uint8_t cl_fp16_compiles;   /* a `half` kernel built and ran correctly (probed) */
    uint8_t cl_intel_dpas, cl_arm_int8_dot, cl_khr_int_dot;
    uint8_t cl_inline_ptx;      /* NVIDIA: inline PTX accepted (FP8 cvt on compute capability >= 8.9) */
    uint32_t nv_compute_major, nv_compute_minor; /* cl_nv_device_attribute_query; 0 if unknown */
    uint32_t matrix_shape_count;
    fp8_matrix_shape matrix_shapes[FP8_MAX_MATRIX_SHAPES];

    /* Further detail; zero when unknown or not applicable. */
    uint8_t fp16_denormals;            /* fp16 subnormals preserved (Vulkan: shaderDenormPreserveFloat16; OpenCL: measured) */
    uint8_t int_dot_mixed_accelerated; /* 4x8-bit packed mixed-signedness dot product accelerated (RDNA3+) */
    uint8_t bf16_dot, bf16_cooperative_matrix; /* VK_KHR_shader_bfloat16 shaderBFloat16DotProduct / ...CooperativeMatrix */
    uint32_t subgroup_size;            /* the default subgroup size (Vulkan subgroupSize) */
    /* VK_NV_cooperative_matrix2 features and properties */
    uint8_t nv_coopmat2_workgroup_scope, nv_coopmat2_flexible_dimensions, nv_coopmat2_reductions,
        nv_coopmat2_conversions, nv_coopmat2_per_element_operations, nv_coopmat2_tensor_addressing,
        nv_coopmat2_block_loads;
    uint32_t nv_coopmat2_workgroup_max_invocations; /* cooperativeMatrixWorkgroupScopeMaxWorkgroupSize */
    uint32_t nv_coopmat2_flexible_max_dimension;    /* cooperativeMatrixFlexibleDimensionsMaxDimension */
    uint32_t nv_coopmat2_reserved_shared_memory;    /* cooperativeMatrixWorkgroupScopeReservedSharedMemory */
    /* VK_NV_cooperative_vector features and properties */
    uint8_t nv_coopvec_training;
    uint32_t nv_coopvec_max_components;             /* maxCooperativeVectorComponents */
    /* OpenCL subgroup flavours */
    uint8_t cl_subgroups_khr, cl_subgroups_intel; /* cl_khr_subgroups, cl_intel_subgroups listed */
    uint8_t cl_ptx_fp8_convert; /* NVIDIA: an inline-PTX cvt to e4m3x2 built, ran and gave the right bits */
    uint32_t amd_wavefronts_per_simd;  /* VK_AMD_shader_core_properties; 0 if unknown */
    uint32_t matrix_shapes_dropped;    /* configurations the API reported beyond FP8_MAX_MATRIX_SHAPES */
} fp8_device_caps;

typedef struct fp8_device_info {
    fp8_backend backend;
    uint32_t index;                 /* position in the context's device list */
    char name[FP8_NAME_MAX];
    uint32_t vendor_id, device_id;
    char vendor[64];
    fp8_device_type type;
    char driver_name[FP8_NAME_MAX];
    char driver_version[FP8_NAME_MAX];
    char api_version[64];           /* "Vulkan 1.4.312", "OpenCL 3.0 CUDA", ... */
    char language_version[64];      /* OpenCL C version; SPIR-V version for Vulkan */
    uint64_t memory_bytes;          /* device-local memory */
    uint64_t max_allocation_bytes;
    uint64_t max_buffer_range;      /* largest buffer one kernel binding may address (see fp8_buffer_create) */
    uint32_t compute_units;
    uint32_t shared_memory_bytes;   /* per workgroup */
    uint32_t max_workgroup_size;
    fp8_device_caps caps;
    uint32_t driver_id;             /* VkDriverId (3 = RADV, 4 = NVIDIA, 13 = llvmpipe, ...); 0 outside Vulkan */
    char conformance_version[16];   /* Vulkan conformance version "1.3.8.3"; empty when none */
    uint32_t extension_count;       /* device extensions listed by the driver */
} fp8_device_info;

/** Kernel paths. The verdict picks one GEMV and one GEMM path per device; FP8_PATH=<name> forces one. */
typedef enum fp8_path {
    FP8_PATH_AUTO = 0,
    FP8_PATH_CPU_REFERENCE = 1,
    FP8_PATH_VK_GEMV = 2,             /* emulated decode, subgroup reduction */
    FP8_PATH_VK_GEMM_TILED = 3,       /* shared-memory tiles, fp32 FMA; runs everywhere */
    FP8_PATH_VK_GEMM_NV_COOPMAT = 4,  /* decode to fp16 in shared memory, GL_NV_cooperative_matrix */
    FP8_PATH_VK_GEMM_KHR_COOPMAT = 5, /* the same with GL_KHR_cooperative_matrix */
    FP8_PATH_VK_GEMM_FLOAT8 = 6,      /* native FP8 cooperative matrices (VK_EXT_shader_float8) */
    FP8_PATH_CL_GEMV = 7,
    FP8_PATH_CL_GEMM_TILED = 8,
    FP8_PATH_CL_CLBLAST = 9,          /* dequantize tiles to scratch, CLBlast GEMM */
    FP8_PATH_VK_GEMM_NV_COOPMAT2 = 10, /* the same with workgroup-scope matrices (VK_NV_cooperative_matrix2) */
    FP8_PATH_COUNT_
} fp8_path;
/** "vk_gemv", "vk_gemm_nv_coopmat", ...; never NULL. */
FP8_API const char *fp8_path_name(fp8_path path);
/** Parse a path name; FP8_PATH_AUTO when unknown. */
FP8_API fp8_path fp8_path_from_name(const char *name);

typedef enum fp8_native_fp8 {
    FP8_NATIVE_NONE = 0,       /* FP8 is decoded in the kernel (emulated) */
    FP8_NATIVE_CONVERSION = 1, /* hardware FP8 conversion, no FP8 matrix multiply */
    FP8_NATIVE_MATRIX = 2      /* FP8 matrix units reachable from this backend */
} fp8_native_fp8;

#define FP8_REASON_MAX 256
/** The library's decision for a device; a pure function of its fp8_device_info and the build. */
typedef struct fp8_device_verdict {
    fp8_native_fp8 native_fp8;       /* what the device exposes to this backend */
    uint8_t native_fp8_used;         /* whether this build can use it */
    uint8_t expected_fast;           /* matrix units expected to beat the emulated path */
    char native_reason[FP8_REASON_MAX];
    fp8_path gemv_path;
    char gemv_reason[FP8_REASON_MAX];
    fp8_path gemm_path;
    char gemm_reason[FP8_REASON_MAX];
    uint32_t quirks;                 /* bit set of applied quirks; names via fp8_quirk_name */
    uint8_t matrix_supported;        /* the device reports matrix units this backend can reach (fp16 or FP8) */
    char arch[32];                   /* architecture inferred from the record ("amd-rdna3", "intel-xe2", "nvidia-hopper"); "" when unknown */
    fp8_matrix_shape gemm_shape;     /* the matrix-unit configuration gemm_path is built on; all zero when it uses none */
} fp8_device_verdict;
/** Name of quirk bit `bit` (0..31); NULL when no such quirk. */
FP8_API const char *fp8_quirk_name(unsigned bit);

/** Number of devices the context found (>= 1: the CPU). */
FP8_API uint32_t fp8_context_device_count(const fp8_context *ctx);
/** Copy the capability record of device `index`. */
FP8_API fp8_status fp8_context_device_info(const fp8_context *ctx, uint32_t index, fp8_device_info *info);
/** The verdict for device `index`. */
FP8_API fp8_status fp8_context_device_verdict(const fp8_context *ctx, uint32_t index, fp8_device_verdict *verdict);

/** Filter for fp8_context_find_device; zero fields match anything. */
typedef struct fp8_device_filter {
    fp8_backend backend;     /* 0: any */
    uint32_t vendor_id;      /* 0: any */
    const char *name_contains; /* case-insensitive substring; NULL: any */
    fp8_device_type type;    /* FP8_DEVICE_OTHER (0): any */
} fp8_device_filter;
/** First device matching the filter, GPUs before the CPU; FP8_ERR_NO_DEVICE when none. */
FP8_API fp8_status fp8_context_find_device(const fp8_context *ctx, const fp8_device_filter *filter, uint32_t *index);

/** Open device `index` for work (creates its queue, pipelines on demand). Close with fp8_device_close. */
FP8_API fp8_status fp8_device_open(fp8_context *ctx, uint32_t index, fp8_device **out);
/** Wait for the device's work, then release it. All its buffers must be freed first. NULL is accepted. */
FP8_API void fp8_device_close(fp8_device *dev);
/** The capability record and verdict of an open device (either pointer may be NULL). */
FP8_API fp8_status fp8_device_get_info(const fp8_device *dev, fp8_device_info *info, fp8_device_verdict *verdict);
/** Block until every operation enqueued on the device has finished. Reports a device-side failure. */
FP8_API fp8_status fp8_device_synchronize(fp8_device *dev);

/* ------------------------------------------------------------------------------------------------
 * Buffers: device memory owned by the caller through a handle.
 * ---------------------------------------------------------------------------------------------- */
/** Allocate `size` bytes of device memory. Sizes beyond the device's largest allocation give FP8_ERR_TOO_LARGE.
 *  A buffer larger than max_buffer_range (fp8_device_info) is allowed for MoE expert weights, which the
 *  grouped GEMM binds a window of whole experts at a time; any other operation that would bind it gives
 *  FP8_ERR_TOO_LARGE rather than address it only in part. */
FP8_API fp8_status fp8_buffer_create(fp8_device *dev, size_t size, fp8_buffer **out);
/** Free a buffer (waits for work that uses it). NULL is accepted. */
FP8_API void fp8_buffer_free(fp8_buffer *buf);
/** Size in bytes. */
FP8_API size_t fp8_buffer_size(const fp8_buffer *buf);
/** Copy host memory into the buffer; ordered after earlier work, returns when src may be reused. */
FP8_API fp8_status fp8_buffer_write(fp8_buffer *buf, size_t offset, const void *src, size_t size);
/** Copy buffer contents to host memory; waits for earlier work on the device. */
FP8_API fp8_status fp8_buffer_read(const fp8_buffer *buf, size_t offset, void *dst, size_t size);
/** Enqueue a device-side copy between buffers of one device. Within one buffer the two ranges must not
 *  overlap (FP8_ERR_INVALID_ARGUMENT). */
FP8_API fp8_status fp8_buffer_copy(fp8_buffer *dst, size_t dst_offset, const fp8_buffer *src, size_t src_offset,
                                   size_t size);

/* ------------------------------------------------------------------------------------------------
 * Quantized GEMM:  Y[M,N] = dequant(X)[M,K] * dequant(W)[N,K]^T (+ bias[N]),  fp32 accumulation.
 * ---------------------------------------------------------------------------------------------- */
/** A matrix in a buffer: `offset` in bytes, `row_stride` in elements (0 = packed rows). The offset of
 *  an E2M1 matrix and its stride must be whole bytes (even element counts). */
typedef struct fp8_operand {
    fp8_buffer *buffer;
    size_t offset;
    fp8_dtype dtype;
    size_t row_stride;
} fp8_operand;

/** A scale tensor in a buffer, packed row-major per fp8_scale_layout. */
typedef struct fp8_scales {
    fp8_scale_layout layout;
    fp8_buffer *buffer;   /* NULL only for FP8_SCALE_NONE */
    size_t offset;        /* bytes */
    float tensor_scale;   /* second-level scale on every element; 0 means 1 */
} fp8_scales;

/** Zero-initialise, then fill. */
typedef struct fp8_gemm_desc {
    uint32_t m, n, k;
    fp8_operand w;          /* [N,K]: E4M3FN, E5M2, E4M3FNUZ, E5M2FNUZ or E2M1 */
    fp8_scales w_scales;    /* over the N x K weight */
    fp8_operand x;          /* [M,K]: F32, F16, BF16, or an FP8 dtype (W8A8) */
    fp8_scales x_scales;    /* over the M x K activation: NONE, TENSOR, ROW (per token) or BLOCK (COL is refused);
                               NONE for float activations */
    fp8_operand bias;       /* [N] F32, F16 or BF16; buffer NULL = no bias */
    fp8_operand y;          /* [M,N]: F32, F16 or BF16 */
    fp8_path path;          /* FP8_PATH_AUTO: the device's verdict (GEMV for small M) */
} fp8_gemm_desc;

/** Enqueue the GEMM on the device and return; fp8_device_synchronize or fp8_buffer_read waits.
 *  Every field is validated first: shapes, strides, dtypes, scale layouts and buffer bounds. Offsets of
 *  16- and 32-bit operands and scales must be multiples of the element size (FP8_ERR_STRIDE). Y may not
 *  share a byte with any input, scales included (FP8_ERR_INVALID_ARGUMENT). Y is rounded once, to nearest
 *  even, from the fp32-or-better accumulation; beyond its range f16 gives Inf (no saturation). */
FP8_API fp8_status fp8_gemm(fp8_device *dev, const fp8_gemm_desc *desc);
/** The path fp8_gemm would take for this descriptor on this device, after validation. */
FP8_API fp8_status fp8_gemm_select_path(const fp8_device *dev, const fp8_gemm_desc *desc, fp8_path *path);

/* ------------------------------------------------------------------------------------------------
 * Experimental: device timing for benchmarks. Not covered by the stability promise.
 * ---------------------------------------------------------------------------------------------- */
/** Start a device-timed region (work enqueued afterwards is timed). */
FP8_API fp8_status fp8_device_timer_start(fp8_device *dev);
/** End the region, wait for it, and give its device time in nanoseconds. */
FP8_API fp8_status fp8_device_timer_stop(fp8_device *dev, double *elapsed_ns);

/** Reference kernels that benchmarks compare the library's paths against. */
typedef enum fp8_bench_kernel {
    /* fp16 x fp16 -> fp32 matrix multiply-accumulate in registers only (cooperative matrices where the
     * device has them): the practical matrix peak. Buffers unused except `c` (a small sink, 1 KiB). `m` picks
     * one of the backend's peak kernels: 0, its default (Vulkan: GL_NV_cooperative_matrix 16x16x16 per
     * subgroup, else the KHR one, else fp32 FMA chains; OpenCL: fp32 FMA chains); on Vulkan also 1,
     * GL_KHR_cooperative_matrix 16x16x16 per subgroup, and 2, GL_NV_cooperative_matrix2 128x128x32 per
     * workgroup of 256. FP8_ERR_UNSUPPORTED where the device or the build lacks that one,
     * FP8_ERR_INVALID_ARGUMENT past the last. The peak is the fastest of them. */
    FP8_BENCH_MATRIX_PEAK_F16 = 1,
    /* fp32 GEMM C[M,N] = A[M,K] * B[N,K]^T with f32 weights: CLBlast SGEMM on OpenCL where built,
     * the backend's own fp32 kernel otherwise. */
    FP8_BENCH_SGEMM_F32 = 2,
    /* Copy all of `a` into `c` (a->size bytes, a multiple of 16; c at least as large) with a kernel that
     * streams 16-byte words: the device's practical memory bandwidth. *flop receives the bytes read plus
     * written instead of operations. */
    FP8_BENCH_COPY = 3
} fp8_bench_kernel;

typedef struct fp8_bench_desc {
    fp8_bench_kernel kernel;
    uint32_t m, n, k;
    fp8_buffer *a, *b, *c;  /* f32, packed row-major */
    uint32_t repeat;        /* work items for the peak kernel (0: backend default) */
} fp8_bench_desc;

/** Enqueue a reference kernel; *flop receives the floating-point operations it performs. Time it with
 *  fp8_device_timer_start/stop. FP8_ERR_UNSUPPORTED where the backend has no such kernel. */
FP8_API fp8_status fp8_device_bench_run(fp8_device *dev, const fp8_bench_desc *desc, double *flop);

#ifdef __cplusplus
}
#endif

#include "fp8_moe.h" /* mixture of experts: routing, grouping, grouped GEMM, combine, layer */

#endif /* FP8_H */
