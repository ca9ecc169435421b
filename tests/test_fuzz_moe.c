/* fp8_moe_route and fp8_moe_group under random descriptors, on every device the build reaches (the CPU, and
 * Vulkan and OpenCL where they have one): shapes from zero to 2^31, expert counts past the limits, group limits
 * that do and do not divide, offsets and strides past any buffer or misaligned, dtypes valid and not, missing
 * and shared buffers, and buffer contents of random bytes (so NaN and Inf logits and expert ids outside [0,E)
 * turn up as data errors). Whatever the status, the call must not crash and must return a documented refusal,
 * run, or run with the documented data error. When it runs:
 *   - no byte outside the outputs (ids and weights; the plan's region) changes;
 *   - routing: every token's ids are distinct experts in [0,E), within topk_group groups where a group limit
 *     applies; weights are finite and not negative;
 *   - grouping: the plan is the one the ids define (fp8_moe.h): counts, dropped slots, offsets and padding,
 *     the active list, and every slot's row in ascending slot order within its expert's group.
 * FP8_TEST_FUZZ_ITERS=N changes the number of descriptors per device and call (default: 1500 on the CPU, 200
 * on others). */
#include "fuzz_util.h"

#include <math.h>
#include <string.h>

static test_rng rng = {0xD1B54A32D192ED03ull};
static uint32_t pick(uint32_t n) { return fuzz_pick(&rng, n); }

static uint32_t wild_dim(void)
{
    const uint32_t c = pick(30);
    if (c == 0) return 0;
    if (c == 1) return 0x80000000u + pick(4);
    if (c == 2) return 4096 + pick(3);
    return 1 + pick(300);
}
static size_t random_offset(void) { return fuzz_offset(&rng); }
static size_t random_stride(void) { return fuzz_stride(&rng); }
static fp8_dtype any_dtype(void) { return (fp8_dtype)pick(14); }
static bool documented(fp8_status st) { return fuzz_documented(st, true); }

#define NBUF 4

typedef struct fuzz_buffers {
    fp8_buffer *b[NBUF];
    uint8_t *before[NBUF];
    size_t size[NBUF];
} fuzz_buffers;

static void fill_buffers(fp8_device *dev, fuzz_buffers *f, bool tame, size_t tame_size)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < NBUF; i++) {
        if (!tame && !pick(8)) continue;
        f->size[i] = tame ? tame_size : pick(3) ? 1 + pick(8192) : 16 * (1 + (size_t)pick(600));
        if (fp8_buffer_create(dev, f->size[i], &f->b[i]) != FP8_OK) { f->size[i] = 0; continue; }
        f->before[i] = malloc(f->size[i]);
        for (size_t q = 0; q < f->size[i]; q += 8) {
            const uint64_t v = test_rng_next(&rng);
            memcpy(f->before[i] + q, &v, f->size[i] - q < 8 ? f->size[i] - q : 8);
        }
        CHECK_STATUS(fp8_buffer_write(f->b[i], 0, f->before[i], f->size[i]), FP8_OK);
    }
}

static void free_buffers(fuzz_buffers *f)
{
    for (int i = 0; i < NBUF; i++) {
        fp8_buffer_free(f->b[i]);
        free(f->before[i]);
    }
}

/* A [rows, cols] operand of elements of es bytes that the call may write. */
typedef struct out_region {
    int buffer;
    size_t offset, es, ld, rows, cols;
} out_region;

static bool in_region(const out_region *r, int buffer, size_t q)
{
    if (buffer != r->buffer || q < r->offset) return false;
    const size_t e = (q - r->offset) / r->es;
    return e / r->ld < r->rows && e % r->ld < r->cols;
}

/* Reads every buffer back into `after` (one per buffer, caller frees) and fails on a changed byte outside the
 * regions. */
static void check_untouched(const char *name, const char *what, int it, const fuzz_buffers *f,
                            const out_region *regions, int nregions, uint8_t *after[NBUF])
{
    for (int i = 0; i < NBUF; i++) {
        after[i] = NULL;
        if (!f->b[i]) continue;
        after[i] = malloc(f->size[i]);
        CHECK_STATUS(fp8_buffer_read(f->b[i], 0, after[i], f->size[i]), FP8_OK);
        for (size_t q = 0; q < f->size[i]; q++) {
            if (after[i][q] == f->before[i][q]) continue;
            bool inside = false;
            for (int r = 0; r < nregions && !inside; r++) inside = in_region(&regions[r], i, q);
            if (!inside) {
                CHECK(false, "%s: %s %d: byte %zu of buffer %d changed outside the outputs", name, what, it, q, i);
                break;
            }
        }
    }
}

static int index_of(const fuzz_buffers *f, const fp8_buffer *b)
{
    for (int i = 0; i < NBUF; i++)
        if (b && f->b[i] == b) return i;
    return -1;
}

