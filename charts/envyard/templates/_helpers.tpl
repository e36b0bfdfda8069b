{{- define "envyard.labels" -}}
app.kubernetes.io/name: envyard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
{{- define "envyard.claim" -}}
{{ .Values.volume.existingClaim | default (printf "%s-volume" .Release.Name) }}
{{- end }}
{{- define "envyard.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}
{{/* Secrets the service and its build Jobs read, by reference only. */}}
{{- define "envyard.env" -}}
{{- if .Values.database.existingSecret }}
- name: ENVYARD_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ .Values.database.existingSecret }}, key: {{ .Values.database.secretKey }}}
{{- end }}
{{- if .Values.settings.credentialsSecret }}
- name: ENVYARD_CREDENTIALS
  valueFrom:
    secretKeyRef: {name: {{ .Values.settings.credentialsSecret }}, key: credentials.json}
{{- end }}
{{- if .Values.images.existingSecret }}
- name: ENVYARD_IMAGE__REGISTRY_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .Values.images.existingSecret }}, key: password}
{{- end }}
{{- if and (eq .Values.storage.backend "s3") .Values.storage.existingSecret }}
- name: ENVYARD_STORAGE__ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ .Values.storage.existingSecret }}, key: access-key-id}
- name: ENVYARD_STORAGE__SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Values.storage.existingSecret }}, key: secret-access-key}
{{- end }}
{{- end }}
{{- define "envyard.gcsKey" -}}
{{- if and (eq .Values.storage.backend "gcs") .Values.storage.existingSecret }}true{{ end }}
{{- end }}
