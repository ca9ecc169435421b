/* Independent MoE reference used by the MoE tests (see test_moe_ref.h). */
#include "test_moe_ref.h"

#include <math.h>
#include <string.h>

#ifdef FP8_HAVE_VULKAN
#include "vulkan/vk_internal.h"
#endif

fp8_device *ref_open_device(fp8_context *ctx)
{
    const char *want = getenv("FP8_TEST_BACKEND");
    fp8_device_filter f = {.backend = FP8_BACKEND_CPU};
    if (want && strcmp(want, "vulkan") == 0) f.backend = FP8_BACKEND_VULKAN;
    else if (want && strcmp(want, "opencl") == 0) f.backend = FP8_BACKEND_OPENCL;
    else if (want && *want && strcmp(want, "cpu") != 0) test_skip("unknown FP8_TEST_BACKEND=%s", want);
    /* FP8_TEST_CL_DEVICE=<name part> picks the OpenCL device, as in test_cl_gemm (default: the first one). */
    if (f.backend == FP8_BACKEND_OPENCL) f.name_contains = getenv("FP8_TEST_CL_DEVICE");
    uint32_t idx;
    fp8_device *dev = NULL;
    if (fp8_context_find_device(ctx, &f, &idx) != FP8_OK)
        test_skip("no %s device%s%s", fp8_backend_name(f.backend), f.name_contains ? " matching " : "",
                  f.name_contains ? f.name_contains : "");
    if (fp8_device_open(ctx, idx, &dev) != FP8_OK) test_skip("cannot open the %s device", fp8_backend_name(f.backend));
    /* Probe: a one-token grouping reaches the backend's slot. */
    fp8_buffer *ib = NULL, *pb = NULL;
    size_t bytes;
    fp8_moe_plan_size(1, 1, 1, 1, &bytes, NULL);
    fp8_buffer_create(dev, 4, &ib);
    const int32_t zero = 0; /* a valid id: a device records a bad one in its error word for a later synchronize */
    fp8_buffer_write(ib, 0, &zero, 4);
    fp8_buffer_create(dev, bytes, &pb);
    fp8_moe_group_desc g = {.ids = {.buffer = ib, .dtype = FP8_I32}, .plan = {.buffer = pb, .m = 1, .top_k = 1, .experts = 1, .row_align = 1}};
    fp8_status st = fp8_moe_group(dev, &g);
    if (st == FP8_OK) st = fp8_device_synchronize(dev);
    fp8_buffer_free(ib);
    fp8_buffer_free(pb);
    if (st == FP8_ERR_UNSUPPORTED) {
        fp8_device_info info;
        fp8_device_get_info(dev, &info, NULL);
        fp8_device_close(dev);
        test_skip("MoE is not implemented on %s (%s)", info.name, fp8_backend_name(f.backend));
    }
    return dev;
}

void ref_close_device(fp8_device *dev)
{
#ifdef FP8_HAVE_VULKAN
    if (dev) {
        const fp8_context *c = dev->ctx;
        fp8_device_close(dev);
        CHECK(fp8i_vk_validation_errors(c) == 0, "%u Vulkan validation errors", fp8i_vk_validation_errors(c));
        return;
    }
#endif
    fp8_device_close(dev);
}

int ref_is_cpu(const fp8_device *dev)
{
    fp8_device_info info;
    return fp8_device_get_info(dev, &info, NULL) == FP8_OK && info.backend == FP8_BACKEND_CPU;
}

fp8_status ref_data_status(fp8_device *dev, fp8_status call_status)
{
    return call_status != FP8_OK ? call_status : fp8_device_synchronize(dev);
}

static size_t scale_esize(fp8_dtype d) { return d == FP8_F32 || d == FP8_DTYPE_INVALID ? 4 : 1; }

static double scale_value(fp8_dtype d, const uint8_t *base, size_t idx)
{
    if (d == FP8_F32 || d == FP8_DTYPE_INVALID) {
        float f;
        memcpy(&f, base + idx * 4, 4);
        return f;
    }
    return fp8_decode_value(d, base[idx]);
}

