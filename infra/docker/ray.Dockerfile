# syntax=docker/dockerfile:1
# Ray head / GPU worker / job-submitter image: the project (videomae, ingest, trainer, api, configs) on a CUDA base.
#   docker build -f infra/docker/ray.Dockerfile -t videomae-ray .          (from the repository root)
# Used by docker-compose.yml (ray-head, ray-worker, jobs, tensorboard) and infra/kuberay/ (head, workers, submitter).
# The torch wheel from PyPI carries its own CUDA 12 libraries; the CUDA base adds the driver-facing runtime and
# cuDNN the NVIDIA container toolkit expects, so the same image also runs CPU-only (the head uses no GPU).
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# ---- build stage: compilers and headers stay here; only /opt/venv goes on -----------------------------------------
FROM ${CUDA_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from the metadata alone: this layer is rebuilt only when pyproject/constraints change.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p videomae ingest trainer api && touch videomae/__init__.py ingest/__init__.py trainer/__init__.py \
    api/__init__.py \
 && pip install -c constraints.txt . \
 && pip uninstall -y videomae-system
COPY videomae videomae
COPY ingest ingest
COPY trainer trainer
COPY api api
RUN pip install --no-deps -c constraints.txt .

# ---- runtime stage --------------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
# ffmpeg/ffprobe: probing in ingest (videomae.video.probe) and the sample-data generator. curl: compose health
# checks; wget: the exec probes KubeRay injects for some Ray versions.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ffmpeg curl wget ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
# Non-root: uid 1000 owns the app and the shared volume's mount point (a named volume copies this ownership).
# Ubuntu 24.04 images ship a user `ubuntu` with uid 1000; it gives the uid up to ours.
RUN (userdel --remove ubuntu 2>/dev/null || true) \
 && useradd --create-home --uid 1000 --shell /bin/bash videomae \
 && mkdir -p /shared /home/videomae/.ray && chown videomae:videomae /shared /home/videomae/.ray
WORKDIR /app
# The repository tree too: `ray job submit -- python trainer/pretrain.py` runs scripts by path from here.
COPY --chown=videomae:videomae . /app
USER videomae
# Ray: GCS 6379, dashboard/jobs 8265, client 10001, dashboard agent 52365 (health); TensorBoard 6006.
EXPOSE 6379 8265 10001 52365 6006
ENTRYPOINT ["tini", "--"]
CMD ["ray", "start", "--head", "--block", "--dashboard-host=0.0.0.0"]
