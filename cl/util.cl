/* Helpers around the GEMM kernels: dequantize a band of a scaled operand into fp32 (or fp16) scratch for
 * CLBlast, the epilogue after CLBlast (bias, output dtype), and the benchmark's FMA peak loop. Dtypes are
 * kernel arguments here: these kernels are bandwidth-bound, one build serves every format. */

/* dst[i, c] = decode(src[r0 + i, c]) * scale(r0 + i, c) for i < rows, c < cols; dst rows are dst_ld elements
 * apart, f32 or (dst_f16) f16. One work-item per 16 elements of a row. */
kernel void fp8_dequant_band(global const uchar *src, ulong src_off, ulong src_stride, uint dt, uint r0, uint rows,
                             uint cols, global const uchar *S, const fp8k_scale sc, global uchar *dst, ulong dst_off,
                             ulong dst_ld, uint dst_f16)
{
    const uint c = get_global_id(0) * 16, i = get_global_id(1);
    if (c >= cols || i >= rows) return;
    const uint r = r0 + i;
    const uint aligned = (src_off % 16 == 0) && (src_stride % 16 == 0);
    float v[16];
    fp8k_row16(src + src_off + (ulong)r * src_stride, c, cols, dt, aligned, v);
    global const uchar *s = S + sc.offset;
    const bool k16 = sc.mode != FP8K_SCALE_GENERIC;
    const float s16 = k16 ? fp8k_scale_at(s, &sc, r, c) * sc.tensor : 0.0f;
    const ulong o = (ulong)i * dst_ld + c;
#pragma unroll
    for (uint j = 0; j < 16; j++) {
        if (c + j >= cols) break;
        const float f = v[j] * (k16 ? s16 : fp8k_scale_at(s, &sc, r, c + j) * sc.tensor);
        if (dst_f16) vstore_half_rte(f, o + j, (global half *)(dst + dst_off));
        else ((global float *)(dst + dst_off))[o + j] = f;
    }
}

/* y[m, n0 + j] = c[m * ldc + j] + bias[n0 + j], rounded into the output dtype; c may alias y (f32 output). */
kernel void fp8_epilogue_band(global const float *C, ulong c_off, ulong ldc, uint rows, uint cols, uint n0,
                              global uchar *Y, ulong y_off, ulong y_stride, uint y_dtype, global const uchar *B,
                              ulong b_off, uint b_dtype)
{
    const uint j = get_global_id(0), m = get_global_id(1);
    if (j >= cols || m >= rows) return;
    float v = C[c_off + (ulong)m * ldc + j];
    if (b_dtype) v += fp8k_load(B + b_off, n0 + j, b_dtype);
    fp8k_store(Y + y_off, (ulong)m * y_stride + n0 + j, y_dtype, v);
}

/* FMA peak: 8 independent float4 chains per work-item, registers only; 64 FLOP per chain step. The sink
 * write depends on every chain, so no compiler can drop the loop. */
kernel void fp8_fma_peak(global float *sink, uint iters, float a, float b)
{
    const float s = (float)get_global_id(0) * 1e-9f;
    float4 c0 = s, c1 = s + 1, c2 = s + 2, c3 = s + 3, c4 = s + 4, c5 = s + 5, c6 = s + 6, c7 = s + 7;
    const float4 av = (float4)(a, a * 0.5f, a * 0.25f, a * 0.125f);
    for (uint i = 0; i < iters; i++) {
        c0 = fma(c0, av, b); c1 = fma(c1, av, b); c2 = fma(c2, av, b); c3 = fma(c3, av, b);
        c4 = fma(c4, av, b); c5 = fma(c5, av, b); c6 = fma(c6, av, b); c7 = fma(c7, av, b);
    }
    const float4 t = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7;
    const float r = t.x + t.y + t.z + t.w;
    if (r == 1234.5f) sink[get_global_id(0) & 1023] = r; /* practically never true, but the compiler can't know */
}