static double code_value(fp8_dtype d, const uint8_t *base, size_t idx)
{
    if (d == FP8_E2M1) return fp8_decode_value(d, (idx & 1) ? base[idx / 2] >> 4 : base[idx / 2] & 0xf);
    return fp8_decode_value(d, base[idx]);
}

fp8_status ref_experts_make(fp8_device *dev, test_rng *rng, uint32_t e, uint32_t n, uint32_t k, fp8_dtype dtype,
                            fp8_scale_layout layout, float amp, size_t gap, ref_experts *out)
{
    memset(out, 0, sizeof *out);
    out->e = e; out->n = n; out->k = k; out->dtype = dtype; out->layout = layout;
    size_t one;
    fp8_dtype_storage_size(dtype, (size_t)n * k, &one);
    size_t scount = 0;
    fp8_status st = fp8_scale_count(&layout, n, k, &scount);
    if (st != FP8_OK) return st;
    const size_t sone = scount * scale_esize(layout.dtype);
    const size_t stride = one + gap, sstride = sone + (gap ? 4 * ((gap + 3) / 4) : 0);
    uint8_t *q = calloc(1, stride * e + 1);
    uint8_t *s = calloc(1, sstride * e + 4);
    float *src = malloc((size_t)n * k * sizeof(float));
    out->deq = malloc((size_t)e * n * k * sizeof(double));
    float *tscales = calloc(e, sizeof(float));
    if (!q || !s || !src || !out->deq || !tscales) return FP8_ERR_OUT_OF_HOST_MEMORY;
    for (uint32_t x = 0; x < e; x++) {
        for (size_t i = 0; i < (size_t)n * k; i++) src[i] = amp * test_rng_normal(rng);
        float ts = 1.0f;
        fp8_quantize_desc d = {.rows = n, .cols = k, .src_dtype = FP8_F32, .src = src, .dst_dtype = dtype,
                               .dst = q + x * stride, .dst_bytes = one, .scale_layout = layout,
                               .scale = scount ? s + x * sstride : NULL, .scale_bytes = sone, .tensor_scale = &ts};
        if ((st = fp8_quantize(&d)) != FP8_OK) { free(q); free(s); free(src); free(tscales); return st; }
        tscales[x] = ts;
        /* Dequantize independently of the library: element (r, c) uses block (r / bh, c / bw). */
        uint32_t bh = n, bw = k;
        if (layout.kind == FP8_SCALE_ROW) { bh = 1; }
        else if (layout.kind == FP8_SCALE_COL) { bw = 1; }
        else if (layout.kind == FP8_SCALE_BLOCK) { bh = layout.block_rows; bw = layout.block_cols; }
        const uint32_t bpr = (k + bw - 1) / bw;
        for (uint32_t r = 0; r < n; r++)
            for (uint32_t c = 0; c < k; c++) {
                double v = code_value(dtype, q + x * stride, (size_t)r * k + c);
                if (scount) v *= scale_value(layout.dtype, s + x * sstride, (size_t)(r / bh) * bpr + c / bw);
                out->deq[((size_t)x * n + r) * k + c] = v * ts;
            }
    }
    fp8_buffer *wb = NULL, *sb = NULL;
    if ((st = fp8_buffer_create(dev, stride * e, &wb)) != FP8_OK) return st;
    fp8_buffer_write(wb, 0, q, stride * e);
    if (scount) {
        if ((st = fp8_buffer_create(dev, sstride * e, &sb)) != FP8_OK) return st;
        fp8_buffer_write(sb, 0, s, sstride * e);
    }
    out->wbuf = wb;
    out->sbuf = sb;
    out->w.w = (fp8_operand){.buffer = wb, .offset = 0, .dtype = dtype};
    out->w.expert_stride = gap ? stride : 0;
    out->w.scales = (fp8_scales){.layout = layout, .buffer = sb};
    out->w.scales_expert_stride = gap ? sstride : 0;
    /* NVFP4 carries a tensor scale per expert: pass it per expert. */
    if (layout.dtype == FP8_E4M3FN) {
        fp8_buffer *tb = ref_upload(dev, FP8_F32, tscales, e);
        out->w.tensor_scales = (fp8_operand){.buffer = tb, .dtype = FP8_F32};
    }
    free(q); free(s); free(src); free(tscales);
    return FP8_OK;
}

