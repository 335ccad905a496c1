{{/*
Names are fixed (meshfit-webhook, meshfit-extender, meshfit-policy, …), as in
manifests/: meshfit is one per cluster (its webhook configuration is
cluster-scoped) and the webhook and the extender find the policy by name.
*/}}

{{/* Labels on every object: kustomize's two, plus Helm's. */}}
{{- define "meshfit.labels" -}}
app.kubernetes.io/name: meshfit
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end }}

{{/* Selector labels: exactly manifests/' (a selector is immutable, and both installs must match). */}}
{{- define "meshfit.selectorLabels" -}}
app.kubernetes.io/name: meshfit
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The image: repository, then @digest when pinned, else :tag (default: the chart's appVersion). */}}
{{- define "meshfit.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{ $image.repository }}@{{ $image.digest }}
{{- else -}}
{{ $image.repository }}:{{ $image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{- define "meshfit.policyRef" -}}
{{ .Release.Namespace }}/meshfit-policy
{{- end }}

{{- define "meshfit.webhookHost" -}}
meshfit-webhook.{{ .Release.Namespace }}.svc
{{- end }}

{{/* The env every meshfit container gets. */}}
{{- define "meshfit.env" -}}
- {name: PYTHONUNBUFFERED, value: "1"}
- {name: PYTHONDONTWRITEBYTECODE, value: "1"}
{{- end }}

{{- define "meshfit.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end }}

{{/* The extenders entry for a scheduler configuration. */}}
{{- define "meshfit.extenderEntry" -}}
- urlPrefix: {{ .urlPrefix }}
  filterVerb: filter
  prioritizeVerb: prioritize
  bindVerb: bind
  weight: {{ .root.Values.scheduler.extenderWeight }}
  nodeCacheCapable: true
  managedResources: []
  httpTimeout: {{ .root.Values.scheduler.httpTimeout }}
  ignorable: {{ .ignorable }}
  {{- if .tls }}
  enableHTTPS: true
  tlsConfig:
    serverName: {{ include "meshfit.extenderHost" .root }}
    caFile: /etc/kubernetes/meshfit/extender-ca.crt
    certFile: /etc/kubernetes/meshfit/scheduler-client.crt
    keyFile: /etc/kubernetes/meshfit/scheduler-client.key
  {{- else }}
  enableHTTPS: false
  {{- end }}
{{- end }}

{{- define "meshfit.extenderHost" -}}
meshfit-extender.{{ .Release.Namespace }}.svc
{{- end }}

{{/* The extender Service's DNS names, for its serving certificate. */}}
{{- define "meshfit.extenderDNSNames" -}}
{{- $ns := .Release.Namespace -}}
{{- list "meshfit-extender" (printf "meshfit-extender.%s" $ns) (printf "meshfit-extender.%s.svc" $ns) (printf "meshfit-extender.%s.svc.%s" $ns .Values.clusterDomain) | toJson -}}
{{- end }}

{{/* The name the scheduler's client certificate carries (and the extender admits). */}}
{{- define "meshfit.schedulerClientName" -}}
{{- .Values.extender.tls.clientName | default "system:kube-scheduler" -}}
{{- end }}

{{/*
The Secret holding the CA of the scheduler's client certificate (ca.crt), as the
extender mounts it: with cert-manager, the client certificate's own Secret, whose
ca.crt is its issuer's.
*/}}
{{- define "meshfit.schedulerClientCASecret" -}}
{{- if eq .Values.extender.tls.mode "certManager" -}}
meshfit-scheduler-client
{{- else -}}
{{ .Values.extender.tls.clientCASecretName }}
{{- end -}}
{{- end }}

{{- define "meshfit.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "secret" -}}
{{ .Values.certificates.secret.name }}
{{- else -}}
meshfit-webhook-tls
{{- end -}}
{{- end }}

{{/* The webhook Service's DNS names, for every certificate mode. */}}
{{- define "meshfit.webhookDNSNames" -}}
{{- $ns := .Release.Namespace -}}
{{- list "meshfit-webhook" (printf "meshfit-webhook.%s" $ns) (printf "meshfit-webhook.%s.svc" $ns) (printf "meshfit-webhook.%s.svc.%s" $ns .Values.clusterDomain) | toJson -}}
{{- end }}
