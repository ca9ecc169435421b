// Accumulator layout probe for the cooperative-matrix kernels. Include after MAT_C, LOAD_C and a `shared float
// Cs[]` with 256 floats per subgroup are defined.
//
// Where this invocation's accumulator elements sit in a 16x16 tile (row * 16 + column) is the implementation's
// choice; loading a tile of indices once finds it, and the epilogue then goes straight from registers to Y.
// Staging every tile through shared memory between subgroup barriers instead made the whole GEMM about 10x
// slower on the H100 (measured: the multiply loop alone ran at 320 TFLOP/s, with that epilogue at 32).

const uint CE = 256u / 32u; // accumulator elements per invocation: a 16x16 tile over a subgroup of 32

// Fills pos with this invocation's element positions, using Cs[base .. base + 256). False where an invocation
// does not hold exactly CE elements: the caller keeps its staged epilogue for that case.
bool probe_layout(uint base, uint lane, out uint pos[CE])
{
    for (uint e = lane; e < 256u; e += 32u) Cs[base + e] = float(e);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    MAT_C probe;
    LOAD_C(probe, Cs, base, 16u);
    const bool ok = probe.length() == int(CE);
    [[unroll]] for (uint e = 0u; e < CE; e++) pos[e] = ok ? uint(probe[e]) : 0u;
    subgroupBarrier(); // every lane's loads are done before the area is written again
    return ok;
}
