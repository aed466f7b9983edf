#!/usr/bin/env bash
# Set up the project in ./.venv: the pinned Python packages and the Google Research
# Football engine (built from source, 5-10 min the first time; pip caches the wheel).
# Idempotent: a second run takes seconds.
# Usage: bash setup.sh               (everything)
#        SKIP_GRF=1 bash setup.sh    (MPE only: no gfootball build)
#        SKIP_SLURM=1 bash setup.sh  (without SLURM, which only tests/test_sweep.py uses)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi

apt_install() {  # install only the Debian packages that are missing
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        rm -rf .venv  # Debian/Ubuntu ship venv separately, per Python version
        apt_install python3-venv "python$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv" ||
            apt_install python3-venv
        "$PYTHON" -m venv .venv
    fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt

# SLURM and its authentication daemon, for tests/test_sweep.py: it starts a one-node cluster of
# its own (config, state and sockets in a temporary directory) to test `sweep.py --slurm`.
[ "${SKIP_SLURM:-0}" = 1 ] || apt_install slurm-wlm munge

[ "${SKIP_GRF:-0}" = 1 ] && exit 0
if .venv/bin/python -c "import gfootball.env" 2>/dev/null; then exit 0; fi
# gfootball 2.10.2 (the version the authors used) builds its C++ engine with cmake, SDL2 and
# Boost.Python. Headless training needs no X server; the GL/SDL libraries are link-time needs.
apt_install build-essential cmake pkg-config libgl1-mesa-dev libsdl2-dev libsdl2-image-dev \
    libsdl2-ttf-dev libsdl2-gfx-dev libboost-thread-dev libboost-system-dev \
    libboost-filesystem-dev libboost-python-dev
# Its setup.py runs a bare `python3` that imports psutil, so the venv goes first on PATH and the
# build runs without isolation; its Python dependencies come from requirements.txt (see there).
export PATH="$PWD/.venv/bin:$PATH"
.venv/bin/python -m pip install -q --disable-pip-version-check setuptools wheel
.venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps gfootball==2.10.2
.venv/bin/python -c "import gfootball.env"
