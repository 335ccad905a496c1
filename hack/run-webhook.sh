#!/usr/bin/env bash
# `make run`: the webhook on loopback with dev certificates and the default policy.
# Dev certificates live in certs/dev (git-ignored) and are made or renewed as needed;
# the policy file is reloaded on every change, so edit manifests/policy.yaml and send
# the review again.
#
# usage: hack/run-webhook.sh [extra `meshfit webhook serve` flags]
#        PORT=9443 CERT_DIR=certs/dev POLICY=manifests/policy.yaml MESHFIT=.venv/bin/meshfit
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
meshfit="${MESHFIT:-$root/.venv/bin/meshfit}"
cert_dir="${CERT_DIR:-certs/dev}"
policy="${POLICY:-manifests/policy.yaml}"
port="${PORT:-9443}"

if [[ ! -x "$meshfit" ]]; then
  echo "run-webhook: $meshfit not found; run 'make venv' first" >&2
  exit 1
fi
# The same directory `make manifests` renders from: a kept CA, serving certificates issued under it.
if [[ ! -f "$cert_dir/ca.key" ]]; then
  echo "run-webhook: making the dev CA in $cert_dir" >&2
  rm -f "$cert_dir/ca.crt" "$cert_dir/ca-bundle.crt"
  "$meshfit" certs ca --cert-dir "$cert_dir"
fi
if ! "$meshfit" certs check --cert-dir "$cert_dir" --ip 127.0.0.1 --min-days 1 >/dev/null 2>&1; then
  echo "run-webhook: issuing a dev serving certificate in $cert_dir" >&2
  "$meshfit" certs issue --cert-dir "$cert_dir" --service meshfit-webhook --namespace meshfit-system --ip 127.0.0.1
fi

cat >&2 <<MSG

  meshfit webhook on https://127.0.0.1:$port (policy $policy, certificates $cert_dir)
  Send it a review:

    curl --cacert $cert_dir/ca.crt -H 'Content-Type: application/json' --data @manifests/examples/review.json https://127.0.0.1:$port/mutate

  Decode the patch:   ... | python3 -c 'import base64,json,sys; print(json.dumps(json.loads(base64.b64decode(json.load(sys.stdin)["response"]["patch"])), indent=1))'
  Probes and metrics: curl --cacert $cert_dir/ca.crt https://127.0.0.1:$port/readyz  (/healthz, /metrics)
  Stop with Ctrl-C.

MSG
exec "$meshfit" webhook serve --cert-dir "$cert_dir" --policy "$policy" --port "$port" "$@"
