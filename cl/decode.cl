/* Bit-exact decode of every libfp8 number format to float, and the stores of the output formats.
 * Prepended (after params.h) to every kernel source. Each decode builds the float's bits from the code's
 * fields with integer operations, so nothing depends on the device's denormal or fp16 support. */

/* FP8 with a 7-bit magnitude field em = code & 0x7f: normal values are em shifted into the float's exponent
 * and mantissa plus a rebias; subnormals are em times the smallest subnormal (exact in float). */
#define FP8K_MAG(em, mbits, bias) \
    ((em) >= (1u << (mbits)) ? as_float(((em) << (23 - (mbits))) + ((uint)(127 - (bias)) << 23)) \
                             : (float)(em) * as_float((uint)(128 - (bias) - (mbits)) << 23))

inline float fp8k_signed(float mag, uint sign_bit) { return as_float(as_uint(mag) | (sign_bit << 31)); }

inline float fp8k_e4m3fn(uint c)
{
    const uint em = c & 0x7fu;
    const float mag = em == 0x7fu ? NAN : FP8K_MAG(em, 3, 7);
    return fp8k_signed(mag, (c >> 7) & 1u);
}

inline float fp8k_e5m2(uint c)
{
    const uint em = c & 0x7fu;
    const float mag = em >= 0x7cu ? (em == 0x7cu ? INFINITY : NAN) : FP8K_MAG(em, 2, 15);
    return fp8k_signed(mag, (c >> 7) & 1u);
}

/* FNUZ: no -0, no Inf; 0x80 is the only NaN. */
inline float fp8k_e4m3fnuz(uint c)
{
    const uint em = c & 0x7fu;
    const float v = fp8k_signed(FP8K_MAG(em, 3, 8), (c >> 7) & 1u);
    return (c & 0xffu) == 0x80u ? NAN : v;
}

inline float fp8k_e5m2fnuz(uint c)
{
    const uint em = c & 0x7fu;
    const float v = fp8k_signed(FP8K_MAG(em, 2, 16), (c >> 7) & 1u);
    return (c & 0xffu) == 0x80u ? NAN : v;
}

/* E2M1 (low 4 bits of c): +-{0, .5, 1, 1.5, 2, 3, 4, 6}. */
inline float fp8k_e2m1(uint c)
{
    const uint em = c & 7u;
    const float mag = em >= 2u ? as_float((em << 22) + (126u << 23)) : (float)em * 0.5f;
    return fp8k_signed(mag, (c >> 3) & 1u);
}

/* E8M0: 2^(c-127); code 0 is 2^-127, a float subnormal built from its bits; 0xff is NaN. */
inline float fp8k_e8m0(uint c)
{
    c &= 0xffu;
    return c == 0xffu ? NAN : as_float(c == 0u ? 0x00400000u : c << 23);
}

inline float fp8k_bf16(uint c) { return as_float((c & 0xffffu) << 16); }

/* IEEE half from its bits, without the `half` type (which needs cl_khr_fp16 for arithmetic). */
inline float fp8k_f16(uint c)
{
    const uint em = c & 0x7fffu;
    const float mag = em >= 0x7c00u ? (em == 0x7c00u ? INFINITY : NAN) : FP8K_MAG(em, 10, 15);
    return fp8k_signed(mag, (c >> 15) & 1u);
}

/* One 8-bit code of `dt` (an FP8 dtype or E8M0). With a constant dt the switch folds away. */
inline float fp8k_decode8(uint c, uint dt)
{
    switch (dt) {
    case FP8K_E4M3FN: return fp8k_e4m3fn(c);
    case FP8K_E5M2: return fp8k_e5m2(c);
    case FP8K_E4M3FNUZ: return fp8k_e4m3fnuz(c);
    case FP8K_E5M2FNUZ: return fp8k_e5m2fnuz(c);
    case FP8K_E8M0: return fp8k_e8m0(c);
    default: return NAN;
    }
}

/* Element `i` of a packed array of any dtype (E2M1: element 2j in the low nibble of byte j). */
inline float fp8k_load(global const uchar *base, ulong i, uint dt)
{
    switch (dt) {
    case FP8K_F32: return ((global const float *)base)[i];
    case FP8K_F16: return vload_half(i, (global const half *)base);
    case FP8K_BF16: return fp8k_bf16(((global const ushort *)base)[i]);
    case FP8K_E2M1: return fp8k_e2m1(base[i >> 1] >> ((i & 1) * 4));
    default: return fp8k_decode8(base[i], dt);
    }
}

