# Sourced by the GPU scripts: ensure_build BUILD_DIR PROGRAM builds BUILD_DIR (release, configured if new) where
# meson and ninja exist, and otherwise, or with FP8_NO_BUILD=1 (a build carried from another machine, whose
# source paths do not exist here), requires BUILD_DIR/PROGRAM to be there already. Exits 2 when neither works.
ensure_build() {
    local build=$1 program=$2
    if [ -z "${FP8_NO_BUILD:-}" ] && command -v ninja >/dev/null && command -v meson >/dev/null; then
        [ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release || exit 2
        ninja -C "$build" || exit 2
    elif [ ! -x "$build/$program" ]; then
        echo "no meson/ninja here and no build in $build" >&2; exit 2
    fi
}
