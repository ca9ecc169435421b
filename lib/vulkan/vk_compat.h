/* Vulkan declarations newer than the headers we build with (Debian 12 ships 1.3.239), each guarded so
 * that newer headers win. Values are from the Vulkan registry. */
#ifndef FP8_VK_COMPAT_H
#define FP8_VK_COMPAT_H

#include <vulkan/vulkan.h>

#endif
