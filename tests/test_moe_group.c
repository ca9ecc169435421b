/* fp8_moe_group: every word of the plan checked against its definition in fp8_moe.h, for random,
 * skewed and sparse routing and several row alignments; plan sizes; the decode layout. */
#include "test_moe_ref.h"

#include <string.h>

#define NONE FP8_MOE_NONE

static fp8_context *ctx;
static fp8_device *dev;

/* Word offsets of the plan arrays, computed here from the header's definition. */
typedef struct layout {
    uint32_t S, R, T;
    size_t counts, offsets, active, row_token, row_slot, slot_row, tile_expert, end;
} layout;

static layout layout_of(uint32_t m, uint32_t k, uint32_t e, uint32_t a)
{
    layout l;
    l.S = m * k;
    uint32_t mn = l.S < e ? l.S : e;
    l.R = (l.S + mn * (a - 1) + a - 1) / a * a;
    l.T = l.R / a;
    l.counts = 16;
    l.offsets = l.counts + e;
    l.active = l.offsets + e + 1;
    l.row_token = l.active + e;
    l.row_slot = l.row_token + l.R;
    l.slot_row = l.row_slot + l.R;
    l.tile_expert = l.slot_row + l.S;
    l.end = l.tile_expert + l.T + (size_t)e * ((l.S + 255) / 256) + 256;
    return l;
}

/* Group host ids and check the plan word by word. */
static void check_plan(const char *name, uint32_t m, uint32_t k, uint32_t e, uint32_t a, const int32_t *ids)
{
    size_t bytes;
    uint32_t rows;
    CHECK_STATUS(fp8_moe_plan_size(m, k, e, a, &bytes, &rows), FP8_OK);
    const layout L = layout_of(m, k, e, a);
    CHECK(bytes == L.end * 4, "%s: plan size %zu, want %zu", name, bytes, L.end * 4);
    CHECK(rows == L.R, "%s: rows capacity %u, want %u", name, rows, L.R);
    const size_t off = 64; /* a plan need not start at 0 */
    fp8_buffer *ib = NULL, *pb = NULL;
    fp8_buffer_create(dev, (size_t)m * k * 4, &ib);
    fp8_buffer_write(ib, 0, ids, (size_t)m * k * 4);
    fp8_buffer_create(dev, bytes + off, &pb);
    uint32_t *w = malloc(bytes);
    memset(w, 0xA5, bytes); /* garbage the plan must overwrite */
    fp8_buffer_write(pb, off, w, bytes);
    fp8_moe_group_desc d = {.ids = {.buffer = ib, .dtype = FP8_I32},
                            .plan = {.buffer = pb, .offset = off, .m = m, .top_k = k, .experts = e, .row_align = a}};
    CHECK_STATUS(fp8_moe_group(dev, &d), FP8_OK);
    fp8_buffer_read(pb, off, w, bytes);

    /* Expected counts from the ids. */
    uint32_t *cnt = calloc(e, 4);
    for (uint32_t s = 0; s < L.S; s++) cnt[ids[s]]++;
    CHECK(w[0] == FP8_MOE_PLAN_MAGIC && w[1] == 0, "%s: magic %08x status %d", name, w[0], (int32_t)w[1]);
    CHECK(w[2] == m && w[3] == k && w[4] == e && w[5] == a && w[6] == L.R, "%s: header shape words", name);
    for (int i = 10; i < 16; i++) CHECK(w[i] == 0, "%s: reserved word %d = %u", name, i, w[i]);
    uint32_t total = 0, nact = 0;
    for (uint32_t x = 0; x < e; x++) {
        CHECK(w[L.counts + x] == cnt[x], "%s: count[%u] = %u, want %u", name, x, w[L.counts + x], cnt[x]);
        CHECK(w[L.offsets + x] == total, "%s: offset[%u] = %u, want %u", name, x, w[L.offsets + x], total);
        total += (cnt[x] + a - 1) / a * a;
        if (cnt[x]) {
            CHECK(w[L.active + nact] == x, "%s: active[%u] = %u, want %u", name, nact, w[L.active + nact], x);
            nact++;
        }
    }
    CHECK(w[L.offsets + e] == total && w[7] == total, "%s: total rows %u / %u, want %u", name, w[L.offsets + e], w[7], total);
    CHECK(total <= L.R, "%s: total %u beyond capacity %u", name, total, L.R);
    CHECK(w[8] == nact && w[9] == 0, "%s: active %u (want %u), dropped %u", name, w[8], nact, w[9]);
    for (uint32_t i = nact; i < e; i++) CHECK(w[L.active + i] == NONE, "%s: active[%u] not NONE", name, i);
    /* Rows: each expert's group holds its slots in ascending order, then padding. */
    for (uint32_t x = 0; x < e; x++) {
        uint32_t r = w[L.offsets + x], prev = 0;
        int first = 1;
        for (uint32_t s = 0; s < L.S; s++) {
            if ((uint32_t)ids[s] != x) continue;
            CHECK(w[L.row_slot + r] == s && w[L.row_token + r] == s / k, "%s: expert %u row %u holds slot %u, want %u",
                  name, x, r, w[L.row_slot + r], s);
            CHECK(w[L.slot_row + s] == r, "%s: slot_row[%u] = %u, want %u", name, s, w[L.slot_row + s], r);
            CHECK(first || s > prev, "%s: not stable", name);
            prev = s;
            first = 0;
            r++;
        }
        for (; r < w[L.offsets + x + 1]; r++)
            CHECK(w[L.row_token + r] == NONE && w[L.row_slot + r] == NONE, "%s: padding row %u not NONE", name, r);
    }
    for (uint32_t r = total; r < L.R; r++)
        CHECK(w[L.row_token + r] == NONE && w[L.row_slot + r] == NONE, "%s: unused row %u not NONE", name, r);
    for (uint32_t t = 0; t < L.T; t++) {
        uint32_t want = NONE;
        for (uint32_t x = 0; x < e; x++)
            if (t * a >= w[L.offsets + x] && t * a < w[L.offsets + x + 1]) want = x;
        CHECK(w[L.tile_expert + t] == want, "%s: tile %u owned by %u, want %u", name, t, w[L.tile_expert + t], want);
    }
    free(cnt);
    free(w);
    fp8_buffer_free(ib);
    fp8_buffer_free(pb);
}

