/* Validated arguments of the MoE backend slots: lib/ops/moe.c fills them, backends trust every field. */
#ifndef FP8_BACKEND_MOE_H
#define FP8_BACKEND_MOE_H

#include "backend.h"

/* What each slot must do on a device (the CPU slots in lib/cpu/cpu_moe.c are the reference):
 *  moe_route      per token: scores, keys, group limit, top-k, weights exactly as fp8_moe_router says
 *                 (f32 arithmetic is fine); ties to the lower id; a token with a non-finite logit or
 *                 bias gets ids 0..k-1, weights 0, and raises FP8_ERR_NOT_FINITE.
 *  moe_group      histogram, exclusive scan, stable scatter (ascending slot order within a group) into
 *                 the plan layout of include/fp8_moe.h; ids outside [0,E) are dropped (never used as an
 *                 index) and raise FP8_ERR_EXPERT_ID in the plan status word. It writes every word of
 *                 the header, counts, offsets, active, row_token, row_slot (all R), slot_row, tile_expert;
 *                 the workspace is the backend's (E*ceil(S/256)+256 words: per-256-slot-chunk histograms).
 *  moe_quantize_rows  fp8_quantize's F32 rule per 1 x block_cols block; with a plan, only rows below
 *                 total_rows whose row_token is not NONE (padding is never read downstream).
 *  moe_grouped_gemm   one launch over the plan's rows (tile_expert for tiles, or active/offsets for
 *                 decode); a row with row_token NONE is written as zeros without reading X; rows at or
 *                 past total_rows are not written. Every index read from the plan is bounds-checked
 *                 (row_token < m, expert < E, rows < R) before use: a plan is caller memory.
 *  moe_combine    one thread per output element, sum over j ascending then the shared row, no atomics;
 *                 slot_row NONE adds nothing.
 * Data errors are kept in the plan's status word (first error wins: compare-and-swap from 0) and in a
 * per-device error word that synchronize reports and clears. */
#define FP8I_MOE_HEADER_WORDS 16u
#define FP8I_MOE_CHUNK 256u       /* slots per workspace histogram chunk (plan workspace sizing) */

/* Header word indices of a plan (include/fp8_moe.h documents the layout). */
enum {
    FP8I_MOE_H_MAGIC = 0, FP8I_MOE_H_STATUS = 1, FP8I_MOE_H_M = 2, FP8I_MOE_H_TOP_K = 3, FP8I_MOE_H_EXPERTS = 4,
    FP8I_MOE_H_ROW_ALIGN = 5, FP8I_MOE_H_ROWS = 6, FP8I_MOE_H_TOTAL_ROWS = 7, FP8I_MOE_H_ACTIVE = 8,
    FP8I_MOE_H_DROPPED = 9
};

/* A plan region with every array located: the *_at fields are word indices from `offset`. */
typedef struct fp8i_moe_plan {
    fp8_buffer *buffer;           /* NULL: dense grouped GEMM (rows = m tokens of expert 0) */
    size_t offset;                /* bytes, multiple of 4 */
    uint32_t m, top_k, experts, row_align;
    uint32_t slots;               /* S = m * top_k */
    uint32_t rows;                /* R, the rows capacity (dense: m) */
    uint32_t tiles;               /* R / row_align */
    size_t counts_at, offsets_at, active_at, row_token_at, row_slot_at, slot_row_at, tile_expert_at, workspace_at;
    size_t workspace_words;
    size_t words;                 /* whole plan */
} fp8i_moe_plan;

/* Resolve the plan layout (m may be 0). Pure: no buffer is looked at. */
fp8_status fp8i_moe_plan_layout(uint32_t m, uint32_t top_k, uint32_t experts, uint32_t row_align, fp8i_moe_plan *plan);

