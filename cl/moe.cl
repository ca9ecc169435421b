/* MoE pieces around the grouped GEMM: routing, grouping into a plan, activation quantization and combine.
 * Dtypes are kernel arguments (these kernels are small or bandwidth-bound: one build serves every format).
 * MOE_FP64 (where cl_khr_fp64 is there) computes routing scores and combine sums in double, as the CPU oracle
 * does; without it they are f32 (routing) and float-float pairs (combine). Data errors go to the device error
 * word (and the plan's status word) with compare-and-swap from 0: the first one wins. */

#pragma OPENCL FP_CONTRACT OFF

#ifdef MOE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double rt;
#else
typedef float rt;
#endif

inline void moe_raise(volatile global int *word, int status) { atomic_cmpxchg(word, 0, status); }

/* Whether the plan header describes the plan the host resolved (a plan is caller memory). */
inline bool moe_header_ok(global const uint *h, const fp8k_moe_plan *pl)
{
    return h[FP8K_MOE_H_MAGIC] == FP8K_MOE_MAGIC && h[FP8K_MOE_H_M] == pl->m && h[FP8K_MOE_H_TOP_K] == pl->top_k &&
           h[FP8K_MOE_H_EXPERTS] == pl->experts && h[FP8K_MOE_H_ROW_ALIGN] == pl->row_align &&
           h[FP8K_MOE_H_ROWS] == pl->rows;
}

/* ------------------------------------------------------------------------------------------------
 * Routing: one work-group per token.
 * ---------------------------------------------------------------------------------------------- */
#define RL FP8K_MOE_ROUTE_LANES

inline rt moe_score(rt l, uint scoring, rt mx, rt z)
{
    return scoring == 0 ? exp(l - mx) / z : (rt)1 / ((rt)1 + exp(-l));
}

/* The winner of two candidates: larger value, lower id on ties; NONE ids never win. */
inline bool moe_better(rt v, uint i, rt bv, uint bi)
{
    return i != FP8K_MOE_NONE && (bi == FP8K_MOE_NONE || v > bv || (v == bv && i < bi));
}

/* Index of the largest of vals[0..n) (NaN entries are out of the race), lowest index on ties; every lane
 * gets it. Uses red_v/red_i and ends with a barrier. */
