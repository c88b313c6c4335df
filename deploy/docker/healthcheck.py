#!/usr/bin/env python3
"""Container health check: ask Flower's plaintext gRPC health service.

Usage: fedcare-healthcheck HOST:PORT (the --health-server-address of
flower-superlink or flower-supernode). Exit 0 when it answers SERVING, 1 otherwise.
Flower's health service reports the process alive; it does not prove that a
SuperNode is connected (`flwr supernode list` shows that).
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    address = argv[1] if len(argv) > 1 else "127.0.0.1:9099"
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=4
            )
    except grpc.RpcError as err:
        print(f"unhealthy: {address}: {err.code().name}", file=sys.stderr)
        return 1
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"unhealthy: {address}: status {reply.status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
