#version 450
// MoE routing (fp8_moe_router's rule), one workgroup per token: scores in f32, selection keys (score + bias)
// in shared memory, the group limit, then k rounds of a workgroup argmax with ties to the lower id. A token
// with a non-finite logit or bias gets ids 0..k-1, weights 0, and raises FP8_ERR_NOT_FINITE.
// GROUP (decode plans, at most 256 slots; FP8_VK_MOE_FUSED_ROUTE=1): the grouping follows in the same dispatch.
// Each workgroup publishes its ids and counts itself done in a device word; the last one to finish builds the
// plan (moe_plan_one.glsl), so a layer saves one dependent dispatch.
#ifndef FP8_NO_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
#endif

#include "moe_common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint LDT = DT_F32;   // logits dtype
layout(constant_id = 2) const bool HAS_BIAS = false;
layout(constant_id = 3) const uint KEYS = 256;     // shared key slots, >= E
layout(constant_id = 4) const uint NG = 1;         // shared group slots, >= n_group
layout(constant_id = 5) const bool GROUP = false;  // build the plan too (workgroups of 256)
layout(constant_id = 6) const uint HB = 1;         // GROUP: shared histogram slots, >= E

layout(std430, set = 0, binding = MB_X) readonly buffer BL { uint logits[]; };
layout(std430, set = 0, binding = MB_BIAS) readonly buffer BB { uint rbias[]; };
layout(std430, set = 0, binding = MB_Y) coherent buffer BI { uint ids_out[]; }; // GROUP reads other groups' ids
layout(std430, set = 0, binding = MB_PLAN) buffer BP { uint plan[]; };
layout(std430, set = 0, binding = MB_W) writeonly buffer BW { uint w_out[]; };

layout(push_constant) uniform Push {
    uint m, experts, top_k;
    uint n_group, topk_group, group_top2;
    uint softmax, renormalize;
    float scaling;
    uint l_off, l_stride;      // elements
    uint b_off;                // elements
    uint i_off, i_stride;      // elements
    uint w_off, w_stride;
    uint grid_x;               // workgroups per grid row (tokens beyond 65535 use y)
    uint row_align, rows, tiles, slots, base; // GROUP: the plan (base: its first word)
} pc;

const uint WG = gl_WorkGroupSize.x;
const float NEG_INF = -1.0 / 0.0;

shared float key[KEYS];
shared float gkey[NG];
shared uint gkeep[NG];
shared uint sel[64];
shared float red_v[WG];
shared uint red_i[WG];
shared uint bad_flag;
shared float s_max, s_sum, s_renorm;
shared uint hist[GROUP ? HB : 1u];
shared uint sid[GROUP ? 256u : 1u], part[GROUP ? 256u : 1u], part_act[GROUP ? 256u : 1u];
shared uint s_last;

#define token_row() (gl_WorkGroupID.y * pc.grid_x + gl_WorkGroupID.x)

float logit_at(uint e) { return FLOAT_AT(LDT, logits, pc.l_off + token_row() * pc.l_stride + e); }

// Workgroup argmax of (v, i) pairs: largest v, then smallest i. Every invocation passes its own pair and
// gets the winner. Uses red_v/red_i; barriers inside (call from uniform control flow).
void wg_argmax(inout float v, inout uint i)
{
#ifndef FP8_NO_SUBGROUP
    float sv = subgroupMax(v);
    uint si = subgroupMin(v == sv ? i : NONE);
    if (subgroupElect()) { red_v[gl_SubgroupID] = sv; red_i[gl_SubgroupID] = si; }
    barrier();
    const uint n = gl_NumSubgroups;
#else
    red_v[gl_LocalInvocationID.x] = v;
    red_i[gl_LocalInvocationID.x] = i;
    barrier();
    const uint n = WG;
#endif
    float bv = red_v[0];
    uint bi = red_i[0];
    for (uint g = 1u; g < n; g++) {
        float cv = red_v[g];
        uint ci = red_i[g];
        if (cv > bv || (cv == bv && ci < bi)) { bv = cv; bi = ci; }
    }
    barrier();
    v = bv;
    i = bi;
}

float wg_sum(float v)
{
#ifndef FP8_NO_SUBGROUP
    float s = subgroupAdd(v);
    if (subgroupElect()) red_v[gl_SubgroupID] = s;
    barrier();
    const uint n = gl_NumSubgroups;
#else
    red_v[gl_LocalInvocationID.x] = v;
    barrier();
    const uint n = WG;
#endif
    float t = 0.0;
    for (uint g = 0u; g < n; g++) t += red_v[g];
    barrier();
    return t;
}

float score_of(float l)
{
    return pc.softmax != 0u ? exp_acc(l - s_max) / s_sum : sigmoid_acc(l);
}

uint slot_id(uint s) { return ids_out[pc.i_off + (s / pc.top_k) * pc.i_stride + s % pc.top_k]; }
#define PS pc
#include "moe_plan_one.glsl"

