/* fp8_device_import_opencl: libfp8 on the caller's context and queue gives the same GEMM as its own device,
 * orders its work with the caller's commands, and leaves the caller's handles as it found them. */
#include "test_util.h"

#define CL_USE_DEPRECATED_OPENCL_1_2_APIS /* clCreateCommandQueue works on every platform version */
#include "fp8_opencl.h"

#include <string.h>
#include <time.h>

static cl_uint refcount_ctx(cl_context c)
{
    cl_uint n = 0;
    clGetContextInfo(c, CL_CONTEXT_REFERENCE_COUNT, sizeof n, &n, NULL);
    return n;
}

static cl_uint refcount_queue(cl_command_queue q)
{
    cl_uint n = 0;
    clGetCommandQueueInfo(q, CL_QUEUE_REFERENCE_COUNT, sizeof n, &n, NULL);
    return n;
}

/* Drivers may hold a reference for a moment while their threads retire finished commands (PoCL does, under
 * load): wait up to 2 s for the counts to come back before calling a difference a leak. */
static bool counts_settle(cl_context c, cl_uint c_refs, cl_command_queue q, cl_uint q_refs)
{
    for (int i = 0; i < 200; i++) {
        if (refcount_ctx(c) == c_refs && refcount_queue(q) == q_refs) return true;
        if (refcount_ctx(c) < c_refs || refcount_queue(q) < q_refs) return false; /* released by us: a bug */
        const struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

int main(void)
{
    fp8_context_options opts = {.log = test_log, .disable_backends = 1u << FP8_BACKEND_VULKAN};
    fp8_context *ctx = NULL;
    CHECK_STATUS(fp8_context_create(&opts, &ctx), FP8_OK);
    const uint32_t idx = test_find_opencl_device(ctx);
    /* The caller's objects, on the same device libfp8 lists at idx (found again through its name). */
    fp8_device *own = NULL;
    CHECK_STATUS(fp8_device_open(ctx, idx, &own), FP8_OK);
    if (!own) return test_finish("cl_import");
    cl_command_queue own_q = fp8_device_opencl_queue(own);
    CHECK(own_q != NULL, "no queue behind an OpenCL device");
    cl_device_id device = NULL;
    cl_context context = NULL;
    clGetCommandQueueInfo(own_q, CL_QUEUE_DEVICE, sizeof device, &device, NULL);
    cl_int err = CL_SUCCESS;
    context = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    CHECK(err == CL_SUCCESS, "clCreateContext: %d", err);
    cl_command_queue queue = clCreateCommandQueue(context, device, CL_QUEUE_PROFILING_ENABLE, &err);
    CHECK(err == CL_SUCCESS, "clCreateCommandQueue: %d", err);
    const cl_uint ctx_refs = refcount_ctx(context), q_refs = refcount_queue(queue);

    fp8_device *dev = NULL;
    CHECK_STATUS(fp8_device_import_opencl(ctx, context, own_q, device, &dev), FP8_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(fp8_device_import_opencl(ctx, context, queue, device, &dev), FP8_OK);
    if (!dev) return test_finish("cl_import");
    CHECK(fp8_device_opencl_queue(dev) == queue, "the imported device uses another queue");

    /* W: 8 x 64 E4M3FN with per-row scales; X: 2 x 64 f32, written by the caller straight into its cl_mem. */
    enum { N = 8, K = 64, M = 2 };
    uint8_t w[N * K];
    float x[M * K], ws[N], y_own[M * N], y_imp[M * N];
    test_rng rng = {3};
    for (int i = 0; i < N * K; i++) w[i] = (uint8_t)(test_rng_next(&rng) & 0x77);
    for (int i = 0; i < M * K; i++) x[i] = test_rng_uniform(&rng, -1, 1);
    for (int i = 0; i < N; i++) ws[i] = test_rng_uniform(&rng, 0.5f, 2);
    cl_mem xmem = clCreateBuffer(context, CL_MEM_READ_WRITE, sizeof x, NULL, &err);
    CHECK(err == CL_SUCCESS, "clCreateBuffer: %d", err);
    clEnqueueWriteBuffer(queue, xmem, CL_FALSE, 0, sizeof x, x, 0, NULL, NULL);
    fp8_buffer *xb = NULL;
    CHECK_STATUS(fp8_buffer_import_opencl(own, xmem, 0, &xb), FP8_ERR_WRONG_DEVICE); /* other cl_context */
    CHECK_STATUS(fp8_buffer_import_opencl(dev, xmem, sizeof x + 1, &xb), FP8_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(fp8_buffer_import_opencl(dev, xmem, 0, &xb), FP8_OK);
    CHECK(xb && fp8_buffer_size(xb) == sizeof x && fp8_buffer_opencl_mem(xb) == xmem, "imported buffer wrong");

    for (int pass = 0; pass < 2; pass++) {
        fp8_device *d = pass ? dev : own;
        fp8_buffer *wb, *sb, *yb, *xo = xb;
        fp8_buffer_create(d, sizeof w, &wb);
        fp8_buffer_create(d, sizeof ws, &sb);
        fp8_buffer_create(d, sizeof y_own, &yb);
        fp8_buffer_write(wb, 0, w, sizeof w);
        fp8_buffer_write(sb, 0, ws, sizeof ws);
        if (!pass) {
            fp8_buffer_create(d, sizeof x, &xo);
            fp8_buffer_write(xo, 0, x, sizeof x);
        }
        fp8_gemm_desc g = {.m = M, .n = N, .k = K, .w = {wb, 0, FP8_E4M3FN, 0},
                           .w_scales = {{FP8_SCALE_ROW, FP8_F32, 0, 0}, sb, 0, 0}, .x = {xo, 0, FP8_F32, 0},
                           .y = {yb, 0, FP8_F32, 0}};
        CHECK_STATUS(fp8_gemm(d, &g), FP8_OK);
        if (pass) {
            /* The caller reads Y with its own command on its queue: ordered after the GEMM. */
            err = clEnqueueReadBuffer(queue, fp8_buffer_opencl_mem(yb), CL_TRUE, 0, sizeof y_imp, y_imp, 0, NULL, NULL);
            CHECK(err == CL_SUCCESS, "clEnqueueReadBuffer: %d", err);
        } else {
            CHECK_STATUS(fp8_buffer_read(yb, 0, y_own, sizeof y_own), FP8_OK);
        }
        fp8_buffer_free(wb); fp8_buffer_free(sb); fp8_buffer_free(yb);
        if (!pass) fp8_buffer_free(xo);
    }
    CHECK(memcmp(y_own, y_imp, sizeof y_own) == 0, "imported device computes a different GEMM");
    bool nonzero = false;
    for (int i = 0; i < M * N; i++) nonzero |= y_imp[i] != 0.0f;
    CHECK(nonzero, "all-zero result");

    CHECK_STATUS(fp8_device_timer_start(dev), FP8_OK);
    double ns = 0;
    CHECK_STATUS(fp8_device_timer_stop(dev, &ns), FP8_OK);
    fp8_buffer_free(xb);
    fp8_device_close(dev);
    CHECK(clFinish(queue) == CL_SUCCESS, "the caller's queue is broken after close");
    clReleaseMemObject(xmem);
    CHECK(counts_settle(context, ctx_refs, queue, q_refs), "reference counts context %u (was %u), queue %u (was %u)",
          refcount_ctx(context), ctx_refs, refcount_queue(queue), q_refs);
    clReleaseCommandQueue(queue);
    clReleaseContext(context);
    fp8_device_close(own);
    fp8_context_destroy(ctx);
    return test_finish("cl_import");
}
