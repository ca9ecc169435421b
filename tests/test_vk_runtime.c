/* Vulkan runtime: buffers (round trips at odd offsets, copies, bounds, the storage-range limit), timestamps,
 * ordering of writes, copies and reads without explicit syncs, where barriers go (also in sections of
 * overlapping commands), and a clean validation layer. */
#include "test_util.h"

#include "vulkan/vk_internal.h"

#include <string.h>

static fp8_context *ctx;

static fp8_device *open_vulkan(void)
{
    fp8_context_options o = {.log = test_log};
    if (fp8_context_create(&o, &ctx) != FP8_OK) test_skip("no context");
    uint32_t idx;
    fp8_device_filter f = {.backend = FP8_BACKEND_VULKAN};
    if (fp8_context_find_device(ctx, &f, &idx) != FP8_OK) {
        fp8_context_destroy(ctx);
        test_skip("no Vulkan device (driver missing or FP8_DISABLE_VULKAN set)");
    }
    fp8_device *dev = NULL;
    fp8_status st = fp8_device_open(ctx, idx, &dev);
    if (st != FP8_OK) {
        fp8_context_destroy(ctx);
        test_skip("Vulkan device did not open: %s", fp8_status_name(st));
    }
    return dev;
}

static void test_round_trip(fp8_device *dev)
{
    enum { N = 100003 };
    static uint8_t src[N], dst[N];
    test_rng rng = {7};
    for (size_t i = 0; i < N; i++) src[i] = (uint8_t)test_rng_next(&rng);
    fp8_buffer *a = NULL, *b = NULL;
    CHECK_STATUS(fp8_buffer_create(dev, N, &a), FP8_OK);
    CHECK_STATUS(fp8_buffer_create(dev, N + 5, &b), FP8_OK);
    if (!a || !b) return;
    CHECK(fp8_buffer_size(a) == N, "size %zu", fp8_buffer_size(a));
    /* New buffers read as zero. */
    memset(dst, 0xAB, 64);
    CHECK_STATUS(fp8_buffer_read(a, 0, dst, 64), FP8_OK);
    int zero = 1;
    for (int i = 0; i < 64; i++) zero &= dst[i] == 0;
    CHECK(zero, "a new buffer is not zero");

    CHECK_STATUS(fp8_buffer_write(a, 0, src, N), FP8_OK);
    /* Overwrite an odd range; the copy and read that follow must see it (ordering without syncs). */
    CHECK_STATUS(fp8_buffer_write(a, 13, src + 1000, 777), FP8_OK);
    memcpy(src + 13, src + 1000, 777);
    CHECK_STATUS(fp8_buffer_copy(b, 5, a, 0, N), FP8_OK);
    memset(dst, 0, N);
    CHECK_STATUS(fp8_buffer_read(b, 5, dst, N), FP8_OK);
    CHECK(memcmp(src, dst, N) == 0, "write/copy/read round trip differs");
    uint8_t three[3];
    CHECK_STATUS(fp8_buffer_read(a, N - 3, three, 3), FP8_OK);
    CHECK(memcmp(three, src + N - 3, 3) == 0, "tail read differs");

    /* Bounds. */
    CHECK_STATUS(fp8_buffer_write(a, N - 2, src, 3), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_read(a, N + 1, dst, 0), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_read(a, SIZE_MAX, dst, 2), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_copy(b, 6, a, 0, N), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_copy(a, 0, a, 10, 100), FP8_ERR_INVALID_ARGUMENT); /* overlapping */
    CHECK_STATUS(fp8_buffer_copy(a, 0, a, 100, 100), FP8_OK);
    fp8_buffer_free(a);
    fp8_buffer_free(b);
}

/* Writes bigger than the staging area are split; reads too. */
static void test_large_transfer(fp8_device *dev)
{
    const size_t n = (40u << 20) + 12345;
    uint32_t *src = malloc(n), *dst = malloc(n);
    if (!src || !dst) { free(src); free(dst); return; }
    for (size_t i = 0; i < n / 4; i++) src[i] = (uint32_t)(i * 2654435761u);
    fp8_buffer *a = NULL;
    CHECK_STATUS(fp8_buffer_create(dev, n, &a), FP8_OK);
    if (a) {
        CHECK_STATUS(fp8_buffer_write(a, 0, src, n), FP8_OK);
        CHECK_STATUS(fp8_buffer_read(a, 0, dst, n), FP8_OK);
        CHECK(memcmp(src, dst, n) == 0, "large round trip differs");
    }
    fp8_buffer_free(a);
    free(src);
    free(dst);
}

