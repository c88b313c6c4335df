# A hospital's SuperNode with a CUDA GPU (same command and layout as
# hospital.Dockerfile). The torch wheel is the default Linux build of the package
# index, which for torch 2.13.0 is built for CUDA 13.0 and brings its CUDA
# runtime libraries as pip packages; the base image supplies the CUDA 13.0 user
# space, the host needs an NVIDIA driver >= 580 and the NVIDIA container toolkit.
# Keep TORCH_VERSION inside fedcare's range (torch>=2.6,<=2.14.1) and the base
# image's CUDA at the wheel's (a torch built for CUDA 12.x wants a 12.x base).
#
# Build from the repository root:
#   docker build -f deploy/docker/hospital-cuda.Dockerfile -t fedcare-hospital:cuda .
# Run with the GPU: docker run --gpus all ... (compose: deploy.resources.reservations
# .devices, docs/RUNBOOK.md). fedcare uses the GPU when torch.cuda.is_available().
FROM nvidia/cuda:13.0.0-base-ubuntu24.04

ARG TORCH_VERSION=2.13.0
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/var/lib/fedcare \
    FLWR_HOME=/var/lib/fedcare/flwr \
    MPLCONFIGDIR=/tmp/matplotlib

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# The CUDA build of torch, pinned, before fedcare's own range is resolved.
RUN pip install "torch==${TORCH_VERSION}" \
    && python -c "import torch; assert torch.version.cuda, 'torch without CUDA'"

WORKDIR /opt/fedcare
COPY pyproject.toml README.md ./
COPY client ./client
COPY server ./server
COPY shared_models ./shared_models
COPY simulation ./simulation
RUN pip install . \
    && python -c "import client.app, server.app"

COPY deploy/docker/healthcheck.py /usr/local/bin/fedcare-healthcheck
COPY deploy/docker/start-supernode.sh /usr/local/bin/fedcare-start-supernode
RUN chmod 0755 /usr/local/bin/fedcare-healthcheck /usr/local/bin/fedcare-start-supernode \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/fedcare fedcare \
    && install -d -o fedcare -g fedcare -m 0750 /var/lib/fedcare /var/lib/fedcare/flwr \
    && install -d -o fedcare -g fedcare -m 0700 /ledger

USER 10001:10001
WORKDIR /var/lib/fedcare
VOLUME ["/var/lib/fedcare", "/ledger"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["fedcare-healthcheck", "127.0.0.1:9099"]

# Needs FEDCARE_HOSPITAL_ID; see deploy/docker/start-supernode.sh.
CMD ["fedcare-start-supernode"]
