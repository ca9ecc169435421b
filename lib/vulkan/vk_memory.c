/* Vulkan buffers: device-local memory, uploads and downloads through the staging buffer, device copies. */
#include "vk_internal.h"

#include <string.h>

static uint32_t find_memory_type(const fp8i_vk_device *vd, uint32_t bits, VkMemoryPropertyFlags want)
{
    for (uint32_t i = 0; i < vd->mem.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (vd->mem.memoryTypes[i].propertyFlags & want) == want) return i;
    return UINT32_MAX;
}

fp8_status fp8i_vk_alloc_buffer(fp8i_vk_device *vd, VkDeviceSize size, VkBufferUsageFlags usage,
                                VkMemoryPropertyFlags want, VkBuffer *buffer, VkDeviceMemory *memory)
{
    const fp8_context *ctx = vd->ctx;
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size, .usage = usage,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkCreateBuffer(vd->device, &bi, NULL, buffer);
    if (r != VK_SUCCESS) return fp8i_vk_status(ctx, r, "vkCreateBuffer");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(vd->device, *buffer, &req);
    uint32_t type = find_memory_type(vd, req.memoryTypeBits, want);
    /* Device-local is a preference (some devices have none); host visibility is a requirement. */
    if (type == UINT32_MAX && !(want & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT))
        type = find_memory_type(vd, req.memoryTypeBits, 0);
    if (type == UINT32_MAX) {
        vkDestroyBuffer(vd->device, *buffer, NULL);
        *buffer = VK_NULL_HANDLE;
        return FP8I_FAIL(ctx, FP8_ERR_BACKEND, "vulkan: no memory type with properties %#x", (unsigned)want);
    }
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size, .memoryTypeIndex = type};
    r = vkAllocateMemory(vd->device, &ai, NULL, memory);
    if (r == VK_SUCCESS) r = vkBindBufferMemory(vd->device, *buffer, *memory, 0);
    if (r != VK_SUCCESS) {
        if (*memory) vkFreeMemory(vd->device, *memory, NULL);
        vkDestroyBuffer(vd->device, *buffer, NULL);
        *buffer = VK_NULL_HANDLE;
        *memory = VK_NULL_HANDLE;
        return fp8i_vk_status(ctx, r, "vkAllocateMemory");
    }
    return FP8_OK;
}

fp8_status fp8i_vk_buffer_create(fp8_buffer *buf)
{
    fp8i_vk_device *vd = fp8i_vk_dev(buf->dev);
    const fp8_context *ctx = buf->dev->ctx;
    /* Larger than one binding addresses (max_buffer_bytes) is allowed: the dispatches refuse to bind such a
     * buffer whole (fp8i_vk_check_bindable), and the MoE GEMM binds windows of it. */
    fp8i_vk_buffer *b = fp8i_calloc(ctx, 1, sizeof *b);
    if (!b) return FP8_ERR_OUT_OF_HOST_MEMORY;
    /* Rounded up so that a 16-byte load of any byte inside the buffer stays inside the allocation. */
    b->alloc_size = (buf->size + 15) & ~(VkDeviceSize)15;
    const uint64_t cap = buf->dev->entry->info.max_allocation_bytes;
    if (cap && b->alloc_size > cap) b->alloc_size = buf->size;
    fp8_status st = fp8i_vk_alloc_buffer(vd, b->alloc_size,
                                         VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                             VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                                         VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, &b->buffer, &b->memory);
    if (st != FP8_OK) {
        fp8i_free(ctx, b);
        return st;
    }
    buf->impl = b;
    /* New memory holds garbage; zero it so that padding bytes read by wide loads are defined. */
    st = fp8i_vk_begin(vd);
    if (st == FP8_OK) {
        fp8i_vk_buffer *w[1] = {b};
        fp8i_vk_hazard(vd, NULL, 0, w, 1);
        vkCmdFillBuffer(vd->slots[vd->cur].cb, b->buffer, 0, VK_WHOLE_SIZE, 0);
        st = fp8i_vk_command_done(vd);
    }
    if (st != FP8_OK) {
        fp8i_vk_buffer_free(buf);
        buf->impl = NULL;
    }
    return st;
}

void fp8i_vk_buffer_free(fp8_buffer *buf)
{
    fp8i_vk_buffer *b = fp8i_vk_buf(buf);
    if (!b) return;
    fp8i_vk_device *vd = fp8i_vk_dev(buf->dev);
    /* Recorded work may still use it. */
    fp8i_vk_finish(vd);
    vkDestroyBuffer(vd->device, b->buffer, NULL);
    vkFreeMemory(vd->device, b->memory, NULL);
    fp8i_free(buf->dev->ctx, b);
    buf->impl = NULL;
}

