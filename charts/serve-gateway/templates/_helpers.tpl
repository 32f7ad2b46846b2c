{{/* Chart name, truncated to 63 characters. */}}
{{- define "serve-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "serve-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "serve-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "serve-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "serve-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "serve-gateway.labels" -}}
helm.sh/chart: {{ include "serve-gateway.chart" . }}
{{ include "serve-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "serve-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "serve-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the admin token, and its key. */}}
{{- define "serve-gateway.adminTokenSecret" -}}
{{- default (printf "%s-admin-token" (include "serve-gateway.fullname" .)) .Values.adminToken.existingSecret }}
{{- end }}
{{- define "serve-gateway.adminTokenKey" -}}
{{- if .Values.adminToken.existingSecret }}{{ .Values.adminToken.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{/* The namespace of the watched RayServices: config.kubernetes.namespace, else the release's. */}}
{{- define "serve-gateway.watchNamespace" -}}
{{- $k := default dict .Values.config.kubernetes }}
{{- default .Release.Namespace $k.namespace }}
{{- end }}

{{/* Where the writable volume is mounted: state_dir and last_known_good live there. */}}
{{- define "serve-gateway.stateMountPath" -}}/var/lib/serve-gateway{{- end }}

{{/*
A gateway duration (docs/configuration.md: "500ms", "5s", "2m", "1h", "0", or a
number of seconds) as whole seconds, rounded up.
*/}}
{{- define "serve-gateway.seconds" -}}
{{- $v := toString . | trim }}
{{- if hasSuffix "ms" $v }}{{ divf (trimSuffix "ms" $v | float64) 1000 | ceil | int }}
{{- else if hasSuffix "s" $v }}{{ trimSuffix "s" $v | float64 | ceil | int }}
{{- else if hasSuffix "m" $v }}{{ mulf (trimSuffix "m" $v | float64) 60 | ceil | int }}
{{- else if hasSuffix "h" $v }}{{ mulf (trimSuffix "h" $v | float64) 3600 | ceil | int }}
{{- else }}{{ $v | float64 | ceil | int }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop sleep, then the gateway's own drain after
SIGTERM (shutdown.drain_delay with the listener still open, then up to
shutdown.grace_period for in-flight requests and streams), plus a margin for the
process to exit. Defaults as the gateway's: drain_delay 1s, grace_period 30s.
*/}}
{{- define "serve-gateway.terminationGracePeriodSeconds" -}}
{{- $sd := default dict .Values.config.shutdown }}
{{- $drain := include "serve-gateway.seconds" (default "1s" $sd.drain_delay) | atoi }}
{{- $grace := include "serve-gateway.seconds" (default "30s" $sd.grace_period) | atoi }}
{{- add (int .Values.lifecycle.preStopSleepSeconds) $drain $grace (int .Values.lifecycle.exitMarginSeconds) }}
{{- end }}

{{/*
The gateway config (gateway.yaml): .Values.config with the keys the chart owns
set: the listeners (on all interfaces, at containerPorts), the admin token's
variable, the admin Service's names as allowed Host names, kubernetes.namespace
(the Role's namespace: the release's unless given), in kubernetes mode the
shared state (kubernetes.state_configmap <fullname>-state and
kubernetes.leader_lease <fullname>-leader, unless given: set them to null for
one replica with its state in state_dir), with gatewayAPI.enabled
kubernetes.gateway_api (unless given), and in file mode with several
replicas admission.gateway_replicas.
*/}}
{{- define "serve-gateway.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $fullname := include "serve-gateway.fullname" . }}
{{- if hasKey $cfg "listen" }}{{ fail "config.listen is set by the chart (0.0.0.0:<containerPorts.http>): remove it and set containerPorts.http" }}{{ end }}
{{- $admin := default dict $cfg.admin }}
{{- if hasKey $admin "listen" }}{{ fail "config.admin.listen is set by the chart (0.0.0.0:<containerPorts.admin>): remove it and set containerPorts.admin" }}{{ end }}
{{- if hasKey $admin "token_env" }}{{ fail "config.admin.token_env is set by the chart (SERVE_GATEWAY_ADMIN_TOKEN, from the adminToken Secret): remove it" }}{{ end }}
{{- $mount := include "serve-gateway.stateMountPath" . }}
{{- range $key, $path := dict "state_dir" $cfg.state_dir "kubernetes.last_known_good" (get (default dict $cfg.kubernetes) "last_known_good") }}
{{- if and $path (isAbs (toString $path)) (not (hasPrefix (printf "%s/" $mount) (printf "%s/" (toString $path)))) }}
{{- fail (printf "config.%s (%s) must be relative or under %s: the root filesystem is read-only and the writable volume is mounted there" $key $path $mount) }}
{{- end }}
{{- end }}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.containerPorts.http)) }}
{{- $_ := set $admin "listen" (printf "0.0.0.0:%d" (int .Values.containerPorts.admin)) }}
{{- $_ := set $admin "token_env" "SERVE_GATEWAY_ADMIN_TOKEN" }}
{{- $svc := printf "%s-admin" $fullname }}
{{- $hosts := concat (default list $admin.allowed_hosts) (list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.%s" $svc .Release.Namespace .Values.clusterDomain)) | uniq }}
{{- $_ := set $admin "allowed_hosts" $hosts }}
{{- $_ := set $cfg "admin" $admin }}
{{- if eq (toString (default "file" $cfg.source)) "kubernetes" }}
{{- $k := default dict $cfg.kubernetes }}
{{- if and $k.rayservices $k.selector }}
{{- fail "config.kubernetes: give rayservices or selector, not both (values.yaml sets rayservices: [llm]; to pick RayServices by label set config.kubernetes.rayservices to null)" }}
{{- end }}
{{- $_ := set $k "namespace" (include "serve-gateway.watchNamespace" .) }}
{{- if not (hasKey $k "state_configmap") }}{{ $_ := set $k "state_configmap" (printf "%s-state" $fullname) }}{{ end }}
{{- if not (hasKey $k "leader_lease") }}{{ $_ := set $k "leader_lease" (printf "%s-leader" $fullname) }}{{ end }}
{{- $gapi := include "serve-gateway.gatewayApiValues" . | fromYaml }}
{{- if and $gapi.enabled (not (hasKey $k "gateway_api")) }}
{{- $ga := dict "enabled" true "controller_name" $gapi.controllerName }}
{{- /* The gateway looks its Service up in the watched namespace: only there is <fullname> it. */}}
{{- if eq $k.namespace .Release.Namespace }}{{ $_ := set $ga "service" $fullname }}{{ end }}
{{- $_ := set $k "gateway_api" $ga }}
{{- end }}
{{- $_ := set $cfg "kubernetes" $k }}
{{- else }}
{{- if (include "serve-gateway.gatewayApiValues" . | fromYaml).enabled }}
{{- fail "gatewayAPI.enabled needs config.source: kubernetes (Gateway API mode is kubernetes.gateway_api)" }}
{{- end }}
{{- $replicas := ternary (int .Values.autoscaling.maxReplicas) (int .Values.replicaCount) .Values.autoscaling.enabled }}
{{- $adm := default dict $cfg.admission }}
{{- if and (gt $replicas 1) (not (hasKey $adm "gateway_replicas")) }}
{{- $_ := set $adm "gateway_replicas" $replicas }}
{{- $_ := set $cfg "admission" $adm }}
{{- end }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/*
The state ConfigMap's name when the gateway shares its state (kubernetes mode
with kubernetes.state_configmap), else empty: the Role grants it by name.
*/}}
{{- define "serve-gateway.stateConfigMap" -}}
{{- $cfg := include "serve-gateway.config" . | fromYaml }}
{{- if eq (toString (default "file" $cfg.source)) "kubernetes" }}
{{- $k := default dict $cfg.kubernetes }}
{{- if and $k.state_configmap $k.leader_lease }}{{ $k.state_configmap }}{{ end }}
{{- end }}
{{- end }}

{{/*
gatewayAPI, with the keys of its alias gatewayApi (docs/gateway-api.md spells it
so) set over it, key by key (gatewayClass too), as YAML: read it with fromYaml.
*/}}
{{- define "serve-gateway.gatewayApiValues" -}}
{{- $g := deepCopy (default dict .Values.gatewayAPI) }}
{{- range $key, $v := (default dict .Values.gatewayApi) }}
{{- if and (eq $key "gatewayClass") (kindIs "map" $v) }}
{{- $gc := deepCopy (default dict $g.gatewayClass) }}
{{- range $k2, $v2 := $v }}{{ if not (kindIs "invalid" $v2) }}{{ $_ := set $gc $k2 $v2 }}{{ end }}{{ end }}
{{- $_ := set $g "gatewayClass" $gc }}
{{- else if not (kindIs "invalid" $v) }}
{{- $_ := set $g $key $v }}
{{- end }}
{{- end }}
{{- toYaml $g }}
{{- end }}

{{/*
The gateway_api block of the rendered config when Gateway API mode is on
(kubernetes mode, kubernetes.gateway_api given and not enabled: false), as
YAML, else empty: the Role and ClusterRole grant what it uses, whoever set it.
*/}}
{{- define "serve-gateway.gatewayApiConfig" -}}
{{- $cfg := include "serve-gateway.config" . | fromYaml }}
{{- if eq (toString (default "file" $cfg.source)) "kubernetes" }}
{{- $ga := get (default dict $cfg.kubernetes) "gateway_api" }}
{{- if and (kindIs "map" $ga) (not (and (hasKey $ga "enabled") (eq (toString $ga.enabled) "false"))) }}
{{- toYaml (set (deepCopy $ga) "enabled" true) }}
{{- end }}
{{- end }}
{{- end }}

{{/* ClusterRole and ClusterRoleBinding of Gateway API mode: cluster-wide, so unique per release (namespace and name). */}}
{{- define "serve-gateway.gatewayClassesRbacName" -}}
{{- printf "%s-%s-gatewayclasses" .Release.Namespace (include "serve-gateway.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}