typedef struct fp8i_moe_route_args {
    uint32_t m, experts, top_k;   /* m >= 1 */
    fp8i_matrix logits;           /* [m, experts] F32/F16/BF16 */
    fp8i_matrix bias;             /* [1, experts] F32; buffer NULL: none */
    fp8_moe_scoring scoring;
    uint32_t n_group, topk_group; /* resolved: 1, 1 without a group limit */
    fp8_moe_group_score group_score; /* resolved: never AUTO */
    bool renormalize;
    float scaling;                /* resolved: 1 for 0 */
    fp8i_matrix ids, weights;     /* out [m, top_k] I32 / F32 */
} fp8i_moe_route_args;

typedef struct fp8i_moe_group_args {
    fp8i_matrix ids;              /* [m, top_k] I32 */
    fp8i_moe_plan plan;           /* buffer set, m >= 1 */
} fp8i_moe_group_args;

/* Quantize rows of a float matrix to FP8 with one F32 scale per 1 x block_cols block (fp8_quantize's rule). */
typedef struct fp8i_moe_quant_args {
    uint32_t rows, cols, block_cols; /* block_cols <= cols; blocks per row = ceil(cols / block_cols) */
    fp8_dtype grid;               /* the FP8 dtype quantized to */
    fp8i_matrix src;              /* [rows, cols] F32/F16/BF16 */
    fp8i_matrix dst;              /* [rows, cols] codes of `grid`, or BF16 holding their values (backends whose
                                     moe_act_bf16 says so; every FP8 value is exactly a bf16 one) */
    fp8i_matrix scales;           /* [rows, blocks per row] F32, packed */
    fp8i_moe_plan plan;           /* buffer set: only rows below total_rows that serve a slot are quantized */
} fp8i_moe_quant_args;

typedef struct fp8i_moe_gemm_args {
    fp8i_moe_plan plan;           /* buffer NULL: dense */
    uint32_t n, k, n_out;         /* n_out = n / 2 for gated activations */
    fp8i_matrix w;                /* expert 0 (w.buffer: the first of w_buffers when they are given) */
    size_t w_expert_stride;       /* bytes, >= one expert */
    fp8_buffer *const *w_buffers; /* NULL: every expert in w.buffer; else expert e lies in w_buffers[e / P] at */
    uint32_t w_experts_per_buffer;/* w.offset + (e % P) * w_expert_stride, P = w_experts_per_buffer (<= E) */
    fp8i_scales w_scales;         /* expert 0 */
    size_t w_scales_expert_stride;
    fp8i_matrix w_tensor_scales;  /* [1, E] F32; buffer NULL: none */
    fp8i_matrix bias;             /* [E, n]; buffer NULL: none */
    fp8i_matrix x;                /* [m or R, k] */
    fp8i_scales x_scales;         /* block_rows 1 (or a single tensor scale) */
    bool x_gathered;
    fp8_moe_activation activation;
    fp8i_matrix y;                /* [R or m, n_out] */
} fp8i_moe_gemm_args;

/* Where expert e's weights lie: its buffer, and the byte offset of its first row there. */
static inline fp8_buffer *fp8i_moe_expert_w(const fp8i_moe_gemm_args *a, uint32_t e, size_t *offset)
{
    if (!a->w_buffers) {
        *offset = a->w.offset + (size_t)e * a->w_expert_stride;
        return a->w.buffer;
    }
    *offset = a->w.offset + (size_t)(e % a->w_experts_per_buffer) * a->w_expert_stride;
    return a->w_buffers[e / a->w_experts_per_buffer];
}

typedef struct fp8i_moe_combine_args {
    fp8i_moe_plan plan;
    uint32_t hidden;
    fp8i_matrix rows;             /* [R, hidden] */
    fp8i_matrix weights;          /* [m, top_k] F32 */
    fp8i_matrix shared;           /* [m, hidden]; buffer NULL: none */
    fp8i_matrix y;                /* [m, hidden] */
} fp8i_moe_combine_args;

#endif
