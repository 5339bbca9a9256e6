# syntax=docker/dockerfile:1
# API image: FastAPI + uvicorn on a slim Python base with a CPU torch build (the API serves from CPU or a GPU node;
# for GPU serving build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128).
#   docker build -f infra/docker/api.Dockerfile -t videomae-api .          (from the repository root)
# Used by docker-compose.yml (api) and infra/kuberay/api.yaml (Deployment).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build stage ----------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
# torch/torchvision at the exact pins of constraints.txt, from the CPU index (a fraction of the CUDA wheel's size).
RUN pip install --index-url "$TORCH_INDEX" $(grep -E '^(torch|torchvision)==' constraints.txt)
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
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
# ffmpeg: probing uploads (videomae.video) and PyAV's fallback decoding path.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin videomae \
 && mkdir -p /shared && chown videomae:videomae /shared
WORKDIR /app
COPY --chown=videomae:videomae api /app/api
COPY --chown=videomae:videomae configs /app/configs
USER videomae
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=4)"]
ENTRYPOINT ["tini", "--"]
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]
