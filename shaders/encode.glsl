// Encode in GLSL, bit-exact with lib/format/codec.c: f32 -> FP8 (saturating) and f32 -> f16/bf16 (rounding
// cast), plus the correctly rounded f32 division that fp8_quantize's rule `q = cast(x / s)` needs. Everything
// works on the bits with integer arithmetic, so the result does not depend on how the device rounds f32
// division or whether it flushes denormals (decode.glsl is the other direction).
#ifndef FP8_ENCODE_GLSL
#define FP8_ENCODE_GLSL

#include "decode.glsl"

// A minifloat of `mbits` mantissa bits, exponent bias `bias`, largest finite code `maxcode` (sign clear),
// encoded from the f32 `bits` (finite) by round to nearest even on the significand, round first and then
// compare with the largest value (codec.c's rule). Returns the unsigned code before the overflow decision in
// *over (true when the rounded value exceeds the largest finite one).
uint enc_magnitude(uint bits, uint mbits, int bias, uint maxcode, out bool over)
{
    over = false;
    uint a = bits & 0x7FFFFFFFu;
    if (a == 0u) return 0u;
    int E = int(a >> 23);
    uint M = (a & 0x7FFFFFu) | (E > 0 ? 0x800000u : 0u);
    int Eeff = max(E, 1);
    // a = M * 2^(Eeff - 150); the quantum of the target at a's binade (clamped to the subnormal one) is
    // 2^(e - mbits) with e = max(floor(log2 a), 1 - bias).
    int e = max(Eeff - 127, 1 - bias); // f32 denormals land far below every target's subnormals
    int sh = 150 + e - int(mbits) - Eeff;
    uint n;
    if (sh >= 25) {
        n = 0u; // M / 2^sh < 1/2
    } else {
        n = M >> uint(sh);
        uint rem = M & ((1u << uint(sh)) - 1u), half_ = 1u << uint(sh - 1);
        if (rem > half_ || (rem == half_ && (n & 1u) != 0u)) n++;
    }
    // ((e + bias - 1) << mbits) + n is the code for subnormals (e = 1 - bias, n < 2^mbits), for normals, and
    // for a rounding carry into the next binade alike; it grows with the value, so overflow is a comparison.
    uint code = (uint(e + bias - 1) << mbits) + n;
    if (code > maxcode) over = true;
    return code;
}

// f32 bits (finite) -> FP8 code of dt with saturation (FP8_OVERFLOW_SATURATE).
uint enc_fp8_sat(uint dt, uint bits)
{
    uint mbits = (dt == DT_E4M3FN || dt == DT_E4M3FNUZ) ? 3u : 2u;
    int bias = dt == DT_E4M3FN ? 7 : dt == DT_E5M2 ? 15 : dt == DT_E4M3FNUZ ? 8 : 16;
    uint maxcode = dt == DT_E4M3FN ? 0x7Eu : dt == DT_E5M2 ? 0x7Bu : 0x7Fu;
    bool over;
    uint code = enc_magnitude(bits, mbits, bias, maxcode, over);
    if (over) code = maxcode;
    if (code == 0u) return (dt == DT_E4M3FNUZ || dt == DT_E5M2FNUZ) ? 0u : ((bits >> 24) & 0x80u); // FNUZ has no -0
    return code | ((bits >> 24) & 0x80u);
}

// f32 bits -> f16 bits, round to nearest even, overflow to Inf (FP8_OVERFLOW_CAST); NaN -> 0x7E00.
uint enc_f16(uint bits)
{
    uint s = (bits >> 16) & 0x8000u;
    if ((bits & 0x7F800000u) == 0x7F800000u) return (bits & 0x7FFFFFu) != 0u ? 0x7E00u : (s | 0x7C00u);
    bool over;
    uint code = enc_magnitude(bits, 10u, 15, 0x7BFFu, over);
    if (over) code = 0x7C00u;
    return s | code;
}

// f32 bits -> bf16 bits, round to nearest even (bf16 shares f32's exponent, so the bits round directly).
uint enc_bf16(uint bits)
{
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0u;
    return (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
}

// Correctly rounded (nearest even) f32 division a / b of finite values, b != 0, on the bits: what C's `a / b`
// gives on the host. Long division of the 24-bit significands, 26 quotient bits, then guard and sticky.
uint f32_div_rn(uint a, uint b)
{
    uint sign = (a ^ b) & 0x80000000u;
    uint aa = a & 0x7FFFFFFFu, bb = b & 0x7FFFFFFFu;
    if (aa == 0u) return sign;
    int ea = int(aa >> 23), eb = int(bb >> 23);
    uint ma = aa & 0x7FFFFFu, mb = bb & 0x7FFFFFu;
    // Normalise both significands to [2^23, 2^24) with their unbiased-by-150 exponents.
    if (ea == 0) { int s = 23 - findMSB(ma); ma <<= uint(s); ea = 1 - s; } else { ma |= 0x800000u; }
    if (eb == 0) { int s = 23 - findMSB(mb); mb <<= uint(s); eb = 1 - s; } else { mb |= 0x800000u; }
    int e = ea - eb + 127; // biased exponent of the quotient when ma >= mb
    if (ma < mb) { ma <<= 1; e -= 1; }
    // ma / mb in [1, 2): 26 quotient bits, q in [2^25, 2^26).
    uint q = 0u, r = ma;
    for (int i = 0; i < 26; i++) {
        q <<= 1;
        if (r >= mb) { r -= mb; q |= 1u; }
        r <<= 1;
    }
    bool sticky = r != 0u;
    // Normal: keep 24 bits (shift 2). Subnormal (e < 1): shift further, the lost bits join the sticky bit.
    int sh = e >= 1 ? 2 : 3 - e;
    if (sh > 27) return sign; // below half the smallest subnormal
    uint m = q >> uint(sh);
    uint lost = q & ((1u << uint(sh)) - 1u), half_ = 1u << uint(sh - 1);
    if (lost > half_ || (lost == half_ && (sticky || (m & 1u) != 0u))) m++;
    if (e >= 1) {
        if (m == 0x1000000u) { m >>= 1; e++; }
        if (e >= 255) return sign | 0x7F800000u;
        return sign | (uint(e) << 23) | (m & 0x7FFFFFu);
    }
    return sign | m; // a carry into bit 23 is the smallest normal, which this encoding gives as it is
}

#endif
