# API image: FastAPI + uvicorn on a slim Python base with a CPU torch build (the API serves from CPU or a GPU node;
# for GPU serving build with --build-arg TORCH_INDEX= (empty: pip's default index, PyPI's CUDA build) or a CUDA index
# of download.pytorch.org).
#   docker build -f infra/docker/api.Dockerfile -t videomae-api .          (from the repository root; BuildKit)
# Used by docker-compose.yml (api) and infra/kuberay/api.yaml (Deployment). Build args: PYTHON_IMAGE (the base),
# TORCH_INDEX. No `# syntax=` line: BuildKit would pull that frontend from a registry; the built-in one reads this file.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build stage: the project's wheel (pip's build environment stays here) ------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY videomae videomae
COPY ingest ingest
COPY trainer trainer
COPY api api
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps -w /wheels .

# ---- runtime stage --------------------------------------------------------------------------------------------------
# Dependencies installed here, not copied from a build stage (see ray.Dockerfile: a copy doubles a multi-GB layer).
# No compilers: every dependency installs from a wheel.
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
# ffmpeg: probing uploads (videomae.video) and PyAV's fallback decoding path.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg tini \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt /tmp/deps/
# torch/torchvision at the exact pins of constraints.txt, from the CPU index (a fraction of the CUDA wheel's size).
# The pip cache is the BuildKit cache mount ray.Dockerfile shares (same target, sharing=locked): built together, the
# two images download each cacheable wheel once.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    cd /tmp/deps && pip install ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} $(grep -E '^(torch|torchvision)==' constraints.txt)
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    cd /tmp/deps && mkdir -p videomae ingest trainer api \
 && touch README.md videomae/__init__.py ingest/__init__.py trainer/__init__.py api/__init__.py \
 && pip install -c constraints.txt . \
 && pip uninstall -y videomae-system \
 && cd / && rm -rf /tmp/deps
# The project's wheel, imported from the venv alone (-I: not from the working directory): a broken package fails here.
# faiss (the /v1/search index) is imported lazily by the code, so it is imported here: its wheel bundles OpenBLAS and
# libgomp and needs only glibc >= 2.27 and libstdc++ (which torch needs too), both in the slim bookworm base.
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels \
 && python -I -c "import videomae, api.main, api.search, faiss; videomae.list_presets(); faiss.IndexFlatIP(8)"
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
