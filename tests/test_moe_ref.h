/* Independent MoE reference for the tests: its own top-k (by sorting), its own dequantization, and a
 * double-precision MLP per token, plus helpers that put quantized experts into CPU buffers. */
#ifndef FP8_TEST_MOE_REF_H
#define FP8_TEST_MOE_REF_H

#include "test_util.h"

/* Open the device the MoE tests run on: $FP8_TEST_BACKEND = cpu (default), vulkan or opencl. Exits
 * with SKIP when that backend has no device or does not implement the MoE pieces. */
fp8_device *ref_open_device(fp8_context *ctx);
/* Close the device; on Vulkan, a check fails when the validation layer (FP8_VK_VALIDATION=1) reported errors. */
void ref_close_device(fp8_device *dev);
/* Whether dev is the CPU (which returns data errors from the call and checks plan contents). */
int ref_is_cpu(const fp8_device *dev);
/* Status of a data error: the call's own (CPU), else what the next synchronize reports (devices). */
fp8_status ref_data_status(fp8_device *dev, fp8_status call_status);

/* Quantized experts of one projection: E matrices of N x K in one buffer, with their scales. */
typedef struct ref_experts {
    uint32_t e, n, k;
    fp8_dtype dtype;
    fp8_scale_layout layout;
    double *deq;            /* E*N*K dequantized values, exactly decode(q) * scale * tensor_scale */
    fp8_buffer *wbuf, *sbuf;
    fp8_moe_weights w;      /* ready for a descriptor */
} ref_experts;

/* Quantize E random N x K experts (normal * amp) with `layout`; experts are placed `gap` bytes apart
 * beyond their packed size (0 = packed) to exercise explicit strides. */
fp8_status ref_experts_make(fp8_device *dev, test_rng *rng, uint32_t e, uint32_t n, uint32_t k, fp8_dtype dtype,
                            fp8_scale_layout layout, float amp, size_t gap, ref_experts *out);
void ref_experts_free(ref_experts *x);

/* A buffer holding `count` floats converted to dtype (F32/F16/BF16); NULL on failure. */
fp8_buffer *ref_upload(fp8_device *dev, fp8_dtype dtype, const float *v, size_t count);
/* Read `count` elements of dtype from a buffer into floats. */
void ref_download(const fp8_buffer *b, size_t offset, fp8_dtype dtype, size_t count, float *out);

typedef struct ref_router {
    fp8_moe_scoring scoring;
    const float *bias;      /* [E] or NULL */
    uint32_t n_group, topk_group;
    int group_top2;         /* group score: 1 sum of the top two, 0 max */
    int renormalize;
    double scale;           /* routed scaling factor (1 if 0) */
} ref_router;

/* Top-k for one token by sorting (key desc, id asc). Returns 0 when the logits are not finite. */
int ref_route(const float *logits, uint32_t e, uint32_t k, const ref_router *r, int32_t *ids, double *weights);

/* Quantize-dequantize one row of floats with fp8_quantize's rule (block_cols 0: one scale). */
void ref_qdq_row(fp8_dtype dtype, uint32_t block_cols, const double *in, uint32_t n, double *out);

/* act as in fp8_moe.h; gated: out[i] = act(g[i]) * g[i + n_out]. */
double ref_act(fp8_moe_activation act, double x);

/* y[H] += weight * expert MLP(x) for expert `ex`. gate_up is [2I or I, H], down is [H, I]. quant: the
 * activation dtype for W8A8 (x is already quantized by the caller; h gets quantized here). */
void ref_expert_mlp(const ref_experts *gate_up, const ref_experts *down, uint32_t ex, fp8_moe_activation act,
                    fp8_dtype quant, uint32_t block_cols, const double *x, double weight, double *y);

#endif
