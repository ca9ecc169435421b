/* libfp8 on a caller's OpenCL objects: run libfp8 on your context and queue, share buffers both ways. */
#ifndef FP8_OPENCL_H
#define FP8_OPENCL_H

#include "fp8.h"

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Open a libfp8 device over the caller's OpenCL objects instead of creating its own. `device` must be one of
 *  the context's OpenCL devices (fp8_context_find_device lists them), `context` a cl_context holding it and
 *  `queue` an in-order queue of that context on that device; libfp8 enqueues its work there, ordered with
 *  yours. The handles are borrowed: libfp8 never retains or releases them, so they must outlive the device.
 *  fp8_device_timer_* need a queue created with CL_QUEUE_PROFILING_ENABLE. Close with fp8_device_close.
 *  Errors: FP8_ERR_NULL_POINTER, FP8_ERR_NO_DEVICE (device unknown to ctx, or OpenCL disabled),
 *  FP8_ERR_INVALID_ARGUMENT (queue not of this context and device). */
FP8_API fp8_status fp8_device_import_opencl(fp8_context *ctx, cl_context context, cl_command_queue queue,
                                            cl_device_id device, fp8_device **out);

/** Wrap the caller's buffer `mem` (of the device's cl_context) as an fp8_buffer of `size` bytes (0: the whole
 *  buffer). libfp8 retains it and releases it in fp8_buffer_free; the caller's own reference is untouched.
 *  Errors: FP8_ERR_WRONG_DEVICE (not an OpenCL device, or mem of another context), FP8_ERR_BUFFER_TOO_SMALL. */
FP8_API fp8_status fp8_buffer_import_opencl(fp8_device *dev, cl_mem mem, size_t size, fp8_buffer **out);

/** The cl_mem behind a buffer of an OpenCL device (borrowed: valid until fp8_buffer_free); NULL otherwise. */
FP8_API cl_mem fp8_buffer_opencl_mem(const fp8_buffer *buf);

/** The cl_command_queue libfp8 uses on an OpenCL device (its own or the imported one); NULL otherwise. */
FP8_API cl_command_queue fp8_device_opencl_queue(const fp8_device *dev);

#ifdef __cplusplus
}
#endif
#endif /* FP8_OPENCL_H */
