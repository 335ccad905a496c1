#!/usr/bin/env bash
# Render the webhook's certificate into manifests/webhook/bundle/generated/ so that
# `kubectl apply -k manifests/` installs a webhook the apiserver trusts:
#   - tls-secret.yaml:     Secret meshfit-webhook-tls (tls.crt, tls.key) for the Deployment;
#   - cabundle-patch.yaml: the MutatingWebhookConfiguration's caBundle (base64 of ca.crt).
# CERT_DIR (default certs/dev) keeps a CA (ca.crt, ca.key) and the bundle the caBundle carries
# (ca-bundle.crt). The CA is made once; after that only the serving pair is re-issued under it
# (when missing, expiring within 30 days, not covering the Service's names or not issued by the
# CA), so the caBundle stays the same and nothing fails while the kubelet refreshes the Secret.
# A CA is rotated in three steps, rendered and applied one at a time (docs/webhook.md#certificates):
#   meshfit certs rotate-ca begin  --cert-dir CERT_DIR      # bundle: old + new CA
#   meshfit certs rotate-ca switch --cert-dir CERT_DIR --service meshfit-webhook --namespace meshfit-system --ip 127.0.0.1
#   meshfit certs rotate-ca finish --cert-dir CERT_DIR      # bundle: new CA only
# Both outputs are git-ignored: the Secret holds a private key.
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

if [[ ! -f "$cert_dir/ca.key" ]]; then
  # First run (or a directory from `meshfit certs generate`, whose CA key was never kept):
  # the one time the caBundle changes outside a CA rotation.
  echo "render-cabundle: making the CA in $cert_dir (kept: later runs rotate only the serving certificate)" >&2
  rm -f "$cert_dir/ca.crt" "$cert_dir/ca-bundle.crt"
  "$meshfit" certs ca --cert-dir "$cert_dir"
fi
if [[ -f "$cert_dir/next-ca.crt" ]]; then
  echo "render-cabundle: a CA rotation is under way (bundle: old + new CA); next: meshfit certs rotate-ca switch" >&2
elif [[ -f "$cert_dir/previous-ca.crt" ]]; then
  echo "render-cabundle: a CA rotation is under way (serving under the new CA); next: meshfit certs rotate-ca finish" >&2
fi

# One certificate serves the cluster (Service names) and `make run` (127.0.0.1).
if ! "$meshfit" certs check --cert-dir "$cert_dir" --service "$service" --namespace "$namespace" \
      --ip 127.0.0.1 --min-days 30 >/dev/null 2>&1; then
  echo "render-cabundle: issuing a new serving certificate in $cert_dir under its CA" >&2
  "$meshfit" certs issue --cert-dir "$cert_dir" --service "$service" --namespace "$namespace" --ip 127.0.0.1
fi
bundle="$cert_dir/ca-bundle.crt"
[[ -f "$bundle" ]] || bundle="$cert_dir/ca.crt"

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
  ca.crt: $(b64 "$bundle")
YAML
cat > "$out/cabundle-patch.yaml" <<YAML
# Rendered by hack/render-cabundle.sh: the caBundle of $(basename "$cert_dir")/$(basename "$bundle").
- op: add
  path: /webhooks/0/clientConfig/caBundle
  value: $(b64 "$bundle")
YAML
echo "render-cabundle: wrote $out/tls-secret.yaml and $out/cabundle-patch.yaml" >&2

# The extender serves kube-scheduler over TLS and admits only the scheduler's client
# certificate (docs/scheduling.md#security). Its serving pair is kept under a CA of its
# own (EXTENDER_CERT_DIR, default CERT_DIR/extender) and re-issued the same way; the
# scheduler's client certificate under another (SCHEDULER_CLIENT_DIR, default
# CERT_DIR/scheduler-client). Both Secrets go to manifests/extender/generated/secrets.yaml
# (EXTENDER_OUT; with OUT set, OUT/extender), git-ignored: apply it before
# `kubectl apply -k manifests/`. The scheduler's three
# files (client-ca.crt is the serving CA it verifies the extender with) are the
# tlsConfig of manifests/extender/scheduler-config.yaml.
extender_dir="${EXTENDER_CERT_DIR:-$cert_dir/extender}"
client_dir="${SCHEDULER_CLIENT_DIR:-$cert_dir/scheduler-client}"
if [[ -n "${OUT:-}" ]]; then
  extender_out="${EXTENDER_OUT:-$OUT/extender}"
else
  extender_out="${EXTENDER_OUT:-$root/manifests/extender/generated}"
fi
[[ -f "$extender_dir/ca.key" ]] || "$meshfit" certs ca --cert-dir "$extender_dir" --common-name "meshfit extender CA"
if ! "$meshfit" certs check --cert-dir "$extender_dir" --service meshfit-extender --namespace "$namespace" \
      --min-days 30 >/dev/null 2>&1; then
  "$meshfit" certs issue --cert-dir "$extender_dir" --service meshfit-extender --namespace "$namespace" --ip 127.0.0.1
fi
[[ -f "$client_dir/ca.key" ]] || "$meshfit" certs ca --cert-dir "$client_dir" --common-name "meshfit scheduler client CA"
# 90 days valid: re-issued once it is 60 days old.
if [[ ! -f "$client_dir/client.crt" || -n "$(find "$client_dir/client.crt" -mtime +60 2>/dev/null)" ]]; then
  "$meshfit" certs client --cert-dir "$client_dir" --name system:kube-scheduler
fi
mkdir -p "$extender_out"
cat > "$extender_out/secrets.yaml" <<YAML
# Rendered by hack/render-cabundle.sh: do not commit (private keys). kubectl apply -f this file.
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata:
  name: meshfit-extender-tls
  namespace: $namespace
  labels: {app.kubernetes.io/name: meshfit, app.kubernetes.io/component: extender}
data:
  tls.crt: $(b64 "$extender_dir/tls.crt")
  tls.key: $(b64 "$extender_dir/tls.key")
  ca.crt: $(b64 "$extender_dir/ca.crt")
---
apiVersion: v1
kind: Secret
metadata:
  name: meshfit-scheduler-client-ca
  namespace: $namespace
  labels: {app.kubernetes.io/name: meshfit, app.kubernetes.io/component: extender}
data:
  ca.crt: $(b64 "$client_dir/ca.crt")
YAML
echo "render-cabundle: wrote $extender_out/secrets.yaml; the scheduler's tlsConfig files:" \
     "certFile $client_dir/client.crt, keyFile $client_dir/client.key, caFile $extender_dir/ca.crt" >&2
