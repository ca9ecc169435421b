#version 450
// MoE routing (fp8_moe_router's rule), one workgroup per token: scores in f32, selection keys (score + bias)
// in shared memory, the group limit, then the top k. A token with a non-finite logit or bias gets ids 0..k-1,
// weights 0, and raises FP8_ERR_NOT_FINITE.
// Selection is by rank: an expert's rank is the number of keys that beat it (larger, or equal with a lower id),
// and the expert of rank j is what the j-th round of an argmax with ties to the lower id would pick. Each
// invocation ranks its own experts against all keys, so the top k (and the kept groups) cost one barrier where
// k rounds of a workgroup argmax cost two or three each: a one-token layer waits on this dispatch.
// GROUP (decode plans, at most 256 slots; FP8_VK_MOE_FUSED_ROUTE=0 turns it off): the grouping follows in the
// same dispatch. Each workgroup publishes its ids and counts itself done in a device word; the last one to
// finish builds the plan (moe_plan_one.glsl), so a layer saves one dependent dispatch. With one token there is
// one workgroup: it builds the plan from its ids in shared memory, without the count.
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
const uint RANK_MAX = 512u; // experts up to which the top k is chosen by rank
const float NEG_INF = -1.0 / 0.0;

shared vec4 key4[KEYS / 4u]; // selection keys, four a word so that ranking reads 16 bytes at a time
shared float gkey[NG];
shared uint gkeep[NG];
shared uint sel[64];         // the expert of each rank, then the id written for each slot
shared float sel_score[64];
shared float red_v[WG];
shared uint red_i[WG];
shared uint bad_flag;
shared float s_max, s_sum;
shared uint hist[GROUP ? HB : 1u];
shared uint sid[GROUP ? 256u : 1u];
shared uvec3 part[GROUP ? 256u : 1u], part_sum[GROUP ? 16u : 1u];
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

float key_at(uint e) { return key4[e >> 2][e & 3u]; }
void set_key(uint e, float v) { key4[e >> 2][e & 3u] = v; }

// Rank of key v of expert e among the first n keys: how many beat it. Stops counting at `enough`.
uint rank_of(float v, uint e, uint n, uint enough)
{
    uint rank = 0u;
    for (uint f = 0u; f < n && rank < enough; f += 4u) {
        const vec4 u = key4[f >> 2];
        rank += (u.x > v || (u.x == v && f < e)) ? 1u : 0u;
        rank += (u.y > v || (u.y == v && f + 1u < e)) ? 1u : 0u;
        rank += (u.z > v || (u.z == v && f + 2u < e)) ? 1u : 0u;
        rank += (u.w > v || (u.w == v && f + 3u < e)) ? 1u : 0u;
    }
    return rank;
}

float score_of(float l)
{
    return pc.softmax != 0u ? exp_acc(l - s_max) / s_sum : sigmoid_acc(l);
}

// One token: the ids are this workgroup's own, in shared memory; else read back from every workgroup's output.
uint slot_id(uint s) { return pc.m == 1u ? sel[s] : ids_out[pc.i_off + (s / pc.top_k) * pc.i_stride + s % pc.top_k]; }
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
            sel[tid] = tid;
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
    // Keys: score + bias; the bias selects, it never weighs. Slots past E hold -inf, which beats nothing.
    for (uint e = tid; e < KEYS; e += WG) {
        float v = NEG_INF;
        if (e < E) {
            const float s = score_of(logit_at(e));
            v = HAS_BIAS ? s + uintBitsToFloat(rbias[pc.b_off + e]) : s;
        }
        set_key(e, v);
    }
    if (tid < k) sel[tid] = NONE; // a rank no expert holds (validation rules it out) reads as id E - 1
    barrier();

    // Group limit: score each group from its keys, keep the topk_group best (ties: lower group id), and
    // take every expert of the other groups out of the race.
    if (pc.n_group > 1u) {
        const uint gs = E / pc.n_group;
        for (uint g = tid; g < pc.n_group; g += WG) {
            float top1 = NEG_INF, top2 = NEG_INF;
            for (uint i = 0u; i < gs; i++) {
                float v = key_at(g * gs + i);
                if (v > top1) { top2 = top1; top1 = v; }
                else if (v > top2) top2 = v;
            }
            gkey[g] = pc.group_top2 != 0u && gs > 1u ? top1 + top2 : top1;
        }
        barrier();
        for (uint g = tid; g < pc.n_group; g += WG) {
            const float v = gkey[g];
            uint rank = 0u;
            for (uint h = 0u; h < pc.n_group && rank < pc.topk_group; h++)
                rank += (gkey[h] > v || (gkey[h] == v && h < g)) ? 1u : 0u;
            gkeep[g] = rank < pc.topk_group ? 1u : 0u;
        }
        barrier();
        for (uint e = tid; e < E; e += WG)
            if (gkeep[e / gs] == 0u) set_key(e, NEG_INF);
        barrier();
    }

    // Top-k by rank. Excluded experts hold -inf and every allowed key is finite, so they never place
    // (validation guarantees k allowed experts). Ranking costs each invocation E / WG times E keys at worst
    // (keys ascending with the id, where no count stops early), so past RANK_MAX experts the k rounds of an
    // argmax take over, a chosen expert leaving the race.
    if (E <= RANK_MAX) {
        for (uint e = tid; e < E; e += WG) {
            const float v = key_at(e);
            if (v == NEG_INF) continue;
            const uint rank = rank_of(v, e, (E + 3u) & ~3u, k);
            if (rank < k) sel[rank] = e;
        }
        barrier();
    } else {
        for (uint j = 0u; j < k; j++) {
            float bv = NEG_INF;
            uint bi = NONE;
            for (uint e = tid; e < E; e += WG) {
                const float v = key_at(e);
                if (v > bv) { bv = v; bi = e; }
            }
            wg_argmax(bv, bi);
            if (tid == 0u) {
                sel[j] = bi;
                if (bi < E) set_key(bi, NEG_INF);
            }
            barrier();
        }
    }

    // Weights: the scores of the chosen experts, summed in slot order for the renormalisation.
    if (tid < k) {
        sel[tid] = min(sel[tid], E - 1u);
        sel_score[tid] = score_of(logit_at(sel[tid]));
    }
    barrier();
    if (tid < k) {
        float sum = 0.0;
        for (uint j = 0u; j < k; j++) sum += sel_score[j];
        float w = sel_score[tid];
        if (pc.renormalize != 0u && sum > 0.0) w /= sum;
        ids_out[pc.i_off + t * pc.i_stride + tid] = sel[tid];
        w_out[pc.w_off + t * pc.w_stride + tid] = floatBitsToUint(w * pc.scaling);
    }
}

void main()
{
    const uint t = token_row();
    if (t >= pc.m) return;
    route_token(t);
    if (!GROUP) return;
    if (pc.m == 1u) { // the only workgroup; slot_id reads sel[], which plan_in_one's first barrier publishes
        plan_in_one(gl_LocalInvocationID.x);
        return;
    }
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