static float read_f32(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }
static uint32_t read_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static void fuzz_route(fp8_device *dev, const char *name, int it, int *ran, int *refused)
{
    const bool tame = pick(2);
    fuzz_buffers f;
    fill_buffers(dev, &f, tame, 131072);
    fp8_moe_route_desc d = {0};
    d.m = wild_dim(), d.experts = wild_dim(), d.top_k = pick(3) ? 1 + pick(20) : wild_dim();
    if (tame || !pick(3)) {
        d.m = pick(30) ? 1 + pick(24) : 0;
        d.experts = pick(4) ? 1 + pick(160) : 161 + pick(700); /* past 512 the device ranks in rounds */
        d.top_k = 1 + pick(d.experts < 16 ? d.experts : 16);
    }
    static const fp8_dtype logit_types[] = {FP8_F32, FP8_F16, FP8_BF16};
    d.logits = (fp8_operand){f.b[0], random_offset(), pick(12) ? logit_types[pick(3)] : any_dtype(), random_stride()};
    const int ids_b = pick(12) ? 1 : (int)pick(NBUF), w_b = pick(12) ? 2 : (int)pick(NBUF);
    d.ids = (fp8_operand){f.b[ids_b], random_offset(), pick(12) ? FP8_I32 : any_dtype(), random_stride()};
    d.weights = (fp8_operand){f.b[w_b], random_offset(), pick(12) ? FP8_F32 : any_dtype(), random_stride()};
    d.router.scoring = (fp8_moe_scoring)(pick(10) ? pick(2) : pick(5));
    if (pick(3) == 0) d.router.bias = (fp8_operand){f.b[3], random_offset(), pick(8) ? FP8_F32 : any_dtype(), 0};
    if (pick(2)) {
        static const uint32_t groups[] = {1, 2, 4, 8, 3, 5, 16};
        d.router.n_group = pick(10) ? groups[pick(7)] : wild_dim();
        const uint32_t ng = d.router.n_group == 0 ? 1 : d.router.n_group < 8 ? d.router.n_group : 8;
        d.router.topk_group = pick(10) ? 1 + pick(ng) : wild_dim();
        d.router.group_score = (fp8_moe_group_score)(pick(10) ? pick(3) : pick(6));
        if (tame && d.router.n_group && d.experts % d.router.n_group) d.router.n_group = 1, d.router.topk_group = 1;
    }
    d.router.renormalize = pick(2);
    static const float scales[] = {0.0f, 1.0f, 2.5f};
    d.router.routed_scaling_factor = pick(12) ? scales[pick(3)] : pick(2) ? NAN : -1.0f;
    if (tame) {
        fp8_operand *ops[] = {&d.logits, &d.ids, &d.weights, &d.router.bias};
        for (size_t q = 0; q < sizeof ops / sizeof ops[0]; q++) {
            ops[q]->offset = pick(2) ? 0 : 16 * pick(4);
            ops[q]->row_stride = 0;
        }
    }

    fp8_status st = fp8_moe_route(dev, &d);
    if (st == FP8_OK) st = fp8_device_synchronize(dev);
    CHECK(documented(st), "%s: route %d got %s", name, it, fp8_status_name(st));
    /* A non-finite scaling factor is refused with the data error's status, before anything is written. */
    const bool wrote = st == FP8_OK || (st == FP8_ERR_NOT_FINITE && isfinite(d.router.routed_scaling_factor));
    if (!wrote || d.m == 0) {
        (*refused) += st != FP8_OK;
        (*ran) += st == FP8_OK;
        free_buffers(&f);
        return;
    }
    (*ran)++;
    const size_t ld_ids = d.ids.row_stride ? d.ids.row_stride : d.top_k;
    const size_t ld_w = d.weights.row_stride ? d.weights.row_stride : d.top_k;
    const out_region out[2] = {{index_of(&f, d.ids.buffer), d.ids.offset, 4, ld_ids, d.m, d.top_k},
                               {index_of(&f, d.weights.buffer), d.weights.offset, 4, ld_w, d.m, d.top_k}};
    uint8_t *after[NBUF];
    check_untouched(name, "route", it, &f, out, 2, after);
    const uint8_t *ids = after[out[0].buffer], *w = after[out[1].buffer];
    const uint32_t per_group = d.router.n_group ? d.experts / d.router.n_group : d.experts;
    const bool tame_scale = isfinite(d.router.routed_scaling_factor) && d.router.routed_scaling_factor >= 0.0f;
    uint8_t *seen = calloc(d.experts, 1), *group_seen = calloc(d.router.n_group ? d.router.n_group : 1, 1);
    for (uint32_t t = 0; t < d.m; t++) {
        memset(seen, 0, d.experts);
        uint32_t groups_used = 0;
        if (d.router.n_group) memset(group_seen, 0, d.router.n_group);
        for (uint32_t j = 0; j < d.top_k; j++) {
            const uint32_t id = read_u32(ids + d.ids.offset + 4 * (t * ld_ids + j));
            const float wt = read_f32(w + d.weights.offset + 4 * (t * ld_w + j));
            if (id >= d.experts || seen[id]) {
                CHECK(false, "%s: route %d (M=%u E=%u k=%u, %s), token %u choice %u: id %u out of range or repeated",
                      name, it, d.m, d.experts, d.top_k, fp8_status_name(st), t, j, id);
                t = d.m;
                break;
            }
            seen[id] = 1;
            if (d.router.n_group && !group_seen[id / per_group]) group_seen[id / per_group] = 1, groups_used++;
            if (tame_scale && !(wt >= 0.0f && isfinite(wt))) {
                CHECK(false, "%s: route %d, token %u choice %u: weight %g", name, it, t, j, (double)wt);
                t = d.m;
                break;
            }
        }
        if (d.router.n_group && groups_used > d.router.topk_group) {
            CHECK(false, "%s: route %d, token %u: ids span %u groups, %u allowed", name, it, t, groups_used,
                  d.router.topk_group);
            break;
        }
    }
    free(seen);
    free(group_seen);
    for (int i = 0; i < NBUF; i++) free(after[i]);
    free_buffers(&f);
}

