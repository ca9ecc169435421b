/* The one seam between the API front door (lib/ops) and the backends: a table of function pointers. */
#ifndef FP8_BACKEND_H
#define FP8_BACKEND_H

#include "../core/internal.h"

/* A scale tensor with its block shape resolved: element (r, c) of the scaled matrix uses
 * scale[(r / block_rows) * blocks_per_row + (c / block_cols)] (times tensor_scale). */
typedef struct fp8i_scales {
    fp8_dtype dtype;            /* F32, E8M0, E4M3FN; FP8_DTYPE_INVALID when there is no scale tensor */
    uint32_t block_rows, block_cols;
    uint32_t blocks_per_row;    /* ceil(cols / block_cols) */
    uint32_t block_row_count;   /* ceil(rows / block_rows) */
    fp8_buffer *buffer;         /* NULL when dtype is INVALID */
    size_t offset;              /* bytes */
    float tensor_scale;         /* 1 when the caller gave 0 */
    fp8_scale_kind kind;        /* as given, for kernels with special cases */
} fp8i_scales;

/* A matrix operand after validation: strides in elements, the whole extent checked against its buffer. */
typedef struct fp8i_matrix {
    fp8_buffer *buffer;
    size_t offset;              /* bytes */
    fp8_dtype dtype;
    size_t row_stride;          /* elements, never 0 */
} fp8i_matrix;

/* Validated GEMM arguments. Backends may trust every field. */
typedef struct fp8i_gemm_args {
    uint32_t m, n, k;
    fp8i_matrix w, x, y;
    fp8i_scales w_scales, x_scales;
    fp8i_matrix bias;           /* buffer NULL: none; row_stride unused */
    fp8_path path;              /* resolved: never AUTO */
} fp8i_gemm_args;

/* MoE slot arguments, defined in lib/backend/moe.h. */
struct fp8i_moe_route_args;
struct fp8i_moe_group_args;
struct fp8i_moe_quant_args;
struct fp8i_moe_gemm_args;
struct fp8i_moe_combine_args;

/* Every backend fills one of these. Slots marked optional may be NULL; lib/ops supplies the default
 * (or reports FP8_ERR_UNSUPPORTED). */
typedef struct fp8i_backend {
    fp8_backend id;
    const char *env_disable;    /* "FP8_DISABLE_VULKAN" */

    /* Find the backend's devices and append entries to ctx->devices (fill info; the verdict is
     * computed by the caller). May set ctx->backend_state[id]. Missing drivers are not an error:
     * log why and return FP8_OK with no device added. */
    fp8_status (*enumerate)(fp8_context *ctx);
    /* Release ctx->backend_state[id]. Optional. */
    void (*shutdown)(fp8_context *ctx);

    fp8_status (*device_open)(fp8_device *dev);   /* dev->ctx, backend, entry set; fill dev->impl */
    void (*device_close)(fp8_device *dev);
    fp8_status (*synchronize)(fp8_device *dev);

    fp8_status (*buffer_create)(fp8_buffer *buf); /* buf->dev, size set; fill buf->impl */
    void (*buffer_free)(fp8_buffer *buf);
    fp8_status (*buffer_write)(fp8_buffer *buf, size_t offset, const void *src, size_t size);
    fp8_status (*buffer_read)(const fp8_buffer *buf, size_t offset, void *dst, size_t size);
    fp8_status (*buffer_copy)(fp8_buffer *dst, size_t dst_offset, const fp8_buffer *src, size_t src_offset,
                              size_t size);

    /* Enqueue a validated GEMM on args->path, which the backend supports (see supports_path). */
    fp8_status (*gemm)(fp8_device *dev, const fp8i_gemm_args *args);
    /* Whether this device can run `path` for these arguments (dtype combinations, limits). Optional:
     * NULL means every path of the backend for every argument set. */
    bool (*supports_path)(const fp8_device *dev, fp8_path path, const fp8i_gemm_args *args);

    /* Optional: refine an automatic path choice for these arguments (for example by measurement). Called only when
     * neither the descriptor nor FP8_PATH forced a path; a result the backend does not support is ignored. */
    fp8_path (*refine_path)(const fp8_device *dev, const fp8i_gemm_args *args, fp8_path chosen);

    /* Optional: device timestamps. */
    fp8_status (*timer_start)(fp8_device *dev);
    fp8_status (*timer_stop)(fp8_device *dev, double *elapsed_ns);
    /* Optional: reference kernels for benchmarks (arguments checked by the caller: buffers of this device,
     * large enough for the shapes). */
    fp8_status (*bench_run)(fp8_device *dev, const fp8_bench_desc *desc, double *flop);

    /* Optional: MoE pieces, arguments validated by lib/ops/moe.c. A NULL slot makes the operation
     * FP8_ERR_UNSUPPORTED on this backend. Enqueue and return; data errors (bad ids, non-finite values)
     * follow include/fp8_moe.h: never read through a bad value, record it in the plan's status word and
     * the device's error word (reported by synchronize). moe_quantize_rows serves W8A8 layers. */
    fp8_status (*moe_route)(fp8_device *dev, const struct fp8i_moe_route_args *args);
    fp8_status (*moe_group)(fp8_device *dev, const struct fp8i_moe_group_args *args);
    /* Optional: moe_route then moe_group on its ids, in fewer passes. FP8_ERR_UNSUPPORTED (nothing enqueued,
     * nothing logged) where this backend does not fuse them for these arguments: the layer then calls the two. */
    fp8_status (*moe_route_group)(fp8_device *dev, const struct fp8i_moe_route_args *route,
                                  const struct fp8i_moe_group_args *group);
    fp8_status (*moe_quantize_rows)(fp8_device *dev, const struct fp8i_moe_quant_args *args);
    fp8_status (*moe_grouped_gemm)(fp8_device *dev, const struct fp8i_moe_gemm_args *args);
    fp8_status (*moe_combine)(fp8_device *dev, const struct fp8i_moe_combine_args *args);
    /* Optional: open (begin true) or close a section of MoE calls that may run in any order and overlap on the
     * device. The caller guarantees that no call in it reads or writes bytes another one writes, and that
     * the calls can record only one and the same data error. The first call is ordered after all earlier
     * work and later work after all of them; sections nest. NULL: calls run in order (an in-order queue). */
    fp8_status (*concurrent)(fp8_device *dev, bool begin);
    /* Optional: true when the grouped GEMM on plans of this row alignment reads W8A8 activations faster as
     * the bf16 values of their FP8 codes (the same products) than as the codes, so that a layer has
     * moe_quantize_rows write BF16. NULL: FP8 codes. */
    bool (*moe_act_bf16)(const fp8_device *dev, uint32_t row_align);
    /* Optional: the grouped GEMM's preferred row alignment (M tile) for m tokens; NULL means 1. */
    uint32_t (*moe_row_align)(const fp8_device *dev, uint32_t m, uint32_t top_k, uint32_t experts);
} fp8i_backend;

/* The registry: compiled-in backends in preference order (GPU backends first, CPU last). */
extern const fp8i_backend fp8i_backend_cpu;
#ifdef FP8_HAVE_VULKAN
extern const fp8i_backend fp8i_backend_vulkan;
#endif
#ifdef FP8_HAVE_OPENCL
extern const fp8i_backend fp8i_backend_opencl;
#endif

/* NULL-terminated list of compiled-in backends. */
const fp8i_backend *const *fp8i_backends(void);

/* Append a device entry for `backend` to ctx; returns NULL when the list is full. */
fp8i_device_entry *fp8i_add_device(fp8_context *ctx, const fp8i_backend *backend, uint32_t backend_index);

#endif
