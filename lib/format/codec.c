/* Bit rules of every number format: scalar encode/decode, packed arrays, dtype metadata. */
#include "format.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* A binary minifloat described by its fields. Every format here fits: FP8 variants, E2M1, E8M0, F16, BF16. */
typedef struct minifloat {
    int ebits, mbits, bias;
    bool has_inf;       /* IEEE-like: all-ones exponent is Inf/NaN */
    bool fnuz;          /* no -0; 0x80 is the only NaN */
    bool has_sign;      /* E8M0 is unsigned */
    double max;         /* largest finite value */
    uint32_t nan_code;  /* canonical NaN (sign bit clear) */
    bool nan_is_minus_zero_code; /* E2M1 has no NaN: ml_dtypes maps NaN to the -0 code */
} minifloat;

static const minifloat MF_E4M3FN = {4, 3, 7, false, false, true, 448.0, 0x7f, false};
static const minifloat MF_E5M2 = {5, 2, 15, true, false, true, 57344.0, 0x7f, false};
static const minifloat MF_E4M3FNUZ = {4, 3, 8, false, true, true, 240.0, 0x80, false};
static const minifloat MF_E5M2FNUZ = {5, 2, 16, false, true, true, 57344.0, 0x80, false};
static const minifloat MF_E2M1 = {2, 1, 1, false, false, true, 6.0, 0x8, true};
static const minifloat MF_E8M0 = {8, 0, 127, false, false, false, 0x1p127, 0xff, false};
static const minifloat MF_F16 = {5, 10, 15, true, false, true, 65504.0, 0x7e00, false};
static const minifloat MF_BF16 = {8, 7, 127, true, false, true, 0x1.FEp127, 0x7fc0, false};

static const minifloat *minifloat_of(fp8_dtype dtype)
{
    switch (dtype) {
    case FP8_E4M3FN: return &MF_E4M3FN;
    case FP8_E5M2: return &MF_E5M2;
    case FP8_E4M3FNUZ: return &MF_E4M3FNUZ;
    case FP8_E5M2FNUZ: return &MF_E5M2FNUZ;
    case FP8_E2M1: return &MF_E2M1;
    case FP8_E8M0: return &MF_E8M0;
    case FP8_F16: return &MF_F16;
    case FP8_BF16: return &MF_BF16;
    default: return NULL;
    }
}

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static uint32_t sign_bit(const minifloat *mf) { return mf->has_sign ? 1u << (mf->ebits + mf->mbits) : 0; }

static uint32_t encode_minifloat(const minifloat *mf, float value, fp8_overflow mode)
{
    const uint32_t sbit = sign_bit(mf);
    if (isnan(value)) return mf->nan_is_minus_zero_code ? sbit : mf->nan_code;
    const bool neg = signbit(value);
    if (neg && !mf->has_sign) return mf->nan_code; /* E8M0 has no negative values */
    double a = fabs((double)value);
    /* E2M1 has neither Inf nor NaN: overflow saturates whatever the mode (matches the reference). */
    const bool saturate = mode == FP8_OVERFLOW_SATURATE || mf->nan_is_minus_zero_code;
    if (isinf(a) && saturate) a = mf->max;

    const uint32_t s = neg ? sbit : 0;
    const uint32_t inf_code = ((1u << mf->ebits) - 1) << mf->mbits;
    if (isinf(a)) return s | (mf->has_inf ? inf_code : mf->nan_code);

    /* E8M0 has no subnormal range: its smallest code, 0, is the normal 2^-127. */
    const int emin = mf->has_sign ? 1 - mf->bias : -mf->bias;
    if (!mf->has_sign) {
        /* E8M0 has no zero: log2(0) has no code, so 0 is NaN. Float32 subnormal inputs follow the
         * reference (ml_dtypes): above 2^-127 they go to code 1, at or below it to code 0. */
        if (a == 0.0) return mf->nan_code;
        if (a < 0x1p-126) return a > 0x1p-127 ? 1 : 0;
    } else if (a == 0.0) {
        return mf->fnuz ? 0 : s;
    }
    /* Round to nearest even on the integer significand: a / quantum is exact in double. */
    int e;
    (void)frexp(a, &e);
    e -= 1; /* a = 1.f * 2^e */
    if (e < emin) e = emin;
    double quantum = ldexp(1.0, e - mf->mbits);
    double n = nearbyint(a / quantum);
    double v = n * quantum;
    /* Round first, then check overflow. */
    if (v > mf->max) {
        if (saturate) v = mf->max;
        else return s | (mf->has_inf ? inf_code : mf->nan_code);
    }
    if (!mf->has_sign && v < ldexp(1.0, emin)) v = ldexp(1.0, emin); /* E8M0 floor is 2^-127 */
    if (v == 0.0) return mf->fnuz ? 0 : s;
    uint32_t code;
    if (mf->mbits > 0 && v < ldexp(1.0, emin)) {
        code = (uint32_t)(v / ldexp(1.0, emin - mf->mbits)); /* subnormal */
    } else if (mf->mbits == 0) {
        int ev;
        (void)frexp(v, &ev);
        code = (uint32_t)(ev - 1 + mf->bias);
    } else {
        int ev;
        (void)frexp(v, &ev);
        ev -= 1;
        uint32_t mant = (uint32_t)(v / ldexp(1.0, ev - mf->mbits)) - (1u << mf->mbits);
        code = ((uint32_t)(ev + mf->bias) << mf->mbits) | mant;
    }
    return s | code;
}

