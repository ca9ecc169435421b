#!/usr/bin/env bash
# Run here, once: download (not install) the amd64 Debian packages the GPU machine lacks into .gl/,
# which the device tool carries there (see scripts/device_env.sh and ../shared/DEVICE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gl /tmp/amd64/partial
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
apt-get "${o[@]}" update -qq
cd .gl
apt-get "${o[@]}" download libvulkan1 ocl-icd-libopencl1 libclblast1 \
    libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2
# Debian 12's validation layer (1.3.239) predates VK_KHR_cooperative_matrix, NV coopmat2 and NV cooperative
# vectors: it reports their structures and SPIR-V capabilities as errors. Trixie's 1.4.309 knows them, and its
# needs (glibc >= 2.38, libstdc++ 14) are met by the GPU machine's Ubuntu 24.04.
mkdir -p /tmp/trixie-lists/partial
echo "deb http://deb.debian.org/debian trixie main" > /tmp/trixie.list
t=(-oDir::Etc::SourceList=/tmp/trixie.list -oDir::Etc::SourceParts=/dev/null -oDir::State::Lists=/tmp/trixie-lists
   -oAPT::Architecture=amd64)
apt-get "${t[@]}" update -qq
apt-get "${t[@]}" download vulkan-validationlayers
