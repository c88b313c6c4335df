# The consortium's aggregator: a Flower SuperLink with TLS and SuperNode
# authentication. The ServerApp (server.app:app) runs in SuperLink's default
# subprocess isolation, from the packages installed here
# (--disable-runtime-dependency-installation: nothing is installed at run time).
#
# Build from the repository root:
#   docker build -f deploy/docker/aggregator.Dockerfile -t fedcare-aggregator .
# Run: mount the operator bundle of `fedcare provision init` read-only at
# /bundle (readable by uid 10001) and a volume at /var/lib/fedcare
# (SuperLink database and run folders). docs/RUNBOOK.md has the whole procedure.
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/var/lib/fedcare \
    FLWR_HOME=/var/lib/fedcare/flwr \
    MPLCONFIGDIR=/tmp/matplotlib

# nginx: the proxy in front of the SuperLink (the operator bundle's
# start-proxy.sh), which splits the Fleet API (hospitals) from the Control API
# (the operator) by path.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx-light \
    && rm -rf /var/lib/apt/lists/*

# CPU wheel of torch first, so resolving fedcare's torch range pulls no CUDA build.
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu

WORKDIR /opt/fedcare
COPY pyproject.toml README.md ./
COPY client ./client
COPY server ./server
COPY shared_models ./shared_models
COPY simulation ./simulation
RUN pip install . \
    && python -c "import server.app, client.app"

COPY deploy/docker/healthcheck.py /usr/local/bin/fedcare-healthcheck
COPY deploy/docker/register-hospitals.sh /usr/local/bin/fedcare-register-hospitals
RUN chmod 0755 /usr/local/bin/fedcare-healthcheck /usr/local/bin/fedcare-register-hospitals \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/fedcare fedcare \
    && install -d -o fedcare -g fedcare -m 0750 /var/lib/fedcare /var/lib/fedcare/state \
       /var/lib/fedcare/runs /var/lib/fedcare/flwr

USER 10001:10001
WORKDIR /var/lib/fedcare
VOLUME ["/var/lib/fedcare"]
# The SuperLink's one port (Fleet, Control and Runtime APIs) is 9091 on
# 127.0.0.1; the proxy listens on 9092 (Fleet only, for hospitals) and 9093
# (Control only, for the operator's network); 9099 is the plaintext gRPC
# health service (liveness only, keep it inside the cluster).
EXPOSE 9092 9093 9099
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["fedcare-healthcheck", "127.0.0.1:9099"]

CMD ["flower-superlink", \
     "--ssl-ca-certfile", "/bundle/ca.crt", \
     "--ssl-certfile", "/bundle/superlink.crt", \
     "--ssl-keyfile", "/bundle/superlink.key", \
     "--enable-supernode-auth", \
     "--disable-runtime-dependency-installation", \
     "--host", "127.0.0.1", \
     "--port", "9091", \
     "--database", "/var/lib/fedcare/state/superlink.db", \
     "--health-server-address", "127.0.0.1:9099"]