/* Round to nearest even into the output dtype; overflow gives Inf (a plain cast, as the CPU reference). */
inline void fp8k_store(global uchar *base, ulong i, uint dt, float v)
{
    if (dt == FP8K_F32) {
        ((global float *)base)[i] = v;
    } else if (dt == FP8K_F16) {
        vstore_half_rte(v, i, (global half *)base);
    } else {
        const uint u = as_uint(v);
        const uint r = isnan(v) ? ((u >> 16) | 0x40u) : (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        ((global ushort *)base)[i] = (ushort)r;
    }
}

/* Scale `idx` of a scale tensor: F32, E8M0 or E4M3FN, the only scale dtypes the API takes (the host refuses
 * others, so no other decode is compiled in); 1 when there is no tensor (dt 0). `s` is offset-adjusted. */
inline float fp8k_scale_idx(global const uchar *s, uint dt, ulong idx)
{
    if (dt == FP8K_F32) return ((global const float *)s)[idx];
    if (!dt) return 1.0f;
    const uint c = s[idx];
    return dt == FP8K_E8M0 ? fp8k_e8m0(c) : fp8k_e4m3fn(c);
}

/* Block index along one dimension (shift1: see fp8k_scale). The GEMM kernels are built with SPOW2=1 when every
 * block index of their scales is a shift, so the hot loops never divide, and SPOW2=0 when some index needs a
 * division; kernels without the define choose at run time. */
inline uint fp8k_block_of(uint i, uint size, uint shift1)
{
#if defined(SPOW2) && SPOW2
    (void)size;
    return i >> (shift1 - 1);
#elif defined(SPOW2)
    (void)shift1;
    return i / size;
#else
    return shift1 ? i >> (shift1 - 1) : i / size;
#endif
}

inline float fp8k_scale_at(global const uchar *s, const fp8k_scale *sc, uint r, uint c)
{
    if (!sc->dtype) return 1.0f;
    return fp8k_scale_idx(s, sc->dtype,
                          (ulong)fp8k_block_of(r, sc->block_rows, sc->rows_shift1) * sc->blocks_per_row +
                              fp8k_block_of(c, sc->block_cols, sc->cols_shift1));
}

/* Per-element scales of elements c .. c+3 of row r (GENERIC mode in the GEMV kernels). */
inline float4 fp8k_scale4(global const uchar *s, const fp8k_scale *sc, uint r, uint c)
{
    return (float4)(fp8k_scale_at(s, sc, r, c), fp8k_scale_at(s, sc, r, c + 1), fp8k_scale_at(s, sc, r, c + 2),
                    fp8k_scale_at(s, sc, r, c + 3));
}

/* Load c (16 bytes) of a row; `aligned` (a constant where it is called): the row starts on 16 bytes, else it is
 * read with vload. */
inline uint4 fp8k_load16(global const uchar *row, uint c, bool aligned)
{
    return aligned ? ((global const uint4 *)row)[c] : as_uint4(vload16(c, row));
}

#if defined(FP8K_PTX) && defined(WLDG) && WLDG
/* NVIDIA sm_70+ (the host asks for it on sm_89+ only: lib/opencl/cl_gemm.c, weight_ldg), weights streamed once
 * (WLDG): 16 bytes through the read-only path, not kept in L1. */
inline uint4 fp8k_stream16(global const uchar *p)
{
    uint a, b, c, d;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(a), "=r"(b), "=r"(c), "=r"(d)
                 : "l"(p));
    return (uint4)(a, b, c, d);
}
#define FP8K_WLOAD16(row, c, aligned) ((aligned) ? fp8k_stream16((row) + 16 * (ulong)(c)) : fp8k_load16(row, c, aligned))
#else
#define FP8K_WLOAD16(row, c, aligned) fp8k_load16(row, c, aligned)
#endif

/* Fast decodes, for devices that keep float denormals (FP8K_DENORMS, from CL_FP_DENORM): the code's sign and
 * magnitude bits are moved into a float's sign, exponent and mantissa fields with one shift pair and a mask,
 * and one multiply by 2^(127 - bias) rebiases it. Subnormal codes become float denormals first, which the
 * multiply makes exact normal values. Special codes (NaN, Inf) are not handled: fp8k_plain4 tells whether
 * a word has none. */
#define FP8K_FAST8(w, i, sh, mask, rebias) \
    (as_float(((int)((w) << (24 - 8 * (i))) >> (sh)) & (mask)) * (rebias))

