#version 450
// Per-row activation quantization for W8A8 MoE layers, bit-exact with fp8_quantize's F32 rule per 1 x bc
// block: s = amax / max(dtype) (1 when amax is 0), q = saturating cast(x / s), with a correctly rounded
// division and encode done on the bits (encode.glsl). A workgroup takes cb blocks of one row (workgroup x:
// which cb blocks; y and z: the row), so that a decode layer's one or few rows still spread over many SMs (one
// workgroup per row of DeepSeek-V3's 7168 activations took 36 us on the H100, where a parallel pass takes a
// few). A row holding a NaN or Inf quantizes to zeros with scales 1 and raises FP8_ERR_NOT_FINITE: every
// workgroup checks the whole row for that. With a plan, rows at or past total_rows and padding rows (row_token
// NONE) are skipped: nothing downstream reads them. WIDE writes the bf16 values of the codes (exact: every FP8
// value is a bf16 one), which the per-expert GEMV reads with fewer instructions than it decodes codes.
#extension GL_EXT_shader_8bit_storage : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : require

#include "encode.glsl"
#include "moe_common.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 1) const uint SDT = DT_F32;     // source dtype
layout(constant_id = 2) const uint QDT = DT_E4M3FN;  // destination FP8 dtype
layout(constant_id = 3) const bool HAS_PLAN = false;
layout(constant_id = 4) const bool WIDE = false;     // bf16 values of the codes instead of the codes

layout(std430, set = 0, binding = MB_X) readonly buffer BS { uint src[]; };
layout(std430, set = 0, binding = MB_Y) writeonly buffer BD { uint8_t dst[]; };
layout(std430, set = 0, binding = MB_Y) writeonly buffer BD16 { uint16_t dst16[]; };
layout(std430, set = 0, binding = MB_XS) writeonly buffer BC { uint sc[]; };
layout(std430, set = 0, binding = MB_PLAN) buffer BP { uint plan[]; };

layout(push_constant) uniform Push {
    uint rows, cols, bc, nb;   // blocks per row nb = ceil(cols / bc)
    uint s_off, s_stride;      // source elements
    uint d_off, d_stride;      // destination elements
    uint c_off, c_stride;      // scale elements (f32)
    uint plan_base, row_token_at; // absolute word indices
    uint qmax_bits;            // max(dtype) as f32 bits
    uint grid_y;               // rows per grid column (the rest goes to z)
    uint cb;                   // blocks per workgroup
} pc;

const uint NBG = 256u; // blocks per pass
const uint LOADS = 8u; // finiteness check: columns read before any is tested
shared uint bamax[NBG];
shared uint bad_flag;

// Code `code` of QDT at destination element i.
void store(uint i, uint code)
{
    if (WIDE) dst16[i] = uint16_t(floatBitsToUint(dec_scalar(QDT, code)) >> 16);
    else dst[i] = uint8_t(code);
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint r = gl_WorkGroupID.z * pc.grid_y + gl_WorkGroupID.y;
    const uint first = gl_WorkGroupID.x * pc.cb;         // this workgroup's blocks: [first, last)
    if (r >= pc.rows || first >= pc.nb) return;
    const uint last = min(pc.nb, first + pc.cb);
    if (HAS_PLAN) {
        if (r >= plan[pc.plan_base + H_TOTAL_ROWS] || plan[pc.row_token_at + r] == NONE) return;
    }
    const uint srow = pc.s_off + r * pc.s_stride, drow = pc.d_off + r * pc.d_stride, crow = pc.c_off + r * pc.c_stride;
    if (tid == 0u) bad_flag = 0u;
    barrier();
    // LOADS reads in flight per invocation: a loop that tested each value before loading the next waited on
    // memory once per 256 columns, which made this check most of a one-token pass over 7168 columns.
    uint bad = 0u;
    for (uint c0 = tid; c0 < pc.cols; c0 += 256u * LOADS) {
        uint b[LOADS];
        [[unroll]] for (uint i = 0u; i < LOADS; i++)
            b[i] = c0 + 256u * i < pc.cols ? FLOAT_BITS(SDT, src, srow + c0 + 256u * i) : 0u;
        [[unroll]] for (uint i = 0u; i < LOADS; i++)
            if (!bits_finite(b[i])) bad = 1u;
    }
    if (bad != 0u) atomicOr(bad_flag, 1u);
    barrier();
    if (bad_flag != 0u) {
        for (uint c = first * pc.bc + tid; c < min(pc.cols, last * pc.bc); c += 256u) store(drow + c, 0u);
        for (uint b = first + tid; b < last; b += 256u) sc[crow + b] = floatBitsToUint(1.0);
        if (tid == 0u && first == 0u) {
            moe_error(ST_NOT_FINITE);
            if (HAS_PLAN) atomicCompSwap(plan[pc.plan_base + H_STATUS], 0u, uint(ST_NOT_FINITE));
        }
        return;
    }
    for (uint b0 = first; b0 < last; b0 += NBG) {
        const uint nbl = min(NBG, last - b0);
        const uint c0 = b0 * pc.bc, c1 = min(pc.cols, (b0 + nbl) * pc.bc);
        for (uint i = tid; i < nbl; i += 256u) bamax[i] = 0u;
        barrier();
        // |x| compared as bits: for finite non-negative floats the order is the same.
        for (uint c = c0 + tid; c < c1; c += 256u)
            atomicMax(bamax[c / pc.bc - b0], FLOAT_BITS(SDT, src, srow + c) & 0x7FFFFFFFu);
        barrier();
        for (uint i = tid; i < nbl; i += 256u) {
            const uint a = bamax[i];
            const uint s = a != 0u ? f32_div_rn(a, pc.qmax_bits) : floatBitsToUint(1.0);
            bamax[i] = s;
            sc[crow + b0 + i] = s;
        }
        barrier();
        for (uint c = c0 + tid; c < c1; c += 256u) {
            const uint s = bamax[c / pc.bc - b0];
            const uint q = s != 0u ? f32_div_rn(FLOAT_BITS(SDT, src, srow + c), s) : 0u; // host: s == 0 gives q = 0
            store(drow + c, enc_fp8_sat(QDT, q));
        }
        barrier();
    }
}
