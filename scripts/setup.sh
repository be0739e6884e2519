#!/usr/bin/env bash
# Install the Debian packages redkit needs to build, test and run its demo.
#   scripts/setup.sh          build + test + demo: compiler, cmake, hiredis, OpenSSL, redis
#   scripts/setup.sh --dev    also clang, valgrind and the clang runtimes (sanitizers, fuzzing)
#   scripts/setup.sh --package   also help2man (redkit(1)) for scripts/package.sh
# As root it runs apt-get; otherwise it prints the command to run.
set -euo pipefail

pkgs=(build-essential cmake pkg-config libhiredis-dev libssl-dev openssl redis-server redis-tools
      libmicrohttpd-dev curl gnuplot-nox)  # gnuplot: redkit-bench --plot (and its smoke test)
if [ "${1:-}" = "--dev" ]; then
    pkgs+=(clang libclang-rt-14-dev valgrind clang-format time)  # time: RSS of sanitized runs
fi
if [ "${1:-}" = "--package" ]; then
    pkgs+=(help2man dpkg-dev)    # dpkg-dev: dpkg-shlibdeps, which fills in the .deb's Depends
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "redkit needs: ${missing[*]}" >&2
    echo "run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