static float decode_minifloat(const minifloat *mf, uint32_t code)
{
    const uint32_t sbit = sign_bit(mf);
    const uint32_t emask = (1u << mf->ebits) - 1, mmask = (1u << mf->mbits) - 1;
    code &= (sbit << 1) - 1;
    if (!mf->has_sign) {
        if (code == 0xff) return NAN;
        /* 2^(code-127); code 0 is 2^-127, a float32 subnormal. */
        return (float)ldexp(1.0, (int)code - mf->bias);
    }
    if (mf->fnuz && code == sbit) return NAN;
    const bool neg = (code & sbit) != 0;
    const uint32_t ef = (code >> mf->mbits) & emask, mf_bits = code & mmask;
    double v;
    if (mf->has_inf && ef == emask) {
        v = mf_bits ? NAN : INFINITY;
    } else if (!mf->has_inf && !mf->fnuz && mf->ebits == 4 && ef == emask && mf_bits == mmask) {
        v = NAN; /* E4M3FN: S.1111.111 */
    } else if (ef == 0) {
        v = ldexp((double)mf_bits, 1 - mf->bias - mf->mbits);
    } else {
        v = ldexp((double)(mf_bits | (1u << mf->mbits)), (int)ef - mf->bias - mf->mbits);
    }
    if (isnan(v)) return neg ? -NAN : NAN;
    return (float)(neg ? -v : v);
}

uint32_t fp8i_encode(fp8_dtype dtype, float value, fp8_overflow mode)
{
    if (dtype == FP8_F32) return f32_bits(value);
    const minifloat *mf = minifloat_of(dtype);
    return mf ? encode_minifloat(mf, value, mode) : 0;
}

/* Decoding is the oracle's inner loop: the 8-bit formats and E2M1 go through tables built once from
 * decode_minifloat (so they cannot disagree with it); F16 keeps the arithmetic path. */
static float decode_table[FP8_DTYPE_COUNT_][256];
static pthread_once_t decode_table_once = PTHREAD_ONCE_INIT;

static void build_decode_tables(void)
{
    const fp8_dtype small[] = {FP8_E4M3FN, FP8_E5M2, FP8_E4M3FNUZ, FP8_E5M2FNUZ, FP8_E2M1, FP8_E8M0};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        const minifloat *mf = minifloat_of(small[i]);
        const unsigned codes = small[i] == FP8_E2M1 ? 16 : 256;
        for (unsigned c = 0; c < 256; c++) decode_table[small[i]][c] = decode_minifloat(mf, c % codes);
    }
}

float fp8i_decode(fp8_dtype dtype, uint32_t code)
{
    switch (dtype) {
    case FP8_F32: return f32_from_bits(code);
    case FP8_BF16: return f32_from_bits((code & 0xffffu) << 16); /* exact and fast */
    case FP8_E4M3FN: case FP8_E5M2: case FP8_E4M3FNUZ: case FP8_E5M2FNUZ: case FP8_E8M0:
        pthread_once(&decode_table_once, build_decode_tables);
        return decode_table[dtype][code & 0xff];
    case FP8_E2M1:
        pthread_once(&decode_table_once, build_decode_tables);
        return decode_table[dtype][code & 0xf];
    default: {
        const minifloat *mf = minifloat_of(dtype);
        return mf ? decode_minifloat(mf, code) : NAN;
    }
    }
}

uint32_t fp8_encode_value(fp8_dtype dtype, float value, fp8_overflow mode) { return fp8i_encode(dtype, value, mode); }
float fp8_decode_value(fp8_dtype dtype, uint32_t code) { return fp8i_decode(dtype, code); }

bool fp8i_is_quantized(fp8_dtype d)
{
    return d == FP8_E4M3FN || d == FP8_E5M2 || d == FP8_E4M3FNUZ || d == FP8_E5M2FNUZ || d == FP8_E2M1;
}

bool fp8i_is_float(fp8_dtype d) { return d == FP8_F32 || d == FP8_F16 || d == FP8_BF16; }

static const char *const dtype_names[FP8_DTYPE_COUNT_] = {
    "invalid", "e4m3fn", "e5m2", "e4m3fnuz", "e5m2fnuz", "e2m1", "e8m0", "f16", "bf16", "f32",
    "i8", "u8", "i32", "u32",
};