// Token t's ids and weights; every return is taken by the whole workgroup.
void route_token(uint t)
{
    const uint tid = gl_LocalInvocationID.x;
    const uint E = pc.experts, k = pc.top_k;
    if (tid == 0u) bad_flag = 0u;
    barrier();

    // Logits: finiteness and the softmax maximum.
    float mx = NEG_INF;
    uint bad = 0u;
    for (uint e = tid; e < E; e += WG) {
        uint b = FLOAT_BITS(LDT, logits, pc.l_off + t * pc.l_stride + e);
        if (!bits_finite(b)) bad = 1u;
        if (HAS_BIAS && !bits_finite(rbias[pc.b_off + e])) bad = 1u;
        mx = max(mx, uintBitsToFloat(b));
    }
    if (bad != 0u) atomicOr(bad_flag, 1u);
    uint dummy = 0u;
    wg_argmax(mx, dummy);
    if (bad_flag != 0u) {
        // The safe answer every backend gives: valid ids, no weight.
        if (tid < k) {
            ids_out[pc.i_off + t * pc.i_stride + tid] = tid;
            w_out[pc.w_off + t * pc.w_stride + tid] = 0u;
        }
        if (tid == 0u) moe_error(ST_NOT_FINITE);
        return;
    }
    if (tid == 0u) s_max = mx;
    barrier();
    if (pc.softmax != 0u) {
        float z = 0.0;
        for (uint e = tid; e < E; e += WG) z += exp_acc(logit_at(e) - s_max);
        z = wg_sum(z);
        if (tid == 0u) s_sum = z;
        barrier();
    }
    // Keys: score + bias; the bias selects, it never weighs.
    for (uint e = tid; e < E; e += WG) {
        float s = score_of(logit_at(e));
        key[e] = HAS_BIAS ? s + uintBitsToFloat(rbias[pc.b_off + e]) : s;
    }
    barrier();

    // Group limit: score each group from its keys, keep the topk_group best (ties: lower group id), and
    // take every expert of the other groups out of the race.
    if (pc.n_group > 1u) {
        const uint gs = E / pc.n_group;
        for (uint g = tid; g < pc.n_group; g += WG) {
            float top1 = NEG_INF, top2 = NEG_INF;
            for (uint i = 0u; i < gs; i++) {
                float v = key[g * gs + i];
                if (v > top1) { top2 = top1; top1 = v; }
                else if (v > top2) top2 = v;
            }
            gkey[g] = pc.group_top2 != 0u && gs > 1u ? top1 + top2 : top1;
            gkeep[g] = 0u;
        }
        barrier();
        for (uint j = 0u; j < pc.topk_group; j++) {
            float bv = NEG_INF;
            uint bi = NONE;
            for (uint g = tid; g < pc.n_group; g += WG)
                if (gkeep[g] == 0u && (bi == NONE || gkey[g] > bv)) { bv = gkey[g]; bi = g; }
            wg_argmax(bv, bi);
            if (tid == 0u && bi < pc.n_group) gkeep[bi] = 1u;
            barrier();
        }
        for (uint e = tid; e < E; e += WG)
            if (gkeep[e / gs] == 0u) key[e] = NEG_INF;
        barrier();
    }

    // Top-k: k rounds of argmax; a chosen expert leaves the race. Excluded experts hold -inf and every
    // allowed key is finite, so they never win (validation guarantees k allowed experts).
    for (uint j = 0u; j < k; j++) {
        float bv = NEG_INF;
        uint bi = NONE;
        for (uint e = tid; e < E; e += WG) {
            float v = key[e];
            if (v > bv) { bv = v; bi = e; }
        }
        wg_argmax(bv, bi);
        if (tid == 0u) {
            sel[j] = bi;
            if (bi < E) key[bi] = NEG_INF;
        }
        barrier();
    }

    // Weights: the scores of the chosen experts, summed in slot order for the renormalisation.
    if (tid == 0u) {
        float sum = 0.0;
        for (uint j = 0u; j < k; j++) sum += score_of(logit_at(min(sel[j], E - 1u)));
        s_renorm = pc.renormalize != 0u ? sum : 0.0;
    }
    barrier();
    if (tid < k) {
        uint id = min(sel[tid], E - 1u);
        float w = score_of(logit_at(id));
        if (s_renorm > 0.0) w /= s_renorm;
        ids_out[pc.i_off + t * pc.i_stride + tid] = id;
        w_out[pc.w_off + t * pc.w_stride + tid] = floatBitsToUint(w * pc.scaling);
    }
}

void main()
{
    const uint t = token_row();
    if (t >= pc.m) return;
    route_token(t);
    if (!GROUP) return;
    // Publish this workgroup's ids, count it done; the last of the m builds the plan from all of them.
    memoryBarrierBuffer();
    barrier();
    if (gl_LocalInvocationID.x == 0u) s_last = atomicAdd(err_word[1], 1u) == pc.m - 1u ? 1u : 0u;
    barrier();
    if (s_last == 0u) return;
    memoryBarrierBuffer();
    if (gl_LocalInvocationID.x == 0u) atomicExchange(err_word[1], 0u); // ready for the next dispatch
    plan_in_one(gl_LocalInvocationID.x);
}
