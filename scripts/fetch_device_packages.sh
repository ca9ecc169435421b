#!/usr/bin/env bash
# Run here, once: download (not install) the amd64 Debian packages the GPU machine lacks into .gl/,
# which the device tool carries there (see scripts/device_env.sh and ../shared/DEVICE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gl /tmp/amd64/partial
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
apt-get "${o[@]}" update -qq
cd .gl
apt-get "${o[@]}" download libvulkan1 ocl-icd-libopencl1 libclblast1 vulkan-validationlayers \
    libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2
