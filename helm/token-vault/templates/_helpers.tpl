{{/*
Names, labels and shared fragments. Names are cut to 63 characters (DNS label limit).
*/}}

{{- define "token-vault.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: the release name alone when it already contains the chart name.
*/}}
{{- define "token-vault.fullname" -}}
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

{{- define "token-vault.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "token-vault.selectorLabels" -}}
app.kubernetes.io/name: {{ include "token-vault.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "token-vault.labels" -}}
helm.sh/chart: {{ include "token-vault.chart" . }}
{{ include "token-vault.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: token-vault
{{- end }}

{{- define "token-vault.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "token-vault.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "token-vault.image" -}}
{{- $repository := required "image.repository is required: the registry path of the image built from the Dockerfile" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The port the vault listens on: config.server.port (8080 by default, as in the vault). */}}
{{- define "token-vault.port" -}}
{{- dig "server" "port" 8080 .Values.config | int }}
{{- end }}

{{/* The optional second listener for browser and provider routes (config.server.publicPort). */}}
{{- define "token-vault.publicPort" -}}
{{- dig "server" "publicPort" 0 .Values.config | int }}
{{- end }}

{{/* HTTPS when the vault itself terminates TLS (config.server.tls). */}}
{{- define "token-vault.scheme" -}}
{{- if dig "server" "tls" "" .Values.config }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/*
The label selector every alert uses: the ServiceMonitor's targets of this release. Prometheus
Operator sets job to the Service's name and namespace to its namespace.
*/}}
{{- define "token-vault.metricSelector" -}}
{{- default (printf "job=%q, namespace=%q" (include "token-vault.fullname" .) .Release.Namespace) .Values.prometheusRule.metricSelector }}
{{- end }}

{{/* Where the runbook of an alert is: the README's "Alerts" section, one heading per alert. */}}
{{- define "token-vault.runbook" -}}
{{- printf "%s#%s" .root.Values.prometheusRule.runbookBaseUrl (lower .alert) }}
{{- end }}
