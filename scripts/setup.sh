#!/usr/bin/env bash
# Installs what hwbench needs and is missing: a host C compiler, the Arm cross toolchain and QEMU
# from apt, then a virtual environment with `pip install -e .[dev]`. Safe to run again: it skips
# what is present.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

missing_system_packages() {
    command -v cc >/dev/null || echo gcc  # builds the host runtime and the sanitizer fuzz driver
    command -v arm-none-eabi-gcc >/dev/null || echo gcc-arm-none-eabi
    # newlib is a separate package: the compiler alone cannot link firmware.
    if ! command -v arm-none-eabi-gcc >/dev/null \
        || [ ! -f "$(arm-none-eabi-gcc -print-file-name=libc.a)" ]; then
        echo libnewlib-arm-none-eabi
    fi
    command -v qemu-system-arm >/dev/null || echo qemu-system-arm
    "$PYTHON" -c "import venv, ensurepip" 2>/dev/null || echo python3-venv
}

packages=$(missing_system_packages | sort -u | tr '\n' ' ')
if [ -n "${packages// /}" ]; then
    echo "setup: installing system packages: $packages"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $packages
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when the declared dependencies changed.
stamp="$VENV/.hwbench-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: pip install -e .[dev] (first time takes a few minutes: TensorFlow is large)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    echo "$want" > "$stamp"
fi
