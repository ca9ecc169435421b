/* Property tests of the codec and of quantization: encode is the nearest representable value (found
 * by brute force), and quantize/dequantize follow the documented scale rules with a bounded error, for
 * every element dtype, scale kind and dtype, source dtype, ragged blocks and strided rows. */
#include "test_util.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Part 1: decode(encode(x)) is the nearest representable value, ties to even.
 * ---------------------------------------------------------------------------------------------- */

typedef struct codec_case {
    fp8_dtype dtype;
    unsigned bits;
    int mbits;
} codec_case;

/* Every code of the format under test, decoded once. */
static double code_value[1u << 16];

static const codec_case codec_cases[] = {
    {FP8_E4M3FN, 8, 3}, {FP8_E5M2, 8, 2}, {FP8_E4M3FNUZ, 8, 3}, {FP8_E5M2FNUZ, 8, 2},
    {FP8_E2M1, 4, 1},   {FP8_E8M0, 8, 0}, {FP8_F16, 16, 10},    {FP8_BF16, 16, 7},
};

static float next_up(float f) { return nextafterf(f, INFINITY); }
static float next_down(float f) { return nextafterf(f, -INFINITY); }

/* The finite value nearest to x by exhaustive search over every code. A tie goes to the value whose
 * significand is even: the even code where there are mantissa bits (the code's low bit is the
 * mantissa's low bit, also across binades), and the larger power for E8M0 (significand 1 vs 2). */
static double brute_nearest(const codec_case *c, float x, int *tie)
{
    const uint32_t ncodes = 1u << c->bits;
    double best = NAN, best_d = INFINITY;
    uint32_t best_code = 0;
    *tie = 0;
    for (uint32_t code = 0; code < ncodes; code++) {
        const double v = code_value[code];
        if (!isfinite(v)) continue;
        double d = fabs(v - (double)x);
        if (d < best_d) {
            best_d = d, best = v, best_code = code;
            *tie = 0;
        } else if (d == best_d && v != best) {
            *tie = 1;
            bool take = c->mbits == 0 ? fabs(v) > fabs(best) : (code & 1) == 0 && (best_code & 1) != 0;
            if (take) best = v, best_code = code;
        }
    }
    return best;
}

