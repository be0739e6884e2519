#!/usr/bin/env bash
# Build the .deb (cpack -G DEB) and check it as a user would meet it, without installing it on
# this system: unpacked into a temp root, its redkit runs with no LD_LIBRARY_PATH (the RPATH finds
# libredkit.so.0), its Depends are declared, and a CMake project and a pkg-config build use it
# from there; then the same with `cmake --install --prefix` into a temp dir.
#   scripts/package.sh        leaves build-package/redkit_<version>_<arch>.deb
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

scripts/setup.sh --package

build="build-package"
cmake -S . -B $build -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=Release \
    -DREDKIT_BUILD_TESTS=OFF -DREDKIT_BUILD_EXAMPLES=OFF -DREDKIT_BUILD_BENCH=OFF >/dev/null
cmake --build $build -j"$(nproc)" >/dev/null
(cd $build && rm -f ./*.deb && { cpack -G DEB >cpack.log 2>&1 || { cat cpack.log; exit 1; }; })
deb=$(ls $build/*.deb)
echo "built $deb"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "package: $*" >&2; exit 1; }

info=$(dpkg-deb -I "$deb")
for dep in libhiredis0.14 libssl3; do
    grep -q "^ Depends:.*\b$dep\b" <<<"$info" || fail "Depends lacks $dep: $(grep Depends <<<"$info")"
done
files=$(dpkg-deb -c "$deb")
for f in usr/bin/redkit usr/include/redkit.h usr/share/man/man1/redkit.1 \
    usr/share/man/man3/redkit.3 usr/share/bash-completion/completions/redkit \
    'usr/lib/.*/libredkit.so.0' 'usr/lib/.*/pkgconfig/redkit.pc' \
    'usr/lib/.*/cmake/redkit/redkitConfig.cmake'; do
    grep -q "\./$f\( \|\$\)" <<<"$files" || fail "the package lacks $f"   # symlinks: "f -> g"
done

# check_prefix ROOT: the tool runs from ROOT/bin, and consumers build against ROOT.
check_prefix() {
    local root=$1 out=$tmp/consumer-$2
    env -u LD_LIBRARY_PATH "$root/bin/redkit" --help >/dev/null || fail "$root/bin/redkit --help"
    echo "$2: bin/redkit --help runs"

    cmake -S "$src/packaging/consumer" -B "$out/cmake" -DCMAKE_PREFIX_PATH="$root" >/dev/null
    cmake --build "$out/cmake" >/dev/null
    grep -q "libredkit.so.0 => $root/" <<<"$(ldd "$out/cmake/consumer")" ||
        fail "the consumer loads another libredkit.so.0"
    echo "$2: find_package consumer: $("$out/cmake/consumer")"

    local pc libdir
    pc=$(find "$root" -name redkit.pc)
    libdir=$(dirname "$(dirname "$pc")")
    local flags
    flags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags --libs redkit)
    case $flags in *_FILE_OFFSET_BITS* | *hiredis*) fail "pkg-config leaks hiredis: $flags" ;; esac
    # shellcheck disable=SC2086 # the flags are words
    cc "$src/packaging/consumer/main.c" $flags -o "$out/pc-consumer"
    echo "$2: pkg-config consumer: $(LD_LIBRARY_PATH=$libdir "$out/pc-consumer")"
}

dpkg -x "$deb" "$tmp/root"
check_prefix "$tmp/root/usr" deb
cmake --install $build --prefix "$tmp/prefix" >/dev/null
check_prefix "$tmp/prefix" prefix
echo "package: ok"