/* True when none of the 4 codes of w is a special code of dt (E4M3FN: x1111111; E5M2: x11111xx; FNUZ: 0x80). */
inline bool fp8k_plain4(uint w, uint dt)
{
    switch (dt) {
    case FP8K_E4M3FN: return (((w & 0x7f7f7f7fu) + 0x01010101u) & 0x80808080u) == 0u;
    case FP8K_E5M2: return (((w & 0x7c7c7c7cu) + 0x04040404u) & 0x80808080u) == 0u;
    default: {
        const uint x = w ^ 0x80808080u; /* a zero byte of x is a 0x80 code */
        return ((x - 0x01010101u) & ~x & 0x80808080u) == 0u;
    }
    }
}

inline void fp8k_fast4(uint w, uint dt, float *v)
{
#pragma unroll
    for (int i = 0; i < 4; i++) {
        switch (dt) {
        case FP8K_E4M3FN: v[i] = FP8K_FAST8(w, i, 4, 0x87f00000u, 0x1p120f); break;
        case FP8K_E4M3FNUZ: v[i] = FP8K_FAST8(w, i, 4, 0x87f00000u, 0x1p119f); break;
        case FP8K_E5M2: v[i] = FP8K_FAST8(w, i, 3, 0x8fe00000u, 0x1p112f); break;
        default: v[i] = FP8K_FAST8(w, i, 3, 0x8fe00000u, 0x1p111f); break;
        }
    }
}

#ifdef FP8K_PTX
/* NVIDIA: v of the lane whose index differs from this one's in the bits of o. Work-item i of a work-group is
 * lane i % 32 of warp i / 32 there (the device layer checked %laneid), and every lane of the warp calls this. */
inline uint fp8k_shfl_xor(uint v, uint o)
{
    uint t;
    asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=r"(t) : "r"(v), "r"(o));
    return t;
}

/* NVIDIA: the two IEEE halves of w (low, high) widened to float by the hardware (exact; NaN and Inf kept). */
inline float2 fp8k_ptx_f16x2(uint w)
{
    float lo, hi;
    asm("{\n\t.reg .b16 l, u;\n\tmov.b32 {l, u}, %2;\n\tcvt.f32.f16 %0, l;\n\tcvt.f32.f16 %1, u;\n\t}"
        : "=f"(lo), "=f"(hi)
        : "r"(w));
    return (float2)(lo, hi);
}
#endif

#ifdef FP8K_PTX_FP8
/* NVIDIA sm_89 and later (FP8K_PTX_FP8: the device layer ran this conversion and checked its bits): the
 * hardware turns two E4M3FN or E5M2 codes (the low and high byte of a 16-bit word) into an f16 pair, and each
 * half widens exactly to float. Every code is exact in f16, NaN codes stay NaN and E5M2's Inf stays Inf, so
 * this is the same decode as above in one and a half instructions per weight (a cvt per pair, a widening per
 * half) instead of five to seven. */
#define FP8K_PTX_X2(name, type)                                                                                  \
    inline float2 name(uint h)                                                                                   \
    {                                                                                                            \
        float lo, hi;                                                                                            \
        asm("{\n\t.reg .b16 l, u;\n\t.reg .b32 p;\n\t"                                                      \
            "cvt.rn.f16x2." type "x2 p, %2;\n\tmov.b32 {l, u}, p;\n\tcvt.f32.f16 %0, l;\n\tcvt.f32.f16 %1, u;\n\t}" \
            : "=f"(lo), "=f"(hi)                                                                                 \
            : "h"((ushort)h));                                                                                   \
        return (float2)(lo, hi);                                                                                 \
    }
FP8K_PTX_X2(fp8k_ptx_e4m3x2, "e4m3")
FP8K_PTX_X2(fp8k_ptx_e5m2x2, "e5m2")

/* Whether dt has a hardware conversion (the FNUZ pair has none). */
#define FP8K_PTX_HAS(dt) ((dt) == FP8K_E4M3FN || (dt) == FP8K_E5M2)

/* Codes 2j and 2j+1 of w, as a pair. */
inline float2 fp8k_ptx_dec2(uint w, uint j, uint dt)
{
    return dt == FP8K_E4M3FN ? fp8k_ptx_e4m3x2(w >> (16 * j)) : fp8k_ptx_e5m2x2(w >> (16 * j));
}
#endif