/* Space in the staging buffer for `want` bytes (at most its size); waits for the device when it is full. */
static fp8_status staging_take(fp8i_vk_device *vd, size_t want, VkDeviceSize *offset, size_t *got)
{
    VkDeviceSize start = (vd->staging_used + 15) & ~(VkDeviceSize)15;
    if (start >= vd->staging_size) {
        fp8_status st = fp8i_vk_finish(vd);
        if (st != FP8_OK) return st;
        start = 0;
    }
    VkDeviceSize room = vd->staging_size - start;
    *got = want < room ? want : (size_t)room;
    *offset = start;
    vd->staging_used = start + *got;
    return FP8_OK;
}

fp8_status fp8i_vk_buffer_write(fp8_buffer *buf, size_t offset, const void *src, size_t size)
{
    fp8i_vk_device *vd = fp8i_vk_dev(buf->dev);
    fp8i_vk_buffer *b = fp8i_vk_buf(buf);
    const uint8_t *p = src;
    while (size) {
        VkDeviceSize soff;
        size_t n;
        fp8_status st = staging_take(vd, size, &soff, &n);
        if (st == FP8_OK) st = fp8i_vk_begin(vd);
        if (st != FP8_OK) return st;
        memcpy(vd->staging_map + soff, p, n);
        fp8i_vk_buffer *w[1] = {b};
        fp8i_vk_hazard(vd, NULL, 0, w, 1);
        VkBufferCopy c = {.srcOffset = soff, .dstOffset = offset, .size = n};
        vkCmdCopyBuffer(vd->slots[vd->cur].cb, vd->staging, b->buffer, 1, &c);
        if ((st = fp8i_vk_command_done(vd)) != FP8_OK) return st;
        p += n;
        offset += n;
        size -= n;
    }
    return FP8_OK;
}

fp8_status fp8i_vk_buffer_read(const fp8_buffer *buf, size_t offset, void *dst, size_t size)
{
    fp8i_vk_device *vd = fp8i_vk_dev(buf->dev);
    fp8i_vk_buffer *b = fp8i_vk_buf(buf);
    uint8_t *p = dst;
    while (size) {
        /* Start from an empty staging buffer so the whole chunk lands in one wait. */
        fp8_status st = fp8i_vk_finish(vd);
        VkDeviceSize soff = 0;
        size_t n = 0;
        if (st == FP8_OK) st = staging_take(vd, size, &soff, &n);
        if (st == FP8_OK) st = fp8i_vk_begin(vd);
        if (st != FP8_OK) return st;
        fp8i_vk_buffer *r[1] = {b};
        fp8i_vk_hazard(vd, r, 1, NULL, 0);
        VkBufferCopy c = {.srcOffset = offset, .dstOffset = soff, .size = n};
        vkCmdCopyBuffer(vd->slots[vd->cur].cb, b->buffer, vd->staging, 1, &c);
        if ((st = fp8i_vk_finish(vd)) != FP8_OK) return st;
        memcpy(p, vd->staging_map + soff, n);
        p += n;
        offset += n;
        size -= n;
    }
    return FP8_OK;
}

fp8_status fp8i_vk_buffer_copy(fp8_buffer *dst, size_t dst_offset, const fp8_buffer *src, size_t src_offset, size_t size)
{
    fp8i_vk_device *vd = fp8i_vk_dev(dst->dev);
    fp8i_vk_buffer *d = fp8i_vk_buf(dst), *s = fp8i_vk_buf(src);
    if (dst == src && src_offset < dst_offset + size && dst_offset < src_offset + size)
        return FP8I_FAIL(dst->dev->ctx, FP8_ERR_INVALID_ARGUMENT, "vulkan: overlapping copy within one buffer");
    fp8_status st = fp8i_vk_begin(vd);
    if (st != FP8_OK) return st;
    fp8i_vk_buffer *r[1] = {s}, *w[1] = {d};
    fp8i_vk_hazard(vd, r, 1, w, 1);
    VkBufferCopy c = {.srcOffset = src_offset, .dstOffset = dst_offset, .size = size};
    vkCmdCopyBuffer(vd->slots[vd->cur].cb, s->buffer, d->buffer, 1, &c);
    return fp8i_vk_command_done(vd);
}
