{{- define "surge.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "surge.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "surge.labels" -}}
{{ include "surge.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "surge.secretName" -}}
{{- default (include "surge.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The checks every render makes, so a wrong value fails at install, not at 3 a.m. */}}
{{- define "surge.validate" -}}
{{- if not (has .Values.mode (list "embedded" "cluster")) -}}
{{- fail (printf "mode must be embedded or cluster, not %q" .Values.mode) -}}
{{- end -}}
{{- with .Values.secrets.paymentWebhookSecret -}}
{{- range splitList "," . -}}
{{- if lt (len (trim .)) 16 -}}
{{- fail "secrets.paymentWebhookSecret: each secret (comma-separated during a rotation) must be at least 16 bytes" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not .Values.secrets.existingSecret -}}
{{- if lt (len .Values.secrets.adminToken) 16 -}}
{{- fail "secrets.adminToken (at least 16 characters) or secrets.existingSecret is required" -}}
{{- end -}}
{{- if and (eq .Values.mode "cluster") (or (not .Values.secrets.redisUrl) (not .Values.secrets.postgresUrl)) -}}
{{- fail "cluster mode needs secrets.redisUrl and secrets.postgresUrl (or secrets.existingSecret)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* SIGTERM to exit: the preStop sleep, the drain delay, the in-flight requests, and a margin. */}}
{{- define "surge.terminationGracePeriod" -}}
{{- add .Values.preStopSleepSeconds .Values.drainDelaySeconds .Values.shutdownTimeoutSeconds 5 -}}
{{- end -}}

{{/* The secrets as SURGE_* variables: each value given, or from an existing
Secret (admin-token required there, the others optional). */}}
{{- define "surge.secretEnv" -}}
{{- $name := include "surge.secretName" . -}}
{{- $s := .Values.secrets -}}
{{- range list (list "admin-token" "SURGE_ADMIN_TOKEN" $s.adminToken) (list "jwt-secret" "SURGE_JWT_SECRET" $s.jwtSecret) (list "waiting-room-secret" "SURGE_WAITING_ROOM_SECRET" $s.waitingRoomSecret) (list "payment-webhook-secret" "SURGE_PAYMENT_WEBHOOK_SECRET" $s.paymentWebhookSecret) (list "redis-url" "SURGE_REDIS_URL" $s.redisUrl) (list "postgres-url" "SURGE_POSTGRES_URL" $s.postgresUrl) }}
{{- if or $s.existingSecret (index . 2) }}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ index . 0 }}
      {{- /* Cluster mode needs both store URLs: a Secret without them must
      stop the pod (CreateContainerConfigError), not start it in embedded
      mode on an emptyDir that loses its confirmed orders. */}}
      {{- if and $s.existingSecret (ne (index . 0) "admin-token") (not (and (eq $.Values.mode "cluster") (has (index . 0) (list "redis-url" "postgres-url")))) }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The pod, shared by the StatefulSet (embedded) and the Deployment (cluster). */}}
{{- define "surge.podSpec" -}}
terminationGracePeriodSeconds: {{ include "surge.terminationGracePeriod" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
containers:
  - name: surge
    image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args:
      - serve
      {{- range .Values.extraArgs }}
      - {{ . | quote }}
      {{- end }}
    env:
      - name: SURGE_HTTP_ADDR
        value: "0.0.0.0:{{ .Values.service.port }}"
      - name: SURGE_DATA_DIR
        value: /data
      - name: SURGE_LOG_FORMAT
        value: json
      - name: SURGE_DRAIN_DELAY
        value: "{{ .Values.drainDelaySeconds }}s"
      - name: SURGE_SHUTDOWN_TIMEOUT
        value: "{{ .Values.shutdownTimeoutSeconds }}s"
      {{- if eq .Values.mode "cluster" }}
      - name: SURGE_NODE_ID
        valueFrom:
          fieldRef:
            fieldPath: metadata.name
      {{- end }}
      {{- include "surge.secretEnv" . | nindent 6 }}
      {{- range $k, $v := .Values.env }}
      - name: {{ $k }}
        value: {{ $v | quote }}
      {{- end }}
    ports:
      - name: http
        containerPort: {{ .Values.service.port }}
        protocol: TCP
    # /healthz: the process answers (within 3 s, as the image's
    # HEALTHCHECK allows); /readyz: it takes purchases (the store answers,
    # not draining).
    startupProbe:
      httpGet:
        path: /healthz
        port: http
      periodSeconds: 2
      timeoutSeconds: 3
      failureThreshold: 60
    livenessProbe:
      httpGet:
        path: /healthz
        port: http
      periodSeconds: 10
      timeoutSeconds: 3
      failureThreshold: 3
    readinessProbe:
      httpGet:
        path: /readyz
        port: http
      periodSeconds: 2
      timeoutSeconds: 2
      failureThreshold: 1
    {{- if gt (int .Values.preStopSleepSeconds) 0 }}
    lifecycle:
      preStop:
        sleep:
          seconds: {{ .Values.preStopSleepSeconds }}
    {{- end }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml .Values.resources | nindent 6 }}
    volumeMounts:
      - name: data
        mountPath: /data
{{- if eq .Values.mode "cluster" }}
volumes:
  # Cluster nodes keep nothing on disk; the directory only satisfies the
  # read-only root filesystem.
  - name: data
    emptyDir: {}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