static void check_nearest(const codec_case *c, float x, unsigned *n, unsigned *bad)
{
    if (!isfinite(x)) return;
    if (c->dtype == FP8_E8M0 && !(x > 0)) return; /* E8M0 has no zero and no sign: NaN, tested by vectors */
    /* E8M0 from a float32 subnormal follows the reference (ml_dtypes), not the nearest value: everything
     * in (2^-127, 2^-126) goes to 2^-126. The vectors pin that down. */
    if (c->dtype == FP8_E8M0 && x < 0x1p-126f) return;
    int tie;
    const double want = brute_nearest(c, x, &tie);
    const double max = fp8_dtype_max(c->dtype);
    const float sat = fp8_decode_value(c->dtype, fp8_encode_value(c->dtype, x, FP8_OVERFLOW_SATURATE));
    bool ok = (double)sat == want;
    /* A plain cast agrees inside the range; far beyond it, it overflows (Inf where the format has
     * one, else NaN; E2M1 has neither and saturates). The band just above max is the vectors' job. */
    const float cast = fp8_decode_value(c->dtype, fp8_encode_value(c->dtype, x, FP8_OVERFLOW_CAST));
    if (fabs((double)x) <= max) ok = ok && (double)cast == want;
    else if (fabs((double)x) >= 2 * max && c->dtype != FP8_E2M1) ok = ok && !isfinite(cast);
    if (!ok && (*bad)++ < 8)
        fprintf(stderr, "%s: x=%a saturate->%a cast->%a, nearest %a%s\n", fp8_dtype_name(c->dtype), x, sat, cast,
                want, tie ? " (tie)" : "");
    (*n)++;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_codec_nearest(void)
{
    test_rng rng = {0x9E3779B97F4A7C15ull};
    for (size_t ci = 0; ci < sizeof codec_cases / sizeof codec_cases[0]; ci++) {
        const codec_case *c = &codec_cases[ci];
        const uint32_t ncodes = 1u << c->bits;
        /* Sorted distinct finite values; inputs are the values, the midpoints between neighbours
         * (exact in float for every format here), one float ulp either side, and random floats. */
        double *vals = malloc(ncodes * sizeof *vals);
        uint32_t nv = 0;
        for (uint32_t code = 0; code < ncodes; code++) {
            double v = code_value[code] = fp8_decode_value(c->dtype, code);
            if (isfinite(v)) vals[nv++] = v;
        }
        qsort(vals, nv, sizeof *vals, cmp_double);
        uint32_t u = 0;
        for (uint32_t i = 0; i < nv; i++)
            if (u == 0 || vals[i] != vals[u - 1]) vals[u++] = vals[i];
        /* 16-bit formats: every pair would be 2^16 inputs times a 2^16-code search; take a stride. */
        const uint32_t step = c->bits == 16 ? 97 : 1;
        unsigned n = 0, bad = 0;
        for (uint32_t i = 0; i + 1 < u; i += step) {
            const float lo = (float)vals[i], hi = (float)vals[i + 1];
            const float mid = (float)((vals[i] + vals[i + 1]) / 2);
            CHECK((double)mid == (vals[i] + vals[i + 1]) / 2, "%s midpoint not exact", fp8_dtype_name(c->dtype));
            const float xs[] = {lo, hi, mid, next_up(mid), next_down(mid)};
            for (size_t k = 0; k < sizeof xs / sizeof xs[0]; k++) check_nearest(c, xs[k], &n, &bad);
        }
        const double max = fp8_dtype_max(c->dtype);
        const int rounds = c->bits == 16 ? 400 : 4000;
        for (int r = 0; r < rounds; r++) {
            /* Log-uniform magnitudes from far below the smallest subnormal to well beyond max. */
            double lmax = log2(max) + 2, lmin = c->dtype == FP8_E8M0 ? -130 : log2(max) - (c->bits == 16 ? 40 : 24);
            if (c->dtype == FP8_BF16) lmin = -140;
            float x = (float)ldexp(1.0 + test_rng_uniform(&rng, 0, 1), (int)test_rng_uniform(&rng, (float)lmin, (float)lmax));
            if (test_rng_next(&rng) & 1) x = -x;
            check_nearest(c, x, &n, &bad);
        }
        const float edges[] = {0.0f, -0.0f, (float)max, -(float)max, (float)(max * 1.01), (float)(max * 4), 1e-30f, -1e-30f};
        for (size_t k = 0; k < sizeof edges / sizeof edges[0]; k++) check_nearest(c, edges[k], &n, &bad);
        CHECK(bad == 0, "%s: %u of %u inputs not rounded to the nearest value", fp8_dtype_name(c->dtype), bad, n);
        CHECK(n > 100, "%s: only %u inputs", fp8_dtype_name(c->dtype), n);
        free(vals);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Part 2: quantize / dequantize.
 * ---------------------------------------------------------------------------------------------- */

/* Element formats, described independently of the library: mantissa bits, smallest normal exponent,
 * largest value, and the OCP emax (exponent of the largest normal: floor(log2(max))). */
typedef struct elem_format {
    fp8_dtype dtype;
    int mbits, emin;
    double max;
    int emax;
} elem_format;

static const elem_format elems[] = {
    {FP8_E4M3FN, 3, -6, 448.0, 8},
    {FP8_E5M2, 2, -14, 57344.0, 15},
    {FP8_E4M3FNUZ, 3, -7, 240.0, 7},
    {FP8_E5M2FNUZ, 2, -15, 57344.0, 15},
    {FP8_E2M1, 1, 0, 6.0, 2},
};

/* Spacing of the element format around |v| (the subnormal spacing below the normal range). */
static double quantum(const elem_format *f, double v)
{
    int e = v == 0 ? f->emin : ilogb(v);
    if (e < f->emin) e = f->emin;
    return ldexp(1.0, e - f->mbits);
}

typedef struct scale_case {
    const char *name;
    fp8_scale_layout layout;
} scale_case;

static const scale_case scale_cases[] = {
    {"none", {FP8_SCALE_NONE, 0, 0, 0}},
    {"tensor f32", {FP8_SCALE_TENSOR, FP8_F32, 0, 0}},
    {"tensor default-dtype", {FP8_SCALE_TENSOR, FP8_DTYPE_INVALID, 0, 0}},
    {"row f32", {FP8_SCALE_ROW, FP8_F32, 0, 0}},
    {"col f32", {FP8_SCALE_COL, FP8_F32, 0, 0}},
    {"block 5x7 f32", {FP8_SCALE_BLOCK, FP8_F32, 5, 7}},
    {"block 128x128 f32", {FP8_SCALE_BLOCK, FP8_F32, 128, 128}},
    {"block 1x32 e8m0 (MX)", {FP8_SCALE_BLOCK, FP8_E8M0, 1, 32}},
    {"block 5x7 e8m0", {FP8_SCALE_BLOCK, FP8_E8M0, 5, 7}},
    {"row e8m0", {FP8_SCALE_ROW, FP8_E8M0, 0, 0}},
    {"col e8m0", {FP8_SCALE_COL, FP8_E8M0, 0, 0}},
    {"tensor e8m0", {FP8_SCALE_TENSOR, FP8_E8M0, 0, 0}},
    {"block 1x16 e4m3 (NVFP4)", {FP8_SCALE_BLOCK, FP8_E4M3FN, 1, 16}},
    {"block 5x7 e4m3", {FP8_SCALE_BLOCK, FP8_E4M3FN, 5, 7}},
    {"row e4m3", {FP8_SCALE_ROW, FP8_E4M3FN, 0, 0}},
    {"tensor e4m3", {FP8_SCALE_TENSOR, FP8_E4M3FN, 0, 0}},
};

typedef struct shape_case {
    uint32_t rows, cols;
    size_t src_stride, dst_stride, deq_stride; /* 0 = packed */
    size_t misalign; /* bytes added to every caller pointer: the API takes void * with no alignment */
} shape_case;

static const shape_case shapes[] = {
    {13, 29, 31, 30, 33, 0}, /* ragged against 5x7 and 1x16, strided everywhere (even stride for E2M1) */
    {1, 1, 0, 2, 0, 0},
    {4, 32, 0, 0, 0, 0},
    {7, 64, 64, 66, 65, 0},
    {5, 9, 11, 10, 12, 1},
};

#define GUARD 64
#define GUARD_BYTE 0xA5

/* Caller memory with guard bytes on both sides. */
typedef struct guarded {
    uint8_t *base;
    size_t size, lead; /* lead: GUARD plus the misalignment */
} guarded;

static guarded guarded_alloc(size_t size, size_t misalign)
{
    guarded g = {malloc(size + 2 * GUARD + misalign), size, GUARD + misalign};
    memset(g.base, GUARD_BYTE, size + 2 * GUARD + misalign);
    return g;
}
static void *guarded_ptr(guarded g) { return g.base + g.lead; }
static bool guards_intact(guarded g)
{
    for (size_t i = 0; i < g.lead; i++)
        if (g.base[i] != GUARD_BYTE) return false;
    for (size_t i = 0; i < GUARD; i++)
        if (g.base[g.lead + g.size + i] != GUARD_BYTE) return false;
    return true;
}

static double load_elem(fp8_dtype dt, const uint8_t *p, size_t i)
{
    if (dt == FP8_E2M1) return fp8_decode_value(dt, (i & 1) ? p[i / 2] >> 4 : p[i / 2] & 0xf);
    return fp8_decode_value(dt, p[i]);
}

static uint32_t code_at(fp8_dtype dt, const uint8_t *p, size_t i)
{
    if (dt == FP8_E2M1) return (i & 1) ? p[i / 2] >> 4 : p[i / 2] & 0xfu;
    return p[i];
}

typedef struct qstats {
    unsigned cases, elements, bad_scale, bad_code, bad_deq, bad_bound, bad_guard, clipped, zero_scaled;
    double worst_ratio; /* error / (half quantum * scale) over unclipped elements */
} qstats;

static size_t extent(uint32_t rows, uint32_t cols, size_t stride) { return (size_t)(rows - 1) * stride + cols; }

static void run_quantize_case(const elem_format *ef, fp8_dtype src_dt, const scale_case *sc, const shape_case *sh,
                              test_rng *rng, qstats *st)
{
    const uint32_t R = sh->rows, C = sh->cols;
    const size_t ss = sh->src_stride ? sh->src_stride : C, ds = sh->dst_stride ? sh->dst_stride : C;
    const size_t qs = sh->deq_stride ? sh->deq_stride : C;
    const fp8_dtype qd = ef->dtype;

    /* The exact source values, per row a different magnitude; row 1 all zero (amax 0), row 3 tiny
     * (its E4M3 block scales round to zero), and a few exact zeros. */
    double *x = calloc((size_t)R * C, sizeof *x);
    const size_t src_elems = extent(R, C, ss);
    guarded src = guarded_alloc(src_elems * (src_dt == FP8_F32 ? 4 : 2), sh->misalign);
    for (uint32_t r = 0; r < R; r++) {
        const int mag = r == 3 ? -40 : (int)test_rng_uniform(rng, -6, 7);
        for (uint32_t c = 0; c < C; c++) {
            float v = (float)ldexp(test_rng_normal(rng), mag);
            if (r == 1 && R > 2) v = 0;
            if ((test_rng_next(rng) % 23) == 0) v = 0;
            const size_t i = (size_t)r * ss + c;
            if (src_dt == FP8_F32) {
                memcpy((uint8_t *)guarded_ptr(src) + 4 * i, &v, 4);
            } else {
                uint16_t h = (uint16_t)fp8_encode_value(src_dt, v, FP8_OVERFLOW_SATURATE);
                memcpy((uint8_t *)guarded_ptr(src) + 2 * i, &h, 2);
                v = fp8_decode_value(src_dt, h);
            }
            x[(size_t)r * C + c] = v;
        }
    }

    size_t dst_bytes = 0, nscale = 0;
    fp8_dtype_storage_size(qd, extent(R, C, ds), &dst_bytes);
    CHECK_STATUS(fp8_scale_count(&sc->layout, R, C, &nscale), FP8_OK);
    const fp8_dtype sdt = sc->layout.kind == FP8_SCALE_NONE ? FP8_DTYPE_INVALID
                          : sc->layout.dtype ? sc->layout.dtype : FP8_F32;
    const size_t sbytes = nscale * (sdt == FP8_F32 ? 4 : 1);
    guarded dst = guarded_alloc(dst_bytes, sh->misalign), scale = guarded_alloc(sbytes ? sbytes : 1, sh->misalign);
    float tensor_scale = -1.0f;
    fp8_quantize_desc d = {
        .rows = R, .cols = C, .src_dtype = src_dt, .src = guarded_ptr(src), .src_row_stride = sh->src_stride,
        .dst_dtype = qd, .dst = guarded_ptr(dst), .dst_bytes = dst_bytes, .dst_row_stride = sh->dst_stride,
        .scale_layout = sc->layout, .scale = sbytes ? guarded_ptr(scale) : NULL, .scale_bytes = sbytes,
        .tensor_scale = &tensor_scale,
    };
    fp8_status qst = fp8_quantize(&d);
    CHECK(qst == FP8_OK, "quantize %s from %s, %s, %ux%u: %s", fp8_dtype_name(qd), fp8_dtype_name(src_dt), sc->name, R,
          C, fp8_status_name(qst));
    st->cases++;
    if (qst != FP8_OK) goto out;

    /* Block geometry from the documented layout (edge blocks partial; a block larger than the
     * matrix is one block). */
    uint32_t bh = 1, bw = 1;
    switch (sc->layout.kind) {
    case FP8_SCALE_NONE: case FP8_SCALE_TENSOR: bh = R, bw = C; break;
    case FP8_SCALE_ROW: bh = 1, bw = C; break;
    case FP8_SCALE_COL: bh = R, bw = 1; break;
    case FP8_SCALE_BLOCK: bh = sc->layout.block_rows, bw = sc->layout.block_cols; break;
    }
    const uint32_t nbr = (R + bh - 1) / bh, nbc = (C + bw - 1) / bw;
    CHECK(sdt == FP8_DTYPE_INVALID ? nscale == 0 : nscale == (size_t)nbr * nbc, "%s: scale count %zu for %ux%u blocks",
          sc->name, nscale, nbr, nbc);

    /* The documented tensor scale: amax_tensor / (448 * max(dst)) for E4M3 scales (1 when 0), else 1. */
    float t = 1.0f;
    if (sdt == FP8_E4M3FN) {
        float tamax = 0;
        for (size_t i = 0; i < (size_t)R * C; i++) tamax = fmaxf(tamax, (float)fabs(x[i]));
        t = tamax / (448.0f * (float)ef->max);
        if (!(t > 0)) t = 1.0f;
    }
    if (tensor_scale != t) {
        st->bad_scale++;
        fprintf(stderr, "%s %s: tensor_scale %a, want %a\n", fp8_dtype_name(qd), sc->name, tensor_scale, t);
    }

    const uint8_t *q = guarded_ptr(dst);
    const uint8_t *s = guarded_ptr(scale);
    float *S = malloc((size_t)nbr * nbc * sizeof *S); /* effective scale per block, as the library divides by */
    uint8_t *scode = calloc((size_t)nbr * nbc, 1);
    for (uint32_t br = 0; br < nbr; br++)
        for (uint32_t bc = 0; bc < nbc; bc++) {
            const size_t b = (size_t)br * nbc + bc;
            float amax = 0;
            for (uint32_t r = br * bh; r < R && r < (br + 1) * bh; r++)
                for (uint32_t c = bc * bw; c < C && c < (bc + 1) * bw; c++) amax = fmaxf(amax, (float)fabs(x[(size_t)r * C + c]));
            float want_s;
            bool ok = true;
            if (sdt == FP8_DTYPE_INVALID) {
                want_s = 1.0f;
            } else if (sdt == FP8_F32) {
                want_s = amax > 0 ? amax / (float)ef->max : 1.0f;
                float got;
                memcpy(&got, s + 4 * b, 4);
                ok = memcmp(&got, &want_s, 4) == 0;
            } else if (sdt == FP8_E8M0) {
                /* e = floor(log2(amax)) - emax, clamped to [-127, 127]; an all-zero block gets code 0. */
                int e = amax > 0 ? ilogbf(amax) - ef->emax : -127;
                if (e < -127) e = -127;
                if (e > 127) e = 127;
                ok = s[b] == (uint8_t)(e + 127);
                want_s = ldexpf(1.0f, e);
            } else {
                const uint32_t code = fp8_encode_value(FP8_E4M3FN, amax / (float)ef->max / t, FP8_OVERFLOW_SATURATE);
                ok = s[b] == code;
                scode[b] = (uint8_t)code;
                want_s = fp8_decode_value(FP8_E4M3FN, code) * t;
            }
            if (!ok && st->bad_scale++ < 5)
                fprintf(stderr, "%s from %s, %s, %ux%u: block (%u,%u) amax %a has a wrong scale\n", fp8_dtype_name(qd),
                        fp8_dtype_name(src_dt), sc->name, R, C, br, bc, amax);
            S[b] = want_s;
        }

    /* Dequantize into a strided f32 matrix with guards. */
    const size_t deq_elems = extent(R, C, qs);
    guarded deq = guarded_alloc(deq_elems * 4, sh->misalign);
    fp8_quantize_desc dd = d;
    dd.src_dtype = qd, dd.src = guarded_ptr(dst), dd.src_row_stride = sh->dst_stride;
    dd.dst_dtype = FP8_F32, dd.dst = guarded_ptr(deq), dd.dst_bytes = deq_elems * 4, dd.dst_row_stride = sh->deq_stride;
    CHECK_STATUS(fp8_dequantize(&dd), FP8_OK);
    const uint8_t *yq = guarded_ptr(deq);

    for (uint32_t r = 0; r < R; r++)
        for (uint32_t c = 0; c < C; c++) {
            const size_t b = (size_t)(r / bh) * nbc + c / bw;
            const double xv = x[(size_t)r * C + c];
            const float Sf = S[b];
            /* The documented element rule: q = encode_sat(x / s), the division done in float. */
            const uint32_t want_code = Sf != 0 ? fp8_encode_value(qd, (float)xv / Sf, FP8_OVERFLOW_SATURATE) : 0;
            const uint32_t got_code = code_at(qd, q, (size_t)r * ds + c);
            const double qv = load_elem(qd, q, (size_t)r * ds + c);
            if (got_code != want_code && st->bad_code++ < 5)
                fprintf(stderr, "%s from %s, %s: (%u,%u) x=%a code %#x want %#x\n", fp8_dtype_name(qd),
                        fp8_dtype_name(src_dt), sc->name, r, c, xv, got_code, want_code);
            /* Dequantized value = decode(q) * decode(scale) * tensor_scale, rounded once to f32. */
            float got;
            memcpy(&got, yq + 4 * ((size_t)r * qs + c), 4);
            double sdec = sdt == FP8_DTYPE_INVALID ? 1.0 : sdt == FP8_E4M3FN ? fp8_decode_value(FP8_E4M3FN, scode[b]) : Sf;
            const float want = (float)(qv * sdec * (double)t);
            if (memcmp(&got, &want, 4) != 0 && st->bad_deq++ < 5)
                fprintf(stderr, "%s %s: dequant (%u,%u) %a want %a\n", fp8_dtype_name(qd), sc->name, r, c, got, want);

            /* The error bound. With v = x / S: unclipped values are within half a quantum of the
             * element format at |v|, times S; clipped values land on +-max * S. Slack: the float
             * division and the f32 result, 2^-22 relative. */
            const double Sd = (double)Sf, err = fabs((double)got - xv);
            const double slack = ldexp(fabs(xv) + fabs((double)got), -22) + 1e-300;
            st->elements++;
            if (Sd == 0) {
                st->zero_scaled++;
                /* Only an E4M3 block scale can be 0: amax / max(dst) / t rounded below 2^-10. */
                bool ok = sdt == FP8_E4M3FN && got == 0 && fabs(xv) <= ldexp(ef->max * t, -10) * (1 + 1e-6);
                if (!ok && st->bad_bound++ < 5)
                    fprintf(stderr, "%s %s: (%u,%u) zero scale with x=%a\n", fp8_dtype_name(qd), sc->name, r, c, xv);
                continue;
            }
            const double v = fabs(xv) / Sd;
            const double half_q = 0.5 * quantum(ef, v > ef->max ? ef->max : v) * Sd;
            bool ok;
            if (v <= ef->max) {
                ok = err <= half_q + slack;
                if (half_q > 0) st->worst_ratio = fmax(st->worst_ratio, err / half_q);
            } else {
                st->clipped++;
                ok = fabs(fabs((double)got) - ef->max * Sd) <= slack && err <= (v - ef->max) * Sd + slack;
                /* F32 scales never clip beyond float rounding; E8M0 ones clip by less than 2^(emax+1) / max;
                 * E4M3 ones (normal codes) by at most the scale's own rounding, 2^-4. */
                if (sdt == FP8_F32 || sdt == FP8_DTYPE_INVALID) ok = ok && (sdt == FP8_DTYPE_INVALID || v <= ef->max * (1 + 0x1p-21));
                if (sdt == FP8_E8M0) ok = ok && v < ldexp(1.0, ef->emax + 1);
                if (sdt == FP8_E4M3FN && scode[b] >= 0x08) ok = ok && v <= ef->max / (1 - 0x1p-4) * (1 + 1e-6);
            }
            if (!ok && st->bad_bound++ < 5)
                fprintf(stderr, "%s from %s, %s: (%u,%u) x=%a deq=%a S=%a err %.3g half-quantum %.3g\n",
                        fp8_dtype_name(qd), fp8_dtype_name(src_dt), sc->name, r, c, xv, got, Sd, err, half_q);
        }

    /* Nothing outside the matrix is written: guards and row padding (E2M1: the padding nibble). */
    bool intact = guards_intact(dst) && guards_intact(scale) && guards_intact(deq) && guards_intact(src);
    for (uint32_t r = 0; r < R; r++) {
        for (size_t c = C; c < ds && r + 1 < R; c++) {
            size_t i = (size_t)r * ds + c;
            uint32_t pad = qd == FP8_E2M1 ? ((i & 1) ? GUARD_BYTE >> 4 : GUARD_BYTE & 0xf) : GUARD_BYTE;
            if (code_at(qd, q, i) != pad) intact = false;
        }
        if (qd == FP8_E2M1 && (C & 1) && r + 1 == R && dst_bytes * 2 > extent(R, C, ds) &&
            code_at(qd, q, extent(R, C, ds)) != (GUARD_BYTE >> 4))
            intact = false;
        for (size_t c = C; c < qs && r + 1 < R; c++)
            if (yq[4 * ((size_t)r * qs + c)] != GUARD_BYTE) intact = false;
    }
    if (!intact && st->bad_guard++ < 5)
        fprintf(stderr, "%s from %s, %s, %ux%u: bytes outside the matrix were written\n", fp8_dtype_name(qd),
                fp8_dtype_name(src_dt), sc->name, R, C);
    free(S);
    free(scode);
    free(deq.base);
out:
    free(x);
    free(src.base);
    free(dst.base);
    free(scale.base);
}

static void test_quantize_roundtrips(void)
{
    test_rng rng = {12345};
    qstats st = {0};
    const fp8_dtype srcs[] = {FP8_F32, FP8_F16, FP8_BF16};
    for (size_t e = 0; e < sizeof elems / sizeof elems[0]; e++)
        for (size_t s = 0; s < sizeof srcs / sizeof srcs[0]; s++)
            for (size_t k = 0; k < sizeof scale_cases / sizeof scale_cases[0]; k++)
                for (size_t h = 0; h < sizeof shapes / sizeof shapes[0]; h++)
                    run_quantize_case(&elems[e], srcs[s], &scale_cases[k], &shapes[h], &rng, &st);
    printf("quantize: %u cases, %u elements, %u clipped, %u under a zero E4M3 scale; worst unclipped error %.4f of "
           "half a quantum\n", st.cases, st.elements, st.clipped, st.zero_scaled, st.worst_ratio);
    CHECK(st.clipped > 0 && st.zero_scaled > 0, "the edge cases (clipping, zero scales) were not reached");
    CHECK(st.bad_scale == 0, "%u wrong scales", st.bad_scale);
    CHECK(st.bad_code == 0, "%u wrong codes", st.bad_code);
    CHECK(st.bad_deq == 0, "%u wrong dequantized values", st.bad_deq);
    CHECK(st.bad_bound == 0, "%u errors beyond the bound", st.bad_bound);
    CHECK(st.bad_guard == 0, "%u cases wrote outside the matrix", st.bad_guard);
    CHECK(st.elements > 100000, "only %u elements", st.elements);
}

int main(void)
{
    test_codec_nearest();
    test_quantize_roundtrips();
    return test_finish("quantize");
}
