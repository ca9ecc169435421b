/* OpenCL backend internals shared by its files: platform/device lists, the open device, entry points. */
#ifndef FP8_CL_INTERNAL_H
#define FP8_CL_INTERNAL_H

#include "../backend/backend.h"

/* clCreateCommandQueue is the only way to make a queue on an OpenCL 1.2 platform. */
#ifndef CL_USE_DEPRECATED_OPENCL_1_2_APIS
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#endif
#include <CL/cl.h>

#include "../../cl/params.h"

/* One per context: every OpenCL device of every platform, in enumeration order. */
typedef struct fp8i_cl_state {
    uint32_t device_count;
    cl_platform_id platform[FP8I_MAX_DEVICES];
    cl_device_id device[FP8I_MAX_DEVICES];
} fp8i_cl_state;

static inline fp8i_cl_state *fp8i_cl_state_of(const fp8_context *ctx)
{
    return (fp8i_cl_state *)ctx->backend_state[FP8_BACKEND_OPENCL];
}

/* cl_platform.c: list platforms and devices, probe each. */
fp8_status fp8i_cl_enumerate(fp8_context *ctx);
void fp8i_cl_shutdown(fp8_context *ctx);

/* cl_probe.c: fill the capability record of one device from real queries. */
void fp8i_cl_probe_device(const fp8_context *ctx, cl_platform_id platform, cl_device_id device, fp8_device_info *info);
/* Whether the device lists extension `name` (a whole word of CL_DEVICE_EXTENSIONS). */
bool fp8i_cl_has_extension(const fp8_context *ctx, cl_device_id device, const char *name);

/* Map an OpenCL error to a status (and log it with what failed). */
fp8_status fp8i_cl_status(const fp8_context *ctx, cl_int err, const char *what);

/* ---- The open device (cl_runtime.c) ---------------------------------------------------------------- */

/* The embedded programs. Each is built per device and per set of defines, on first use. */
typedef enum fp8i_cl_prog {
    FP8I_CL_PROG_GEMV = 0, /* gemv.cl: small-M kernels, specialised on the weight and activation dtypes */
    FP8I_CL_PROG_GEMM = 1, /* gemm.cl: local-memory tiles, specialised on dtypes and tile sizes */
    FP8I_CL_PROG_UTIL = 2, /* util.cl: dequantize to scratch, epilogue, benchmark kernels */
    FP8I_CL_PROG_GEMV_MMA = 3, /* gemv_mma.cl: the GEMV on NVIDIA tensor cores (inline PTX, sm_89+) */
    FP8I_CL_PROG_COUNT_
} fp8i_cl_prog;

/* Program variants (one per set of -D options) and kernels a device keeps; past them a build fails with
 * FP8_ERR_INTERNAL. test_cl_gemm builds about a hundred GEMV variants in one process. */
#define FP8I_CL_MAX_PROGRAMS 256
#define FP8I_CL_MAX_KERNELS 512
#define FP8I_CL_KEY_MAX 320

typedef struct fp8i_cl_program_entry {
    char key[FP8I_CL_KEY_MAX];  /* program id and its build options */
    cl_program program;
} fp8i_cl_program_entry;

typedef struct fp8i_cl_kernel_entry {
    cl_program program;
    char name[40];
    cl_kernel kernel;
} fp8i_cl_kernel_entry;

/* Tile shape of the fused GEMM kernel for one device (gemm.cl's BM/BN/BK/TM/TN). */
typedef struct fp8i_cl_tiles {
    uint32_t bm, bn, bk, tm, tn;
} fp8i_cl_tiles;

/* Shape of the GEMV kernel (gemv.cl's MT/NR/U), its work-group size in warps of 32, and the warps that share
 * each group of rows along K (gemv.cl's KS). In an override (fp8i_cl_device.gemv_shape, FP8_CL_GEMV) a field
 * left 0 keeps the default. */
