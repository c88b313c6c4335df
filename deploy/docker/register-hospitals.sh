#!/bin/sh
# Register every hospital public key of the operator bundle with the running
# SuperLink, before the hospitals' SuperNodes start. A key that is already
# registered counts as done, so this can run on every `docker compose up`.
# Environment: FEDCARE_SUPERLINK (default aggregator:9092), FEDCARE_BUNDLE
# (the operator bundle, default /bundle).
set -u
BUNDLE="${FEDCARE_BUNDLE:-/bundle}"
FLWR_HOME="${FLWR_HOME:-$HOME/.flwr}"
export FLWR_HOME
mkdir -p "$FLWR_HOME"
cat > "$FLWR_HOME/config.toml" <<TOML
[superlink.consortium]
address = "${FEDCARE_SUPERLINK:-aggregator:9092}"
root-certificates = "$BUNDLE/ca.crt"
TOML
status=0
found=0
for pub in "$BUNDLE"/hospitals/*.pub; do
  [ -e "$pub" ] || continue
  found=1
  name="$(basename "$pub" .pub)"
  if out="$(flwr supernode register "$pub" consortium --name "$name" 2>&1)"; then
    echo "registered $name"
  elif printf '%s' "$out" | grep -q "already in use"; then
    echo "already registered $name"
  else
    printf 'error: registering %s failed:\n%s\n' "$name" "$out" >&2
    status=1
  fi
done
if [ "$found" = 0 ]; then
  echo "error: no $BUNDLE/hospitals/*.pub; mount the operator bundle of" \
       "\`fedcare provision init\` at $BUNDLE" >&2
  exit 2
fi
exit $status
