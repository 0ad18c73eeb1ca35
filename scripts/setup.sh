#!/usr/bin/env bash
# Set up mt3 on a fresh Debian/Ubuntu machine: system packages, a virtual environment in .venv,
# and the project with its pinned dependencies. Safe to run again; it only adds what is missing.
#   bash scripts/setup.sh            # library + CLI + tests + notebooks + score engraving + web app
#   MT3_EXTRAS=test,bench bash scripts/setup.sh   # also librosa for benchmarks/audio.py
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
EXTRAS=${MT3_EXTRAS:-test,notebooks,notation,serve}

need_apt=()
command -v "$PYTHON" >/dev/null 2>&1 || need_apt+=(python3 python3-venv python3-pip)
if command -v "$PYTHON" >/dev/null 2>&1 && ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  need_apt+=(python3-venv)
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
if [ ${#need_apt[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: need ${need_apt[*]} but apt-get is not available; install them and re-run" >&2
    exit 1
  fi
  echo "setup: installing system packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
# Optional: a second General MIDI soundfont for timbre variety in the synthetic training data.
if [ ! -f /usr/share/sounds/sf2/sf_GMbank.sf2 ] && command -v apt-get >/dev/null 2>&1; then
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
      csound-soundfont; } >/dev/null 2>&1 \
    || echo "setup: could not install csound-soundfont; synthetic audio will use TimGM6mb only" >&2
fi

# tcmalloc: XLA's CPU runtime frees and re-allocates large buffers every step; with glibc's
# malloc that is page faults (27 % of the demo's CPU time), with tcmalloc it is not (mt3/allocator.py:
# the mt3 command preloads it when installed; training 1.4x faster on 2 cores).
if ! ldconfig -p 2>/dev/null | grep -q 'libtcmalloc' && command -v apt-get >/dev/null 2>&1; then
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
      libtcmalloc-minimal4; } >/dev/null 2>&1 \
    || echo "setup: could not install libtcmalloc-minimal4; mt3 will use glibc's malloc (slower)" >&2
fi

# Score pages (the notation extra): CairoSVG needs the cairo library; tempo marks use DejaVu Sans.
if [[ ",$EXTRAS," == *",notation,"* ]] && command -v apt-get >/dev/null 2>&1; then
  need_notation=()
  ldconfig -p 2>/dev/null | grep -q 'libcairo\.so\.2' || need_notation+=(libcairo2)
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_notation+=(fonts-dejavu-core)
  if [ ${#need_notation[@]} -gt 0 ]; then
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        "${need_notation[@]}"; } >/dev/null 2>&1 \
      || echo "setup: could not install ${need_notation[*]}; score PNG/PDF pages will not work" >&2
  fi
fi
# The browser test of `mt3 serve` (tests/test_serve.py) drives headless Chromium; without it the
# test is skipped with the reason.
if [[ ",$EXTRAS," == *",test,"* ]] && ! { command -v chromium && command -v chromedriver; } \
    >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing chromium and chromium-driver (the browser test of mt3 serve)"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
      chromium chromium-driver; } >/dev/null 2>&1 \
    || echo "setup: could not install chromium; the browser test of mt3 serve will be skipped" >&2
fi
# benchmarks/instruments.py renders its held-out pieces with FluidR3_GM (the bench extra).
if [[ ",$EXTRAS," == *",bench,"* ]] && [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] \
    && command -v apt-get >/dev/null 2>&1; then
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
      fluid-soundfont-gm; } >/dev/null 2>&1 \
    || echo "setup: could not install fluid-soundfont-gm; benchmarks/instruments.py needs it" >&2
fi

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: mt3 needs Python 3.11 or newer, found {sys.version.split()[0]}")
PY

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[${EXTRAS}]"
# The soundfont renderer (mt3 transcribe --format wav). --no-deps: its pyaudio requirement is for
# live playback only, and pyaudio needs PortAudio headers to build.
.venv/bin/python -m pip install -q --no-deps tinysoundfont==0.3.7
echo "setup: done. Run the command line as .venv/bin/mt3 (try: .venv/bin/mt3 --help)"