int main(void)
{
    fp8_context_options opt = {.log = test_log};
    CHECK_STATUS(fp8_context_create(&opt, &ctx), FP8_OK);
    dev = ref_open_device(ctx);

    test_rng rng = {0x6709};
    enum { M = 37, K = 3, E = 16 };
    int32_t ids[M * K];
    /* Random distinct experts per token. */
    for (uint32_t t = 0; t < M; t++)
        for (uint32_t j = 0; j < K; j++) {
            int32_t id;
            int dup;
            do {
                id = (int32_t)(test_rng_next(&rng) % E);
                dup = 0;
                for (uint32_t i = 0; i < j; i++) dup |= ids[t * K + i] == id;
            } while (dup);
            ids[t * K + j] = id;
        }
    const uint32_t aligns[] = {1, 4, 8, 64};
    for (int i = 0; i < 4; i++) check_plan("random", M, K, E, aligns[i], ids);
    /* Skewed: every slot on expert 5 (caller ids may repeat an expert within a token). */
    int32_t skew[M * K];
    for (int i = 0; i < M * K; i++) skew[i] = 5;
    for (int i = 0; i < 4; i++) check_plan("skewed", M, K, E, aligns[i], skew);
    /* Sparse decode: 2 tokens, k=3, 64 experts: most experts empty. */
    int32_t dec[6] = {63, 0, 17, 17, 40, 2};
    check_plan("decode", 2, 3, 64, 1, dec);
    check_plan("decode aligned", 2, 3, 64, 16, dec);
    /* One token, one expert. */
    int32_t one[1] = {0};
    check_plan("single", 1, 1, 1, 1, one);

    /* Known sizes: M=4 k=2 E=8 A=4: S=8, R=roundup(8+8*3,4)=32, T=8, C=1. */
    size_t bytes;
    uint32_t rows;
    CHECK_STATUS(fp8_moe_plan_size(4, 2, 8, 4, &bytes, &rows), FP8_OK);
    CHECK(rows == 32 && bytes == 4 * (16 + 8 + 9 + 8 + 32 + 32 + 8 + 8 + 8 + 256), "plan size %zu rows %u", bytes, rows);
    CHECK_STATUS(fp8_moe_plan_size(0, 2, 8, 4, &bytes, &rows), FP8_OK);
    CHECK(rows == 0, "M=0 plan has %u rows", rows);

    ref_close_device(dev);
    fp8_context_destroy(ctx);
    return test_finish("moe_group");
}