/* The plan the ids define (fp8_moe.h), word by word where the header fixes it. */
static void check_plan(const char *name, int it, const fp8_moe_group_desc *d, const uint8_t *idsb, size_t ld,
                       const uint32_t *p, uint32_t rows_cap)
{
    const uint32_t m = d->plan.m, k = d->plan.top_k, E = d->plan.experts, A = d->plan.row_align, S = m * k;
    uint32_t *count = calloc(E, sizeof *count), dropped = 0;
    for (uint32_t s = 0; s < S; s++) {
        const int32_t id = (int32_t)read_u32(idsb + d->ids.offset + 4 * ((s / k) * ld + s % k));
        if (id < 0 || (uint32_t)id >= E) dropped++;
        else count[id]++;
    }
    const uint32_t *counts = p + 16, *offsets = counts + E, *active = offsets + E + 1, *row_token = active + E;
    const uint32_t *row_slot = row_token + rows_cap, *slot_row = row_slot + rows_cap;
    bool ok = p[0] == FP8_MOE_PLAN_MAGIC && p[1] == (uint32_t)(dropped ? FP8_ERR_EXPERT_ID : 0) && p[2] == m &&
              p[3] == k && p[4] == E && p[5] == A && p[6] == rows_cap && p[7] == offsets[E] && p[9] == dropped &&
              offsets[0] == 0 && offsets[E] <= rows_cap;
    uint32_t nactive = 0;
    for (uint32_t e = 0; e < E && ok; e++) {
        ok = counts[e] == count[e] && offsets[e + 1] == offsets[e] + (count[e] + A - 1) / A * A;
        if (count[e]) ok = ok && active[nactive++] == e;
        for (uint32_t r = offsets[e] + count[e]; r < offsets[e + 1] && ok; r++)
            ok = row_token[r] == FP8_MOE_NONE && row_slot[r] == FP8_MOE_NONE;
        for (uint32_t r = offsets[e] + 1; r < offsets[e] + count[e] && ok; r++) ok = row_slot[r] > row_slot[r - 1];
    }
    ok = ok && p[8] == nactive;
    for (uint32_t i = nactive; i < E && ok; i++) ok = active[i] == FP8_MOE_NONE;
    for (uint32_t r = ok ? offsets[E] : rows_cap; r < rows_cap && ok; r++) ok = row_token[r] == FP8_MOE_NONE;
    for (uint32_t s = 0; s < S && ok; s++) {
        const int32_t id = (int32_t)read_u32(idsb + d->ids.offset + 4 * ((s / k) * ld + s % k));
        const uint32_t r = slot_row[s];
        if (id < 0 || (uint32_t)id >= E) ok = r == FP8_MOE_NONE;
        else ok = r >= offsets[id] && r < offsets[id] + count[id] && row_slot[r] == s && row_token[r] == s / k;
    }
    CHECK(ok, "%s: group %d (M=%u k=%u E=%u A=%u, %u dropped): the plan is not the one its ids define", name, it, m,
          k, E, A, dropped);
    free(count);
}

