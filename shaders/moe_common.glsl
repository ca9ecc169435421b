// What the MoE shaders share: the binding numbers (FP8I_VK_MOE_BIND_* in lib/vulkan/vk_moe.c), the device
// error word, exact loads of 16-bit floats, an exp accurate to a few ulp (the built-in one is not bounded
// tightly enough on every driver to match the CPU's double-precision routing and epilogues within 1e-6),
// and the activation functions of fp8_moe.h written without cancellation.
#ifndef FP8_MOE_COMMON_GLSL
#define FP8_MOE_COMMON_GLSL

#include "decode.glsl"

// Bindings: one descriptor set of nine storage buffers, bound whole (offsets travel as push constants).
#define MB_W 0
#define MB_WS 1
#define MB_X 2
#define MB_XS 3
#define MB_BIAS 4
#define MB_Y 5
#define MB_PLAN 6
#define MB_TS 7
#define MB_ERR 8

#define NONE 0xFFFFFFFFu

// fp8_status values (include/fp8.h; vk_moe.c checks them at compile time).
#define ST_INVALID_ARGUMENT (-1)
#define ST_EXPERT_ID (-16)
#define ST_NOT_FINITE (-17)

// Plan header words (lib/backend/moe.h).
#define H_MAGIC 0u
#define H_STATUS 1u
#define H_M 2u
#define H_TOP_K 3u
#define H_EXPERTS 4u
#define H_ROW_ALIGN 5u
#define H_ROWS 6u
#define H_TOTAL_ROWS 7u
#define H_ACTIVE 8u
#define H_DROPPED 9u
#define PLAN_MAGIC 0x31454F4Du

// The per-device error word: the first data error since the last fp8_device_synchronize (0: none).
// Word 0: the first data error since the last synchronize. Word 1: moe_route.comp's count of finished
// workgroups when it groups too (zero between dispatches; synchronize clears both).
layout(std430, set = 0, binding = MB_ERR) buffer BErr { uint err_word[]; };
void moe_error(int status) { atomicCompSwap(err_word[0], 0u, uint(status)); }

// Activations (fp8_moe_activation).
#define ACT_NONE 0u
#define ACT_SWIGLU 1u
#define ACT_GEGLU 2u
#define ACT_GEGLU_TANH 3u
#define ACT_SILU 4u
#define ACT_GELU 5u
#define ACT_GELU_TANH 6u
bool act_gated(uint a) { return a == ACT_SWIGLU || a == ACT_GEGLU || a == ACT_GEGLU_TANH; }

bool bits_finite(uint b) { return (b & 0x7F800000u) != 0x7F800000u; }

// f16 bits -> f32 exactly, subnormals included, whatever the device does with fp16 denormals.
float f16_exact(uint h)
{
    uint s = (h & 0x8000u) << 16, e = (h >> 10) & 31u, m = h & 0x3FFu;
    if (e == 0u) return with_sign(float(m) * (1.0 / 16777216.0), s);
    if (e == 31u) return uintBitsToFloat(s | 0x7F800000u | (m << 13));
    return uintBitsToFloat(s | ((e + 112u) << 23) | (m << 13));
}

// Bits of element i of a float operand in a uint array (F32, F16 or BF16), as f32 bits.
#define HALF_BITS(arr, i) ((arr[(i) >> 1] >> (((i) & 1u) << 4)) & 0xFFFFu)
#define FLOAT_BITS(dt, arr, i)                                                                     \
    ((dt) == DT_F32 ? arr[i] : (dt) == DT_BF16 ? (HALF_BITS(arr, i) << 16) : floatBitsToUint(f16_exact(HALF_BITS(arr, i))))
#define FLOAT_AT(dt, arr, i) uintBitsToFloat(FLOAT_BITS(dt, arr, i))

// exp(x) to about 1 ulp: Cody-Waite reduction by ln 2 (the high part has 16 bits, so n * ln2_hi is exact),
// then a degree-7 Taylor polynomial on |r| <= ln(2)/2 (truncation below 6e-9), then the power of two.
float exp_acc(float x)
{
    if (x > 88.72284) return uintBitsToFloat(0x7F800000u);
    if (x < -103.97208) return 0.0;
    float n = floor(x * 1.4426950408889634 + 0.5);
    float r = (x - n * 0.693145751953125) - n * 1.4286068203094172e-6;
    float p = 1.0 + r * (1.0 + r * (0.5 + r * (0.16666666666666666 + r * (0.041666666666666664 +
              r * (0.008333333333333333 + r * (0.001388888888888889 + r * 0.0001984126984126984))))));
    // 2^n in two steps: n reaches -150, below the smallest exponent one f32 can hold.
    int ni = int(n);
    int n1 = ni / 2;
    return p * uintBitsToFloat(uint(n1 + 127) << 23) * uintBitsToFloat(uint(ni - n1 + 127) << 23);
}

