// What every GEMM/GEMV shader of libfp8 shares: bindings, push constants (lib/vulkan/vk_gemm.c fills them),
// specialization constants, and element and scale accessors. Buffers are bound whole; offsets arrive here.
#ifndef FP8_GEMM_COMMON_GLSL
#define FP8_GEMM_COMMON_GLSL

#extension GL_EXT_shader_16bit_storage : require

#include "decode.glsl"

// Bindings: the same numbers as FP8I_VK_BIND_* in lib/vulkan/vk_internal.h.
layout(std430, set = 0, binding = 0) readonly buffer BW32 { uint w32[]; };
layout(std430, set = 0, binding = 0) readonly buffer BW128 { uvec4 w128[]; };
layout(std430, set = 0, binding = 1) readonly buffer BWS { uint ws32[]; };
layout(std430, set = 0, binding = 2) readonly buffer BX32 { uint x32[]; };
layout(std430, set = 0, binding = 2) readonly buffer BX128 { uvec4 x128[]; };
layout(std430, set = 0, binding = 3) readonly buffer BXS { uint xs32[]; };
layout(std430, set = 0, binding = 4) readonly buffer BB { uint b32[]; };
layout(std430, set = 0, binding = 5) writeonly buffer BY32 { uint y32[]; };
layout(std430, set = 0, binding = 5) writeonly buffer BY16 { uint16_t y16[]; };

// Offsets in elements of each operand's dtype (bytes for FP8 and E2M1 weights), strides likewise.
layout(push_constant) uniform Push {
    uint M, N, K;
    uint w_off, w_stride;                  // bytes
    uint ws_off, ws_bpr, ws_br, ws_bc;     // scale elements; blocks per row; block shape
    float w_ts;                            // tensor scale
    uint x_off, x_stride;                  // elements (bytes for FP8 activations)
    uint xs_off, xs_bpr, xs_br, xs_bc;
    float x_ts;
    uint y_off, y_stride;                  // elements
    uint b_off;                            // elements
} pc;

// Scale modes: how a kernel applies a scale tensor along K.
#define SM_NONE 0u      // no tensor (tensor_scale only)
#define SM_ROW 1u       // one scale per row for all of K: applied once, after the sum
#define SM_CHUNK 2u     // block_cols a multiple of 16: one scale per 16-element chunk
#define SM_ELEM 3u      // anything else: looked up per element

layout(constant_id = 1) const uint WDT = DT_E4M3FN;   // weight dtype
layout(constant_id = 2) const uint XDT = DT_F32;      // activation dtype
layout(constant_id = 3) const uint YDT = DT_F32;      // output dtype
layout(constant_id = 4) const uint BDT = DT_NONE;     // bias dtype, NONE = no bias
layout(constant_id = 5) const uint WS_DT = DT_NONE;   // weight scale dtype
layout(constant_id = 6) const uint WS_MODE = SM_NONE;
layout(constant_id = 7) const uint XS_DT = DT_NONE;   // activation scale dtype
layout(constant_id = 8) const uint XS_MODE = SM_NONE;
layout(constant_id = 9) const bool EXACT = false;     // scalar decode only (no fp16 denormal conversions)
// Scale block shapes known when the pipeline is made (0: read the push constants): divisions by constants.
layout(constant_id = 20) const uint WS_BR = 0;
layout(constant_id = 21) const uint WS_BC = 0;
layout(constant_id = 22) const uint XS_BR = 0;
layout(constant_id = 23) const uint XS_BC = 0;

#define BYTE_AT(arr, i) ((arr[(i) >> 2] >> (((i) & 3u) << 3)) & 0xFFu)
#define HALF_AT(arr, i) ((arr[(i) >> 1] >> (((i) & 1u) << 4)) & 0xFFFFu)

// Bytes [a, a+16) of a buffer as one uvec4, whatever the alignment of a (a % 16 == 0 is the fast case).
#define LOAD16(arr32, arr128, a, align16, out_v)                                                    \
    {                                                                                               \
        uint a_ = (a);                                                                              \
        if (align16) {                                                                              \
            out_v = arr128[a_ >> 4];                                                                \
        } else {                                                                                    \
            uint q_ = a_ >> 2, s_ = (a_ & 3u) << 3;                                                 \
            uvec4 lo_ = uvec4(arr32[q_], arr32[q_ + 1u], arr32[q_ + 2u], arr32[q_ + 3u]);           \
            if (s_ == 0u) {                                                                         \
                out_v = lo_;                                                                        \
            } else {                                                                                \
                uint e_ = arr32[q_ + 4u];                                                           \
                out_v = uvec4((lo_.x >> s_) | (lo_.y << (32u - s_)), (lo_.y >> s_) | (lo_.z << (32u - s_)), \
                              (lo_.z >> s_) | (lo_.w << (32u - s_)), (lo_.w >> s_) | (e_ << (32u - s_))); \
            }                                                                                       \
        }                                                                                           \
    }

