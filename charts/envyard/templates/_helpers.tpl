{{- define "envyard.labels" -}}
app.kubernetes.io/name: envyard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
{{- define "envyard.claim" -}}
{{ .Values.volume.existingClaim | default (printf "%s-volume" .Release.Name) }}
{{- end }}
