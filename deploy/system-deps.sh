#!/bin/sh
# System packages the test suite needs beyond Python's: nginx (the proxy in
# front of the SuperLink, run for real by tests/deploy_e2e) and chromium (the
# dashboard's real-browser tests, tests/server/dashboard, at /usr/bin/chromium). Installs what is
# missing with apt-get when it can (root, or passwordless sudo); otherwise says
# what to install and exits 0, and the tests that need it fail naming it.
set -eu
missing=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -z "$missing" ] && exit 0
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    SUDO=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "system-deps: please install:$missing (apt-get install$missing)" >&2
    exit 0
  fi
  echo "system-deps: installing$missing" >&2
  $SUDO apt-get install -y -q $missing >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q $missing >/dev/null
  } || echo "system-deps: could not install$missing" >&2
else
  echo "system-deps: please install:$missing" >&2
fi
