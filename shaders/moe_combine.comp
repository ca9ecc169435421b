#version 450
// MoE combine: y[t, h] = sum_j weights[t, j] * rows[slot_row[t k + j], h] (+ shared[t, h]), one invocation per
// output element, j ascending then the shared row, no atomics. The sum is kept as an unevaluated pair of
// floats (exact products, error-free additions) and rounded once, which is what the CPU's double sum gives
// after its final rounding to float except within ~2^-44 of a rounding boundary. slot_row NONE adds nothing;
// an index past the plan's rows is a data error (nothing is read through it).
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : require

#include "encode.glsl"
#include "moe_common.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 1) const uint RDT = DT_F32;   // rows dtype
layout(constant_id = 2) const uint SDT = DT_NONE;  // shared rows dtype, NONE: no shared expert
layout(constant_id = 3) const uint YDT = DT_F32;
const uint CHUNK = 8u; // slots whose loads are in flight together

layout(std430, set = 0, binding = MB_X) readonly buffer BR { uint rows_in[]; };
layout(std430, set = 0, binding = MB_W) readonly buffer BW { uint wts[]; };
layout(std430, set = 0, binding = MB_BIAS) readonly buffer BS { uint shared_in[]; };
layout(std430, set = 0, binding = MB_Y) writeonly buffer BY32 { uint y32[]; };
layout(std430, set = 0, binding = MB_Y) writeonly buffer BY16 { uint16_t y16[]; };
layout(std430, set = 0, binding = MB_PLAN) readonly buffer BP { uint plan[]; };

layout(push_constant) uniform Push {
    uint m, top_k, experts, row_align, rows, hidden;
    uint plan_base, slot_row_at;   // absolute word indices
    uint r_off, r_stride;          // elements
    uint w_off, w_stride;
    uint s_off, s_stride;
    uint y_off, y_stride;
    uint grid_y;                   // token rows per grid column (tokens beyond 65535 use z)
} pc;

// (hi, lo) += x exactly (Knuth's two-sum, then renormalised).
void acc_add(inout float hi, inout float lo, float x, float xlo)
{
    precise float s = hi + x;
    precise float bb = s - hi;
    precise float e = (hi - (s - bb)) + (x - bb);
    precise float l = e + lo + xlo;
    precise float h2 = s + l;
    precise float l2 = l - (h2 - s);
    hi = h2;
    lo = l2;
}

void main()
{
    const uint h = gl_GlobalInvocationID.x;
    const uint t = gl_WorkGroupID.z * pc.grid_y + gl_WorkGroupID.y;
    if (h >= pc.hidden || t >= pc.m) return;
    // A plan made for other shapes is not followed.
    if (plan[pc.plan_base + H_MAGIC] != PLAN_MAGIC || plan[pc.plan_base + H_M] != pc.m ||
        plan[pc.plan_base + H_TOP_K] != pc.top_k || plan[pc.plan_base + H_EXPERTS] != pc.experts ||
        plan[pc.plan_base + H_ROW_ALIGN] != pc.row_align || plan[pc.plan_base + H_ROWS] != pc.rows) {
        if (h == 0u && t == 0u) moe_error(ST_INVALID_ARGUMENT);
        return;
    }
    // The slots go in chunks of CHUNK: every index of a chunk is loaded, then every row value, then the values
    // are summed in slot order. A loop that loaded a slot's row index, then its value, then summed it waited
    // on two dependent memory reads per slot: most of the pass's time at one token (k = 8) on the H100.
    float hi = 0.0, lo = 0.0;
    for (uint j0 = 0u; j0 < pc.top_k; j0 += CHUNK) {
        uint r[CHUNK];
        float w[CHUNK], v[CHUNK];
        [[unroll]] for (uint i = 0u; i < CHUNK; i++) {
            r[i] = NONE;
            w[i] = 0.0;
            if (j0 + i < pc.top_k) {
                r[i] = plan[pc.slot_row_at + t * pc.top_k + j0 + i];
                w[i] = uintBitsToFloat(wts[pc.w_off + t * pc.w_stride + j0 + i]);
            }
        }
        [[unroll]] for (uint i = 0u; i < CHUNK; i++) {
            v[i] = 0.0;
            if (r[i] != NONE && r[i] < pc.rows) v[i] = FLOAT_AT(RDT, rows_in, pc.r_off + r[i] * pc.r_stride + h);
        }
        [[unroll]] for (uint i = 0u; i < CHUNK; i++) {
            if (r[i] == NONE) continue;
            if (r[i] >= pc.rows) {
                moe_error(ST_INVALID_ARGUMENT);
                continue;
            }
            float ph, pl;
            two_prod(w[i], v[i], ph, pl);
            acc_add(hi, lo, ph, pl);
        }
    }
    if (SDT != DT_NONE) acc_add(hi, lo, FLOAT_AT(SDT, shared_in, pc.s_off + t * pc.s_stride + h), 0.0);
    precise float y = hi + lo;
    const uint yi = pc.y_off + t * pc.y_stride + h;
    if (YDT == DT_F32) y32[yi] = floatBitsToUint(y);
    else if (YDT == DT_F16) y16[yi] = uint16_t(enc_f16(floatBitsToUint(y)));
    else y16[yi] = uint16_t(enc_bf16(floatBitsToUint(y)));
}
