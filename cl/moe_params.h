/* Parameter blocks and constants of the MoE kernels (cl/moe.cl, cl/moe_gemm.cl): one definition read by the
 * host (lib/opencl/cl_moe.c) and the kernels. Comes after params.h, whose fixed-width types it uses. */
#ifndef FP8K_MOE_PARAMS_H
#define FP8K_MOE_PARAMS_H

/* Statuses the kernels record (the values of fp8_status; the host asserts they match). */
#define FP8K_ERR_INVALID_ARGUMENT (-1)
#define FP8K_ERR_EXPERT_ID (-16)
#define FP8K_ERR_NOT_FINITE (-17)

#define FP8K_MOE_NONE 0xFFFFFFFFu
#define FP8K_MOE_MAGIC 0x31454F4Du

/* Plan header words (lib/backend/moe.h). */
#define FP8K_MOE_H_MAGIC 0
#define FP8K_MOE_H_STATUS 1
#define FP8K_MOE_H_M 2
#define FP8K_MOE_H_TOP_K 3
#define FP8K_MOE_H_EXPERTS 4
#define FP8K_MOE_H_ROW_ALIGN 5
#define FP8K_MOE_H_ROWS 6
#define FP8K_MOE_H_TOTAL_ROWS 7
#define FP8K_MOE_H_ACTIVE 8
#define FP8K_MOE_H_DROPPED 9
#define FP8K_MOE_HEADER_WORDS 16

/* Epilogues: the values of fp8_moe_activation. */
#define FP8K_ACT_NONE 0
#define FP8K_ACT_SWIGLU 1
#define FP8K_ACT_GEGLU 2
#define FP8K_ACT_GEGLU_TANH 3
#define FP8K_ACT_SILU 4
#define FP8K_ACT_GELU 5
#define FP8K_ACT_GELU_TANH 6

/* Work-group shapes (fixed: the kernels declare them with reqd_work_group_size). */
#define FP8K_MOE_ROUTE_LANES 64  /* one token per group; a power of two (tree reductions) */
#define FP8K_MOE_CHUNK 256       /* slots per grouping chunk: one work-item per slot (FP8I_MOE_CHUNK) */
#define FP8K_MOE_QUANT_LANES 64  /* work-items of a group (cb blocks of one activation row); a power of two */
#define FP8K_MOE_COMBINE_LANES 64
#define FP8K_MOE_GEMV_LANES 32   /* previous decode kernel (MOE_GEMV_OLD): lanes that share one output unit's K loop */
#define FP8K_MOE_GEMV_UNITS 4    /* previous decode kernel: output units per work-group */
#define FP8K_MOE_GEMV_WARPS 4    /* decode kernel: warps (32 work-items) per work-group */
#define FP8K_MOE_GEMV_WARP_UNITS 2 /* decode kernel: output units (two weight rows each) per warp, where the host
                                    * does not say (it passes MOE_NU: 2 for one row per expert, else 1) */
#define FP8K_MOE_GEMV_ROWS 4     /* plan rows per pass: an expert with up to this many rows reads its weights once */
#define FP8K_MOE_TILE_T 16       /* tiled kernel: TxT work-items, each 2 rows x 2 units */
#define FP8K_MOE_TILE_M 32       /* rows per tile: the row alignment asked for prefill */
#define FP8K_MOE_TILE_U 32       /* output units per tile */

/* A plan region resolved by the host: word indices are relative to `base` (the plan's first word). */
typedef struct fp8k_moe_plan {
    fp8k_u64 base;
    fp8k_u64 counts, offsets, active, row_token, row_slot, slot_row, tile_expert, workspace;
    fp8k_u32 m, top_k, experts, row_align;
    fp8k_u32 slots, rows, tiles, chunks; /* chunks = ceil(slots / FP8K_MOE_CHUNK) */
} fp8k_moe_plan;

typedef struct fp8k_moe_route_params {
    fp8k_u64 l_off, l_stride;     /* logits: bytes, elements */
    fp8k_u64 b_off;               /* bias: bytes */
    fp8k_u64 ids_off, ids_stride; /* bytes, elements */
    fp8k_u64 w_off, w_stride;     /* bytes, elements */
    fp8k_u32 experts, top_k, l_dtype, scoring;
    fp8k_u32 n_group, topk_group, group_max, renormalize;
    fp8k_u32 has_bias;
    float scaling;
} fp8k_moe_route_params;

typedef struct fp8k_moe_quant_params {
    fp8k_u64 src_off, src_stride; /* bytes, elements */
    fp8k_u64 dst_off, dst_stride; /* bytes, elements */
    fp8k_u64 sc_off, sc_stride;   /* bytes, elements */
    fp8k_moe_plan plan;
    fp8k_u32 rows, cols, block_cols, blocks;
    fp8k_u32 src_dtype, dst_dtype, has_plan, cb; /* cb: blocks per group (dimension 0 of the grid) */
} fp8k_moe_quant_params;

typedef struct fp8k_moe_combine_params {
    fp8k_u64 r_off, r_stride;     /* rows: bytes, elements */
    fp8k_u64 w_off, w_stride;     /* weights: bytes, elements */
    fp8k_u64 s_off, s_stride;     /* shared: bytes, elements */
    fp8k_u64 y_off, y_stride;     /* bytes, elements */
    fp8k_moe_plan plan;
    fp8k_u32 hidden, r_dtype, s_dtype, y_dtype; /* s_dtype 0: no shared rows */
} fp8k_moe_combine_params;

/* The grouped GEMM. An output unit is what one work-item group computes: for gated epilogues output column u
 * from weight rows u (gate) and n_out + u (up); otherwise output columns 2u and 2u + 1 from those rows. */
typedef struct fp8k_moe_gemm_params {
    fp8k_u64 w_off, w_estride, w_stride; /* weights: bytes (expert e at w_off + (e - e_lo) * w_estride) */
    fp8k_u64 ws_estride;                 /* bytes between two experts' scale tensors */
    fp8k_u64 ts_off;                     /* per-expert tensor scales (F32): bytes */
    fp8k_u64 b_off, b_stride;            /* bias: bytes; elements from one expert's row to the next */
    fp8k_u64 x_off, x_stride;            /* bytes */
    fp8k_u64 y_off, y_stride;            /* bytes, elements */
    fp8k_scale ws, xs;                   /* expert 0's weight scales; activation scales */
    fp8k_moe_plan plan;                  /* dense: m rows of expert 0, no plan buffer */
    fp8k_u32 n, k, n_out, units;
    fp8k_u32 y_dtype, b_dtype, has_ts, act; /* b_dtype 0: no bias */
    fp8k_u32 gathered, dense, flags, row_blocks; /* row_blocks: tiled sub-blocks per plan tile */
    fp8k_u32 e_lo, e_hi;                 /* experts whose weights W holds, e_lo's from w_off; others are skipped */
} fp8k_moe_gemm_params;

#endif
