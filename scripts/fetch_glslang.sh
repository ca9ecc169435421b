#!/usr/bin/env bash
# Bring a glslang new enough for GL_NV_cooperative_matrix2 (15 or newer): Debian 13's glslang-tools, unpacked
# with the C and C++ runtimes it was built against into .tools/glslang/, and a wrapper at
# .tools/bin/glslangValidator that runs it through that runtime's own loader (Debian 12's glibc is too old for
# it). Nothing is installed on the system. shaders/meson.build picks the wrapper up and builds the coopmat2
# GEMM (and the GL_KHR_cooperative_matrix variants) with it. Exits non-zero, changing nothing, when the
# packages cannot be fetched; setup.sh then falls back to PyPI's older glslang.
set -euo pipefail
cd "$(dirname "$0")/.."
mirror=${FP8_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=trixie
arch=$(dpkg --print-architecture)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

curl -fsSL "$mirror/dists/$suite/main/binary-$arch/Packages.xz" | xz -dc > "$work/Packages"
mkdir -p "$work/root"
for p in glslang-tools spirv-tools libc6 libstdc++6 libgcc-s1; do
    file=$(awk -v P="$p" '$0 == "Package: " P {f = 1} f && /^Filename:/ {print $2; exit}' "$work/Packages")
    [ -n "$file" ] || { echo "fetch_glslang: $p not in $suite/$arch" >&2; exit 1; }
    curl -fsSL -o "$work/$p.deb" "$mirror/$file"
    dpkg-deb -x "$work/$p.deb" "$work/root"
done
loader=$(find "$work/root" -name 'ld-linux*.so*' -type f | head -n1)
[ -n "$loader" ] || { echo "fetch_glslang: no dynamic loader in libc6" >&2; exit 1; }
loader=${loader#"$work/root/"}
triplet=$(ls "$work/root/usr/lib" | grep -- '-linux-gnu' | head -n1)

rm -rf .tools/glslang
mkdir -p .tools/bin
mv "$work/root" .tools/glslang
root="$PWD/.tools/glslang"
printf '#!/bin/sh\nexec "%s/%s" --library-path "%s/usr/lib/%s:%s/lib/%s" "%s/usr/bin/glslangValidator" "$@"\n' \
    "$root" "$loader" "$root" "$triplet" "$root" "$triplet" "$root" > .tools/bin/glslangValidator
chmod +x .tools/bin/glslangValidator
.tools/bin/glslangValidator --version | head -n1