typedef struct fp8i_cl_gemv_shape {
    uint32_t tokens, rows, loads, warps, splits;
} fp8i_cl_gemv_shape;

/* Shape of the tensor-core GEMV (gemv_mma.cl's RT/U/KS/SEGRUN): row tiles of 16 per warp, segments in flight,
 * warps per row group along K, and how they share the segments (1: every KS-th, 2: contiguous runs). In an
 * override (fp8i_cl_device.gemv_mma, FP8_CL_GEMV_MMA) a field left 0 keeps the default; `off` keeps every call
 * on gemv.cl. */
typedef struct fp8i_cl_gemv_mma_shape {
    uint32_t off, tiles, loads, splits, order;
} fp8i_cl_gemv_mma_shape;

/* One -D option of a kernel build: " -Dname=value", left out where value is FP8I_CL_OMIT. */
typedef struct fp8i_cl_define {
    const char *name;
    uint32_t value;
} fp8i_cl_define;
#define FP8I_CL_OMIT 0xffffffffu
#define FP8I_CL_MAX_DEFINES 16

/* A kernel found before from its -D option values (fp8i_cl_kernel_defined), with its work-group limit: a call
 * that hits it formats no option string and asks the driver nothing. */
typedef struct fp8i_cl_memo {
    fp8i_cl_prog prog;
    const char *name;
    uint32_t count;
    fp8i_cl_define defines[FP8I_CL_MAX_DEFINES];
    cl_kernel kernel;
    size_t max_wg;
} fp8i_cl_memo;
#define FP8I_CL_MEMO_SIZE 32

/* One measured GEMM path choice, cached on disk. */
typedef struct fp8i_cl_tune_entry {
    uint32_t m_bucket, n, k;
    uint32_t w_dtype, x_dtype;
    fp8_path path;
    double ns_tiled, ns_clblast;
} fp8i_cl_tune_entry;

#define FP8I_CL_MAX_TUNE 64

typedef struct fp8i_cl_device {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    bool borrowed;              /* imported context/queue/device: never released by us */
    bool profiling;             /* the queue records timestamps */
    bool denorms;               /* float denormals kept (CL_FP_DENORM): the fast exact decodes are valid */
    bool ptx;                   /* NVIDIA inline PTX runs here: warp shuffles (FP8K_PTX) */
    bool ptx_fp8;               /* and its FP8 conversions gave the right bits (FP8K_PTX_FP8, sm_89+) */
    char std_option[16];        /* "-cl-std=CL3.0" or "-cl-std=CL1.2" */
    char decode_options[64];    /* -D options prepended to every program's build: FP8K_DENORMS, FP8K_PTX and
                                 * FP8K_PTX_FP8 (the sm_89+ FP8 conversions gave the right bits) */
    uint64_t max_alloc;
    uint32_t max_wg;
    uint32_t local_mem;
    fp8i_cl_tiles tiles;

    uint32_t program_count, kernel_count;
    fp8i_cl_program_entry programs[FP8I_CL_MAX_PROGRAMS];
    fp8i_cl_kernel_entry kernels[FP8I_CL_MAX_KERNELS];
    uint32_t memo_count, memo_next; /* entries filled; the one replaced next when all are */
    fp8i_cl_memo memo[FP8I_CL_MEMO_SIZE];

    /* Timer: the event of the first command enqueued while a region is timed, and of the marker closing it. */
    bool timing;
    cl_event ev_first, ev_last, ev_new;

    /* Bounded scratch for the CLBlast path (dequantized bands), grown on demand. */
    cl_mem scratch;
    size_t scratch_size;

    /* Measured GEMM path choices (CLBlast vs fused tiles), loaded from and saved to the cache dir. */
    bool tune_loaded;
    uint32_t tune_count;
    fp8i_cl_tune_entry tune[FP8I_CL_MAX_TUNE];

    /* Tuning hook for benchmarks: the GEMV's shape (zero fields: the defaults of cl_gemm.c). */
    fp8i_cl_gemv_shape gemv_shape;
    fp8i_cl_gemv_mma_shape gemv_mma;

    /* Test hook: extra build options appended to every program build (to provoke a failure). */
    char test_extra_options[64];

    /* MoE programs and the error word (cl_moe.c); NULL until the first MoE call. */
    struct fp8i_cl_moe *moe;
} fp8i_cl_device;

