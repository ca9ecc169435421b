// Decode of every libfp8 number format in GLSL: exact scalar decoders and fast packed decoders.
//
// Scalar decoders (dec_*) build the float from its exponent and mantissa with normal-range f32 arithmetic
// only, so they are exact whatever the device does with f32 denormals. Packed decoders (dec4_fp8, dec8_e2m1)
// move the bits into fp16 positions and convert with unpackHalf2x16, two values per operation. They return
// value / dec_fold(dtype) (a power of two that the caller multiplies back once per sum), so that every format
// fits fp16's exponent range. They rely on the f16 -> f32 conversion keeping fp16 denormals (hardware
// conversions do; FP8I_QUIRK_NO_FP16_DENORMALS devices use the scalar path), and send the rare codes fp16
// cannot express (NaN patterns, FNUZ's top binade) to the scalar decoder.
#ifndef FP8_DECODE_GLSL
#define FP8_DECODE_GLSL

// fp8_dtype values (include/fp8.h).
#define DT_NONE 0u
#define DT_E4M3FN 1u
#define DT_E5M2 2u
#define DT_E4M3FNUZ 3u
#define DT_E5M2FNUZ 4u
#define DT_E2M1 5u
#define DT_E8M0 6u
#define DT_F16 7u
#define DT_BF16 8u
#define DT_F32 9u

float fp8_qnan() { return uintBitsToFloat(0x7FC00000u); }

// Sign bit `s` (non-zero = negative) applied by bit flip, so that zero gives -0 like the formats do.
float with_sign(float v, uint s) { return uintBitsToFloat(floatBitsToUint(v) | (s != 0u ? 0x80000000u : 0u)); }

float dec_e4m3fn(uint c)
{
    uint e = (c >> 3) & 15u, m = c & 7u;
    float v = e == 0u ? float(m) * (1.0 / 512.0) : uintBitsToFloat(((e + 120u) << 23) | (m << 20));
    if ((c & 0x7Fu) == 0x7Fu) return fp8_qnan();
    return with_sign(v, c & 0x80u);
}

float dec_e5m2(uint c)
{
    uint e = (c >> 2) & 31u, m = c & 3u;
    if (e == 31u) return m == 0u ? uintBitsToFloat(((c & 0x80u) << 24) | 0x7F800000u) : fp8_qnan();
    float v = e == 0u ? float(m) * (1.0 / 65536.0) : uintBitsToFloat(((e + 112u) << 23) | (m << 21));
    return with_sign(v, c & 0x80u);
}

float dec_e4m3fnuz(uint c)
{
    if (c == 0x80u) return fp8_qnan();
    uint e = (c >> 3) & 15u, m = c & 7u;
    float v = e == 0u ? float(m) * (1.0 / 1024.0) : uintBitsToFloat(((e + 119u) << 23) | (m << 20));
    return with_sign(v, c & 0x80u);
}

float dec_e5m2fnuz(uint c)
{
    if (c == 0x80u) return fp8_qnan();
    uint e = (c >> 2) & 31u, m = c & 3u;
    float v = e == 0u ? float(m) * (1.0 / 131072.0) : uintBitsToFloat(((e + 111u) << 23) | (m << 21));
    return with_sign(v, c & 0x80u);
}

float dec_e2m1(uint c)
{
    uint e = (c >> 1) & 3u, m = c & 1u;
    float v = e == 0u ? float(m) * 0.5 : uintBitsToFloat(((e + 126u) << 23) | (m << 22));
    return with_sign(v, c & 8u);
}

// 2^(c-127). Code 0 is 2^-127, an f32 denormal: exact only where the device keeps them.
float dec_e8m0(uint c)
{
    if (c == 255u) return fp8_qnan();
    return c == 0u ? uintBitsToFloat(0x00400000u) : uintBitsToFloat(c << 23);
}

float dec_f16(uint c) { return unpackHalf2x16(c & 0xFFFFu).x; }
float dec_bf16(uint c) { return uintBitsToFloat((c & 0xFFFFu) << 16); }

// Any dtype; dt is a constant in every caller, so the switch folds away.
float dec_scalar(uint dt, uint c)
{
    switch (dt) {
    case DT_E4M3FN: return dec_e4m3fn(c);
    case DT_E5M2: return dec_e5m2(c);
    case DT_E4M3FNUZ: return dec_e4m3fnuz(c);
    case DT_E5M2FNUZ: return dec_e5m2fnuz(c);
    case DT_E2M1: return dec_e2m1(c);
    case DT_E8M0: return dec_e8m0(c);
    case DT_F16: return dec_f16(c);
    case DT_BF16: return dec_bf16(c);
    default: return uintBitsToFloat(c);
    }
}

