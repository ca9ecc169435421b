/* Vulkan backend internals shared by its files: the instance, per-device state, and entry points. */
#ifndef FP8_VK_INTERNAL_H
#define FP8_VK_INTERNAL_H

#include "../backend/backend.h"
#include "vk_compat.h"

/* One per context: the instance and the physical devices it found. */
typedef struct fp8i_vk_instance {
    VkInstance instance;
    uint32_t api_version;                 /* instance version reported by the loader */
    bool validation;                      /* VK_LAYER_KHRONOS_validation enabled */
    VkDebugUtilsMessengerEXT messenger;
    uint32_t validation_errors;           /* counted by the messenger; tests fail on non-zero */
    const fp8_context *ctx;
    uint32_t physical_count;
    VkPhysicalDevice physical[FP8I_MAX_DEVICES];
} fp8i_vk_instance;

static inline fp8i_vk_instance *fp8i_vk_state(const fp8_context *ctx)
{
    return (fp8i_vk_instance *)ctx->backend_state[FP8_BACKEND_VULKAN];
}

/* vk_instance.c: create the instance, list physical devices, probe each. */
fp8_status fp8i_vk_enumerate(fp8_context *ctx);
void fp8i_vk_shutdown(fp8_context *ctx);
/* Number of validation-layer errors seen so far in this context (0 without the layer). */
uint32_t fp8i_vk_validation_errors(const fp8_context *ctx);

/* vk_probe.c: fill the capability record of one physical device from real queries. */
void fp8i_vk_probe_device(const fp8i_vk_instance *vk, VkPhysicalDevice phys, fp8_device_info *info);

/* Map a VkResult to a status (and log it with what failed). */
fp8_status fp8i_vk_status(const fp8_context *ctx, VkResult r, const char *what);

/* ---- Runtime (vk_device.c, vk_memory.c, vk_pipeline.c, vk_gemm.c, vk_bench.c): additive to the above. ---- */
#include "vk_compat_runtime.h"

/* Bindings every compute shader of libfp8 declares (one descriptor set layout for all of them). */
enum {
    FP8I_VK_BIND_W = 0,
    FP8I_VK_BIND_WS = 1,
    FP8I_VK_BIND_X = 2,
    FP8I_VK_BIND_XS = 3,
    FP8I_VK_BIND_BIAS = 4,
    FP8I_VK_BIND_Y = 5,
    FP8I_VK_BINDINGS = 6
};
#define FP8I_VK_PUSH_BYTES 128u
#define FP8I_VK_MAX_SPEC 26u
#define FP8I_VK_SLOTS 3u            /* command buffers in flight */
#define FP8I_VK_PROFILE_MARKS 4096u /* FP8_VK_PROFILE: timestamps kept between two synchronizes */
#define FP8I_VK_SETS_PER_SLOT 256u  /* descriptor sets one command buffer may use before it is submitted */

/* Embedded SPIR-V modules (vk_shaders.c). */
typedef enum fp8i_vk_shader {
    FP8I_VK_SHADER_GEMV = 0,
    FP8I_VK_SHADER_GEMV_NOSG,          /* shared-memory reduction, for devices without subgroup arithmetic */
    FP8I_VK_SHADER_GEMM_TILED,         /* also the f32 SGEMM baseline of the benchmarks */
    FP8I_VK_SHADER_GEMM_NV_COOPMAT,
    FP8I_VK_SHADER_GEMM_KHR_COOPMAT,
    FP8I_VK_SHADER_GEMM_COOPMAT_EMU,   /* test twin of the two above (FP8_VK_EMULATE_COOPMAT=1) */
    FP8I_VK_SHADER_PEAK_FMA,
    FP8I_VK_SHADER_DECODE_CHECK,       /* self-check of the packed decoders at device open */
    FP8I_VK_SHADER_PEAK_NV_COOPMAT,
    FP8I_VK_SHADER_PEAK_KHR_COOPMAT,
    FP8I_VK_SHADER_COPY,               /* bandwidth reference of the benchmarks */
    FP8I_VK_SHADER_GEMM_NV_COOPMAT2,   /* the same with workgroup-scope matrices */
    FP8I_VK_SHADER_PEAK_NV_COOPMAT2,   /* matrix peak with workgroup-scope matrices */
    FP8I_VK_SHADER_COOPMAT_B_CHECK_KHR, /* check at open of the B fragment layout the direct-weight GEMM assumes */
    FP8I_VK_SHADER_COOPMAT_B_CHECK_NV,
    FP8I_VK_SHADER_COUNT_
} fp8i_vk_shader;

