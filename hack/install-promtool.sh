#!/usr/bin/env bash
# Install Debian's prometheus package: promtool, for the suite's checks of
# manifests/monitoring/, and the prometheus server binary, which the rollout
# end-to-end tests start themselves on a loopback port. The package's own service
# is not wanted: a policy-rc.d that refuses every start keeps it from starting
# during the install, and it is left disabled. Needs apt-get (Debian, Ubuntu) and
# root or sudo.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "promtool or prometheus is missing and there is no apt-get: install Prometheus (server and promtool) by hand" >&2
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
echo "installing prometheus and promtool (Debian package prometheus) ..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null
command -v prometheus >/dev/null
promtool --version | head -1 >&2
prometheus --version 2>&1 | head -1 >&2