/* 16 consecutive 8-bit codes packed in q (byte i in bits 8i..8i+7 of the little-endian words). */
inline void fp8k_decode_bytes16(uint4 q, uint dt, float *v)
{
    const uint w[4] = {q.x, q.y, q.z, q.w};
#ifdef FP8K_PTX_FP8
    if (FP8K_PTX_HAS(dt)) {
#pragma unroll
        for (int j = 0; j < 8; j++) vstore2(fp8k_ptx_dec2(w[j >> 1], j & 1, dt), j, v);
        return;
    }
#endif
#ifdef FP8K_DENORMS
    if (fp8k_plain4(w[0], dt) && fp8k_plain4(w[1], dt) && fp8k_plain4(w[2], dt) && fp8k_plain4(w[3], dt)) {
#pragma unroll
        for (int j = 0; j < 4; j++) fp8k_fast4(w[j], dt, v + 4 * j);
        return;
    }
#endif
#pragma unroll
    for (int i = 0; i < 16; i++) v[i] = fp8k_decode8((w[i >> 2] >> ((i & 3) * 8)) & 0xffu, dt);
}

/* Four E2M1 codes in the low 16 bits of h (element i in nibble i). E2M1 has no special codes. */
inline float4 fp8k_dec4_e2m1(uint h)
{
    float v[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
#ifdef FP8K_DENORMS
        /* nibble to bits 28..31, then sign to bit 31 and magnitude to bits 22..24 (a denormal for code 1) */
        v[i] = as_float(((int)(h << (28 - 4 * i)) >> 6) & 0x81c00000u) * 0x1p126f;
#else
        v[i] = fp8k_e2m1(h >> (4 * i));
#endif
    }
    return (float4)(v[0], v[1], v[2], v[3]);
}

/* 16 E2M1 codes in 8 bytes: element 2j in the low nibble of byte j. */
inline void fp8k_decode_nibbles16(uint2 q, float *v)
{
    const uint w[2] = {q.x, q.y};
#pragma unroll
    for (int j = 0; j < 4; j++) vstore4(fp8k_dec4_e2m1(w[j >> 1] >> (16 * (j & 1))), j, v);
}

/* 8 16-bit values (f16 or bf16) packed in q. */
inline void fp8k_decode_halves8(uint4 q, uint dt, float *v)
{
    const uint w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const uint h = (w[i >> 1] >> ((i & 1) * 16)) & 0xffffu;
#ifdef FP8K_DENORMS
        /* as the FP8 fast decode; exponent 31 (Inf, NaN) takes the exact path */
        v[i] = dt == FP8K_BF16 ? fp8k_bf16(h)
               : (h & 0x7c00u) != 0x7c00u ? as_float(((int)(h << 16) >> 3) & 0x8fffe000u) * 0x1p112f : fp8k_f16(h);
#else
        v[i] = dt == FP8K_F16 ? fp8k_f16(h) : fp8k_bf16(h);
#endif
    }
}

/* Four 8-bit codes of dt (byte i of w is element i), for the GEMV: without branches. With denormals the bits
 * are moved into place (fp8k_fast4) and the special codes, which that move gets wrong, are chosen by a select;
 * a few integer operations per value, so that decoding keeps up with the weight stream. */
inline float4 fp8k_dec4(uint w, uint dt)
{
#ifdef FP8K_PTX_FP8
    if (FP8K_PTX_HAS(dt)) return (float4)(fp8k_ptx_dec2(w, 0, dt), fp8k_ptx_dec2(w, 1, dt));
#endif
    float v[4];
#ifdef FP8K_DENORMS
    fp8k_fast4(w, dt, v);
#endif
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const uint b = (w >> (8 * i)) & 0xffu;
#ifdef FP8K_DENORMS
        switch (dt) {
        case FP8K_E4M3FN: v[i] = (b & 0x7fu) == 0x7fu ? NAN : v[i]; break;
        case FP8K_E5M2: v[i] = (b & 0x7cu) == 0x7cu ? fp8k_e5m2(b) : v[i]; break;
        default: v[i] = b == 0x80u ? NAN : v[i]; break; /* the FNUZ pair */
        }
#else
        v[i] = fp8k_decode8(b, dt);
#endif
    }
    return (float4)(v[0], v[1], v[2], v[3]);
}

/* Four 16-bit values (f16 or bf16) in q. */
inline float4 fp8k_dec4_halves(uint2 q, uint dt)
{
    float v[8];
    fp8k_decode_halves8((uint4)(q, 0u, 0u), dt, v);
    return (float4)(v[0], v[1], v[2], v[3]);
}