typedef struct fp8i_vk_spirv {
    const char *name;
    const uint32_t *code;       /* NULL when this build did not compile the shader */
    size_t size;                /* bytes */
} fp8i_vk_spirv;
const fp8i_vk_spirv *fp8i_vk_shader_code(fp8i_vk_shader shader);

/* A buffer of the Vulkan backend (fp8_buffer.impl). */
typedef struct fp8i_vk_buffer {
    VkBuffer buffer;
    VkDeviceMemory memory;
    VkDeviceSize alloc_size;    /* rounded up to 16 bytes so whole-word loads never leave the buffer */
    uint64_t write_epoch;       /* barrier epoch of the last command that wrote it (hazard tracking) */
    uint64_t read_epoch;
} fp8i_vk_buffer;

typedef struct fp8i_vk_pipeline_entry {
    fp8i_vk_shader shader;
    uint32_t spec_count;
    uint32_t spec[FP8I_VK_MAX_SPEC];
    uint32_t required_subgroup;  /* 0: driver's choice */
    VkPipeline pipeline;
} fp8i_vk_pipeline_entry;

typedef struct fp8i_vk_slot {
    VkCommandBuffer cb;
    VkFence fence;
    VkDescriptorPool pool;
    uint32_t sets_used;
    bool pending;               /* submitted, fence not yet waited for */
} fp8i_vk_slot;

/* Features the runtime enabled at vkCreateDevice (what shaders may rely on). */
typedef struct fp8i_vk_features {
    bool fp16, int8, storage8, storage16;
    bool subgroup_arith;        /* subgroupAdd in compute shaders */
    bool subgroup_vote;         /* subgroupAll in compute shaders (the direct-weight GEMM's decode choice) */
    bool subgroup_size_control, compute_full_subgroups;
    bool size_control_compute;  /* requiredSubgroupSizeStages includes compute */
    uint32_t subgroup_size, subgroup_min, subgroup_max;
    bool nv_coopmat, khr_coopmat;
    bool nv_coopmat_f16_16x16x16, khr_coopmat_f16_16x16x16; /* fp16 x fp16 -> fp32, subgroup scope */
    bool fp16_denormals;        /* shaderDenormPreserveFloat16 or known exact conversions */
    bool memory_model;          /* vulkanMemoryModel: needed by shaders using GL_KHR_memory_scope_semantics */
    /* VK_NV_cooperative_matrix2 with what gemm_coopmat.comp's coopmat2 build uses: workgroup scope, flexible
     * dimensions, tensor addressing (the store), per-element operations (the epilogue); SPIR-V 1.6 (Vulkan 1.3). */
    bool nv_coopmat2;
    /* FP8_VK_PIPELINE_STATS=1 and VK_KHR_pipeline_executable_properties: every new pipeline's compiler
     * statistics (registers, spills, shared memory: whatever the driver reports) go to the log at INFO. */
    bool pipeline_stats;
} fp8i_vk_features;