static void test_limits(fp8_device *dev)
{
    fp8_device_info info;
    CHECK_STATUS(fp8_device_get_info(dev, &info, NULL), FP8_OK);
    const fp8i_vk_device *vd = fp8i_vk_dev(dev);
    const uint64_t range = vd->max_buffer_bytes;
    fp8_buffer *b = NULL;
    /* One byte over what a binding can address: allowed (MoE expert weights are bound in windows), its last
     * byte reachable by copies, and refused, never truncated, by a kernel that would bind it whole. */
    if (range < SIZE_MAX && range + 1 <= info.max_allocation_bytes && range <= (1ull << 30)) {
        CHECK_STATUS(fp8_buffer_create(dev, (size_t)range + 1, &b), FP8_OK);
        const uint8_t v = 0xA5;
        uint8_t got = 0;
        CHECK_STATUS(fp8_buffer_write(b, (size_t)range, &v, 1), FP8_OK);
        CHECK_STATUS(fp8_buffer_read(b, (size_t)range, &got, 1), FP8_OK);
        CHECK(got == v, "the byte past the binding range reads back %#x", got);
        fp8_buffer *x = NULL, *y = NULL;
        CHECK_STATUS(fp8_buffer_create(dev, 64 * 4, &x), FP8_OK);
        CHECK_STATUS(fp8_buffer_create(dev, 4, &y), FP8_OK);
        const fp8_gemm_desc d = {.m = 1, .n = 1, .k = 64, .w = {.buffer = b, .dtype = FP8_E4M3FN},
                                 .x = {.buffer = x, .dtype = FP8_F32}, .y = {.buffer = y, .dtype = FP8_F32}};
        CHECK_STATUS(fp8_gemm(dev, &d), FP8_ERR_TOO_LARGE);
        fp8_buffer_free(x);
        fp8_buffer_free(y);
        fp8_buffer_free(b);
        b = NULL;
    }
    CHECK_STATUS(fp8_buffer_create(dev, 0, &b), FP8_ERR_INVALID_ARGUMENT);
    CHECK(b == NULL, "a buffer was returned on failure");
    printf("max storage buffer range %llu bytes\n", (unsigned long long)range);
}

