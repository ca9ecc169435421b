// What the grouped-GEMM kernels (moe_gemv.comp, moe_gemm.comp) share: bindings, push constants
// (lib/vulkan/vk_moe.c fills them), specialization constants, the plan's locations and checks, operand
// accessors with per-expert weights and scales, and the epilogue.
//
// Y[r, :] = epilogue(dequant(X)[src(r), :] * dequant(W_e)^T + bias_e) for the rows r of expert e. Weights of
// expert e start at w_off + e * w_estride (bytes), its scales at ws_off + e * ws_estride (elements), its bias at
// b_off + e * b_stride; ts[e] multiplies its dequantized weights when HAS_TS. Gated epilogues read weight rows
// c (gate) and n_out + c (up) for output column c.
#ifndef FP8_MOE_GEMM_COMMON_GLSL
#define FP8_MOE_GEMM_COMMON_GLSL

#extension GL_EXT_shader_16bit_storage : require

#include "encode.glsl"
#include "moe_common.glsl"

layout(std430, set = 0, binding = MB_W) readonly buffer BW32 { uint w32[]; };
layout(std430, set = 0, binding = MB_W) readonly buffer BW128 { uvec4 w128[]; };
layout(std430, set = 0, binding = MB_WS) readonly buffer BWS { uint ws32[]; };
layout(std430, set = 0, binding = MB_X) readonly buffer BX32 { uint x32[]; };
layout(std430, set = 0, binding = MB_X) readonly buffer BX128 { uvec4 x128[]; };
layout(std430, set = 0, binding = MB_XS) readonly buffer BXS { uint xs32[]; };
layout(std430, set = 0, binding = MB_BIAS) readonly buffer BB { uint b32[]; };
layout(std430, set = 0, binding = MB_Y) writeonly buffer BY32 { uint y32[]; };
layout(std430, set = 0, binding = MB_Y) writeonly buffer BY16 { uint16_t y16[]; };
layout(std430, set = 0, binding = MB_PLAN) readonly buffer BP { uint plan[]; };
layout(std430, set = 0, binding = MB_TS) readonly buffer BT { uint ts32[]; };

layout(push_constant) uniform Push {
    uint m, n, k, n_out;               // n weight rows, n_out output columns (n / 2 when gated)
    uint rows, experts, top_k, row_align;
    uint plan_base;                    // word index of the plan (dense: unused)
    uint w_off, w_stride, w_estride;   // bytes
    uint ws_off, ws_bpr, ws_estride;   // scale elements
    float w_ts;
    uint ts_off;                       // elements
    uint x_off, x_stride;              // elements (bytes for FP8 activations)
    uint xs_off, xs_bpr;
    float x_ts;
    uint y_off, y_stride;              // elements
    uint b_off, b_stride;              // elements
    uint grid_y;                       // workgroups per grid column (the rest goes to z)
    uint e_lo, e_hi;                   // experts whose weights this dispatch's binding of W holds (w_off: e_lo's)
} pc;

// Scale modes: how a scale tensor varies along K.
#define SM_NONE 0u   // no scale tensor
#define SM_ROW 1u    // one scale for the whole of K: applied after the sum
#define SM_CHUNK 2u  // block_cols a multiple of 16: one scale per 16 elements
#define SM_ELEM 3u   // any other block: looked up per element

layout(constant_id = 1) const uint WDT = DT_E4M3FN;
layout(constant_id = 2) const uint XDT = DT_F32;
layout(constant_id = 3) const uint YDT = DT_F32;
layout(constant_id = 4) const uint BDT = DT_NONE;
layout(constant_id = 5) const uint WS_DT = DT_NONE;
layout(constant_id = 6) const uint WS_MODE = SM_NONE;
layout(constant_id = 7) const uint XS_DT = DT_NONE;
layout(constant_id = 8) const uint XS_MODE = SM_NONE;
layout(constant_id = 9) const bool EXACT = false;     // scalar decode only (fp16 denormals not kept)
layout(constant_id = 10) const uint ACT = ACT_NONE;
layout(constant_id = 11) const bool GATHERED = true;  // X holds tokens (row_token), else plan rows
layout(constant_id = 12) const bool DENSE = false;    // no plan: rows are tokens of expert 0
layout(constant_id = 13) const bool HAS_TS = false;   // per-expert tensor scales
layout(constant_id = 14) const uint WS_BR = 1;        // scale block shapes
layout(constant_id = 15) const uint WS_BC = 1;
layout(constant_id = 16) const uint XS_BR = 1;
layout(constant_id = 17) const uint XS_BC = 1;

const bool GATED = ACT == ACT_SWIGLU || ACT == ACT_GEGLU || ACT == ACT_GEGLU_TANH;

#define BYTE_AT(arr, i) ((arr[(i) >> 2] >> (((i) & 3u) << 3)) & 0xFFu)

