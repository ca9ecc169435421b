#version 450
// Tiled GEMM that runs everywhere (lavapipe included): a 16x16 thread grid computes a (16 TM) x (16 TN) block of
// Y with TM x TN outputs per thread in registers; operands pass through shared memory as f32, decoded and
// scaled on the way in, one BK-wide slice of K at a time. fp32 FMA throughout. With WDT = F32 it is the plain
// SGEMM baseline of the benchmarks (fp8_device_bench_run).
// [[unroll]]: loops over register arrays must unroll, or the accumulators go to local memory.
#extension GL_EXT_control_flow_attributes : require
#include "gemm_common.glsl"

layout(local_size_x_id = 0) in;                 // 256: the 16 x 16 thread grid
layout(constant_id = 10) const uint TM = 4;     // output rows (tokens) per thread
layout(constant_id = 11) const uint TN = 4;     // output columns (weight rows) per thread
layout(constant_id = 12) const uint BK = 16;    // K per shared-memory slice

const uint BM = 16u * TM, BN = 16u * TN;
const uint LDA = BM + 4u, LDB = BN + 4u;         // padding against bank conflicts on the transposed stores
shared float As[BK * LDA];
shared float Bs[BK * LDB];

float w_value(uint n, uint k)
{
    if (WDT == DT_F32) return uintBitsToFloat(w32[pc.w_off + n * pc.w_stride + k]);
    return w_elem(n, k) * w_scale(n, k);
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint tx = tid % 16u, ty = tid / 16u;
    const uint n0 = gl_WorkGroupID.x * BN, m0 = gl_WorkGroupID.y * BM;

    float acc[TM * TN];
    [[unroll]] for (uint i = 0u; i < TM * TN; i++) acc[i] = 0.0;

    for (uint k0 = 0u; k0 < pc.K; k0 += BK) {
        // Consecutive threads take consecutive k of one row: coalesced reads of both row-major operands.
        [[unroll]] for (uint e = tid; e < BM * BK; e += 256u) {
            const uint row = e / BK, kk = e % BK, m = m0 + row, k = k0 + kk;
            As[kk * LDA + row] = (m < pc.M && k < pc.K) ? x_elem(m, k) * x_scale(m, k) : 0.0;
        }
        [[unroll]] for (uint e = tid; e < BN * BK; e += 256u) {
            const uint row = e / BK, kk = e % BK, n = n0 + row, k = k0 + kk;
            Bs[kk * LDB + row] = (n < pc.N && k < pc.K) ? w_value(n, k) : 0.0;
        }
        barrier();
        [[unroll]] for (uint kk = 0u; kk < BK; kk++) {
            float a[TM], b[TN];
            [[unroll]] for (uint i = 0u; i < TM; i++) a[i] = As[kk * LDA + ty + 16u * i];
            [[unroll]] for (uint j = 0u; j < TN; j++) b[j] = Bs[kk * LDB + tx + 16u * j];
            [[unroll]] for (uint i = 0u; i < TM; i++)
                [[unroll]] for (uint j = 0u; j < TN; j++) acc[i * TN + j] = fma(a[i], b[j], acc[i * TN + j]);
        }
        barrier();
    }

    const float ts = pc.w_ts * pc.x_ts;
    [[unroll]] for (uint i = 0u; i < TM; i++) {
        const uint m = m0 + ty + 16u * i;
        if (m >= pc.M) continue;
        [[unroll]] for (uint j = 0u; j < TN; j++) {
            const uint n = n0 + tx + 16u * j;
            if (n < pc.N) y_store(m, n, acc[i * TN + j] * ts + bias_at(n));
        }
    }
}
