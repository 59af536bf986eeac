{{- define "kelpie.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kelpie.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kelpie.labels" -}}
{{ include "kelpie.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The Secret holding the access token, and its key. */}}
{{- define "kelpie.tokenSecret" -}}
{{- default (include "kelpie.fullname" .) .Values.token.existingSecret -}}
{{- end -}}

{{/* The address browsers open: publicUrl, else the ingress' URL, else nothing. */}}
{{- define "kelpie.publicUrl" -}}
{{- if .Values.publicUrl -}}
{{- .Values.publicUrl -}}
{{- else if .Values.ingress.enabled -}}
{{- printf "%s://%s%s" (ternary "https" "http" .Values.ingress.tls.enabled) .Values.ingress.host .Values.ingress.path -}}
{{- end -}}
{{- end -}}

{{/* Whether Kelpie opens its UDP port. */}}
{{- define "kelpie.udp" -}}
{{- if ne .Values.network.mode "websocket" }}true{{ end -}}
{{- end -}}