// Plan arrays (include/fp8_moe.h): absolute word indices.
uint counts_at() { return pc.plan_base + 16u; }
uint offsets_at() { return counts_at() + pc.experts; }
uint active_at() { return offsets_at() + pc.experts + 1u; }
uint row_token_at() { return active_at() + pc.experts; }
uint tile_expert_at() { return row_token_at() + 2u * pc.rows + pc.m * pc.top_k; }

// The plan names the shapes it was made for; another plan's indices are not followed.
bool plan_ok()
{
    return plan[pc.plan_base + H_MAGIC] == PLAN_MAGIC && plan[pc.plan_base + H_M] == pc.m &&
           plan[pc.plan_base + H_TOP_K] == pc.top_k && plan[pc.plan_base + H_EXPERTS] == pc.experts &&
           plan[pc.plan_base + H_ROW_ALIGN] == pc.row_align && plan[pc.plan_base + H_ROWS] == pc.rows &&
           plan[pc.plan_base + H_TOTAL_ROWS] <= pc.rows;
}

// The X row that plan row r reads, or NONE for padding; an out-of-range token is a data error (then NONE).
uint source_row(uint r)
{
    if (DENSE) return r < pc.m ? r : NONE;
    const uint tok = plan[row_token_at() + r];
    if (tok == NONE) return NONE;
    if (tok >= pc.m) {
        moe_error(ST_INVALID_ARGUMENT);
        return NONE;
    }
    return GATHERED ? tok : r;
}

// Expert weights larger than one binding addresses come in windows of experts, a dispatch each
// (lib/vulkan/vk_moe.c); work for the experts of other windows is skipped.
bool in_window(uint e) { return e >= pc.e_lo && e < pc.e_hi; }
// Weight row n of expert e (in this dispatch's window): byte address of its first element.
uint w_row_base(uint e, uint n) { return pc.w_off + (e - pc.e_lo) * pc.w_estride + n * pc.w_stride; }
// Weight row index of local column j for output column c (gated: gate rows, then up rows).
uint w_row_of(uint c, bool up) { return up ? pc.n_out + c : c; }

float w_scale_at(uint i) { return WS_DT == DT_F32 ? uintBitsToFloat(ws32[i]) : dec_scalar(WS_DT, BYTE_AT(ws32, i)); }
float x_scale_at(uint i) { return XS_DT == DT_F32 ? uintBitsToFloat(xs32[i]) : dec_scalar(XS_DT, BYTE_AT(xs32, i)); }
// First scale of weight row n of expert e, and of activation row xr; + k / block_cols along the row.
uint w_scale_row(uint e, uint n) { return pc.ws_off + e * pc.ws_estride + (n / WS_BR) * pc.ws_bpr; }
uint x_scale_row(uint xr) { return pc.xs_off + (xr / XS_BR) * pc.xs_bpr; }

// Weight element (n, k) of expert e: exact value, no scale.
float w_elem(uint e, uint n, uint k)
{
    if (WDT == DT_E2M1) {
        uint b = BYTE_AT(w32, w_row_base(e, n) + (k >> 1));
        return dec_e2m1((k & 1u) != 0u ? b >> 4 : b & 15u);
    }
    return dec_scalar(WDT, BYTE_AT(w32, w_row_base(e, n) + k));
}

// Activation element (xr, k): exact value, no scale.
float x_elem(uint xr, uint k)
{
    const uint i = pc.x_off + xr * pc.x_stride + k;
    if (XDT == DT_F32 || XDT == DT_F16 || XDT == DT_BF16) return FLOAT_AT(XDT, x32, i);
    return dec_scalar(XDT, BYTE_AT(x32, i));
}

float bias_of(uint e, uint n)
{
    if (BDT == DT_NONE) return 0.0;
    return FLOAT_AT(BDT, b32, pc.b_off + e * pc.b_stride + n);
}

float expert_ts(uint e) { return HAS_TS ? uintBitsToFloat(ts32[pc.ts_off + e]) : 1.0; }

// The finished value of weight row n from its raw sum (scales of ROW mode applied here).
float finish(uint e, uint n, uint xr, float sum)
{
    float v = sum * pc.w_ts * pc.x_ts;
    if (WS_MODE == SM_ROW) v *= w_scale_at(w_scale_row(e, n));
    if (XS_MODE == SM_ROW) v *= x_scale_at(x_scale_row(xr));
    return v * expert_ts(e) + bias_of(e, n);
}

void y_store(uint r, uint c, float v)
{
    const uint i = pc.y_off + r * pc.y_stride + c;
    if (YDT == DT_F32) y32[i] = floatBitsToUint(v);
    else if (YDT == DT_F16) y16[i] = uint16_t(enc_f16(floatBitsToUint(v)));
    else y16[i] = uint16_t(enc_bf16(floatBitsToUint(v)));
}

// Output of column c from its gate (or only) value g and up value u.
float epilogue(float g, float u) { return GATED ? activate(ACT, g) * u : activate(ACT, g); }

#endif