// The power of two by which packed decoders divide: value = packed result * dec_fold(dt).
float dec_fold(uint dt)
{
    switch (dt) {
    case DT_E4M3FN: return 256.0;        // fp16 exponent bias 15 vs 7
    case DT_E4M3FNUZ: return 128.0;      // 15 vs 8
    case DT_E5M2FNUZ: return 0.5;        // 15 vs 16
    case DT_E2M1: return 16384.0;        // 15 vs 1
    default: return 1.0;                 // E5M2 is the top byte of an fp16
    }
}

// Which bytes of x hold codes that dec4_fp8's bit moves cannot express (bit 7 of each byte): NaN codes, and
// E5M2FNUZ's exponent 31, which is finite there.
uint fp8_special(uint dt, uint x)
{
    const uint y = x & 0x7F7F7F7Fu;
    if (dt == DT_E4M3FN) return (y + 0x01010101u) & 0x80808080u;                  // S.1111.111 is NaN, not 480
    if (dt == DT_E4M3FNUZ || dt == DT_E5M2FNUZ) {
        const uint t = x ^ 0x80808080u;                                             // a byte equal to 0x80 is NaN
        uint r = (t - 0x01010101u) & ~t & 0x80808080u;
        if (dt == DT_E5M2FNUZ) r |= (y + 0x04040404u) & 0x80808080u;                 // exponent 31 is finite
        return r;
    }
    return 0u;
}

// dec4_fp8's bit moves alone, for codes that fp8_special passed.
vec4 fp8_moves(uint dt, uint x)
{
    uint h0, h1;
    if (dt == DT_E5M2 || dt == DT_E5M2FNUZ) {
        h0 = (x << 8) & 0xFF00FF00u;  // bytes 0 and 2 as the high bytes of two fp16
        h1 = x & 0xFF00FF00u;         // bytes 1 and 3
    } else {
        uint e0 = x & 0x00FF00FFu, e1 = (x >> 8) & 0x00FF00FFu;
        h0 = ((e0 << 8) & 0x80008000u) | ((e0 << 7) & 0x3F803F80u);
        h1 = ((e1 << 8) & 0x80008000u) | ((e1 << 7) & 0x3F803F80u);
    }
    vec2 a = unpackHalf2x16(h0), b = unpackHalf2x16(h1);
    return vec4(a.x, b.x, a.y, b.y);
}

// Whether any of sixteen codes (a 16-byte unit) is one that fp8_special flags.
bool fp8_any_special(uint dt, uvec4 x)
{
    return (fp8_special(dt, x.x) | fp8_special(dt, x.y) | fp8_special(dt, x.z) | fp8_special(dt, x.w)) != 0u;
}

// Four FP8 codes (byte i of x is element i) -> values / dec_fold(dt). EXACT selects the scalar path.
vec4 dec4_fp8(uint dt, uint x, bool exact)
{
    if (exact || fp8_special(dt, x) != 0u) {
        float f = 1.0 / dec_fold(dt);
        return vec4(dec_scalar(dt, x & 0xFFu), dec_scalar(dt, (x >> 8) & 0xFFu), dec_scalar(dt, (x >> 16) & 0xFFu),
                    dec_scalar(dt, x >> 24)) * f;
    }
    return fp8_moves(dt, x);
}

// Sixteen codes (x.x holds elements 0-3) as dec4_fp8 gives them, elements 4j..4j+3 in vj, with one test of
// all sixteen for codes the moves cannot express instead of one branch per four (see dec16_fp8_h).
void dec16_fp8(uint dt, uvec4 x, bool exact, out vec4 v0, out vec4 v1, out vec4 v2, out vec4 v3)
{
    if (exact || fp8_any_special(dt, x)) {
        v0 = dec4_fp8(dt, x.x, exact);
        v1 = dec4_fp8(dt, x.y, exact);
        v2 = dec4_fp8(dt, x.z, exact);
        v3 = dec4_fp8(dt, x.w, exact);
        return;
    }
    v0 = fp8_moves(dt, x.x);
    v1 = fp8_moves(dt, x.y);
    v2 = fp8_moves(dt, x.z);
    v3 = fp8_moves(dt, x.w);
}