// Scale tensors: element i of the packed tensor (offset included by the caller through *_off).
float w_scale_at(uint i)
{
    if (WS_DT == DT_F32) return uintBitsToFloat(ws32[i]);
    return dec_scalar(WS_DT, BYTE_AT(ws32, i));
}
float x_scale_at(uint i)
{
    if (XS_DT == DT_F32) return uintBitsToFloat(xs32[i]);
    return dec_scalar(XS_DT, BYTE_AT(xs32, i));
}
// Scale of weight element (n, k) and activation element (m, k), without the tensor scale.
uint ws_br() { return WS_BR != 0u ? WS_BR : pc.ws_br; }
uint ws_bc() { return WS_BC != 0u ? WS_BC : pc.ws_bc; }
uint xs_br() { return XS_BR != 0u ? XS_BR : pc.xs_br; }
uint xs_bc() { return XS_BC != 0u ? XS_BC : pc.xs_bc; }
// First scale of weight row n / activation row m; then + k / block_cols along the row.
uint w_scale_row(uint n) { return pc.ws_off + (n / ws_br()) * pc.ws_bpr; }
uint x_scale_row(uint m) { return pc.xs_off + (m / xs_br()) * pc.xs_bpr; }
float w_scale(uint n, uint k) { return WS_DT == DT_NONE ? 1.0 : w_scale_at(w_scale_row(n) + k / ws_bc()); }
float x_scale(uint m, uint k) { return XS_DT == DT_NONE ? 1.0 : x_scale_at(x_scale_row(m) + k / xs_bc()); }

// Weight element (n, k), exact value, no scale.
float w_elem(uint n, uint k)
{
    if (WDT == DT_E2M1) {
        uint b = BYTE_AT(w32, pc.w_off + n * pc.w_stride + (k >> 1));
        return dec_e2m1((k & 1u) != 0u ? b >> 4 : b & 15u);
    }
    return dec_scalar(WDT, BYTE_AT(w32, pc.w_off + n * pc.w_stride + k));
}

// Activation element (m, k), exact value, no scale.
float x_elem(uint m, uint k)
{
    uint i = pc.x_off + m * pc.x_stride + k;
    if (XDT == DT_F32) return uintBitsToFloat(x32[i]);
    if (XDT == DT_F16 || XDT == DT_BF16) return dec_scalar(XDT, HALF_AT(x32, i));
    return dec_scalar(XDT, BYTE_AT(x32, i));
}

float bias_at(uint n)
{
    if (BDT == DT_NONE) return 0.0;
    uint i = pc.b_off + n;
    if (BDT == DT_F32) return uintBitsToFloat(b32[i]);
    return dec_scalar(BDT, HALF_AT(b32, i));
}

// Round to nearest even for bf16; NaN stays a quiet NaN.
uint f32_to_bf16(float v)
{
    uint b = floatBitsToUint(v);
    if ((b & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0u;
    return (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
}

// ---- The fp16-operand GEMMs (gemm_coopmat.comp, moe_gemm_coopmat.comp) ----
// Weights enter their fp16 matrices as value / dec_fold (exact; fold and scales applied in fp32 afterwards)
// unless their scale varies inside the block an accumulator sees; acc_scale: the block scales are applied on
// the accumulators instead. E5M2FNUZ's top binade would overflow fp16 divided by its fold. (Plain ifs: glslang
// 11 emits invalid SPIR-V for some compound specialization-constant conditions. The driver folds them all the
// same.)
bool w_raw_fp16(bool acc_scale)
{
    if (WDT == DT_E5M2FNUZ) return false;
    if (acc_scale) return true;
    return WS_MODE == SM_NONE || WS_MODE == SM_ROW;
}
bool x_raw_fp16()
{
    if (XDT == DT_E5M2FNUZ) return false;
    return XS_MODE == SM_NONE || XS_MODE == SM_ROW;
}
// The fp32 factor by which those kernels multiply the sum for Y[m, n], from f (the tensor scales and whatever
// the kernel adds): the folds of raw operands, and per-row and per-token scales.
float fp16_sum_factor(uint m, uint n, float f, bool w_raw, bool x_raw)
{
    if (w_raw) f *= dec_fold(WDT);
    if (x_raw) f *= dec_fold(XDT);
    if (WS_MODE == SM_ROW) f *= w_scale(n, 0u);
    if (XS_MODE == SM_ROW) f *= x_scale(m, 0u);
    return f;
}
// Block scale of weight row n (clamped to the matrix) for the K block holding k0: the accumulator scaling.
float w_block_scale(uint n, uint k0) { return w_scale_at(w_scale_row(min(n, pc.N - 1u)) + k0 / ws_bc()); }

void y_store(uint m, uint n, float v)
{
    uint i = pc.y_off + m * pc.y_stride + n;
    if (YDT == DT_F32) y32[i] = floatBitsToUint(v);
    else if (YDT == DT_F16) y16[i] = uint16_t(packHalf2x16(vec2(v, 0.0)) & 0xFFFFu);
    else y16[i] = uint16_t(f32_to_bf16(v));
}

#endif