static inline fp8i_cl_device *fp8i_cl_dev(const fp8_device *dev) { return (fp8i_cl_device *)dev->impl; }
static inline cl_mem fp8i_cl_mem(const fp8_buffer *buf) { return (cl_mem)buf->impl; }

fp8_status fp8i_cl_device_open(fp8_device *dev);
void fp8i_cl_device_close(fp8_device *dev);
fp8_status fp8i_cl_synchronize(fp8_device *dev);
fp8_status fp8i_cl_buffer_create(fp8_buffer *buf);
void fp8i_cl_buffer_free(fp8_buffer *buf);
fp8_status fp8i_cl_buffer_write(fp8_buffer *buf, size_t offset, const void *src, size_t size);
fp8_status fp8i_cl_buffer_read(const fp8_buffer *buf, size_t offset, void *dst, size_t size);
fp8_status fp8i_cl_buffer_copy(fp8_buffer *dst, size_t dst_offset, const fp8_buffer *src, size_t src_offset,
                               size_t size);
fp8_status fp8i_cl_timer_start(fp8_device *dev);
fp8_status fp8i_cl_timer_stop(fp8_device *dev, double *elapsed_ns);

/* Fill the device state from handles (opened or imported) and create what is missing. */
fp8_status fp8i_cl_device_init(fp8_device *dev, cl_platform_id platform, cl_device_id device, cl_context context,
                               cl_command_queue queue);

/* The event pointer to pass to the next enqueue: only the first command of a timed region gets one (its start
 * opens the region; a marker closes it). An event on every command doubled the NVIDIA driver's enqueue time,
 * which then starved the GPU of kernels shorter than about 15 us and made them look slower. Call
 * fp8i_cl_ev_commit after a successful enqueue that used it. */
static inline cl_event *fp8i_cl_ev(fp8i_cl_device *d) { return d->timing && !d->ev_first ? &d->ev_new : NULL; }
void fp8i_cl_ev_commit(fp8i_cl_device *d);

/* Enqueue an NDRange kernel; global sizes must already be multiples of the local sizes. */
fp8_status fp8i_cl_launch(fp8_device *dev, cl_kernel kernel, cl_uint dims, const size_t *global, const size_t *local);

/* Allocate a device buffer of the backend's own (scratch); FP8_ERR_TOO_LARGE past the allocation limit. */
fp8_status fp8i_cl_alloc(fp8_device *dev, size_t size, cl_mem *out);

/* ---- Programs (cl_program.c) --------------------------------------------------------------------- */

/* Kernel `name` of program `prog` built with `defines` (space-separated -D options; may be empty). Built
 * once per device, from the disk cache when a binary for the same source, options and driver is there. */
fp8_status fp8i_cl_kernel(fp8_device *dev, fp8i_cl_prog prog, const char *defines, const char *name,
                          cl_kernel *out);
/* The same for defines given as values (count at most FP8I_CL_MAX_DEFINES; names are string constants, compared
 * by address), with the kernel's work-group limit (fp8i_cl_kernel_max_wg). The launch path of every GEMM call:
 * after the first build it finds the kernel by comparing values, where formatting the options and searching the
 * programs by their option strings took about half of a tiny GEMV call's host instructions on PoCL. */
fp8_status fp8i_cl_kernel_defined(fp8_device *dev, fp8i_cl_prog prog, const char *name, const fp8i_cl_define *defines,
                                  uint32_t count, cl_kernel *out, size_t *max_wg);