static void test_timer(fp8_device *dev)
{
    fp8_buffer *a = NULL, *b = NULL;
    const size_t n = 8u << 20;
    CHECK_STATUS(fp8_buffer_create(dev, n, &a), FP8_OK);
    CHECK_STATUS(fp8_buffer_create(dev, n, &b), FP8_OK);
    double ns = -1;
    CHECK_STATUS(fp8_device_timer_stop(dev, &ns), FP8_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(fp8_device_timer_start(dev), FP8_OK);
    for (int i = 0; i < 4; i++) CHECK_STATUS(fp8_buffer_copy(b, 0, a, 0, n), FP8_OK);
    CHECK_STATUS(fp8_device_timer_stop(dev, &ns), FP8_OK);
    CHECK(ns > 0 && ns < 60e9, "elapsed %g ns", ns);
    printf("4 copies of %zu MiB: %.1f us (%.2f GB/s)\n", n >> 20, ns / 1e3, 4.0 * 2 * (double)n / ns);
    CHECK_STATUS(fp8_device_synchronize(dev), FP8_OK);
    fp8_buffer_free(a);
    fp8_buffer_free(b);
}

/* Barriers as the hazard tracker records them (each one advances vd->epoch), around a section of commands
 * that may overlap (fp8i_vk_concurrent): one barrier before the section where something was recorded since
 * the last, none inside even between conflicting commands, and the section's accesses ordering what follows.
 * On lavapipe, which runs dispatches one after another, a missing barrier would not show in any result. */
static void test_concurrent_sections(fp8_device *dev)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dev);
    fp8_buffer *a = NULL, *b = NULL, *c = NULL;
    CHECK_STATUS(fp8_buffer_create(dev, 256, &a), FP8_OK);
    CHECK_STATUS(fp8_buffer_create(dev, 256, &b), FP8_OK);
    CHECK_STATUS(fp8_buffer_create(dev, 256, &c), FP8_OK);
    if (!a || !b || !c) goto done;
    fp8i_vk_buffer *va = fp8i_vk_buf(a), *vb = fp8i_vk_buf(b), *vc = fp8i_vk_buf(c);
    CHECK_STATUS(fp8_device_synchronize(dev), FP8_OK);
    CHECK_STATUS(fp8i_vk_begin(vd), FP8_OK);
    uint64_t e = vd->epoch;
    fp8i_vk_hazard(vd, NULL, 0, &va, 1);       /* writes a */
    CHECK(vd->epoch == e, "a first write needs no barrier");
    fp8i_vk_hazard(vd, &va, 1, &vb, 1);        /* reads a: after a barrier */
    CHECK(vd->epoch == e + 1, "read after write: no barrier");
    e = vd->epoch;

    CHECK_STATUS(fp8i_vk_concurrent(dev, true), FP8_OK);
    CHECK(vd->epoch == e + 1, "no barrier before a section that follows recorded work");
    e = vd->epoch;
    fp8i_vk_hazard(vd, &vb, 1, &vc, 1);        /* reads b (written before the section), writes c */
    fp8i_vk_hazard(vd, &va, 1, &vc, 1);        /* conflicts with its sibling on c: the caller's promise */
    CHECK_STATUS(fp8i_vk_concurrent(dev, true), FP8_OK); /* nested: still inside */
    fp8i_vk_hazard(vd, &vc, 1, NULL, 0);
    CHECK_STATUS(fp8i_vk_concurrent(dev, false), FP8_OK);
    fp8i_vk_hazard(vd, NULL, 0, &vc, 1);
    CHECK(vd->epoch == e, "a barrier inside the section (epoch %llu, expected %llu)",
          (unsigned long long)vd->epoch, (unsigned long long)e);
    CHECK_STATUS(fp8i_vk_concurrent(dev, false), FP8_OK);
    fp8i_vk_hazard(vd, &vc, 1, NULL, 0);       /* reads what the section wrote */
    CHECK(vd->epoch == e + 1, "no barrier after a section before a dependent command");
    e = vd->epoch;

    /* A section opened right after a barrier, with nothing recorded since, adds none. */
    fp8i_vk_hazard(vd, NULL, 0, &vc, 1);       /* write after read: barrier */
    CHECK(vd->epoch == e + 1, "write after read: no barrier");
    e = vd->epoch;
    CHECK_STATUS(fp8i_vk_concurrent(dev, true), FP8_OK);
    CHECK(vd->epoch == e + 1, "recorded work before the section is not fenced off");
    e = vd->epoch;
    CHECK_STATUS(fp8i_vk_concurrent(dev, false), FP8_OK);
    CHECK_STATUS(fp8i_vk_concurrent(dev, true), FP8_OK);
    CHECK(vd->epoch == e, "an empty epoch got a second barrier");
    CHECK_STATUS(fp8i_vk_concurrent(dev, false), FP8_OK);
    CHECK(vd->concurrent == 0, "sections left open: %u", vd->concurrent);
    CHECK_STATUS(fp8_device_synchronize(dev), FP8_OK);
done:
    fp8_buffer_free(a);
    fp8_buffer_free(b);
    fp8_buffer_free(c);
}

int main(void)
{
    fp8_device *dev = open_vulkan();
    const fp8i_vk_instance *vk = fp8i_vk_state(ctx);
    printf("validation layer: %s\n", vk && vk->validation ? "on" : "off");
    printf("packed decoders: %s\n", fp8i_vk_dev(dev)->fast_decode ? "exact here (fast path)" : "not exact here (scalar path)");
    if (fp8i_env_flag("FP8_VK_VALIDATION")) CHECK(vk && vk->validation, "FP8_VK_VALIDATION=1 but the layer is off");
    test_round_trip(dev);
    test_large_transfer(dev);
    test_limits(dev);
    test_timer(dev);
    test_concurrent_sections(dev);
    fp8_device_close(dev);
    CHECK(fp8i_vk_validation_errors(ctx) == 0, "%u validation errors", fp8i_vk_validation_errors(ctx));
    fp8_context_destroy(ctx);
    return test_finish("vk_runtime");
}
