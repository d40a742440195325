# Trainer: the retraining job (GRPO/SFT with LoRA through TRL and PEFT), with vLLM for generation during
# training and for evaluating the candidate adapter.
#
#   docker build -f deploy/docker/trainer.Dockerfile -t zoomguard/trainer:0.1.0 .
#
# Same base and layering as worker-gpu.Dockerfile (see the reasons there): CUDA comes from the torch/vLLM
# wheels, the driver from the NVIDIA container runtime. Pin by digest as well in the registry you build from.

FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# The heavy, rarely changing layer first, so editing zoomguard does not reinstall CUDA wheels.
ARG VLLM_VERSION=0.32.0
RUN pip install --no-cache-dir "vllm==${VLLM_VERSION}"

# pdqhash (zoomguard/known) ships as source only: this stage compiles it with g++; the runtime stage gets the
# built venv and needs no compiler for it. Not version-pinned: it comes with the base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY zoomguard ./zoomguard
RUN pip install --no-cache-dir "/src[gpu,train]" "vllm==${VLLM_VERSION}"


FROM python:3.11.14-slim-bookworm

# Triton compiles its C launcher at first use (vLLM kernels, and TRL/PEFT through torch.compile).
# Not version-pinned: libc6-dev must match the base image's libc6 exactly, which moves with every Debian
# point release, so a pin breaks the build on the next base refresh. The base tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 zoomguard \
    && useradd --system --uid 10001 --gid zoomguard --home-dir /home/zoomguard --create-home \
       --shell /usr/sbin/nologin zoomguard \
    && mkdir -p /models \
    && chown zoomguard:zoomguard /models

COPY --from=build /opt/venv /opt/venv

# Base weights and trained adapters both live under /models (a mounted volume shared with the workers);
# compile caches go to /tmp (writable even with a read-only root filesystem). NVIDIA_VISIBLE_DEVICES is
# left to the device plugin, as in the worker image.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/models/huggingface \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    TRITON_CACHE_DIR=/tmp/.cache/triton \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    HF_HUB_DISABLE_TELEMETRY=1

USER 10001:10001
WORKDIR /home/zoomguard

# `retrain` is the subcommand the retraining feature adds; until it ships, this image runs any other
# subcommand given as arguments (e.g. `docker run ... zoomguard/trainer:0.1.0 settings`).
ENTRYPOINT ["zoomguard"]
CMD ["retrain"]