/* Per open device (fp8_device.impl). */
typedef struct fp8i_vk_device {
    fp8_device *dev;
    const fp8_context *ctx;
    VkInstance instance;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    bool borrowed;              /* imported from the caller: never destroyed here */
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem;
    fp8i_vk_features feat;
    uint64_t max_buffer_bytes;  /* maxStorageBufferRange, capped so 32-bit shader indices never wrap */

    VkCommandPool cmd_pool;
    fp8i_vk_slot slots[FP8I_VK_SLOTS];
    uint32_t cur;               /* slot being recorded */
    bool recording;
    uint32_t batch_commands;
    uint64_t epoch;             /* incremented at every barrier */
    bool epoch_used;            /* a command was recorded since the last barrier */
    uint32_t concurrent;        /* depth of fp8i_vk_concurrent sections: no barriers inside */

    VkBuffer staging;           /* host-visible, coherent */
    VkDeviceMemory staging_mem;
    uint8_t *staging_map;
    VkDeviceSize staging_size, staging_used;

    VkBuffer dummy;             /* bound to bindings a dispatch does not use */
    VkDeviceMemory dummy_mem;

    VkDescriptorSetLayout set_layout;
    VkPipelineLayout pipeline_layout;
    VkPipelineCache pipeline_cache;
    char cache_path[600];
    fp8i_vk_pipeline_entry *pipelines;
    uint32_t pipeline_count, pipeline_cap;

    VkQueryPool timer_pool;
    bool timer_running;
    /* FP8_VK_PROFILE (vk_profile.c): a timestamp per dispatch, labelled by what the caller set in prof_next. */
    VkQueryPool prof_pool;
    uint32_t prof_count, prof_dropped;
    const char *prof_what[FP8I_VK_PROFILE_MARKS];
    const char *prof_next;      /* label of the next dispatch (a static string); reset after it */
    uint32_t timestamp_bits;
    bool fast_decode;           /* the packed fp16-position decoders were exact here (checked at open) */
    bool coop_b_direct[2];      /* [0] KHR, [1] NV build: B fragments in the layout of shaders/coopmat_b_direct.glsl
                                 * (checked at open), so the GEMM may build them from registers (W_DIRECT) */
    struct fp8i_vk_moe *moe;    /* vk_moe.c: MoE pipelines and the error word; NULL until the first MoE call */
} fp8i_vk_device;

static inline fp8i_vk_device *fp8i_vk_dev(const fp8_device *dev) { return (fp8i_vk_device *)dev->impl; }
static inline fp8i_vk_buffer *fp8i_vk_buf(const fp8_buffer *buf) { return (fp8i_vk_buffer *)buf->impl; }
/* Whether compute shaders can run in subgroups of 32 (the size, or one the device lets a pipeline require): the
 * cooperative-matrix kernels lay their tiles out over such subgroups. */
static inline bool fp8i_vk_subgroup32(const fp8i_vk_device *vd)
{
    return vd->feat.subgroup_size == 32 || (vd->feat.subgroup_size_control && vd->feat.size_control_compute &&
                                            vd->feat.subgroup_min <= 32 && vd->feat.subgroup_max >= 32);
}

/* vk_profile.c: FP8_VK_PROFILE, per-dispatch device timestamps reported at synchronize. */
fp8_status fp8i_vk_profile_init(fp8i_vk_device *vd);
void fp8i_vk_profile_destroy(fp8i_vk_device *vd);
void fp8i_vk_profile_mark(fp8i_vk_device *vd, VkCommandBuffer cb, const char *what); /* NULL: a batch starts */
void fp8i_vk_profile_report(fp8i_vk_device *vd);
/* After vkCmdDispatch: mark it with the label set in prof_next. */
static inline void fp8i_vk_profile_dispatch(fp8i_vk_device *vd, VkCommandBuffer cb)
{
    if (vd->prof_pool) fp8i_vk_profile_mark(vd, cb, vd->prof_next ? vd->prof_next : "dispatch");
    vd->prof_next = NULL;
}

