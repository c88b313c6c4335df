# A hospital's SuperNode (CPU): connects to the consortium's SuperLink over TLS,
# authenticates with the hospital's node key and runs the ClientApp
# (client.app:app) in SuperNode's default subprocess isolation, from the
# packages installed here (SuperNode installs nothing at run time by default).
# For a GPU use hospital-cuda.Dockerfile.
#
# Build from the repository root:
#   docker build -f deploy/docker/hospital.Dockerfile -t fedcare-hospital .
# Run: mount the hospital bundle read-only at /bundle (readable by uid 10001),
# the data read-only at /data and a volume at /ledger (the privacy ledger, which
# must outlive every run). docs/RUNBOOK.md has the whole procedure.
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/var/lib/fedcare \
    FLWR_HOME=/var/lib/fedcare/flwr \
    MPLCONFIGDIR=/tmp/matplotlib

RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu

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

# Needs FEDCARE_HOSPITAL_ID; see deploy/docker/start-supernode.sh for the flags
# (the same as docker-compose.yml's, which spells them out per hospital).
CMD ["fedcare-start-supernode"]
