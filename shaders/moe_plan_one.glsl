// A decode plan (at most 256 slots, one chunk) built by one workgroup of 256 invocations: the plan layout of
// include/fp8_moe.h, word for word what the four grouping passes of moe_group.comp build. Shared by
// moe_group.comp (PASS 4) and moe_route.comp (GROUP: routing and grouping in one dispatch). The includer
// provides: the plan[] buffer; PS, its push block, with m, top_k, experts, row_align, rows, tiles, slots and
// base (the plan's first word); uint slot_id(uint s), the raw expert id of slot s; and the shared arrays
// hist[] (>= experts), sid[256], part[256] (uvec3) and part_sum[16] (uvec3).

uint counts_at() { return PS.base + 16u; }
uint offsets_at() { return counts_at() + PS.experts; }
uint active_at() { return offsets_at() + PS.experts + 1u; }
uint row_token_at() { return active_at() + PS.experts; }
uint row_slot_at() { return row_token_at() + PS.rows; }
uint slot_row_at() { return row_slot_at() + PS.rows; }
uint tile_expert_at() { return slot_row_at() + PS.slots; }

// The expert of slot s, or NONE when its id is outside [0, E) (read as unsigned, negatives are huge).
uint slot_expert(uint s)
{
    const uint id = slot_id(s);
    return id < PS.experts ? id : NONE;
}

// The header words, from the totals.
void write_header(uint total, uint nactive, uint counted)
{
    const uint dropped = PS.slots - counted;
    plan[PS.base + H_MAGIC] = PLAN_MAGIC;
    plan[PS.base + H_STATUS] = dropped != 0u ? uint(ST_EXPERT_ID) : 0u;
    plan[PS.base + H_M] = PS.m;
    plan[PS.base + H_TOP_K] = PS.top_k;
    plan[PS.base + H_EXPERTS] = PS.experts;
    plan[PS.base + H_ROW_ALIGN] = PS.row_align;
    plan[PS.base + H_ROWS] = PS.rows;
    plan[PS.base + H_TOTAL_ROWS] = total;
    plan[PS.base + H_ACTIVE] = nactive;
    plan[PS.base + H_DROPPED] = dropped;
    for (uint i = 10u; i < 16u; i++) plan[PS.base + i] = 0u;
    if (dropped != 0u) moe_error(ST_EXPERT_ID);
}

// One expert's share of a run's sums: padded rows, active experts, counted slots.
uvec3 run_sums(uint count, uint align) { return uvec3((count + align - 1u) / align * align, count != 0u ? 1u : 0u, count); }

// Each of the 256 invocations owns a contiguous run of experts with sums `mine` (run_sums added up); `before`
// gets the sums of the runs before its own, `all` those of every run. Sixteen partial sums of sixteen runs
// each, then each invocation adds the partial sums before its own and the runs before it in its sixteen: one
// invocation walking all 256 runs (or every invocation doing so) cost microseconds of a one-token layer on
// the H100. Barriers inside: call from uniform control flow.
void scan_runs(uint tid, uvec3 mine, out uvec3 before, out uvec3 all)
{
    part[tid] = mine;
    barrier();
    if (tid < 16u) {
        uvec3 sum = uvec3(0u);
        for (uint i = 0u; i < 16u; i++) sum += part[tid * 16u + i];
        part_sum[tid] = sum;
    }
    barrier();
    before = all = uvec3(0u);
    for (uint i = 0u; i < 16u; i++) {
        const uvec3 v = part_sum[i];
        if (i < tid / 16u) before += v;
        all += v;
    }
    for (uint i = tid & ~15u; i < tid; i++) before += part[i];
}

// Every step for at most 256 slots in one workgroup. hist holds the counts, then the group offsets.
void plan_in_one(uint tid)
{
    const uint E = PS.experts, A = PS.row_align;
    for (uint e = tid; e < E; e += 256u) hist[e] = 0u;
    for (uint r = tid; r < PS.rows; r += 256u) {
        plan[row_token_at() + r] = NONE;
        plan[row_slot_at() + r] = NONE;
    }
    barrier();
    const uint e_mine = tid < PS.slots ? slot_expert(tid) : NONE;
    sid[tid] = e_mine;
    if (e_mine != NONE) atomicAdd(hist[e_mine], 1u);
    barrier();
    // Offsets: contiguous runs of experts per invocation, scanned in invocation order.
    const uint per = (E + 255u) / 256u, e0 = min(tid * per, E), e1 = min(e0 + per, E);
    uvec3 mine = uvec3(0u);
    for (uint e = e0; e < e1; e++) {
        const uint c = hist[e];
        plan[counts_at() + e] = c;
        mine += run_sums(c, A);
    }
    uvec3 before, all;
    scan_runs(tid, mine, before, all);
    uint off = before.x, pos = before.y;
    const uint total = all.x, nact = all.y;
    if (tid == 0u) {
        plan[offsets_at() + E] = total;
        write_header(total, nact, all.z);
    }
    for (uint e = e0; e < e1; e++) {
        const uint c = hist[e];
        plan[offsets_at() + e] = off;
        if (c != 0u) plan[active_at() + pos++] = e;
        hist[e] = off;
        off += run_sums(c, A).x;
    }
    for (uint i = nact + tid; i < E; i += 256u) plan[active_at() + i] = NONE;
    // The padding rows written above must land before the scatter's writes to the same rows.
    memoryBarrierBuffer();
    barrier();
    if (e_mine != NONE) {
        uint rank = 0u;
        for (uint i = 0u; i < tid; i++) rank += sid[i] == e_mine ? 1u : 0u;
        const uint r = hist[e_mine] + rank;
        if (r < PS.rows) {
            plan[row_token_at() + r] = tid / PS.top_k;
            plan[row_slot_at() + r] = tid;
            plan[slot_row_at() + tid] = r;
        }
    } else if (tid < PS.slots) {
        plan[slot_row_at() + tid] = NONE;
    }
    for (uint t = tid; t < PS.tiles; t += 256u) {
        const uint r = t * A;
        uint owner = NONE;
        if (r < total) {
            uint lo = 0u, hi = E - 1u;
            while (lo < hi) {
                const uint mid = (lo + hi) / 2u;
                if ((mid + 1u < E ? hist[mid + 1u] : total) > r) hi = mid; else lo = mid + 1u;
            }
            owner = lo;
        }
        plan[tile_expert_at() + t] = owner;
    }
}

