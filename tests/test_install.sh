#!/bin/sh
# Packaging: install the build into a scratch DESTDIR, build tests/consumer/consumer.c against it with
# nothing but `pkg-config fp8` (shared and static), run it, and check the shared library's exports.
# Arguments: build dir, consumer source, b_sanitize value. Environment: CC (the project's compiler).
set -eu
build=$1
consumer=$2
sanitize=${3:-none}
cc=${CC:-cc}

for tool in pkg-config nm readelf "$cc"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found"; exit 77; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fp8-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
dest=$tmp/root

meson install -C "$build" --destdir "$dest" --no-rebuild --quiet

pc=$(find "$dest" -name fp8.pc | head -n 1)
[ -n "$pc" ] || { echo "FAIL: no fp8.pc installed"; exit 1; }
# pkg-config reads the .pc written for the real prefix; the sysroot maps its -I/-L into DESTDIR. The system
# directories stay searchable for the backends' Requires.private (vulkan, OpenCL, clblast).
system_pc=$(pkg-config --variable pc_path pkg-config 2>/dev/null || true)
export PKG_CONFIG_LIBDIR="$(dirname "$pc")${system_pc:+:$system_pc}"
export PKG_CONFIG_SYSROOT_DIR="$dest"
unset PKG_CONFIG_PATH
cflags=$(pkg-config --cflags fp8)
libs=$(pkg-config --libs fp8)
static_libs=$(pkg-config --static --libs fp8)
libdir=$(pkg-config --variable=libdir fp8)
case $libdir in "$dest"/*) ;; *) libdir=$dest$libdir ;; esac # pkgconf applies the sysroot to variables, pkg-config does not
echo "pkg-config: cflags '$cflags' libs '$libs' static '$static_libs'"

# A sanitized libfp8 needs its runtime in the consumer too.
san=
if [ "$sanitize" != none ] && [ -n "$sanitize" ]; then san="-fsanitize=$sanitize"; fi

# The header alone must be clean C11 with the warnings a careful consumer uses.
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $san $cflags -o "$tmp/consumer" "$consumer" $libs -lm
readelf -d "$tmp/consumer" | grep -q 'NEEDED.*libfp8\.so\.0' || { echo "FAIL: consumer not linked to libfp8.so.0"; exit 1; }
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$tmp/consumer"

# Static: the archive plus Libs.private must be enough.
# shellcheck disable=SC2086
"$cc" -std=c11 $san $cflags -o "$tmp/consumer_static" "$consumer" $(echo "$static_libs" | sed 's/-lfp8\b/-l:libfp8.a/') -lm
if readelf -d "$tmp/consumer_static" | grep -q 'NEEDED.*libfp8'; then echo "FAIL: static consumer needs libfp8.so"; exit 1; fi
"$tmp/consumer_static"

# C++ consumers get extern "C" linkage from the header.
if command -v c++ >/dev/null 2>&1; then
    printf '#include <fp8.h>\nint main() { return fp8_version_number() == FP8_VERSION_NUMBER ? 0 : 1; }\n' > "$tmp/cxx.cc"
    # shellcheck disable=SC2086
    c++ -Wall -Wextra -Werror $san $cflags -o "$tmp/cxx" "$tmp/cxx.cc" $libs
    LD_LIBRARY_PATH=$libdir "$tmp/cxx"
fi

# The soname carries the major version, and only the public API is exported.
so=$(find "$libdir" -name 'libfp8.so.*.*' -type f | head -n 1)
readelf -d "$so" | grep -q 'SONAME.*\[libfp8\.so\.0\]' || { echo "FAIL: soname of $so is not libfp8.so.0"; exit 1; }
# Sanitizer builds add their own instrumentation symbols; those are not part of the API.
exports=$(nm -D --defined-only "$so" | awk '{print $NF}' | grep -v -E '^(__odr_asan_gen_|__asan_|__ubsan_|_init$|_fini$)' || true)
bad=$(printf '%s\n' "$exports" | grep -v -E '^fp8_' | grep -v '^$' || true)
if [ -n "$bad" ]; then
    echo "FAIL: libfp8.so exports symbols outside fp8_*:"
    printf '%s\n' "$bad"
    exit 1
fi
# ... and every function the installed header declares is there.
headers=$(find "$dest" -name 'fp8*.h')
missing=
for f in $(cat $headers | grep 'FP8_API' | grep -o 'fp8_[a-z0-9_]*(' | tr -d '('); do
    printf '%s\n' "$exports" | grep -qx "$f" || missing="$missing $f"
done
[ -z "$missing" ] || { echo "FAIL: declared in an installed header but not exported:$missing"; exit 1; }
count=$(printf '%s\n' "$exports" | grep -c '^fp8_')
echo "install: ok ($count fp8_* symbols exported, soname libfp8.so.0)"