// Eight E2M1 codes (nibble i of x is element i) -> values / 16384 in lo (elements 0..3) and hi (4..7).
void dec8_e2m1(uint x, bool exact, out vec4 lo, out vec4 hi)
{
    if (exact) {
        const float f = 1.0 / 16384.0;
        lo = vec4(dec_e2m1(x & 15u), dec_e2m1((x >> 4) & 15u), dec_e2m1((x >> 8) & 15u), dec_e2m1((x >> 12) & 15u)) * f;
        hi = vec4(dec_e2m1((x >> 16) & 15u), dec_e2m1((x >> 20) & 15u), dec_e2m1((x >> 24) & 15u), dec_e2m1(x >> 28)) * f;
        return;
    }
    // Nibbles j and j+4 become one fp16 pair: sign to bit 15, exponent and mantissa to bits 9..11.
    vec2 p0 = unpackHalf2x16(((x << 12) & 0x80008000u) | ((x << 9) & 0x0E000E00u));
    vec2 p1 = unpackHalf2x16(((x << 8) & 0x80008000u) | ((x << 5) & 0x0E000E00u));
    vec2 p2 = unpackHalf2x16(((x << 4) & 0x80008000u) | ((x << 1) & 0x0E000E00u));
    vec2 p3 = unpackHalf2x16((x & 0x80008000u) | ((x >> 3) & 0x0E000E00u));
    lo = vec4(p0.x, p1.x, p2.x, p3.x);
    hi = vec4(p0.y, p1.y, p2.y, p3.y);
}

// dec4_fp8_h's bit moves alone, for codes that fp8_special passed.
uvec2 fp8_h_moves(uint dt, uint x)
{
    uint t0 = (x & 0xFFu) | ((x << 8) & 0xFF0000u);         // bytes 0 and 1 at bits 0 and 16
    uint t1 = ((x >> 16) & 0xFFu) | ((x >> 8) & 0xFF0000u); // bytes 2 and 3
    if (dt == DT_E5M2) return uvec2(t0 << 8, t1 << 8);
    return uvec2(((t0 << 8) & 0x80008000u) | ((t0 << 7) & 0x3F803F80u),
                 ((t1 << 8) & 0x80008000u) | ((t1 << 7) & 0x3F803F80u));
}

// Four FP8 codes -> value / dec_fold(dt) as packed fp16, elements 0 and 1 in .x, 2 and 3 in .y, for the formats
// whose value / fold is an fp16 bit pattern (E4M3FN, E4M3FNUZ, E5M2): bits are moved, nothing is converted, so
// fp16 denormals need no hardware support. Codes that pattern cannot express (fp8_special: NaN codes of the
// E4M3 formats; E5M2's NaN and Inf codes move to fp16's) go through the scalar decoder.
uvec2 dec4_fp8_h(uint dt, uint x, bool exact)
{
    if (exact || fp8_special(dt, x) != 0u) {
        vec4 v = dec4_fp8(dt, x, true);
        return uvec2(packHalf2x16(v.xy), packHalf2x16(v.zw));
    }
    return fp8_h_moves(dt, x);
}

// Sixteen codes (x.x holds elements 0-3) as dec4_fp8_h gives them, elements 0-7 in lo, 8-15 in hi, with one
// test of all sixteen for codes the moves cannot express instead of one branch per four. In the dense
// cooperative-matrix GEMM's weight decode that made the H100's E4M3 rows 9-12.5% faster (run 140).
void dec16_fp8_h(uint dt, uvec4 x, bool exact, out uvec4 lo, out uvec4 hi)
{
    if (exact || fp8_any_special(dt, x)) {
        lo = uvec4(dec4_fp8_h(dt, x.x, exact), dec4_fp8_h(dt, x.y, exact));
        hi = uvec4(dec4_fp8_h(dt, x.z, exact), dec4_fp8_h(dt, x.w, exact));
        return;
    }
    lo = uvec4(fp8_h_moves(dt, x.x), fp8_h_moves(dt, x.y));
    hi = uvec4(fp8_h_moves(dt, x.z), fp8_h_moves(dt, x.w));
}

// Eight E2M1 codes (nibble i is element i) -> value / 16384 as packed fp16, elements 2j and 2j+1 in component j.
uvec4 dec8_e2m1_h(uint x, bool exact)
{
    if (exact) {
        vec4 lo, hi;
        dec8_e2m1(x, true, lo, hi);
        return uvec4(packHalf2x16(lo.xy), packHalf2x16(lo.zw), packHalf2x16(hi.xy), packHalf2x16(hi.zw));
    }
    uvec4 v = (uvec4(x) >> uvec4(0u, 8u, 16u, 24u)) & 0xFFu; // byte j holds elements 2j (low) and 2j+1
    return ((v & 0x8u) << 12) | ((v & 0x7u) << 9) | ((v & 0x80u) << 24) | ((v & 0x70u) << 21);
}

#endif
