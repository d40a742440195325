# CPU worker: `zoomguard run` in server mode, talking to vLLM OpenAI-compatible servers over HTTP.
#
#   docker build -f deploy/docker/worker-cpu.Dockerfile -t zoomguard/worker-cpu:0.1.0 .
#   docker run -e ZOOMGUARD_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 -e ZOOMGUARD_ENGINE__MODEL=Qwen/Qwen2.5-VL-7B-Instruct \
#     -e ZOOMGUARD_ENGINE__SERVER_URLS='["http://vllm-server:8000"]' zoomguard/worker-cpu:0.1.0
#
# Only the core package is installed: server mode needs neither vLLM nor torch (images travel to the servers
# as data URIs, answers come back as JSON), which keeps this image a few hundred MB instead of ~10 GB.
# Pin by digest as well in the registry you build from: a tag can be re-pushed, a digest cannot.

FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

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
RUN pip install --no-cache-dir /src


FROM python:3.11.14-slim-bookworm

# A fixed numeric uid lets Kubernetes verify runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 zoomguard \
    && useradd --system --uid 10001 --gid zoomguard --home-dir /home/zoomguard --create-home \
       --shell /usr/sbin/nologin zoomguard

COPY --from=build /opt/venv /opt/venv

# ZOOMGUARD_ENGINE__MODE=server: this image has no vLLM, so the in-process default could only fail at start.
# ZOOMGUARD_ENGINE__SERVER_URLS is left to the deployment: it names servers this image cannot know.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    ZOOMGUARD_ENGINE__MODE=server

USER 10001:10001
WORKDIR /home/zoomguard

# No HEALTHCHECK: Kubernetes probes /live and /ready on telemetry.health_port instead.
ENTRYPOINT ["zoomguard", "run"]