const char *fp8_dtype_name(fp8_dtype d)
{
    if ((unsigned)d >= FP8_DTYPE_COUNT_) return "invalid";
    return dtype_names[d];
}

unsigned fp8_dtype_bits(fp8_dtype d)
{
    switch (d) {
    case FP8_E2M1: return 4;
    case FP8_E4M3FN: case FP8_E5M2: case FP8_E4M3FNUZ: case FP8_E5M2FNUZ: case FP8_E8M0:
    case FP8_I8: case FP8_U8: return 8;
    case FP8_F16: case FP8_BF16: return 16;
    case FP8_F32: case FP8_I32: case FP8_U32: return 32;
    default: return 0;
    }
}

fp8_status fp8_dtype_storage_size(fp8_dtype dtype, size_t count, size_t *bytes)
{
    if (!bytes) return FP8_ERR_NULL_POINTER;
    unsigned bits = fp8_dtype_bits(dtype);
    if (!bits) return FP8_ERR_UNSUPPORTED_DTYPE;
    if (bits == 4) { *bytes = count / 2 + (count & 1); return FP8_OK; }
    size_t b;
    if (!fp8i_mul_size(count, bits / 8, &b)) return FP8_ERR_SIZE_OVERFLOW;
    *bytes = b;
    return FP8_OK;
}

double fp8_dtype_max(fp8_dtype dtype)
{
    if (dtype == FP8_F32) return 0x1.fffffep127;
    const minifloat *mf = minifloat_of(dtype);
    return mf ? mf->max : 0.0;
}

float fp8i_load(fp8_dtype dtype, const void *base, size_t index)
{
    const uint8_t *p = base;
    switch (dtype) {
    case FP8_E2M1: {
        uint8_t byte = p[index / 2];
        return fp8i_decode(dtype, (index & 1) ? byte >> 4 : byte & 0xf);
    }
    case FP8_F16: case FP8_BF16: {
        uint16_t c;
        memcpy(&c, p + index * 2, 2);
        return fp8i_decode(dtype, c);
    }
    case FP8_F32: {
        float f;
        memcpy(&f, p + index * 4, 4);
        return f;
    }
    default:
        return fp8i_decode(dtype, p[index]);
    }
}

void fp8i_store(fp8_dtype dtype, void *base, size_t index, float value, fp8_overflow mode)
{
    uint8_t *p = base;
    uint32_t code = fp8i_encode(dtype, value, mode);
    switch (dtype) {
    case FP8_E2M1: {
        uint8_t *b = &p[index / 2];
        *b = (index & 1) ? (uint8_t)((*b & 0x0f) | (code << 4)) : (uint8_t)((*b & 0xf0) | (code & 0xf));
        break;
    }
    case FP8_F16: case FP8_BF16: {
        uint16_t c = (uint16_t)code;
        memcpy(p + index * 2, &c, 2);
        break;
    }
    case FP8_F32: memcpy(p + index * 4, &value, 4); break;
    default: p[index] = (uint8_t)code; break;
    }
}

static bool is_codec_dtype(fp8_dtype d) { return d == FP8_F32 || minifloat_of(d) != NULL; }

fp8_status fp8_encode_array(fp8_dtype dtype, const float *src, size_t count, void *dst, size_t dst_bytes,
                            fp8_overflow mode)
{
    if (!is_codec_dtype(dtype)) return FP8_ERR_UNSUPPORTED_DTYPE;
    if (mode != FP8_OVERFLOW_SATURATE && mode != FP8_OVERFLOW_CAST) return FP8_ERR_INVALID_ARGUMENT;
    if (count == 0) return FP8_OK;
    if (!src || !dst) return FP8_ERR_NULL_POINTER;
    size_t need;
    fp8_status st = fp8_dtype_storage_size(dtype, count, &need);
    if (st != FP8_OK) return st;
    if (dst_bytes < need) return FP8_ERR_BUFFER_TOO_SMALL;
    if (dtype == FP8_E2M1 && (count & 1)) ((uint8_t *)dst)[count / 2] = 0;
    for (size_t i = 0; i < count; i++) fp8i_store(dtype, dst, i, src[i], mode);
    return FP8_OK;
}

fp8_status fp8_decode_array(fp8_dtype dtype, const void *src, size_t src_bytes, size_t count, float *dst)
{
    if (!is_codec_dtype(dtype)) return FP8_ERR_UNSUPPORTED_DTYPE;
    if (count == 0) return FP8_OK;
    if (!src || !dst) return FP8_ERR_NULL_POINTER;
    size_t need;
    fp8_status st = fp8_dtype_storage_size(dtype, count, &need);
    if (st != FP8_OK) return st;
    if (src_bytes < need) return FP8_ERR_BUFFER_TOO_SMALL;
    for (size_t i = 0; i < count; i++) dst[i] = fp8i_load(dtype, src, i);
    return FP8_OK;
}
