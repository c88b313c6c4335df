#!/bin/sh
# Default command of the hospital images: the SuperNode with the container's
# fixed paths (bundle at /bundle, the hospital's own folder at /key with its
# node.key and approved-apps.txt, data at /data, ledger at /ledger). Only app
# bundles on the approved list run: the SuperNode runs in process isolation
# and fedcare-superexec launches the hospital's own fedcare-clientapp
# (docs/RUNBOOK.md, Hospital IT, "Approve the app bundle").
# Environment: FEDCARE_HOSPITAL_ID (required: the id the hospital was
# provisioned with), FEDCARE_SUPERLINK (default aggregator:9092),
# FEDCARE_EPSILON (total budget, default 8.0), FEDCARE_DELTA (default 1e-05),
# FEDCARE_SUPERNODE_PORT (local ClientApp API port, default 9094),
# FEDCARE_MAX_RETRIES (default 30: give up instead of retrying forever).
# Extra arguments are passed on to flower-supernode.
set -eu
if [ -z "${FEDCARE_HOSPITAL_ID:-}" ]; then
  echo "error: FEDCARE_HOSPITAL_ID is not set; set it to this hospital's" \
       "provisioned id (the name of its bundle folder, e.g. hospital_01)" >&2
  exit 2
fi
for f in /bundle/ca.crt /key/node.key /key/approved-apps.txt; do
  if [ ! -r "$f" ]; then
    echo "error: cannot read $f as uid $(id -u); mount the hospital bundle at" \
         "/bundle and the folder of its node.key (fedcare provision node-key) at" \
         "/key (with approved-apps.txt: fedcare provision app-hash RELEASE), readable" \
         "by uid 10001 (chown -R 10001:10001 BUNDLE KEYS)" >&2
    exit 2
  fi
done
PORT="${FEDCARE_SUPERNODE_PORT:-9094}"
fedcare-superexec --runtime-api-address "127.0.0.1:$PORT" --insecure \
  --parent-pid $$ &
exec flower-supernode \
  --superlink "${FEDCARE_SUPERLINK:-aggregator:9092}" \
  --root-certificates /bundle/ca.crt \
  --auth-supernode-private-key /key/node.key \
  --isolation process \
  --node-config "hospital-id=\"$FEDCARE_HOSPITAL_ID\" data-path=\"/data\" ledger-path=\"/ledger/privacy-ledger.jsonl\" epsilon=${FEDCARE_EPSILON:-8.0} delta=${FEDCARE_DELTA:-1e-05} approved-apps=\"/key/approved-apps.txt\"" \
  --host 127.0.0.1 \
  --port "$PORT" \
  --max-retries "${FEDCARE_MAX_RETRIES:-30}" \
  --health-server-address 127.0.0.1:9099 \
  "$@"