/* The largest work-group `kernel` can run with on dev: the device's limit, lowered where the compiled kernel needs
 * more registers or local memory per work-item (NVIDIA refuses a larger launch with CL_OUT_OF_RESOURCES). */
size_t fp8i_cl_kernel_max_wg(const fp8_device *dev, cl_kernel kernel);
/* Build a program from sources with options, through the disk cache. Exposed for tests. */
fp8_status fp8i_cl_build(fp8_device *dev, const char *const *sources, size_t count, const char *options,
                         cl_program *out);
/* Release every program and kernel of the device. */
void fp8i_cl_programs_release(fp8i_cl_device *d);

/* ---- GEMM (cl_gemm.c, cl_clblast.c) ---------------------------------------------------------------- */

fp8_status fp8i_cl_gemm(fp8_device *dev, const fp8i_gemm_args *args);
bool fp8i_cl_supports_path(const fp8_device *dev, fp8_path path, const fp8i_gemm_args *args);
fp8_path fp8i_cl_refine_path(const fp8_device *dev, const fp8i_gemm_args *args, fp8_path chosen);

/* The kernels' view of a scale tensor (mode left at ROWCONST; callers choose it). Returns whether every partial
 * block dimension is a power of two, so that block indices are shifts (SPOW2). */
bool fp8i_cl_fill_scale(const fp8i_scales *s, fp8k_scale *out);

/* The internal GEMM entry: as fp8i_cl_gemm but also takes F32 weights (benchmark baselines). */
fp8_status fp8i_cl_gemm_fused(fp8_device *dev, const fp8i_gemm_args *args, bool gemv);

#ifdef FP8_HAVE_CLBLAST
bool fp8i_cl_clblast_supports(const fp8_device *dev, const fp8i_gemm_args *args);
fp8_status fp8i_cl_clblast_gemm(fp8_device *dev, const fp8i_gemm_args *args);
/* C[M,N] = A[M,K] * B[N,K]^T, all f32 packed rows (CLBlast SGEMM), for the benchmark slot. */
fp8_status fp8i_cl_clblast_sgemm(fp8_device *dev, uint32_t m, uint32_t n, uint32_t k, cl_mem a, cl_mem b, cl_mem c);
#endif

/* ---- MoE (cl_moe.c): the backend's moe_* slots (argument structs in lib/backend/moe.h) ------------------ */

fp8_status fp8i_cl_moe_route(fp8_device *dev, const struct fp8i_moe_route_args *args);
fp8_status fp8i_cl_moe_group(fp8_device *dev, const struct fp8i_moe_group_args *args);
fp8_status fp8i_cl_moe_quantize_rows(fp8_device *dev, const struct fp8i_moe_quant_args *args);
fp8_status fp8i_cl_moe_grouped_gemm(fp8_device *dev, const struct fp8i_moe_gemm_args *args);
fp8_status fp8i_cl_moe_combine(fp8_device *dev, const struct fp8i_moe_combine_args *args);
uint32_t fp8i_cl_moe_row_align(const fp8_device *dev, uint32_t m, uint32_t top_k, uint32_t experts);
/* The status the MoE kernels recorded in the device's error word since the last call (FP8_OK when none, or
 * when no MoE kernel ever ran), cleared. Called by synchronize after clFinish. */
fp8_status fp8i_cl_moe_take_error(fp8_device *dev);
/* Release the MoE programs and the error word (device close). */
void fp8i_cl_moe_release(fp8_device *dev);

/* Benchmark reference kernels (cl_bench.c). */
fp8_status fp8i_cl_bench_run(fp8_device *dev, const fp8_bench_desc *desc, double *flop);
/* C[M,N] = A[M,K] * B[N,K]^T (f32) with the fused GEMV (M <= 16) or tiles reading fp32 weights: the baseline
 * an FP8 kernel of the same design is compared with. */
fp8_status fp8i_cl_sgemm_fused(fp8_device *dev, const fp8_bench_desc *desc);

#endif