/* Activations k .. k+3 of the row at xr, of dtype dt, as floats (k % 4 == 0, k + 4 <= K). `aligned` (a
 * constant where it is called): the row starts where one vector load of the four is naturally aligned. */
inline float4 fp8k_x4(global const uchar *xr, uint k, uint dt, bool aligned)
{
    if (dt == FP8K_F32) {
        global const float *p = (global const float *)xr + k;
        return aligned ? *(global const float4 *)p : vload4(0, p);
    }
    if (dt == FP8K_F16) {
#ifdef FP8K_PTX
        /* NVIDIA: one 8-byte load and the hardware's half-to-float conversions (vload_half4 may assume only
         * 2-byte alignment, and is then four loads) */
        if (aligned) {
            const uint2 q = *(global const uint2 *)((global const ushort *)xr + k);
            return (float4)(fp8k_ptx_f16x2(q.x), fp8k_ptx_f16x2(q.y));
        }
#endif
        /* the device's conversion (core OpenCL, no cl_khr_fp16): exact, and cheaper than decoding the bits */
        return vload_half4(0, (global const half *)xr + k);
    }
    if (dt == FP8K_BF16) {
        global const ushort *p = (global const ushort *)xr + k;
        return fp8k_dec4_halves(aligned ? *(global const uint2 *)p : as_uint2(vload4(0, p)), dt);
    }
    global const uchar *p = xr + k;
    return fp8k_dec4(aligned ? *(global const uint *)p : as_uint(vload4(0, p)), dt);
}

/* Elements [k, k+16) of the row at `row` (bytes) of dtype dt, as floats, zero at and past K. k is a
 * multiple of 16; `aligned` says the row starts on a 16-byte boundary, which makes every load below
 * a naturally aligned vector load. With a constant dt everything but one case folds away. */
inline void fp8k_row16(global const uchar *row, uint k, uint K, uint dt, uint aligned, float *v)
{
    if (k + 16u > K) {
#pragma unroll
        for (uint i = 0; i < 16u; i++) v[i] = k + i < K ? fp8k_load(row, k + i, dt) : 0.0f;
        return;
    }
    if (dt == FP8K_F32) {
        global const float *p = (global const float *)row + k;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const float4 t = aligned ? ((global const float4 *)p)[j] : vload4(j, p);
            v[4 * j] = t.x; v[4 * j + 1] = t.y; v[4 * j + 2] = t.z; v[4 * j + 3] = t.w;
        }
    } else if (dt == FP8K_F16 || dt == FP8K_BF16) {
        global const ushort *p = (global const ushort *)row + k;
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const uint4 q = aligned ? ((global const uint4 *)p)[j] : as_uint4(vload8(j, p));
            fp8k_decode_halves8(q, dt, v + 8 * j);
        }
    } else if (dt == FP8K_E2M1) {
        global const uchar *p = row + k / 2;
        fp8k_decode_nibbles16(aligned ? *(global const uint2 *)p : as_uint2(vload8(0, p)), v);
    } else {
        global const uchar *p = row + k;
        fp8k_decode_bytes16(aligned ? *(global const uint4 *)p : as_uint4(vload16(0, p)), dt, v);
    }
}

/* Bytes of one row of `cols` elements of dtype dt. */
inline ulong fp8k_row_bytes(uint cols, uint dt)
{
    if (dt == FP8K_E2M1) return ((ulong)cols + 1) / 2;
    return (ulong)cols * (dt == FP8K_F32 ? 4u : (dt == FP8K_F16 || dt == FP8K_BF16) ? 2u : 1u);
}

/* The output element (m, n): the accumulated dot product times the scales that are constant along K
 * (the others were applied in the loop), plus the bias, rounded into the output dtype. The scale and bias
 * pointers are offset-adjusted. */
inline void fp8k_epilogue(global uchar *y, global const uchar *ws, global const uchar *xs, global const uchar *b,
                          const fp8k_gemm_params *p, uint m, uint n, float acc)
{
    float s = p->ws.tensor * p->xs.tensor;
    if (p->ws.mode == FP8K_SCALE_ROWCONST) s *= fp8k_scale_at(ws, &p->ws, n, 0);
    if (p->xs.mode == FP8K_SCALE_ROWCONST) s *= fp8k_scale_at(xs, &p->xs, m, 0);
    float v = acc * s;
    if (p->b_dtype) v += fp8k_load(b, n, p->b_dtype);
    fp8k_store(y, (ulong)m * p->y_stride + n, p->y_dtype, v);
}
