{{/* The daemon's name: ServiceAccount, Role, RoleBinding and DaemonSet. */}}
{{- define "hypersdk.name" -}}
hypersdk-mountd
{{- end -}}

{{- define "hypersdk.watchNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace -}}
{{- end -}}

{{- define "hypersdk.serviceAccountName" -}}
{{- default (include "hypersdk.name" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "hypersdk.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hypersdk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hypersdk.labels" -}}
{{ include "hypersdk.selectorLabels" . }}
app.kubernetes.io/part-of: hypersdk
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "hypersdk.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
