/* fp8_gemm under random descriptors, on every device the build reaches (the CPU, and Vulkan and OpenCL where
 * they have one): shapes from zero to 2^31, offsets and strides past any buffer or misaligned, dtypes and
 * scale layouts valid and not, missing and shared buffers, forced paths. Whatever the status, the call must
 * not crash (the ASan build checks the CPU device's host buffers), must return a documented refusal or run,
 * and when it runs it must leave every input byte as it was and write no byte of Y's buffer outside Y's rows.
 * FP8_TEST_FUZZ_ITERS=N changes the number of descriptors per device (default: 2000 on the CPU, 250 on others). */
#include "fuzz_util.h"

#include <math.h>
#include <string.h>

static test_rng rng = {0x9E3779B97F4A7C15ull};
static uint32_t pick(uint32_t n) { return fuzz_pick(&rng, n); }

static uint32_t random_dim(void)
{
    const uint32_t c = pick(40);
    if (c == 0) return 0;
    if (c == 1) return 0x80000000u + pick(4);
    if (c == 2) return 65536 + pick(3);
    return 1 + pick(70);
}
static size_t random_offset(void) { return fuzz_offset(&rng); }
static size_t random_stride(void) { return fuzz_stride(&rng); }
static fp8_dtype any_dtype(void) { return (fp8_dtype)pick(12); }
static fp8_dtype w_dtype(void) { return pick(20) ? (fp8_dtype)(FP8_E4M3FN + pick(5)) : any_dtype(); }
static fp8_dtype x_dtype(void)
{
    static const fp8_dtype v[] = {FP8_E4M3FN, FP8_E5M2, FP8_E4M3FNUZ, FP8_E5M2FNUZ, FP8_F16, FP8_BF16, FP8_F32, FP8_F32};
    return pick(20) ? v[pick(8)] : any_dtype();
}
static fp8_dtype y_dtype(void) { return pick(20) ? (fp8_dtype)(FP8_F16 + pick(3)) : any_dtype(); }
static uint32_t block_side(void) { return pick(5) ? (pick(2) ? 1u << pick(8) : 1 + pick(130)) : pick(2) ? 0 : 0xFFFFFFFFu; }
static void random_layout(fp8_scale_layout *l)
{
    l->kind = (fp8_scale_kind)(pick(10) ? pick(5) : pick(7));
    l->dtype = pick(4) ? (pick(2) ? FP8_F32 : FP8_E8M0) : any_dtype();
    l->block_rows = block_side();
    l->block_cols = block_side();
}

#define NBUF 6

static void fuzz_device(fp8_device *dev, const fp8_device_info *dev_info, int iters)
{
    const fp8_device_info info = *dev_info;
    int ran = 0, refused = 0;
    for (int it = 0; it < iters; it++) {
        /* Half the descriptors are tame (every buffer there and large, small shapes, packed rows), so that many
         * reach the kernels; the rest are wild. */
        const bool tame = pick(2);
        fp8_buffer *b[NBUF] = {0};
        uint8_t *before[NBUF] = {0}, *after = NULL;
        size_t size[NBUF] = {0};
        for (int i = 0; i < NBUF; i++) {
            if (!tame && !pick(8)) continue;
            size[i] = tame ? 65536 : pick(3) ? 1 + pick(8192) : 16 * (1 + (size_t)pick(600));
            if (fp8_buffer_create(dev, size[i], &b[i]) != FP8_OK) { size[i] = 0; continue; }
            before[i] = malloc(size[i]);
            for (size_t q = 0; q < size[i]; q++) before[i][q] = (uint8_t)test_rng_next(&rng);
            CHECK_STATUS(fp8_buffer_write(b[i], 0, before[i], size[i]), FP8_OK);
        }
        fp8_gemm_desc d = {0};
        d.m = random_dim(), d.n = random_dim(), d.k = random_dim();
        if (tame || !pick(3)) d.m = 1 + pick(40), d.n = 1 + pick(40), d.k = 1 + pick(300);
        const int yi = pick(10) ? 2 : (int)pick(NBUF); /* sometimes Y shares an input's buffer */
        d.w = (fp8_operand){b[0], random_offset(), w_dtype(), random_stride()};
        d.x = (fp8_operand){b[1], random_offset(), x_dtype(), random_stride()};
        d.y = (fp8_operand){b[yi], random_offset(), y_dtype(), random_stride()};
        if (pick(2)) d.bias = (fp8_operand){b[3], random_offset(), y_dtype(), random_stride()};
        random_layout(&d.w_scales.layout);
        d.w_scales.buffer = b[4];
        d.w_scales.offset = random_offset();
        d.w_scales.tensor_scale = pick(10) ? 0.0f : pick(2) ? NAN : -1.5f;
        if (pick(2) && d.x.dtype < FP8_F16) {
            random_layout(&d.x_scales.layout);
            d.x_scales.buffer = b[5];
            d.x_scales.offset = random_offset();
        }
        if (tame) {
            fp8_operand *ops[] = {&d.w, &d.x, &d.y, &d.bias};
            for (size_t q = 0; q < sizeof ops / sizeof ops[0]; q++) {
                ops[q]->offset = pick(2) ? 0 : 16 * pick(4);
                ops[q]->row_stride = 0;
            }
            d.w_scales.offset = d.x_scales.offset = 0;
            if (pick(2)) d.w_scales.layout.kind = FP8_SCALE_ROW, d.w_scales.layout.dtype = FP8_F32;
        }
        d.path = pick(4) ? FP8_PATH_AUTO : (fp8_path)pick(FP8_PATH_COUNT_ + 2);

        fp8_status st = fp8_gemm(dev, &d);
        if (st == FP8_OK) st = fp8_device_synchronize(dev);
        if (st != FP8_OK) {
            refused++;
            CHECK(fuzz_documented(st, false), "%s: descriptor %d got %s", info.name, it, fp8_status_name(st));
        } else {
            ran++;
            /* Every byte outside Y's rows as it was; inside them, Y may have changed. */
            const size_t es = d.y.dtype == FP8_F32 ? 4 : 2, ld = d.y.row_stride ? d.y.row_stride : d.n;
            for (int i = 0; i < NBUF; i++) {
                if (!b[i]) continue;
                after = realloc(after, size[i]);
                CHECK_STATUS(fp8_buffer_read(b[i], 0, after, size[i]), FP8_OK);
                for (size_t q = 0; q < size[i]; q++) {
                    if (after[q] == before[i][q]) continue;
                    bool in_y = false;
                    if (i == yi && q >= d.y.offset) {
                        const size_t e = (q - d.y.offset) / es, row = e / ld, col = e % ld;
                        in_y = row < d.m && col < d.n;
                    }
                    if (!in_y) {
                        CHECK(false, "%s: descriptor %d (M=%u N=%u K=%u, path %s) changed byte %zu of buffer %d outside Y",
                              info.name, it, d.m, d.n, d.k, fp8_path_name(d.path), q, i);
                        break;
                    }
                }
            }
        }
        for (int i = 0; i < NBUF; i++) {
            fp8_buffer_free(b[i]);
            free(before[i]);
        }
        free(after);
    }
    printf("%s (%s): %d descriptors ran, %d were refused\n", info.name, fp8_backend_name(info.backend), ran, refused);
    CHECK(ran > 0 && refused > 0, "%s: the fuzzer should both run and refuse descriptors", info.name);
}

int main(void) { return fuzz_main("fuzz_gemm", fuzz_device, 2000, 250); }