inline uint moe_argmax(local const rt *vals, uint n, local rt *red_v, local uint *red_i)
{
    const uint lid = get_local_id(0);
    rt bv = 0;
    uint bi = FP8K_MOE_NONE;
    for (uint i = lid; i < n; i += RL) {
        const rt v = vals[i];
        if (!isnan(v) && moe_better(v, i, bv, bi)) { bv = v; bi = i; }
    }
    red_v[lid] = bv;
    red_i[lid] = bi;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = RL / 2; s > 0; s >>= 1) {
        if (lid < s && moe_better(red_v[lid + s], red_i[lid + s], red_v[lid], red_i[lid])) {
            red_v[lid] = red_v[lid + s];
            red_i[lid] = red_i[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const uint r = red_i[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

kernel __attribute__((reqd_work_group_size(RL, 1, 1)))
void fp8_moe_route(global const uchar *L, global const float *B, global int *IDS, global float *WTS,
                   volatile global int *err, const fp8k_moe_route_params p, local rt *keys, local rt *gkeys)
{
    local rt red_v[RL];
    local uint red_i[RL];
    local int bad;
    local rt wsel[64];
    local uint isel[64];
    const uint t = get_group_id(0), lid = get_local_id(0), E = p.experts, K = p.top_k;
    global const uchar *lrow = L + p.l_off;
    const ulong l0 = (ulong)t * p.l_stride;
    global const float *bias = (global const float *)((global const uchar *)B + p.b_off);
    global int *ids = (global int *)((global uchar *)IDS + p.ids_off) + (ulong)t * p.ids_stride;
    global float *wts = (global float *)((global uchar *)WTS + p.w_off) + (ulong)t * p.w_stride;

    if (lid == 0) bad = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    rt mx = -INFINITY;
    int nf = 0;
    for (uint i = lid; i < E; i += RL) {
        const float l = fp8k_load(lrow, l0 + i, p.l_dtype);
        if (!isfinite(l) || (p.has_bias && !isfinite(bias[i]))) nf = 1;
        else mx = fmax(mx, (rt)l);
    }
    if (nf) atomic_or(&bad, 1);
    red_v[lid] = mx;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = RL / 2; s > 0; s >>= 1) {
        if (lid < s) red_v[lid] = fmax(red_v[lid], red_v[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    mx = red_v[0];
    const int token_bad = bad;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (token_bad) { /* the safe answer: valid ids, no weight */
        for (uint j = lid; j < K; j += RL) {
            ids[j] = (int)j;
            wts[j] = 0.0f;
        }
        if (lid == 0) moe_raise(err, FP8K_ERR_NOT_FINITE);
        return;
    }

    /* Softmax denominator: a fixed tree, so every run sums in the same order. */
    rt z = 1;
    if (p.scoring == 0) {
        rt part = 0;
        for (uint i = lid; i < E; i += RL) part += exp((rt)fp8k_load(lrow, l0 + i, p.l_dtype) - mx);
        red_v[lid] = part;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint s = RL / 2; s > 0; s >>= 1) {
            if (lid < s) red_v[lid] += red_v[lid + s];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        z = red_v[0];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    /* Selection keys: the bias selects, it never weighs. */
    for (uint i = lid; i < E; i += RL) {
        rt key = moe_score((rt)fp8k_load(lrow, l0 + i, p.l_dtype), p.scoring, mx, z);
        if (p.has_bias) key += (rt)bias[i];
        keys[i] = key;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    /* Group limit: score each group, keep the best topk_group (marked NaN when taken), then take the
     * experts of the other groups out of the race (NaN keys never win). */
    if (p.n_group > 1) {
        const uint gs = E / p.n_group;
        for (uint g = lid; g < p.n_group; g += RL) {
            rt top1 = -INFINITY, top2 = -INFINITY;
            for (uint i = 0; i < gs; i++) {
                const rt v = keys[g * gs + i];
                if (v > top1) { top2 = top1; top1 = v; }
                else if (v > top2) top2 = v;
            }
            gkeys[g] = p.group_max || gs == 1 ? top1 : top1 + top2;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint j = 0; j < p.topk_group; j++) {
            const uint g = moe_argmax(gkeys, p.n_group, red_v, red_i);
            if (lid == 0 && g < p.n_group) gkeys[g] = NAN;
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        for (uint i = lid; i < E; i += RL)
            if (!isnan(gkeys[i / gs])) keys[i] = NAN;
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    for (uint j = 0; j < K; j++) {
        const uint id = moe_argmax(keys, E, red_v, red_i);
        if (lid == 0) {
            const uint safe = id < E ? id : j; /* validation leaves enough experts: never taken */
            isel[j] = safe;
            wsel[j] = moe_score((rt)fp8k_load(lrow, l0 + safe, p.l_dtype), p.scoring, mx, z);
            keys[safe] = NAN;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        rt sum = 0;
        for (uint j = 0; j < K; j++) sum += wsel[j];
        for (uint j = 0; j < K; j++) {
            rt v = wsel[j];
            if (p.renormalize && sum > 0) v /= sum;
            ids[j] = (int)isel[j];
            wts[j] = (float)(v * (rt)p.scaling);
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * Grouping: a counting sort in four launches, each deterministic (one launch for plans of one chunk).
 *   hist     per chunk of 256 slots, each expert's count (workspace[e * C + c])
 *   scan     counts, offsets (groups padded to row_align), active list, header; workspace[e * C + c] becomes
 *            the first row of chunk c's slots of expert e
 *   fill     row_token/row_slot NONE everywhere, tile_expert from offsets
 *   scatter  each slot to its row: chunk base plus its rank among the chunk's earlier slots of that expert
 * ---------------------------------------------------------------------------------------------- */
#define CH FP8K_MOE_CHUNK

/* Slot s's expert id, or NONE when it is outside [0, E). */
inline uint moe_slot_id(global const int *ids, ulong stride, uint k, uint s, uint E)
{
    const int id = ids[(ulong)(s / k) * stride + s % k];
    return id >= 0 && (uint)id < E ? (uint)id : FP8K_MOE_NONE;
}

/* The four steps as functions of (chunk c or index i, lane): the four kernels below run one each, and a plan
 * of one chunk (decode) runs them all in one work-group (fp8_moe_group_one), with barriers between. */
inline void moe_group_hist_step(global const int *ids, ulong ids_stride, global uint *P, const fp8k_moe_plan *pl,
                                local uint *hist, uint c, uint lid)
{
    const uint E = pl->experts, C = pl->chunks;
    for (uint e = lid; e < E; e += CH) hist[e] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    const uint s = c * CH + lid;
    if (s < pl->slots) {
        const uint id = moe_slot_id(ids, ids_stride, pl->top_k, s, E);
        if (id != FP8K_MOE_NONE) atomic_inc(&hist[id]); /* a count: the order of increments cannot matter */
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    global uint *ws = P + pl->base + pl->workspace;
    for (uint e = lid; e < E; e += CH) ws[(ulong)e * C + c] = hist[e];
}

inline void moe_group_scan_step(global uint *P, const fp8k_moe_plan *pl, volatile global int *err, local uint *part_rows,
                                local uint *part_active, local uint *part_count, uint lid)
{
    const uint E = pl->experts, C = pl->chunks, A = pl->row_align;
    global uint *w = P + pl->base;
    global uint *ws = w + pl->workspace, *counts = w + pl->counts, *offsets = w + pl->offsets, *active = w + pl->active;
    /* Each lane owns a contiguous block of experts throughout (so it reads back only what it wrote); the
     * blocks' padded rows, active experts and counts are then scanned across lanes in order. */
    const uint per = (E + CH - 1) / CH;
    const uint e0 = min(lid * per, E), e1 = min(e0 + per, E);
    uint rows = 0, act = 0, cnt = 0;
    for (uint e = e0; e < e1; e++) {
        /* The expert's count, and each chunk's exclusive prefix within the expert. */
        uint n = 0;
        for (uint c = 0; c < C; c++) {
            const uint v = ws[(ulong)e * C + c];
            ws[(ulong)e * C + c] = n;
            n += v;
        }
        counts[e] = n;
        rows += (n + A - 1) / A * A;
        act += n != 0;
        cnt += n;
    }
    part_rows[lid] = rows;
    part_active[lid] = act;
    part_count[lid] = cnt;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        uint r = 0, a = 0, n = 0;
        for (uint i = 0; i < CH; i++) {
            const uint pr = part_rows[i], pa = part_active[i], pn = part_count[i];
            part_rows[i] = r;
            part_active[i] = a;
            part_count[i] = n;
            r += pr;
            a += pa;
            n += pn;
        }
        offsets[E] = r;
        const uint dropped = pl->slots - n;
        w[FP8K_MOE_H_MAGIC] = FP8K_MOE_MAGIC;
        w[FP8K_MOE_H_STATUS] = dropped ? (uint)FP8K_ERR_EXPERT_ID : 0u;
        w[FP8K_MOE_H_M] = pl->m;
        w[FP8K_MOE_H_TOP_K] = pl->top_k;
        w[FP8K_MOE_H_EXPERTS] = E;
        w[FP8K_MOE_H_ROW_ALIGN] = A;
        w[FP8K_MOE_H_ROWS] = pl->rows;
        w[FP8K_MOE_H_TOTAL_ROWS] = r;
        w[FP8K_MOE_H_ACTIVE] = a;
        w[FP8K_MOE_H_DROPPED] = dropped;
        for (uint i = 10; i < FP8K_MOE_HEADER_WORDS; i++) w[i] = 0;
        if (dropped) moe_raise(err, FP8K_ERR_EXPERT_ID);
        part_count[0] = a; /* every lane needs the active count below */
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const uint nactive = part_count[0];
    uint row = part_rows[lid], a = part_active[lid];
    for (uint e = e0; e < e1; e++) {
        const uint n = counts[e];
        offsets[e] = row;
        if (n) active[a++] = e;
        for (uint c = 0; c < C; c++) ws[(ulong)e * C + c] += row;
        row += (n + A - 1) / A * A;
    }
    for (uint i = nactive + lid; i < E; i += CH) active[i] = FP8K_MOE_NONE;
}

/* Row i: row_token/row_slot NONE; tile i: its expert from offsets. */
inline void moe_group_fill_step(global uint *P, const fp8k_moe_plan *pl, uint i)
{
    global uint *w = P + pl->base;
    if (i < pl->rows) {
        w[pl->row_token + i] = FP8K_MOE_NONE;
        w[pl->row_slot + i] = FP8K_MOE_NONE;
    }
    if (i < pl->tiles) {
        global const uint *offsets = w + pl->offsets;
        const uint r = i * pl->row_align, E = pl->experts;
        uint owner = FP8K_MOE_NONE;
        if (r < offsets[E]) {
            /* The last expert whose group starts at or before r: empty groups start where the next one
             * does, so the last such is the one whose rows hold r. */
            uint lo = 0, hi = E - 1;
            while (lo < hi) {
                const uint mid = lo + (hi - lo + 1) / 2;
                if (offsets[mid] <= r) lo = mid;
                else hi = mid - 1;
            }
            owner = lo;
        }
        w[pl->tile_expert + i] = owner;
    }
}

inline void moe_group_scatter_step(global const int *ids, ulong ids_stride, global uint *P, const fp8k_moe_plan *pl,
                                   local uint *chunk_ids, uint c, uint lid)
{
    const uint E = pl->experts;
    const uint s = c * CH + lid;
    const uint id = s < pl->slots ? moe_slot_id(ids, ids_stride, pl->top_k, s, E) : FP8K_MOE_NONE;
    chunk_ids[lid] = id;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (s >= pl->slots) return;
    global uint *w = P + pl->base;
    if (id == FP8K_MOE_NONE) {
        w[pl->slot_row + s] = FP8K_MOE_NONE; /* dropped: never used as an index */
        return;
    }
    uint rank = 0;
    for (uint j = 0; j < lid; j++) rank += chunk_ids[j] == id;
    const uint row = w[pl->workspace + (ulong)id * pl->chunks + c] + rank;
    w[pl->row_token + row] = s / pl->top_k;
    w[pl->row_slot + row] = s;
    w[pl->slot_row + s] = row;
}

kernel __attribute__((reqd_work_group_size(CH, 1, 1)))
void fp8_moe_group_hist(global const int *IDS, ulong ids_off, ulong ids_stride, global uint *P, const fp8k_moe_plan pl,
                        local uint *hist)
{
    global const int *ids = (global const int *)((global const uchar *)IDS + ids_off);
    moe_group_hist_step(ids, ids_stride, P, &pl, hist, get_group_id(0), get_local_id(0));
}

kernel __attribute__((reqd_work_group_size(CH, 1, 1)))
void fp8_moe_group_scan(global uint *P, const fp8k_moe_plan pl, volatile global int *err)
{
    local uint part_rows[CH], part_active[CH], part_count[CH];
    moe_group_scan_step(P, &pl, err, part_rows, part_active, part_count, get_local_id(0));
}

kernel void fp8_moe_group_fill(global uint *P, const fp8k_moe_plan pl)
{
    moe_group_fill_step(P, &pl, get_global_id(0));
}

kernel __attribute__((reqd_work_group_size(CH, 1, 1)))
void fp8_moe_group_scatter(global const int *IDS, ulong ids_off, ulong ids_stride, global uint *P, const fp8k_moe_plan pl)
{
    local uint chunk_ids[CH];
    global const int *ids = (global const int *)((global const uchar *)IDS + ids_off);
    moe_group_scatter_step(ids, ids_stride, P, &pl, chunk_ids, get_group_id(0), get_local_id(0));
}

/* A plan of one chunk (decode: up to 256 slots) in one work-group and one launch instead of four: on NVIDIA
 * each launch costs the host about 6 us, and the four kernels measured 23 us against Vulkan's one-pass 7 us.
 * The steps are the kernels' own, so the plan is the same, word for word; the global fences make one
 * step's writes visible to the next step's lanes (one work-group: nothing else reads them meanwhile). */
kernel __attribute__((reqd_work_group_size(CH, 1, 1)))
void fp8_moe_group_one(global const int *IDS, ulong ids_off, ulong ids_stride, global uint *P, const fp8k_moe_plan pl,
                       volatile global int *err, local uint *hist)
{
    local uint part_rows[CH], part_active[CH], part_count[CH];
    const uint lid = get_local_id(0);
    global const int *ids = (global const int *)((global const uchar *)IDS + ids_off);
    moe_group_hist_step(ids, ids_stride, P, &pl, hist, 0, lid);
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    moe_group_scan_step(P, &pl, err, part_rows, part_active, part_count, lid);
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    const uint n = max(pl.rows, pl.tiles);
    for (uint i = lid; i < n; i += CH) moe_group_fill_step(P, &pl, i);
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    moe_group_scatter_step(ids, ids_stride, P, &pl, part_rows, 0, lid);
}

/* ------------------------------------------------------------------------------------------------
 * Activation quantization: fp8_quantize's F32 rule per 1 x block_cols block, bit-exact with the host.
 * A group takes cb blocks of one row (grid dimension 0: which blocks; 1: the row), so that a decode layer's
 * one or few rows spread over many compute units; every group checks the whole row for NaN and Inf.
 * ---------------------------------------------------------------------------------------------- */
#define QL FP8K_MOE_QUANT_LANES

/* a / b rounded to nearest, whatever the precision of the device's division: the residual of a quotient
 * within an ulp or two is exact with fma, and a quotient is never exactly halfway between two floats. */
inline float moe_div_rn(float a, float b)
{
    float q = a / b;
    for (int i = 0; i < 2; i++) {
        const float r = fma(-q, b, a);
        if (r == 0.0f || !isfinite(q)) break;
        const float qn = nextafter(q, (r > 0.0f) == (b > 0.0f) ? INFINITY : -INFINITY);
        if (fabs(fma(-qn, b, a)) < fabs(r)) q = qn;
        else break;
    }
    return q;
}

inline float moe_fp8_max(uint dt)
{
    switch (dt) {
    case FP8K_E4M3FN: return 448.0f;
    case FP8K_E4M3FNUZ: return 240.0f;
    default: return 57344.0f;
    }
}

/* A finite float to an FP8 code, round to nearest even, saturating: lib/format/codec.c's rule. */
inline uint moe_fp8_encode(float v, uint dt)
{
    const uint mbits = dt == FP8K_E4M3FN || dt == FP8K_E4M3FNUZ ? 3u : 2u;
    const uint bias = dt == FP8K_E4M3FN ? 7u : dt == FP8K_E5M2 ? 15u : dt == FP8K_E4M3FNUZ ? 8u : 16u;
    const uint maxcode = dt == FP8K_E4M3FN ? 0x7eu : dt == FP8K_E5M2 ? 0x7bu : 0x7fu;
    const bool fnuz = dt == FP8K_E4M3FNUZ || dt == FP8K_E5M2FNUZ;
    const uint u = as_uint(v), sign = u >> 31, a = u & 0x7fffffffu;
    uint code;
    if (a < ((128u - bias) << 23)) {
        /* below the smallest normal: count subnormal quanta (exact scaling by a power of two), rint is
         * round-half-even; a carry into the smallest normal gives its code. */
        code = (uint)rint(as_float(a) * as_float((127u + bias + mbits - 1u) << 23));
    } else {
        const uint sh = 23u - mbits;
        code = ((a + (1u << (sh - 1u)) - 1u + ((a >> sh) & 1u)) >> sh) - ((127u - bias) << mbits);
    }
    if (a >= 0x7f800000u || code > maxcode) code = maxcode;
    if (code == 0u) return fnuz ? 0u : sign << 7;
    return (sign << 7) | code;
}

kernel __attribute__((reqd_work_group_size(QL, 1, 1)))
void fp8_moe_quantize(global const uchar *SRC, global uchar *DST, global float *SC, global uint *P,
                      volatile global int *err, const fp8k_moe_quant_params p)
{
    local float red[QL];
    local int bad;
    const uint r = get_group_id(1), lid = get_local_id(0);
    const uint first = get_group_id(0) * p.cb, last = min(p.blocks, first + p.cb); /* this group's blocks */
    if (first >= p.blocks) return;
    global uint *w = P + p.plan.base;
    if (p.has_plan) {
        /* Every group checks the header itself (no group may trust what another found). */
        if (!moe_header_ok(w, &p.plan) || w[FP8K_MOE_H_TOTAL_ROWS] > p.plan.rows) {
            if (lid == 0) moe_raise(err, FP8K_ERR_INVALID_ARGUMENT);
            return;
        }
        if (r >= w[FP8K_MOE_H_TOTAL_ROWS] || w[p.plan.row_token + r] == FP8K_MOE_NONE) return; /* never read */
    }
    global const uchar *src = SRC + p.src_off;
    const ulong s0 = (ulong)r * p.src_stride;
    global uchar *dst = DST + p.dst_off + (ulong)r * p.dst_stride;
    global float *sc = (global float *)((global uchar *)SC + p.sc_off) + (ulong)r * p.sc_stride;

    if (lid == 0) bad = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    int nf = 0;
    for (uint c = lid; c < p.cols; c += QL) nf |= !isfinite(fp8k_load(src, s0 + c, p.src_dtype));
    if (nf) atomic_or(&bad, 1);
    barrier(CLK_LOCAL_MEM_FENCE);
    if (bad) { /* the whole row, as fp8_quantize refuses the whole source: each group its own blocks */
        for (uint c = first * p.block_cols + lid; c < min(p.cols, last * p.block_cols); c += QL) dst[c] = 0;
        for (uint b = first + lid; b < last; b += QL) sc[b] = 1.0f;
        if (lid == 0 && first == 0) {
            moe_raise(err, FP8K_ERR_NOT_FINITE);
            if (p.has_plan) moe_raise((volatile global int *)(w + FP8K_MOE_H_STATUS), FP8K_ERR_NOT_FINITE);
        }
        return;
    }
    const float qmax = moe_fp8_max(p.dst_dtype);
    for (uint b = first; b < last; b++) {
        const uint c0 = b * p.block_cols, c1 = min(c0 + p.block_cols, p.cols);
        float amax = 0.0f;
        for (uint c = c0 + lid; c < c1; c += QL) amax = fmax(amax, fabs(fp8k_load(src, s0 + c, p.src_dtype)));
        red[lid] = amax;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint s = QL / 2; s > 0; s >>= 1) {
            if (lid < s) red[lid] = fmax(red[lid], red[lid + s]);
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        amax = red[0];
        barrier(CLK_LOCAL_MEM_FENCE);
        const float s = amax > 0.0f ? moe_div_rn(amax, qmax) : 1.0f;
        if (lid == 0) sc[b] = s;
        for (uint c = c0 + lid; c < c1; c += QL) {
            const float q = s != 0.0f ? moe_div_rn(fp8k_load(src, s0 + c, p.src_dtype), s) : 0.0f;
            dst[c] = (uchar)moe_fp8_encode(q, p.dst_dtype);
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * Combine: one work-item per output element, j ascending then the shared row, no atomics.
 * ---------------------------------------------------------------------------------------------- */
#ifndef MOE_FP64
/* s + c with the rounding error of the sum kept in c (Knuth's two-sum). */
inline float2 moe_ff_add(float2 x, float b)
{
    const float s = x.x + b, z = s - x.x;
    return (float2)(s, x.y + ((x.x - (s - z)) + (b - z)));
}
#endif

kernel __attribute__((reqd_work_group_size(FP8K_MOE_COMBINE_LANES, 1, 1)))
void fp8_moe_combine(global const uchar *ROWS, global const float *WTS, global const uchar *SH, global uchar *Y,
                     global uint *P, volatile global int *err, const fp8k_moe_combine_params p)
{
    const uint h = get_global_id(0), t = get_global_id(1);
    global uint *w = P + p.plan.base;
    if (!moe_header_ok(w, &p.plan)) {
        if (get_local_id(0) == 0) moe_raise(err, FP8K_ERR_INVALID_ARGUMENT);
        return;
    }
    if (h >= p.hidden || t >= p.plan.m) return;
    global const float *wts = (global const float *)((global const uchar *)WTS + p.w_off) + (ulong)t * p.w_stride;
    global const uint *slot_row = w + p.plan.slot_row + (ulong)t * p.plan.top_k;
    global const uchar *rows = ROWS + p.r_off;
#ifdef MOE_FP64
    double acc = 0.0;
#else
    float2 acc = (float2)(0.0f, 0.0f);
#endif
    for (uint j = 0; j < p.plan.top_k; j++) {
        const uint r = slot_row[j];
        if (r == FP8K_MOE_NONE) continue;
        if (r >= p.plan.rows) {
            moe_raise(err, FP8K_ERR_INVALID_ARGUMENT);
            moe_raise((volatile global int *)(w + FP8K_MOE_H_STATUS), FP8K_ERR_INVALID_ARGUMENT);
            continue;
        }
        const float wt = wts[j], v = fp8k_load(rows, (ulong)r * p.r_stride + h, p.r_dtype);
#ifdef MOE_FP64
        acc += (double)wt * (double)v; /* the product is exact in double, as on the CPU */
#else
        const float pr = wt * v;
        acc = moe_ff_add(acc, pr);
        acc.y += fma(wt, v, -pr);
#endif
    }
    if (p.s_dtype) {
        const float sv = fp8k_load(SH + p.s_off, (ulong)t * p.s_stride + h, p.s_dtype);
#ifdef MOE_FP64
        acc += (double)sv;
#else
        acc = moe_ff_add(acc, sv);
#endif
    }
#ifdef MOE_FP64
    const float out = (float)acc;
#else
    const float out = acc.x + acc.y;
#endif
    fp8k_store(Y + p.y_off, (ulong)t * p.y_stride + h, p.y_dtype, out);
}
