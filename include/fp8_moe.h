/* libfp8 mixture-of-experts API: routing, grouping, grouped GEMM over FP8/FP4 experts, combine, and the
 * whole layer. Included by fp8.h; may also be included on its own. */
#ifndef FP8_MOE_H
#define FP8_MOE_H

#include "fp8.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------
 * Overview. A layer runs five pieces, each also callable on its own, all enqueued on one device with
 * no host round trip between them:
 *   fp8_moe_route         logits [M,E]  -> ids [M,k] int32, weights [M,k] f32
 *   fp8_moe_group         ids [M,k]     -> a plan: per-expert counts, offsets, token permutation
 *   fp8_moe_grouped_gemm  one call over all experts of a plan (gate+up with SwiGLU, or down)
 *   fp8_moe_combine       weighted sum of each token's k expert rows (+ shared expert) -> [M,H]
 *   fp8_moe_layer         route -> group -> gate/up+act -> down -> combine (+ shared expert)
 *
 * Terms. M tokens, E experts, k = top_k choices per token, H hidden size, I intermediate size.
 * Slot s = t*k + j is token t's j-th choice. A plan orders slots by expert into rows; each expert's
 * group of rows starts on a multiple of row_align (the grouped GEMM's M tile; 1 for decode).
 *
 * M == 0 is valid everywhere: the call returns FP8_OK, reads and writes nothing, and does not look at
 * the plan or the M-sized operands (their buffers may be NULL); the other arguments are still checked.
 * (A rank with no tokens under expert parallelism is normal, not an error.)
 *
 * Data errors. Some errors live in device memory: an expert id outside [0,E) in caller ids, a NaN or
 * Inf in router logits or in activations being quantized. The rule on every backend:
 *   - nothing is ever read or written through a bad value: a slot with a bad id is dropped from the
 *     plan (it contributes nothing), a token with non-finite logits gets ids 0..k-1 with weight 0,
 *     a row of activations with a non-finite value quantizes to zeros (scales 1);
 *   - the first such error is recorded in the plan's status word (when the call has a plan);
 *   - the CPU device returns it from the call itself (after writing those safe outputs);
 *   - a GPU device, whose call only enqueues, records it in a per-device error word that the next
 *     fp8_device_synchronize returns (and clears).
 * After a data error the outputs are unspecified but safe to pass to the next piece.
 * ---------------------------------------------------------------------------------------------- */

/** Library limits (a GPU kernel keeps a token's scores and choices on chip). Beyond: FP8_ERR_UNSUPPORTED. */
#define FP8_MOE_MAX_EXPERTS 4096
#define FP8_MOE_MAX_TOP_K 64
#define FP8_MOE_MAX_ROW_ALIGN 1024

/* ------------------------------------------------------------------------------------------------
 * Routing.
 * ---------------------------------------------------------------------------------------------- */
typedef enum fp8_moe_scoring {
    FP8_MOE_SCORE_SOFTMAX = 0, /* s_e = exp(l_e) / sum exp(l) over all E experts (Mixtral, Qwen, DeepSeek-V2) */
    FP8_MOE_SCORE_SIGMOID = 1  /* s_e = 1 / (1 + exp(-l_e)) (DeepSeek-V3) */
} fp8_moe_scoring;

/** How a group of experts is scored for group-limited routing. */
typedef enum fp8_moe_group_score {
    FP8_MOE_GROUP_SCORE_AUTO = 0,    /* TOP2_SUM for sigmoid scoring, MAX for softmax: what the models that
                                        introduced each use (DeepSeek-V3 noaux_tc; DeepSeek-V2 group_limited_greedy) */
    FP8_MOE_GROUP_SCORE_MAX = 1,     /* largest selection key in the group */
    FP8_MOE_GROUP_SCORE_TOP2_SUM = 2 /* sum of the two largest keys (of the one, for groups of one expert) */
} fp8_moe_group_score;

/** Router options. Zero-initialised: softmax, no bias, no group limit, no renormalisation, scale 1.
 *
 * Rule, per token, computed in double on the CPU (f32 is allowed on devices):
 *   1. s_e = score(l_e) over the token's E logits.
 *   2. key_e = s_e + bias_e (bias_e = 0 without a bias). The key only selects; weights use s_e.
 *   3. Group limit (n_group > 0): the E experts form n_group groups of E/n_group consecutive ids; each
 *      group gets a score from the keys of its experts (group_score); the topk_group best groups stay
 *      (ties: lower group id), the other groups' experts cannot be chosen.
 *   4. ids = the k allowed experts with the largest keys, in descending key order; ties go to the lower
 *      expert id. (Excluded experts are out of the race, not keyed 0: a negative bias cannot make a
 *      masked expert win.)
 *   5. w_j = s_{ids_j}; with renormalize, w_j /= sum_j w_j (no epsilon; a zero sum leaves zeros);
 *      then w_j *= routed_scaling_factor.
 * Mixtral's "softmax over the top-k logits" is SOFTMAX with renormalize. */
typedef struct fp8_moe_router {
    fp8_moe_scoring scoring;
    fp8_operand bias;               /* optional [E] F32 correction bias (e_score_correction_bias); buffer NULL: none */
    uint32_t n_group;               /* 0: no group limit; else divides E */
    uint32_t topk_group;            /* groups kept, 1..n_group; k <= topk_group * E / n_group */
    fp8_moe_group_score group_score;
    uint32_t renormalize;           /* non-zero: weights of a token sum to 1 before scaling */
    float routed_scaling_factor;    /* 0 means 1 */
} fp8_moe_router;

/** Zero-initialise, then fill. */
typedef struct fp8_moe_route_desc {
    uint32_t m, experts, top_k;
    fp8_operand logits;             /* [M,E] F32, F16 or BF16 */
    fp8_moe_router router;
    fp8_operand ids;                /* out [M,k] I32 */
    fp8_operand weights;            /* out [M,k] F32 */
} fp8_moe_route_desc;

/** Enqueue routing. Errors: FP8_ERR_SHAPE for k == 0, k > E, E == 0, a group count that does not divide
 *  E, topk_group outside 1..n_group, or k larger than the experts the kept groups hold;
 *  FP8_ERR_UNSUPPORTED beyond FP8_MOE_MAX_*; FP8_ERR_NOT_FINITE (data error) for a NaN or Inf logit or
 *  bias, and also, before anything runs or is written, for a NaN or Inf routed_scaling_factor; the usual
 *  operand errors. */
FP8_API fp8_status fp8_moe_route(fp8_device *dev, const fp8_moe_route_desc *desc);

/* ------------------------------------------------------------------------------------------------
 * Grouping: the plan.
 *
 * A plan is a region of 32-bit words in a buffer, written by fp8_moe_group and read by the grouped GEMM
 * and combine. Its size depends only on (m, top_k, experts, row_align): fp8_moe_plan_size. With
 * S = m*k slots, A = row_align, R = rows_capacity = roundup(S + min(E,S)*(A-1), A), T = R/A and
 * C = ceil(S/256), the words from plan.offset are:
 *   [0]      magic 0x31454F4D ("MOE1" little-endian)
 *   [1]      status: 0, or the negative fp8_status of the first data error
 *   [2..6]   m, top_k, experts, row_align, R
 *   [7]      total_rows: rows in use, padding included (= offsets[E])
 *   [8]      active_count: experts with at least one slot
 *   [9]      dropped: slots whose id was outside [0,E)
 *   [10..15] reserved, 0
 *   counts[E]       slots routed to each expert (dropped slots not counted)
 *   offsets[E+1]    first row of each expert's group; groups follow expert order, each starts on a
 *                   multiple of A and spans roundup(counts[e], A) rows; offsets[E] = total_rows
 *   active[E]       ids of the experts with counts > 0, ascending; the rest 0xFFFFFFFF
 *   row_token[R]    token each row reads (row of X); 0xFFFFFFFF for padding rows and rows >= total_rows
 *   row_slot[R]     slot each row serves; 0xFFFFFFFF likewise
 *   slot_row[S]     row serving each slot; 0xFFFFFFFF for a dropped slot
 *   tile_expert[T]  expert owning rows [t*A, (t+1)*A); 0xFFFFFFFF for tiles at or past total_rows
 *   workspace[E*C + 256]  backend-private (a device's histogram/scan scratch); the CPU leaves it alone
 * Within a group, rows follow ascending slot order, so a plan is a pure function of the ids.
 * Prefill: A = the GEMM's M tile, and tile_expert drives one launch over R/A row tiles.
 * Decode: A = 1, and active/active_count launch work only for experts that have tokens.
 * ---------------------------------------------------------------------------------------------- */
typedef struct fp8_moe_plan {
    fp8_buffer *buffer;             /* grouped GEMM only: NULL means dense, see fp8_moe_gemm_desc */
    size_t offset;                  /* bytes, a multiple of 4 */
    uint32_t m, top_k, experts;
    uint32_t row_align;             /* >= 1 */
} fp8_moe_plan;

#define FP8_MOE_PLAN_MAGIC 0x31454F4Du
#define FP8_MOE_NONE 0xFFFFFFFFu

/** Bytes of a plan and its rows capacity R (either out pointer may be NULL). m may be 0. Errors:
 *  FP8_ERR_SHAPE (k or E zero), FP8_ERR_INVALID_ARGUMENT (row_align 0 or above the limit),
 *  FP8_ERR_SIZE_OVERFLOW (R must stay below 2^32 - 1). */
FP8_API fp8_status fp8_moe_plan_size(uint32_t m, uint32_t top_k, uint32_t experts, uint32_t row_align,
                                     size_t *bytes, uint32_t *rows_capacity);

/** The row alignment the device's grouped GEMM wants for m tokens (its M tile; 1 for small m). */
FP8_API fp8_status fp8_moe_row_align(const fp8_device *dev, uint32_t m, uint32_t top_k, uint32_t experts,
                                     uint32_t *row_align);

/** Zero-initialise, then fill. */
typedef struct fp8_moe_group_desc {
    fp8_operand ids;                /* [M,k] I32 */
    fp8_moe_plan plan;              /* out; its m, top_k, experts, row_align describe ids */
} fp8_moe_group_desc;

/** Enqueue grouping (histogram, prefix sum, stable scatter). FP8_ERR_EXPERT_ID (data error) when an
 *  id is outside [0,E): that slot is dropped from the plan, the rest is grouped. */
FP8_API fp8_status fp8_moe_group(fp8_device *dev, const fp8_moe_group_desc *desc);

/* ------------------------------------------------------------------------------------------------
 * Grouped GEMM.
 * ---------------------------------------------------------------------------------------------- */
/** Epilogue on the GEMM result. Gated kinds read a weight of 2*I rows: rows [0,I) are the gate
 *  projection, rows [I,2I) the up projection (vLLM's w13 layout), and produce I columns:
 *  out_i = act(gate_i) * up_i. The others produce N columns: out = act(y). */
typedef enum fp8_moe_activation {
    FP8_MOE_ACT_NONE = 0,
    FP8_MOE_ACT_SWIGLU = 1,         /* silu(g) * u, silu(x) = x / (1 + exp(-x)) */
    FP8_MOE_ACT_GEGLU = 2,          /* gelu(g) * u, gelu(x) = x/2 * (1 + erf(x / sqrt 2)) */
    FP8_MOE_ACT_GEGLU_TANH = 3,     /* gelu_tanh(g) * u, x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) */
    FP8_MOE_ACT_SILU = 4,           /* not gated */
    FP8_MOE_ACT_GELU = 5,           /* not gated */
    FP8_MOE_ACT_GELU_TANH = 6       /* not gated */
} fp8_moe_activation;

/** The weights of E experts of one projection, each an [N,K] matrix as fp8_gemm takes it. Expert e's
 *  matrix starts at w.offset + e * expert_stride and its scales at scales.offset + e * scales_expert_stride;
 *  the row stride, dtype and scale layout are shared. Every expert's extent is checked against the buffer.
 *
 *  Experts over several buffers: one allocation is capped on some drivers (4 GiB on NVIDIA's Vulkan), below
 *  some models' projections (DeepSeek-V3's 256 experts hold 7.5 GB of gate/up). With experts_per_buffer P
 *  set, w.buffer must be NULL (else FP8_ERR_INVALID_ARGUMENT) and expert e's matrix lies in w_buffers[e / P]
 *  at w.offset + (e % P) * expert_stride; the list holds exactly ceil(E / P) buffers (w_buffer_count, else
 *  FP8_ERR_SHAPE; the last may hold fewer experts; a buffer may appear more than once). Scales, tensor
 *  scales and bias stay in one buffer each: they are small. */
typedef struct fp8_moe_weights {
    fp8_operand w;                  /* expert 0: E4M3FN, E5M2, E4M3FNUZ, E5M2FNUZ or E2M1 */
    size_t expert_stride;           /* bytes; 0: packed (N * row_stride elements); else >= one expert's bytes */
    fp8_scales scales;              /* expert 0's scales over its N x K matrix; tensor_scale applies to all */
    size_t scales_expert_stride;    /* bytes; 0: packed; else >= one expert's scale bytes */
    fp8_operand tensor_scales;      /* optional [E] F32: a second-level scale per expert (NVFP4 weight_scale_2) */
    fp8_operand bias;               /* optional [E,N] F32/F16/BF16: row e is expert e's bias; row_stride as usual */
    uint32_t experts_per_buffer;    /* 0: every expert in w.buffer; else P, see above */
    uint32_t w_buffer_count;        /* with P set: entries of w_buffers, which must be ceil(E / P) */
    fp8_buffer *const *w_buffers;   /* with P set: the buffers, read during the call only */
} fp8_moe_weights;

/** Zero-initialise, then fill.
 *  Y[r, :] = epilogue(dequant(X)[src(r), :] * dequant(W_e)^T + bias_e) for every row r of the plan in
 *  use, with e the expert owning r and src(r) = row_token[r] when x_gathered, else r. Rows of padding
 *  are written as zeros; rows at or past total_rows are not written.
 *  Dense mode (plan.buffer NULL): plan.m rows, all for expert 0 (plan.experts must be 1), src(r) = r:
 *  a plain GEMM with the epilogue, used for shared experts. */
typedef struct fp8_moe_gemm_desc {
    fp8_moe_plan plan;
    uint32_t n, k;                  /* each expert's weight is [N,K]; gated epilogues need even N */
    fp8_moe_weights weights;        /* plan.experts experts */
    fp8_operand x;                  /* F32/F16/BF16, or an 8-bit FP8 dtype with x_scales (W8A8):
                                       [M,K] when x_gathered (or dense), else [R,K] in plan row order */
    fp8_scales x_scales;            /* NONE for float x; for FP8 x: TENSOR, ROW, or BLOCK of 1 x b */
    uint32_t x_gathered;            /* non-zero: x holds tokens, row r reads x[row_token[r]] */
    fp8_moe_activation activation;
    fp8_operand y;                  /* [R, N or N/2] (dense: [M, ...]) F32, F16 or BF16 */
} fp8_moe_gemm_desc;

/** Enqueue one grouped GEMM over every active expert of the plan. Errors: FP8_ERR_SHAPE, FP8_ERR_STRIDE
 *  (an expert stride smaller than an expert), FP8_ERR_SCALE_LAYOUT, FP8_ERR_UNSUPPORTED_DTYPE,
 *  FP8_ERR_BUFFER_TOO_SMALL, FP8_ERR_INVALID_ARGUMENT (output overlapping an input; on the CPU also a
 *  plan whose header does not match the descriptor, e.g. one never grouped). */
FP8_API fp8_status fp8_moe_grouped_gemm(fp8_device *dev, const fp8_moe_gemm_desc *desc);

/* ------------------------------------------------------------------------------------------------
 * Combine.
 * ---------------------------------------------------------------------------------------------- */
/** Zero-initialise, then fill.
 *  y[t, :] = sum_{j=0..k-1} weights[t, j] * rows[slot_row[t*k + j], :]  (+ shared[t, :])
 *  summed in that order (j ascending, then shared) in double on the CPU; dropped slots add nothing.
 *  No atomics: a device assigns each output element to one thread, so results are reproducible. */
typedef struct fp8_moe_combine_desc {
    fp8_moe_plan plan;
    uint32_t hidden;
    fp8_operand rows;               /* [R, H] F32/F16/BF16 in plan row order (the down projection's output) */
    fp8_operand weights;            /* [M, k] F32 */
    fp8_operand shared;             /* optional [M, H] F32/F16/BF16 added last; buffer NULL: none */
    fp8_operand y;                  /* out [M, H] F32/F16/BF16 */
} fp8_moe_combine_desc;

FP8_API fp8_status fp8_moe_combine(fp8_device *dev, const fp8_moe_combine_desc *desc);

/* ------------------------------------------------------------------------------------------------
 * The layer.
 * ---------------------------------------------------------------------------------------------- */
/** Per-token quantization of activations (W8A8), with fp8_quantize's F32 rule: s = amax / max(dtype)
 *  (1 when amax is 0), q = saturate(x / s). Applied to the layer input and to the intermediate rows. */
typedef struct fp8_moe_act_quant {
    fp8_dtype dtype;                /* FP8_DTYPE_INVALID: activations stay float; else E4M3FN, E5M2, E4M3FNUZ, E5M2FNUZ */
    uint32_t block_cols;            /* 0: one scale per row (ROW); else 1 x block_cols blocks (DeepSeek: 128) */
} fp8_moe_act_quant;

/** Zero-initialise, then fill.
 *  y = combine(down(act(gate_up(x)))) + shared_down(act(shared_gate_up(x))), the routed part over the
 *  k experts each token chose. Routing comes from logits + router when logits.buffer is set, else from
 *  the caller's ids and weights. A shared expert is an MLP every token runs with weight 1; several
 *  shared experts are one with their intermediate sizes concatenated (same result). */
typedef struct fp8_moe_layer_desc {
    uint32_t m, experts, top_k, hidden, intermediate;
    fp8_operand x;                  /* [M,H] F32/F16/BF16 */
    fp8_operand y;                  /* out [M,H] F32/F16/BF16; must not overlap x */
    fp8_operand logits;             /* [M,E] F32/F16/BF16; buffer NULL: use ids/weights */
    fp8_moe_router router;
    fp8_operand ids;                /* [M,k] I32, when logits.buffer is NULL */
    fp8_operand weights;            /* [M,k] F32, when logits.buffer is NULL */
    fp8_moe_activation activation;  /* must not be NONE; gated kinds: gate_up is [E, 2I, H] */
    fp8_moe_weights gate_up;        /* [E, 2I, H] gated, [E, I, H] otherwise */
    fp8_moe_weights down;           /* [E, H, I] */
    uint32_t shared_intermediate;   /* 0: no shared expert */
    fp8_moe_weights shared_gate_up; /* one expert: [2Is, H] gated, [Is, H] otherwise; expert strides unused */
    fp8_moe_weights shared_down;    /* one expert: [H, Is] */
    fp8_moe_act_quant act_quant;
    fp8_dtype intermediate_dtype;   /* rows kept in scratch between the pieces: 0 = F32; F16 or BF16 halve them */
    uint32_t row_align;             /* 0: fp8_moe_row_align's choice */
    fp8_buffer *scratch;            /* fp8_moe_layer_scratch_size bytes from scratch_offset; the layer's
                                       plan is its first region (read it for per-expert load statistics) */
    size_t scratch_offset;          /* a multiple of 256 */
} fp8_moe_layer_desc;

/** Bytes of scratch fp8_moe_layer needs for this descriptor on this device (only the size fields,
 *  routing choice, activation, act_quant and row_align are read). Zero when m is 0. */
FP8_API fp8_status fp8_moe_layer_scratch_size(const fp8_device *dev, const fp8_moe_layer_desc *desc, size_t *bytes);

/** Enqueue the whole layer. Returns the pieces' errors; FP8_ERR_BUFFER_TOO_SMALL for a short scratch;
 *  FP8_ERR_INVALID_ARGUMENT when scratch overlaps an operand. */
FP8_API fp8_status fp8_moe_layer(fp8_device *dev, const fp8_moe_layer_desc *desc);

#ifdef __cplusplus
}
#endif
#endif /* FP8_MOE_H */
