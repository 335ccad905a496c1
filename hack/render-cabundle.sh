#!/usr/bin/env bash
# Render the webhook's certificate into manifests/webhook/bundle/generated/ so that
# `kubectl apply -k manifests/` installs a webhook the apiserver trusts:
#   - tls-secret.yaml:     Secret meshfit-webhook-tls (tls.crt, tls.key) for the Deployment;
#   - cabundle-patch.yaml: the MutatingWebhookConfiguration's caBundle (base64 of ca.crt).
# The certificate comes from CERT_DIR (default certs/dev); it is generated there when
# missing, expiring within 30 days, or not covering the Service's names. Both outputs
# are git-ignored: the Secret holds a private key.
#
# usage: hack/render-cabundle.sh [CERT_DIR]      (MESHFIT=path/to/meshfit, OUT=dir to override)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cert_dir="${1:-$root/certs/dev}"
meshfit="${MESHFIT:-$root/.venv/bin/meshfit}"
out="${OUT:-$root/manifests/webhook/bundle/generated}"
service=meshfit-webhook
namespace=meshfit-system

if [[ ! -x "$meshfit" ]]; then
  echo "render-cabundle: $meshfit not found; run 'make venv' first" >&2
  exit 1
fi

# One certificate serves the cluster (Service names) and `make run` (127.0.0.1).
if ! "$meshfit" certs check "$cert_dir" --service "$service" --namespace "$namespace" \
      --ip 127.0.0.1 --min-days 30 >/dev/null 2>&1; then
  echo "render-cabundle: generating a new CA and serving certificate in $cert_dir" >&2
  "$meshfit" certs generate --service "$service" --namespace "$namespace" \
    --ip 127.0.0.1 --out "$cert_dir" >/dev/null
fi

b64() { base64 < "$1" | tr -d '\n'; }

mkdir -p "$out"
umask 077
cat > "$out/tls-secret.yaml" <<YAML
# Rendered by hack/render-cabundle.sh from $(basename "$cert_dir")/: do not commit.
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata:
  name: meshfit-webhook-tls
  namespace: $namespace
  labels:
    app.kubernetes.io/name: meshfit
    app.kubernetes.io/component: webhook
data:
  tls.crt: $(b64 "$cert_dir/tls.crt")
  tls.key: $(b64 "$cert_dir/tls.key")
  ca.crt: $(b64 "$cert_dir/ca.crt")
YAML
cat > "$out/cabundle-patch.yaml" <<YAML
# Rendered by hack/render-cabundle.sh: the caBundle of $(basename "$cert_dir")/ca.crt.
- op: add
  path: /webhooks/0/clientConfig/caBundle
  value: $(b64 "$cert_dir/ca.crt")
YAML
echo "render-cabundle: wrote $out/tls-secret.yaml and $out/cabundle-patch.yaml" >&2
