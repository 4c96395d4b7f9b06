#!/usr/bin/env bash
# Install everything mcu_dc needs on a fresh Debian/Ubuntu machine (run as root or with sudo):
# the Arm toolchain and QEMU from Debian, a CPU build of torch, then mcu_dc itself.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

need_apt=""
command -v arm-none-eabi-gcc >/dev/null 2>&1 || need_apt=1
command -v qemu-system-arm >/dev/null 2>&1 || need_apt=1
command -v clang-14 >/dev/null 2>&1 || need_apt=1
command -v llvm-cov-14 >/dev/null 2>&1 || need_apt=1
[ -n "$(ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] || need_apt=1
[ -e /usr/lib/arm-none-eabi/newlib/libc.a ] || [ -e /usr/lib/arm-none-eabi/lib/libc.a ] || need_apt=1
if [ -n "$need_apt" ]; then
  echo "setup: installing gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm, clang-14 + libFuzzer + llvm-cov (Debian)"
  $SUDO apt-get update -qq
  # --no-install-recommends: without it the toolchain pulls ~3 GB of documentation and extras.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm gcc make \
    clang-14 libclang-rt-14-dev llvm-14
fi

PY="${PYTHON:-python3}"
# torch first and pinned, so no resolver ever pulls a multi-GB CUDA build for the range in pyproject.toml.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing torch==2.13.0 (CPU build)"
  "$PY" -m pip install -q torch==2.13.0
fi
echo "setup: installing mcu_dc and its test tools"
"$PY" -m pip install -q -e '.[dev]'
echo "setup: done"
