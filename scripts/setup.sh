#!/usr/bin/env bash
# Set up a fresh machine: ffmpeg, libjpeg's headers and (for the page's browser tests) Chromium with its chromedriver
# from Debian (where missing), a virtual environment in .venv, the project with its test and export extras,
# torch/torchvision pinned by constraints.txt.
# Usage: bash scripts/setup.sh            (idempotent; re-running only installs what is missing)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  echo "[setup] installing ffmpeg from Debian"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi
ffmpeg -version | head -n 1

# libjpeg's headers for the optional C helper that decodes only a training crop's box of each JPEG frame
# (videomae/video/jpegbox.py; built by pip below). Without them the install still works: whole frames, same samples.
if [ ! -f /usr/include/jpeglib.h ] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing libjpeg's headers from Debian (libjpeg62-turbo-dev)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libjpeg62-turbo-dev gcc >/dev/null; } \
    || echo "[setup] could not install libjpeg62-turbo-dev: training will decode whole JPEG frames (slower, same samples)"
fi

# Headless Chromium and chromedriver for tests/api/test_api_page.py (the page at / in a real browser, driven by
# Selenium). Debian's packages: nothing is downloaded by the tests. The server itself never needs them.
if { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; } && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing chromium and chromium-driver from Debian (the page's browser tests)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  chromedriver --version | head -n 1
else
  echo "[setup] no chromium/chromedriver (no apt-get here): tests/api/test_api_page.py will fail until they are installed"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "[setup] installing the project (torch pinned by constraints.txt; this takes a few minutes the first time)"
.venv/bin/python -m pip install -q -c constraints.txt -e ".[test,export]"
.venv/bin/python - <<'PY'
import torch, torchvision, ray, decord, timm  # noqa: F401
from videomae.video import jpegbox
print(f"[setup] ok: torch {torch.__version__}, torchvision {torchvision.__version__}, ray {ray.__version__}, timm {timm.__version__}")
print(f"[setup] JPEG box decoding: {'built' if jpegbox.available() else 'not built (whole frames; see scripts/setup.sh)'}")
PY
# The stamp `make` compares with this script's inputs: `make demo` / `make test` re-run it only when one changed.
touch .venv/.setup-done
