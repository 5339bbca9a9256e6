# Ray head / GPU worker / job-submitter image: the project (videomae, ingest, trainer, api, configs) on a CUDA base.
#   docker build -f infra/docker/ray.Dockerfile -t videomae-ray .          (from the repository root; BuildKit)
# Used by docker-compose.yml (ray-head, ray-worker, jobs, tensorboard) and infra/kuberay/ (head, workers, submitter).
# The torch wheel from PyPI carries its own CUDA libraries (torch 2.14.1: CUDA 13.0, from the nvidia-* wheels); the CUDA
# base adds the environment the NVIDIA container toolkit reads, so the same image also runs CPU-only (the head uses no
# GPU). Build args: CUDA_IMAGE (the base), TORCH_INDEX (where torch/torchvision come from; empty: pip's default index).
# No `# syntax=` line: BuildKit would pull that frontend from a registry; the built-in one (Docker >= 20.10) reads
# everything here, cache mounts included.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# ---- build stage: the project's wheel (pip's build environment stays here) ------------------------------------------
# gcc and libjpeg's headers: the wheel's optional C helper that decodes only a training crop's box of each JPEG
# frame (setup.py, videomae/video/jpegbox.py); the runtime's ffmpeg already brings the libjpeg it links.
FROM ${CUDA_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv gcc libc6-dev libjpeg-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY videomae videomae
COPY ingest ingest
COPY trainer trainer
COPY api api
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps -w /wheels .

# ---- runtime stage --------------------------------------------------------------------------------------------------
# The dependencies are installed here, not copied from a build stage: the venv is ~7 GB with PyPI's CUDA torch, and a
# copy would be a second layer of that size (twice the disk, and the time to write and hash it). No compilers: every
# dependency installs from a wheel (linux x86_64 and aarch64, Python 3.10-3.12); one that ever needs building fails here
# loudly (then build its wheel in the build stage).
FROM ${CUDA_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
# ffmpeg/ffprobe: probing in ingest (videomae.video.probe) and the sample-data generator. curl: compose health
# checks; wget: the exec probes KubeRay injects for some Ray versions.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ffmpeg curl wget ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
# Dependencies first, from the metadata alone (README.md stubbed too): these layers are rebuilt only when
# pyproject.toml or constraints.txt change.
COPY pyproject.toml constraints.txt /tmp/deps/
# torch/torchvision at the exact pins of constraints.txt. The pip cache is a BuildKit cache mount shared with
# api.Dockerfile (same target) and `sharing=locked`: when both images are built at once, the second waits and takes
# the wheels the first downloaded (where the index allows caching, as PyPI does). The cache never enters an image.
ARG TORCH_INDEX=
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    cd /tmp/deps && pip install ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} $(grep -E '^(torch|torchvision)==' constraints.txt)
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    cd /tmp/deps && mkdir -p videomae ingest trainer api \
 && touch README.md videomae/__init__.py ingest/__init__.py trainer/__init__.py api/__init__.py \
 && pip install -c constraints.txt . \
 && pip uninstall -y videomae-system \
 && cd / && rm -rf /tmp/deps
# The project's wheel, imported from the venv alone (-I: not from the working directory): a broken package fails here.
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels \
 && python -I -c "import videomae, ingest.pipeline, trainer.loop, trainer.pretrain, trainer.extract, faiss; \
videomae.list_presets(); faiss.IndexFlatIP(8); from videomae.video import jpegbox; \
print('JPEG box decoding:', 'built' if jpegbox.available() else 'not built: whole frames')"
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
