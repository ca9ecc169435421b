#!/usr/bin/env bash
# Source on the GPU machine (from the repo root, with `.gl` carried): unpack the Debian loader packages
# fetched into .gl/ (Vulkan loader, glvnd libraries the NVIDIA Vulkan ICD needs, OpenCL ICD loader, CLBlast,
# validation layers) and point the Vulkan loader at the NVIDIA driver. Debian 12 binaries run there.
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export POCL_CACHE_DIR=${POCL_CACHE_DIR:-/tmp/pocl-cache}
export FP8_CACHE_DIR=${FP8_CACHE_DIR:-/tmp/fp8-cache}
