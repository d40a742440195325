#!/usr/bin/env bash
# The benchmark on one NVIDIA GPU at Qwen2.5-VL-7B's shape, with no model hub and no weights:
#
#     ./benchmarks/gpu.sh                 # from anywhere in the repository
#
# 1. sets up the venv with vLLM's CUDA wheel (scripts/setup-venv.sh with VLLM_FLAVOUR=cuda; SETUP=0 skips it
#    when $VENV is already set up, e.g. on a machine provisioned beforehand without network);
# 2. assembles a weight-free model directory from the shipped config (benchmarks/models/qwen2.5-vl-7b: the
#    public Qwen2.5-VL-7B-Instruct config.json and preprocessor_config.json) and the tiny offline model's
#    tokenizer (zoomguard/bench/gpu_model.py): vLLM's load_format=dummy fills the 8.29e9 parameters with random
#    values, so the kernels, memory and image tokens are the 7B's; text token counts are the tiny tokenizer's;
# 3. runs `zoomguard bench` on it in bfloat16 and prints the headline figures from the report's JSON.
#
# Knobs (environment): VENV (default .venv-gpu), OUT (bench-out/gpu), IMAGE_SIZE (1024x768), MAX_PIXELS
# (1003520 = 1280 x 28 x 28, the detector's default), REGIONS (7b: 1.95 regions per image; 32b, a number or
# model), IMAGES (the bench's default when unset), BENCH_ARGS (more flags, appended).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv-gpu}
OUT=${OUT:-bench-out/gpu}
IMAGE_SIZE=${IMAGE_SIZE:-1024x768}
MAX_PIXELS=${MAX_PIXELS:-1003520}
REGIONS=${REGIONS:-7b}
SHAPE=benchmarks/models/qwen2.5-vl-7b
MODEL_DIR="$OUT/qwen2.5-vl-7b-dummy"
PY="$VENV/bin/python"

say() { echo "[gpu.sh] $*" >&2; }

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  say "no NVIDIA GPU here (nvidia-smi finds none): this recipe measures a GPU; the CPU bench is 'make bench'"
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2

if [ "${SETUP:-1}" != 0 ]; then
  VENV="$VENV" VLLM_FLAVOUR=cuda ./scripts/setup-venv.sh
fi
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'torch in $VENV sees no CUDA device')"

say "assembling the weight-free 7B directory in $MODEL_DIR"
"$PY" -c "import sys; from zoomguard.bench.gpu_model import assemble_dummy_model; assemble_dummy_model(*sys.argv[1:])" \
  "$SHAPE" "$MODEL_DIR"

args=(--model "$MODEL_DIR" --load-format dummy --dtype bfloat16 --image-size "$IMAGE_SIZE" --max-pixels "$MAX_PIXELS"
  --out "$OUT/report.json")
if [ -n "${IMAGES:-}" ]; then
  args+=(--images "$IMAGES")
fi
args+=(--regions-per-image "$REGIONS" --paced-load 0.5)  # ZoomIn-7B's workload; latency at half load
# shellcheck disable=SC2206
args+=(${BENCH_ARGS:-})
say "zoomguard bench ${args[*]}"
"$VENV/bin/zoomguard" bench "${args[@]}"

# The figures, read leniently: a key the report does not have prints as "-".
"$PY" - "$OUT/report.json" <<'PY'
import json
import sys

report = json.load(open(sys.argv[1]))
stages = report.get("stages") or {}


def number(value):
    if isinstance(value, dict):  # a stage or ratio summary: its median
        value = value.get("median", value.get("median_ratio"))
    return "-" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def stage(name, flat):
    return report.get(flat, (stages.get(name) or {}).get("median"))


print(f"machine: {(report.get('machine') or {}).get('gpu', '-')}, model: {report.get('model', '-')}")
print(f"images/s per GPU (pipeline, median): {number(stage('pipeline', 'pipeline_ips'))}")
print(f"images/s, engine ceiling (median):   {number(stage('ceiling', 'engine_ceiling_ips'))}")
print(f"images/s, naive transformers:        {number(stage('naive', 'naive_ips'))}")
latency = report.get("latency_ms") or {}
load = (report.get("settings") or {}).get("paced_load", 0.5)
print(f"latency at {load:.0%} load p50 / p99 ms: {number(latency.get('p50'))} / {number(latency.get('p99'))}")
for key, value in (report.get("ratios") or {}).items():
    print(f"ratio {key}: {number(value)}")
arithmetic = report.get("arithmetic") or {}
limit = arithmetic.get("limit_ips")
print(f"arithmetic limit (images/s):         {number(limit)}")
print(f"  peak FLOP/s measured:              {number(arithmetic.get('peak_flops'))}")
print(f"  FLOPs per image:                   {number(arithmetic.get('flops_per_image'))}")
pipeline = stage("pipeline", "pipeline_ips")
if isinstance(limit, (int, float)) and limit and isinstance(pipeline, (int, float)):
    print(f"  pipeline / arithmetic limit:       {pipeline / limit:.3g}")
PY
