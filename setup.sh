#!/usr/bin/env bash
# Install what libfp8 needs from Debian (only what is missing), then configure and build into build/.
# Idempotent: with everything present it only runs an incremental build.
set -euo pipefail
cd "$(dirname "$0")"

packages=(meson ninja-build pkg-config gcc libc6-dev
          ocl-icd-opencl-dev opencl-c-headers pocl-opencl-icd libclblast-dev
          libvulkan-dev mesa-vulkan-drivers vulkan-validationlayers glslc spirv-tools)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "setup.sh: installing ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "setup.sh: these Debian packages are missing and I am not root (and there is no sudo):" >&2
        echo "  apt-get install ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -f build/build.ninja ]; then
    meson setup build
fi
ninja -C build