/* vk_device.c: device life cycle, command recording and submission. */
fp8_status fp8i_vk_device_open(fp8_device *dev);
void fp8i_vk_device_close(fp8_device *dev);
/* Subgroup, float-control and cooperative-matrix properties, timestamp bits of vd->queue_family; feat.nv_coopmat
 * and feat.khr_coopmat (enabled features) must be set first. */
void fp8i_vk_query_properties(fp8i_vk_device *vd, bool size_control_props);
/* Command pool, staging, pipelines... for a device whose VkDevice and queue exist; frees vd on failure. */
fp8_status fp8i_vk_finish_open(fp8_device *dev, fp8i_vk_device *vd);
/* Make sure a command buffer is recording (waits for the slot's previous use). */
fp8_status fp8i_vk_begin(fp8i_vk_device *vd);
/* Submit what was recorded (no wait). */
fp8_status fp8i_vk_submit(fp8i_vk_device *vd);
/* Submit and wait for everything; afterwards the staging area is free. */
fp8_status fp8i_vk_finish(fp8i_vk_device *vd);
fp8_status fp8i_vk_synchronize(fp8_device *dev);
/* Record a barrier before a command that reads `reads` and writes `writes` if it depends on earlier ones. */
void fp8i_vk_hazard(fp8i_vk_device *vd, fp8i_vk_buffer *const *reads, uint32_t nreads,
                    fp8i_vk_buffer *const *writes, uint32_t nwrites);
/* A section of commands that may overlap (begin true, then false; sections nest): one barrier before its first
 * command where anything was recorded since the last, none between its commands, and their hazard marks order
 * whatever follows. The caller guarantees that its commands touch disjoint bytes, except the MoE error word,
 * where they can only record the same status (the first in submission order is then still the one reported). */
fp8_status fp8i_vk_concurrent(fp8_device *dev, bool begin);
/* Count one recorded command; submits the batch when it gets long. */
fp8_status fp8i_vk_command_done(fp8i_vk_device *vd);
fp8_status fp8i_vk_timer_start(fp8_device *dev);
fp8_status fp8i_vk_timer_stop(fp8_device *dev, double *elapsed_ns);

/* vk_memory.c: buffers and transfers. */
fp8_status fp8i_vk_buffer_create(fp8_buffer *buf);
void fp8i_vk_buffer_free(fp8_buffer *buf);
fp8_status fp8i_vk_buffer_write(fp8_buffer *buf, size_t offset, const void *src, size_t size);
fp8_status fp8i_vk_buffer_read(const fp8_buffer *buf, size_t offset, void *dst, size_t size);
fp8_status fp8i_vk_buffer_copy(fp8_buffer *dst, size_t dst_offset, const fp8_buffer *src, size_t src_offset,
                               size_t size);
/* Device-local (or host-visible) memory for a VkBuffer. */
fp8_status fp8i_vk_alloc_buffer(fp8i_vk_device *vd, VkDeviceSize size, VkBufferUsageFlags usage,
                                VkMemoryPropertyFlags want, VkBuffer *buffer, VkDeviceMemory *memory);

/* vk_pipeline.c: layouts, the pipeline cache, pipelines per (shader, specialization), dispatch. */
fp8_status fp8i_vk_pipelines_init(fp8i_vk_device *vd);
void fp8i_vk_pipelines_destroy(fp8i_vk_device *vd);
/* FP8_VK_PIPELINE_STATS=1 (feat.pipeline_stats): one INFO line with the driver's statistics of a pipeline created
 * with VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR (registers, spills, shared memory). */
void fp8i_vk_log_pipeline_stats(const fp8i_vk_device *vd, VkPipeline pipeline, const char *name, const uint32_t *spec,
                                uint32_t spec_count);
fp8_status fp8i_vk_pipeline_get(fp8i_vk_device *vd, fp8i_vk_shader shader, const uint32_t *spec, uint32_t spec_count,
                                uint32_t required_subgroup, VkPipeline *out);
