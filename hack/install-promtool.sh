#!/usr/bin/env bash
# Install promtool from Debian's prometheus package, for the suite's checks of
# manifests/monitoring/. Only promtool is wanted: a policy-rc.d that refuses every
# start keeps the package's prometheus service from starting during the install,
# and the service is left disabled. Needs apt-get (Debian, Ubuntu) and root or sudo.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "promtool is missing and there is no apt-get: install Prometheus' promtool by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
policy=/usr/sbin/policy-rc.d

if [ -e "$policy" ]; then
    :  # an administrator's own policy stays in force
else
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
fi
echo "installing promtool (Debian package prometheus) ..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null
promtool --version | head -1 >&2
