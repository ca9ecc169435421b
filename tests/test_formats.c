/* Every format against the independent reference vectors: decode of every code, and encode of
 * every listed input in both overflow modes. Zero mismatches; any NaN code is accepted for NaN. */
#include "test_util.h"

#include <math.h>
#include <string.h>

typedef struct format_case {
    const char *file;
    fp8_dtype dtype;
} format_case;

static const format_case cases[] = {
    {"e4m3fn", FP8_E4M3FN}, {"e5m2", FP8_E5M2},     {"e4m3fnuz", FP8_E4M3FNUZ}, {"e5m2fnuz", FP8_E5M2FNUZ},
    {"e2m1fn", FP8_E2M1},   {"e8m0fnu", FP8_E8M0}, {"f16", FP8_F16},           {"bf16", FP8_BF16},
};

static float from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static bool code_is_nan(fp8_dtype dt, uint32_t code) { return isnan(fp8_decode_value(dt, code)); }

static FILE *open_vectors(const char *name, const char *kind)
{
    char rel[128];
    snprintf(rel, sizeof rel, "vectors/%s_%s.txt", name, kind);
    FILE *f = fopen(test_data_path(rel), "r");
    if (!f) test_skip("reference vectors not found at %s (expected ../shared/testdata beside the checkout)",
                      test_data_path(rel));
    return f;
}

static void check_decode(const format_case *c)
{
    FILE *f = open_vectors(c->file, "decode");
    char line[256];
    unsigned n = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        unsigned code, bits;
        if (sscanf(line, "%x %x", &code, &bits) != 2) continue;
        float want = from_bits(bits), got = fp8_decode_value(c->dtype, code);
        bool ok = isnan(want) ? isnan(got) : to_bits(got) == bits;
        if (!ok && bad++ < 5)
            fprintf(stderr, "%s decode %#x: got %08x want %08x\n", c->file, code, to_bits(got), bits);
        n++;
    }
    fclose(f);
    CHECK(bad == 0, "%s decode: %u of %u mismatches", c->file, bad, n);
    CHECK(n > 0, "%s decode: no vectors read", c->file);
}

static void check_encode(const format_case *c)
{
    FILE *f = open_vectors(c->file, "encode");
    char line[256];
    unsigned n = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        unsigned in, cast, sat;
        if (sscanf(line, "%x %x %x", &in, &cast, &sat) != 3) continue;
        const float x = from_bits(in);
        const uint32_t want[2] = {sat, cast};
        const fp8_overflow modes[2] = {FP8_OVERFLOW_SATURATE, FP8_OVERFLOW_CAST};
        for (int m = 0; m < 2; m++) {
            uint32_t got = fp8_encode_value(c->dtype, x, modes[m]);
            bool ok = code_is_nan(c->dtype, want[m]) ? code_is_nan(c->dtype, got) : got == want[m];
            if (!ok && bad++ < 5)
                fprintf(stderr, "%s encode %08x (%g) %s: got %#x want %#x\n", c->file, in, x,
                        m ? "cast" : "saturate", got, want[m]);
        }
        n++;
    }
    fclose(f);
    CHECK(bad == 0, "%s encode: %u mismatches over %u inputs x 2 modes", c->file, bad, n);
    CHECK(n > 0, "%s encode: no vectors read", c->file);
}

/* The array entry points agree with the scalar ones, including E2M1 nibble order and odd counts. */
static void check_arrays(void)
{
    const float src[5] = {0.5f, -6.0f, 1.5f, 3.0f, -0.0f};
    uint8_t packed[3] = {0xAA, 0xAA, 0xAA};
    CHECK_STATUS(fp8_encode_array(FP8_E2M1, src, 5, packed, sizeof packed, FP8_OVERFLOW_SATURATE), FP8_OK);
    CHECK(packed[0] == 0xF1, "E2M1 element 0 goes to the low nibble: %#x", packed[0]);
    CHECK(packed[1] == 0x53, "E2M1 byte 1: %#x", packed[1]);
    CHECK(packed[2] == 0x08, "E2M1 odd tail leaves the high nibble zero: %#x", packed[2]);
    float back[5];
    CHECK_STATUS(fp8_decode_array(FP8_E2M1, packed, sizeof packed, 5, back), FP8_OK);
    for (int i = 0; i < 5; i++) CHECK(to_bits(back[i]) == to_bits(src[i]), "E2M1 round trip %d", i);
    CHECK_STATUS(fp8_encode_array(FP8_E2M1, src, 5, packed, 2, FP8_OVERFLOW_SATURATE), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_decode_array(FP8_E4M3FN, packed, 2, 3, back), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_encode_array((fp8_dtype)99, src, 1, packed, 3, FP8_OVERFLOW_SATURATE), FP8_ERR_UNSUPPORTED_DTYPE);
    CHECK_STATUS(fp8_encode_array(FP8_E4M3FN, NULL, 1, packed, 3, FP8_OVERFLOW_SATURATE), FP8_ERR_NULL_POINTER);
    CHECK_STATUS(fp8_encode_array(FP8_E4M3FN, src, 1, packed, 3, (fp8_overflow)7), FP8_ERR_INVALID_ARGUMENT);
    size_t bytes = 0;
    CHECK_STATUS(fp8_dtype_storage_size(FP8_F32, SIZE_MAX / 2, &bytes), FP8_ERR_SIZE_OVERFLOW);
    CHECK_STATUS(fp8_dtype_storage_size(FP8_E2M1, 7, &bytes), FP8_OK);
    CHECK(bytes == 4, "7 E2M1 elements take 4 bytes, got %zu", bytes);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_decode(&cases[i]);
        check_encode(&cases[i]);
    }
    check_arrays();
    return test_finish("formats");
}