/* FP8_OK where each of the `count` buffers (NULL: none) can be bound whole, except the bindings in windowed_mask,
 * which the caller binds a window of; FP8_ERR_TOO_LARGE, with a message, for the first one larger than a binding
 * addresses (fp8_buffer_create allows that for MoE expert weights only). */
fp8_status fp8i_vk_check_bindable(const fp8i_vk_device *vd, fp8_buffer *const *bufs, uint32_t count, uint32_t windowed_mask);
/* Bind `pipeline`, the buffers (NULL: the dummy) and push constants, then dispatch groups. */
fp8_status fp8i_vk_dispatch(fp8i_vk_device *vd, VkPipeline pipeline, fp8_buffer *const bufs[FP8I_VK_BINDINGS],
                            uint32_t written_mask, const void *push, uint32_t push_size, uint32_t gx, uint32_t gy,
                            uint32_t gz);

/* vk_gemm.c: GEMM and GEMV dispatch. */
/* Shared memory of the cooperative-matrix GEMMs (shaders/gemm_coopmat.comp, shaders/moe_gemm_coopmat.comp) for a
 * BM x BN block in slices of BK along K, with `subgroups` subgroups (their plain-FMA twins: `emulated`). */
uint64_t fp8i_vk_coop_shared_bytes(uint32_t bm, uint32_t bn, uint32_t bk, uint32_t stages, uint32_t subgroups,
                                   bool emulated);
/* The best K slices (depth bk, stages shared buffers) whose shared memory a bm x bn tile of `subgroups`
 * subgroups fits on vd; false (and the smallest) where none fits. */
bool fp8i_vk_coop_slice(const fp8i_vk_device *vd, uint32_t bm, uint32_t bn, uint32_t subgroups, bool emulated,
                        uint32_t *bk, uint32_t *stages);
fp8_status fp8i_vk_gemm(fp8_device *dev, const fp8i_gemm_args *args);
bool fp8i_vk_supports_path(const fp8_device *dev, fp8_path path, const fp8i_gemm_args *args);

/* vk_bench.c: reference kernels. */
fp8_status fp8i_vk_bench_run(fp8_device *dev, const fp8_bench_desc *desc, double *flop);

/* vk_moe.c: the MoE slots (arguments validated by lib/ops/moe.c). */
typedef struct fp8i_vk_moe fp8i_vk_moe;
fp8_status fp8i_vk_moe_route(fp8_device *dev, const struct fp8i_moe_route_args *args);
fp8_status fp8i_vk_moe_group(fp8_device *dev, const struct fp8i_moe_group_args *args);
fp8_status fp8i_vk_moe_route_group(fp8_device *dev, const struct fp8i_moe_route_args *route,
                                   const struct fp8i_moe_group_args *group);
fp8_status fp8i_vk_moe_quantize_rows(fp8_device *dev, const struct fp8i_moe_quant_args *args);
fp8_status fp8i_vk_moe_grouped_gemm(fp8_device *dev, const struct fp8i_moe_gemm_args *args);
fp8_status fp8i_vk_moe_combine(fp8_device *dev, const struct fp8i_moe_combine_args *args);
uint32_t fp8i_vk_moe_row_align(const fp8_device *dev, uint32_t m, uint32_t top_k, uint32_t experts);
bool fp8i_vk_moe_act_bf16(const fp8_device *dev, uint32_t row_align);
/* The per-device error word, which MoE kernels set (compare-and-swap from 0) on a data error: _fetch records
 * its copy to the host and its reset into the current batch (before the batch is finished), _take reads
 * that copy afterwards and returns the error it holds (FP8_OK when none or nothing was fetched). */
fp8_status fp8i_vk_moe_error_fetch(fp8i_vk_device *vd);
fp8_status fp8i_vk_moe_error_take(fp8i_vk_device *vd);
void fp8i_vk_moe_destroy(fp8i_vk_device *vd);

#endif