float sigmoid_acc(float x) { return 1.0 / (1.0 + exp_acc(-x)); }

// Products a * b = hi + lo exactly (Dekker; `precise` keeps the compiler from fusing or reassociating).
void two_prod(float a, float b, out float hi, out float lo)
{
    if (abs(a) > 1e30 || abs(b) > 1e30) { // the split below would overflow: give up the low part
        hi = a * b;
        lo = 0.0;
        return;
    }
    precise float p = a * b;
    precise float ta = 4097.0 * a, tb = 4097.0 * b;
    precise float ah = ta - (ta - a), bh = tb - (tb - b);
    precise float al = a - ah, bl = b - bh;
    precise float err = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
    hi = p;
    lo = err;
}

// Unevaluated sums of two floats (hi + lo, |lo| <= ulp(hi)/2): error-free addition and products.
void two_sum(float a, float b, out float s, out float e)
{
    precise float s_ = a + b;
    precise float bb = s_ - a;
    precise float e_ = (a - (s_ - bb)) + (b - bb);
    s = s_;
    e = e_;
}
void df_add(inout float h, inout float l, float bh, float bl)
{
    float s, e;
    two_sum(h, bh, s, e);
    precise float t = e + l + bl;
    precise float h2 = s + t;
    precise float l2 = t - (h2 - s);
    h = h2;
    l = l2;
}
void df_mul(inout float h, inout float l, float f)
{
    float ph, pl;
    two_prod(h, f, ph, pl);
    precise float t = pl + l * f;
    precise float h2 = ph + t;
    precise float l2 = t - (h2 - ph);
    h = h2;
    l = l2;
}

// erfc(z) for z >= 0 to a few ulp: 1 - z P(z^2) below 1/2, exp(-z^2) Q(t) with t = 1 / (1 + z/2) above
// (P, Q: Chebyshev fits of erf(z)/z and erfc(z) exp(z^2), relative error 1.5e-9 and 4e-9); exp(-z^2) takes z^2
// as an exact sum of two floats so that its rounding does not grow with z.
float erfc_pos(float z)
{
    if (z < 0.5) {
        float u = z * z;
        float p = 1.128379107 + u * (-0.3761260808 + u * (0.1128283143 + u * (-0.02675773203 + u * 0.004719082732)));
        return 1.0 - z * p;
    }
    if (z > 10.0) return 0.0;
    float t = 1.0 / (1.0 + 0.5 * z);
    float q = 5.125972621e-06 + t * (0.2819420993 + t * (0.2840845585 + t * (0.2319066375 + t * (0.2475869507 +
              t * (-0.1416890770 + t * (0.4685269594 + t * (-0.6872733235 + t * (0.4107675850 +
              t * (-0.1010846123 + t * 0.005219202023)))))))));
    float hi, lo;
    two_prod(z, z, hi, lo);
    return exp_acc(-hi) * (1.0 - lo) * q;
}

float silu_acc(float x) { return x / (1.0 + exp_acc(-x)); }
// x/2 (1 + erf(x / sqrt 2)) = x/2 erfc(-x / sqrt 2): no cancellation for negative x.
float gelu_acc(float x)
{
    float z = x * 0.7071067811865476;
    float c = z <= 0.0 ? erfc_pos(-z) : 2.0 - erfc_pos(z);
    return 0.5 * x * c;
}
// x/2 (1 + tanh(u)) = x / (1 + exp(-2u)).
float gelu_tanh_acc(float x)
{
    float u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    return x / (1.0 + exp_acc(-2.0 * u));
}

float activate(uint a, float x)
{
    if (a == ACT_SWIGLU || a == ACT_SILU) return silu_acc(x);
    if (a == ACT_GEGLU || a == ACT_GELU) return gelu_acc(x);
    if (a == ACT_GEGLU_TANH || a == ACT_GELU_TANH) return gelu_tanh_acc(x);
    return x;
}

#endif