void ref_experts_free(ref_experts *x)
{
    fp8_buffer_free(x->wbuf);
    fp8_buffer_free(x->sbuf);
    fp8_buffer_free(x->w.tensor_scales.buffer);
    free(x->deq);
    memset(x, 0, sizeof *x);
}

fp8_buffer *ref_upload(fp8_device *dev, fp8_dtype dtype, const float *v, size_t count)
{
    size_t bytes;
    fp8_dtype_storage_size(dtype, count, &bytes);
    fp8_buffer *b = NULL;
    if (fp8_buffer_create(dev, bytes ? bytes : 4, &b) != FP8_OK) return NULL;
    void *tmp = malloc(bytes ? bytes : 4);
    fp8_encode_array(dtype, v, count, tmp, bytes, FP8_OVERFLOW_CAST);
    fp8_buffer_write(b, 0, tmp, bytes);
    free(tmp);
    return b;
}

void ref_download(const fp8_buffer *b, size_t offset, fp8_dtype dtype, size_t count, float *out)
{
    size_t bytes;
    fp8_dtype_storage_size(dtype, count, &bytes);
    void *tmp = malloc(bytes ? bytes : 4);
    fp8_buffer_read(b, offset, tmp, bytes);
    fp8_decode_array(dtype, tmp, bytes, count, out);
    free(tmp);
}

/* ------------------------------------------------------------------------------------------------
 * Routing by sorting.
 * ---------------------------------------------------------------------------------------------- */
typedef struct keyed { double key; uint32_t id; } keyed;

static int by_key_desc(const void *pa, const void *pb)
{
    const keyed *a = pa, *b = pb;
    if (a->key != b->key) return a->key > b->key ? -1 : 1;
    return a->id < b->id ? -1 : (a->id > b->id);
}