static void fuzz_group(fp8_device *dev, const char *name, int it, int *ran, int *refused)
{
    const bool tame = pick(2);
    fuzz_buffers f;
    fill_buffers(dev, &f, tame, 196608);
    fp8_moe_group_desc d = {0};
    d.plan.m = wild_dim(), d.plan.top_k = pick(3) ? 1 + pick(20) : wild_dim(), d.plan.experts = wild_dim();
    d.plan.row_align = pick(3) ? 1 : pick(8) ? 1u << pick(8) : wild_dim();
    if (tame || !pick(3)) {
        d.plan.m = pick(30) ? 1 + pick(40) : 0;
        d.plan.top_k = 1 + pick(8);
        d.plan.experts = pick(4) ? 1 + pick(64) : 65 + pick(400);
        d.plan.row_align = pick(2) ? 1 : 1u << pick(6);
    }
    const int plan_b = pick(12) ? 1 : (int)pick(NBUF);
    d.ids = (fp8_operand){f.b[0], random_offset(), pick(12) ? FP8_I32 : any_dtype(), random_stride()};
    d.plan.buffer = f.b[plan_b];
    d.plan.offset = pick(6) ? 4 * pick(64) : random_offset();
    if (tame) d.ids.offset = 16 * pick(4), d.ids.row_stride = pick(4) ? 0 : d.plan.top_k + pick(3);
    /* Most ids in range, some not: written over the buffer's random bytes. */
    if (f.b[0] && d.ids.dtype == FP8_I32 && d.plan.m && d.plan.m < 4096 && d.plan.top_k < 4096 && d.plan.experts &&
        d.ids.offset < f.size[0] && d.ids.row_stride < 4096) {
        const size_t ld = d.ids.row_stride ? d.ids.row_stride : d.plan.top_k;
        const uint32_t bad_every = pick(3) ? 0 : 2 + pick(30);
        for (uint32_t s = 0; s < d.plan.m * d.plan.top_k; s++) {
            const size_t at = d.ids.offset + 4 * ((s / d.plan.top_k) * ld + s % d.plan.top_k);
            if (at + 4 > f.size[0]) break;
            int32_t id = (int32_t)pick(d.plan.experts);
            if (bad_every && s % bad_every == 0)
                id = pick(2) ? -1 - (int32_t)pick(5) : (int32_t)(d.plan.experts + pick(5));
            memcpy(f.before[0] + at, &id, 4);
        }
        CHECK_STATUS(fp8_buffer_write(f.b[0], 0, f.before[0], f.size[0]), FP8_OK);
    }

    fp8_status st = fp8_moe_group(dev, &d);
    if (st == FP8_OK) st = fp8_device_synchronize(dev);
    CHECK(documented(st), "%s: group %d got %s", name, it, fp8_status_name(st));
    const bool wrote = st == FP8_OK || st == FP8_ERR_EXPERT_ID;
    if (!wrote || d.plan.m == 0) {
        (*refused) += st != FP8_OK;
        (*ran) += st == FP8_OK;
        free_buffers(&f);
        return;
    }
    (*ran)++;
    size_t bytes = 0;
    uint32_t rows_cap = 0;
    CHECK_STATUS(fp8_moe_plan_size(d.plan.m, d.plan.top_k, d.plan.experts, d.plan.row_align, &bytes, &rows_cap),
                 FP8_OK);
    const out_region plan = {plan_b, d.plan.offset, 1, bytes, 1, bytes};
    uint8_t *after[NBUF];
    check_untouched(name, "group", it, &f, &plan, 1, after);
    const int ids_b = index_of(&f, d.ids.buffer);
    /* The ids as the call read them (the plan's buffer may be theirs too: then as they were before it). */
    const uint8_t *idsb = f.before[ids_b];
    uint32_t *words = malloc(bytes);
    memcpy(words, after[plan_b] + d.plan.offset, bytes);
    check_plan(name, it, &d, idsb, d.ids.row_stride ? d.ids.row_stride : d.plan.top_k, words, rows_cap);
    free(words);
    for (int i = 0; i < NBUF; i++) free(after[i]);
    free_buffers(&f);
}

static void fuzz_device(fp8_device *dev, const fp8_device_info *info, int iters)
{
    int route_ran = 0, route_refused = 0, group_ran = 0, group_refused = 0;
    for (int it = 0; it < iters; it++) {
        fuzz_route(dev, info->name, it, &route_ran, &route_refused);
        fuzz_group(dev, info->name, it, &group_ran, &group_refused);
    }
    printf("%s (%s): route %d ran, %d refused; group %d ran, %d refused\n", info->name,
           fp8_backend_name(info->backend), route_ran, route_refused, group_ran, group_refused);
    CHECK(route_ran > 0 && route_refused > 0 && group_ran > 0 && group_refused > 0,
          "%s: the fuzzer should both run and refuse descriptors of each call", info->name);
}

int main(void) { return fuzz_main("fuzz_moe", fuzz_device, 1500, 200); }
