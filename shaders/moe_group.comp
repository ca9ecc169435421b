#version 450
// MoE grouping on the device, in four passes over the plan (PASS, a specialization constant), each a dispatch
// of its own with a barrier between:
//   0 histogram: per 256-slot chunk c, count[e][c] into the plan workspace; also every row_token/row_slot := NONE
//   1 count:     per expert, the exclusive prefix over chunks (in place) and counts[e]
//   2 scan:      one workgroup: offsets (groups padded to row_align), active list, header words
//   3 scatter:   slot s of chunk c goes to row offsets[e] + prefix[e][c] + (earlier slots of c with expert e),
//                which orders each group by ascending slot; then tile_expert by binary search over offsets
//   4 all:       plans of one chunk (decode): the four steps in one workgroup, one dispatch
// Integer atomics appear only in the histogram, whose result does not depend on their order, so a plan is a
// pure function of the ids. Ids outside [0, E) are dropped and raise FP8_ERR_EXPERT_ID.
#include "moe_common.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint PASS = 0;
layout(constant_id = 1) const uint HB = 256;   // shared histogram slots (pass 0), >= E

layout(std430, set = 0, binding = MB_X) readonly buffer BI { uint ids[]; };
layout(std430, set = 0, binding = MB_PLAN) buffer BP { uint plan[]; };

layout(push_constant) uniform Push {
    uint m, top_k, experts, row_align;
    uint rows, tiles, slots, chunks;
    uint base;                 // word index of the plan's first word
    uint ids_off, ids_stride;  // elements
    uint grid_x;               // workgroups per grid row
} pc;

shared uint hist[PASS == 0u || PASS == 4u ? HB : 1u];
shared uint sid[256];
shared uvec3 part[PASS == 2u || PASS == 4u ? 256u : 1u], part_sum[PASS == 2u || PASS == 4u ? 16u : 1u];

uint slot_id(uint s) { return ids[pc.ids_off + (s / pc.top_k) * pc.ids_stride + s % pc.top_k]; }
#define PS pc
#include "moe_plan_one.glsl"
uint ws_at() { return tile_expert_at() + pc.tiles; }

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint w = gl_WorkGroupID.y * pc.grid_x + gl_WorkGroupID.x;
    const uint E = pc.experts, C = pc.chunks;
    if (PASS == 4u) {
        plan_in_one(tid);
        return;
    }

    if (PASS == 0u) {
        if (w < C) {
            for (uint e = tid; e < E; e += 256u) hist[e] = 0u;
            barrier();
            const uint s = w * 256u + tid;
            if (s < pc.slots) {
                uint e = slot_expert(s);
                if (e != NONE) atomicAdd(hist[e], 1u);
            }
            barrier();
            for (uint e = tid; e < E; e += 256u) plan[ws_at() + e * C + w] = hist[e];
        }
        const uint r = w * 256u + tid;
        if (r < pc.rows) {
            plan[row_token_at() + r] = NONE;
            plan[row_slot_at() + r] = NONE;
        }
    } else if (PASS == 1u) {
        const uint e = w * 256u + tid;
        if (e < E) {
            uint run = 0u;
            for (uint c = 0u; c < C; c++) {
                const uint at = ws_at() + e * C + c;
                const uint h = plan[at];
                plan[at] = run;
                run += h;
            }
            plan[counts_at() + e] = run;
        }
    } else if (PASS == 2u) {
        // Each invocation owns a contiguous run of experts; the runs' sums are scanned in order.
        const uint A = pc.row_align;
        const uint per = (E + 255u) / 256u, e0 = min(tid * per, E), e1 = min(e0 + per, E);
        uvec3 mine = uvec3(0u);
        for (uint e = e0; e < e1; e++) mine += run_sums(plan[counts_at() + e], A);
        uvec3 before, all;
        scan_runs(tid, mine, before, all);
        if (tid == 0u) {
            plan[offsets_at() + E] = all.x;
            write_header(all.x, all.y, all.z);
        }
        uint off = before.x, pos = before.y;
        for (uint e = e0; e < e1; e++) {
            const uint c = plan[counts_at() + e];
            plan[offsets_at() + e] = off;
            off += run_sums(c, A).x;
            if (c != 0u) plan[active_at() + pos++] = e;
        }
        for (uint i = all.y + tid; i < E; i += 256u) plan[active_at() + i] = NONE;
    } else {
        if (w < C) {
            const uint s = w * 256u + tid;
            const uint e = s < pc.slots ? slot_expert(s) : NONE;
            sid[tid] = e;
            barrier();
            if (e != NONE) {
                uint rank = plan[ws_at() + e * C + w];
                for (uint i = 0u; i < tid; i++) rank += sid[i] == e ? 1u : 0u;
                const uint r = plan[offsets_at() + e] + rank;
                if (r < pc.rows) {
                    plan[row_token_at() + r] = s / pc.top_k;
                    plan[row_slot_at() + r] = s;
                    plan[slot_row_at() + s] = r;
                }
            } else if (s < pc.slots) {
                plan[slot_row_at() + s] = NONE;
            }
        }
        const uint t = w * 256u + tid;
        if (t < pc.tiles) {
            const uint r = t * pc.row_align, total = plan[pc.base + H_TOTAL_ROWS];
            uint owner = NONE;
            if (r < total) {
                // The first expert whose group ends past r (empty groups end where they start).
                uint lo = 0u, hi = E - 1u;
                while (lo < hi) {
                    const uint mid = (lo + hi) / 2u;
                    if (plan[offsets_at() + mid + 1u] > r) hi = mid; else lo = mid + 1u;
                }
                owner = lo;
            }
            plan[tile_expert_at() + t] = owner;
        }
    }
}
