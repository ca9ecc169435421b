// Accumulator layout probe for the cooperative-matrix kernels. Include after MAT_C, STORE_C and a `shared float
// Cs[]` with 256 floats per subgroup are defined.
//
// Where this invocation's accumulator elements sit in a 16x16 tile (row * 16 + column) is the implementation's
// choice; storing a tile of numbered elements once finds it, and the epilogue then goes straight from registers
// to Y. Staging every tile through shared memory between subgroup barriers instead made the whole GEMM about 10x
// slower on the H100 (measured: the multiply loop alone ran at 320 TFLOP/s, with that epilogue at 32).

const uint CE = 256u / 32u; // accumulator elements per invocation: a 16x16 tile over a subgroup of 32

// Fills pos with this invocation's element positions, using Cs[base .. base + 256). Each invocation numbers its
// elements, stores the tile, reads which element landed at 8 of the positions and writes the inverse back.
// False where an invocation does not hold exactly CE elements: the caller keeps a staged epilogue for that.
// (The MoE grouped GEMM failed its test on the H100 with this probe and epilogue in its old single-buffered
// form, built as the NV variant; rebuilt on the dense kernel's double-buffered loop and run as the KHR variant,
// the device's GEMM verdict, it passes there with the validation layer on. Which of the two changes mattered
// was not isolated.)
bool probe_layout(uint base, uint lane, out uint pos[CE])
{
    [[unroll]] for (uint el = 0u; el < CE; el++) pos[el] = 0u;
    MAT_C p = MAT_C(0.0);
    if (p.length() != int(CE)) return false;
    [[unroll]] for (uint el = 0u; el < CE; el++) p[el] = float(lane * CE + el);
    STORE_C(p, Cs, base, 16u);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    uint owner[CE]; // owner[i]: the element (invocation * CE + index) stored at position lane + 32 i
    [[unroll]] for (uint i = 0u; i < CE; i++) owner[i] = uint(Cs[base + lane + 32u * i]);
    subgroupBarrier();
    [[unroll]] for (uint i = 0u; i < CE; i++) Cs[base + owner[i]] = float(lane + 32u * i);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    [[unroll]] for (uint el = 0u; el < CE; el++) pos[el] = uint(Cs[base + lane * CE + el]);
    subgroupBarrier(); // every lane's reads are done before the area is written again
    return true;
}