int ref_route(const float *logits, uint32_t e, uint32_t k, const ref_router *r, int32_t *ids, double *weights)
{
    double *s = malloc(e * sizeof(double));
    keyed *kk = malloc(e * sizeof(keyed));
    for (uint32_t i = 0; i < e; i++)
        if (!isfinite(logits[i]) || (r->bias && !isfinite(r->bias[i]))) { free(s); free(kk); return 0; }
    if (r->scoring == FP8_MOE_SCORE_SOFTMAX) {
        double mx = logits[0], z = 0;
        for (uint32_t i = 1; i < e; i++) mx = logits[i] > mx ? logits[i] : mx;
        for (uint32_t i = 0; i < e; i++) z += exp((double)logits[i] - mx);
        for (uint32_t i = 0; i < e; i++) s[i] = exp((double)logits[i] - mx) / z;
    } else {
        for (uint32_t i = 0; i < e; i++) s[i] = 1.0 / (1.0 + exp(-(double)logits[i]));
    }
    uint8_t *ok = malloc(e);
    memset(ok, 1, e);
    if (r->n_group) {
        const uint32_t gs = e / r->n_group;
        keyed *g = malloc(r->n_group * sizeof(keyed));
        keyed *in = malloc(gs * sizeof(keyed));
        for (uint32_t gi = 0; gi < r->n_group; gi++) {
            for (uint32_t i = 0; i < gs; i++) {
                const uint32_t id = gi * gs + i;
                in[i] = (keyed){s[id] + (r->bias ? r->bias[id] : 0.0), id};
            }
            qsort(in, gs, sizeof(keyed), by_key_desc);
            g[gi] = (keyed){r->group_top2 && gs > 1 ? in[0].key + in[1].key : in[0].key, gi};
        }
        qsort(g, r->n_group, sizeof(keyed), by_key_desc);
        memset(ok, 0, e);
        for (uint32_t j = 0; j < r->topk_group; j++)
            for (uint32_t i = 0; i < gs; i++) ok[g[j].id * gs + i] = 1;
        free(g);
        free(in);
    }
    uint32_t cand = 0;
    for (uint32_t i = 0; i < e; i++)
        if (ok[i]) kk[cand++] = (keyed){s[i] + (r->bias ? r->bias[i] : 0.0), i};
    qsort(kk, cand, sizeof(keyed), by_key_desc);
    double sum = 0;
    for (uint32_t j = 0; j < k; j++) {
        ids[j] = (int32_t)kk[j].id;
        weights[j] = s[kk[j].id];
        sum += weights[j];
    }
    for (uint32_t j = 0; j < k; j++) {
        if (r->renormalize && sum > 0) weights[j] /= sum;
        weights[j] *= r->scale != 0 ? r->scale : 1.0;
    }
    free(s); free(kk); free(ok);
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * The MLP.
 * ---------------------------------------------------------------------------------------------- */
void ref_qdq_row(fp8_dtype dtype, uint32_t block_cols, const double *in, uint32_t n, double *out)
{
    const uint32_t b = block_cols && block_cols < n ? block_cols : n;
    const float qmax = (float)fp8_dtype_max(dtype);
    for (uint32_t c0 = 0; c0 < n; c0 += b) {
        const uint32_t c1 = c0 + b < n ? c0 + b : n;
        float amax = 0;
        for (uint32_t c = c0; c < c1; c++) amax = fabsf((float)in[c]) > amax ? fabsf((float)in[c]) : amax;
        const float s = amax > 0 ? amax / qmax : 1.0f;
        for (uint32_t c = c0; c < c1; c++) {
            uint32_t code = fp8_encode_value(dtype, (float)in[c] / s, FP8_OVERFLOW_SATURATE);
            out[c] = (double)fp8_decode_value(dtype, code) * s;
        }
    }
}

double ref_act(fp8_moe_activation act, double x)
{
    switch (act) {
    case FP8_MOE_ACT_SWIGLU: case FP8_MOE_ACT_SILU: return x / (1 + exp(-x));
    case FP8_MOE_ACT_GEGLU: case FP8_MOE_ACT_GELU: return 0.5 * x * (1 + erf(x * 0.70710678118654752));
    case FP8_MOE_ACT_GEGLU_TANH: case FP8_MOE_ACT_GELU_TANH:
        return 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
    default: return x;
    }
}

void ref_expert_mlp(const ref_experts *gu, const ref_experts *dn, uint32_t ex, fp8_moe_activation act, fp8_dtype quant,
                    uint32_t block_cols, const double *x, double weight, double *y)
{
    const int gated = act == FP8_MOE_ACT_SWIGLU || act == FP8_MOE_ACT_GEGLU || act == FP8_MOE_ACT_GEGLU_TANH;
    const uint32_t H = gu->k, I = gated ? gu->n / 2 : gu->n;
    double *g = malloc(gu->n * sizeof(double)), *h = malloc(I * sizeof(double));
    const double *wg = gu->deq + (size_t)ex * gu->n * gu->k;
    for (uint32_t i = 0; i < gu->n; i++) {
        double acc = 0;
        for (uint32_t c = 0; c < H; c++) acc += wg[(size_t)i * H + c] * x[c];
        g[i] = acc;
    }
    for (uint32_t i = 0; i < I; i++) h[i] = gated ? ref_act(act, g[i]) * g[I + i] : ref_act(act, g[i]);
    if (quant != FP8_DTYPE_INVALID) ref_qdq_row(quant, block_cols, h, I, h);
    const double *wd = dn->deq + (size_t)ex * dn->n * dn->k;
    for (uint32_t o = 0; o < H; o++) {
        double acc = 0;
        for (uint32_t i = 0; i < I; i++) acc += wd[(size_t)o * I + i] * h[i];
        y[o] += weight * acc;
    }
    free(g);
    free(h);
}
