#version 450
// Device self-check at open: do the packed decoders of decode.glsl (fp16 bit positions + unpackHalf2x16) give
// exactly what the scalar decoders give, for every code of every format? Devices whose conversions flush fp16
// denormals fail here and get the scalar path. One invocation per code writes its mismatch count (no atomics:
// they would need device-scope memory-model features).
#include "decode.glsl"

layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 5) buffer Out { uint bad[]; };

bool same(float a, float b) { return floatBitsToUint(a) == floatBitsToUint(b) || (isnan(a) && isnan(b)); }

void main()
{
    const uint c = gl_LocalInvocationID.x;
    uint mismatches = 0u;
    for (uint dt = DT_E4M3FN; dt <= DT_E5M2FNUZ; dt++) {
        // The code in each byte position, beside a neighbour that keeps the fast path taken where it can be.
        for (uint pos = 0u; pos < 4u; pos++) {
            const uint x = (0x38383838u & ~(0xFFu << (8u * pos))) | (c << (8u * pos));
            const float got = dec4_fp8(dt, x, false)[pos] * dec_fold(dt);
            if (!same(got, dec_scalar(dt, c))) mismatches++;
            // The packed-fp16 decoder of the cooperative-matrix kernels, where it applies.
            if (dt != DT_E5M2FNUZ) {
                const float h = unpackHalf2x16(dec4_fp8_h(dt, x, false)[pos / 2u])[pos % 2u] * dec_fold(dt);
                if (!same(h, dec_scalar(dt, c))) mismatches++;
            }
        }
    }
    if (c < 16u) {
        for (uint pos = 0u; pos < 8u; pos++) {
            vec4 lo, hi;
            dec8_e2m1((0x22222222u & ~(0xFu << (4u * pos))) | (c << (4u * pos)), false, lo, hi);
            const float got = (pos < 4u ? lo[pos] : hi[pos - 4u]) * 16384.0;
            if (!same(got, dec_e2m1(c))) mismatches++;
            const uint x = (0x22222222u & ~(0xFu << (4u * pos))) | (c << (4u * pos));
            const float h = unpackHalf2x16(dec8_e2m1_h(x, false)[pos / 2u])[pos % 2u] * 16384.0;
            if (!same(h, dec_e2m1(c))) mismatches++;
        }
    }
    bad[c] = mismatches;
}
