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
{{- /* surge serve refuses these shorter than 32 bytes and the pod never
starts: in embedded mode an upgrade stops the running pod first, so the
shop is down until the value is fixed. */ -}}
{{- range $key := list "jwtSecret" "waitingRoomSecret" -}}
{{- $v := index $.Values.secrets . | default "" | toString -}}
{{- if and $v (lt (len $v) 32) -}}
{{- fail (printf "secrets.%s must be at least 32 bytes, as surge serve requires (got %d): a pod given a shorter one never starts; generate one with: openssl rand -hex 32" $key (len $v)) -}}
{{- end -}}
{{- end -}}
{{- /* The variables the chart sets itself, and what the rest of the pod
derives from them: the same name in env comes later and wins, and the
probes, the Service, the volume or the grace period no longer follow. */ -}}
{{- range $name, $instead := dict "SURGE_HTTP_ADDR" "containerPort" "SURGE_DATA_DIR" "nothing (the volume is mounted at /data)" "SURGE_DRAIN_DELAY" "drainDelaySeconds" "SURGE_SHUTDOWN_TIMEOUT" "shutdownTimeoutSeconds" -}}
{{- if hasKey ($.Values.env | default dict) $name -}}
{{- fail (printf "env.%s: the chart sets %s itself and derives the pod from it; set %s instead" $name $name $instead) -}}
{{- end -}}
{{- end -}}
{{- if not (has (.Values.service.externalTrafficPolicy | default "") (list "" "Local" "Cluster")) -}}
{{- fail (printf "service.externalTrafficPolicy must be Local, Cluster or empty, not %q" .Values.service.externalTrafficPolicy) -}}
{{- end -}}
{{- if and .Values.trustedProxies (hasKey (.Values.env | default dict) "SURGE_TRUSTED_PROXIES") -}}
{{- fail "trustedProxies and env.SURGE_TRUSTED_PROXIES both name the trusted proxies: give trustedProxies alone" -}}
{{- end -}}
{{- if not .Values.secrets.existingSecret -}}
{{- if lt (len .Values.secrets.adminToken) 16 -}}
{{- fail "secrets.adminToken (at least 16 characters) or secrets.existingSecret is required" -}}
{{- end -}}
{{- if and (eq .Values.mode "cluster") (or (not .Values.secrets.redisUrl) (not .Values.secrets.postgresUrl)) -}}
{{- fail "cluster mode needs secrets.redisUrl and secrets.postgresUrl (or secrets.existingSecret)" -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.mode "cluster" -}}
{{- $pool := int (include "surge.postgresPool" .) -}}
{{- if lt $pool 2 -}}
{{- fail (printf "cluster mode: a PostgreSQL pool of %d (pool_max_conns): a pod needs at least 2 connections (a sale's change holds one while it uses another), and refuses to start with fewer" $pool) -}}
{{- end -}}
{{- $pods := include "surge.peakPods" . | int -}}
{{- $max := int .Values.postgresConnections.max -}}
{{- if and (gt $max 0) (gt (mul $pods (add1 $pool)) $max) -}}
{{- fail (printf "cluster mode: up to %d pods × %d PostgreSQL connections = %d, over postgresConnections.max (%d). Each pod opens a pool of %d (the URL's pool_max_conns, else 16) and one connection for LISTEN, and a rolling update runs one pod more than autoscaling.maxReplicas (or replicaCount); past the server's max_connections (100 by default, 3 of them for superusers) new pods cannot start and the others' pools cannot grow. Give each pod fewer (?pool_max_conns=N in the URL, at least 2; with secrets.existingSecret, say so in postgresConnections.poolMaxConns too), run fewer pods, or set postgresConnections.max to what the server allows Surge (0: unchecked)" $pods (add1 $pool) (mul $pods (add1 $pool)) $max $pool) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The most cluster pods at once: the autoscaler's maximum (or the fixed
replicaCount), and one more while a rolling update surges (maxSurge 1). */}}
{{- define "surge.peakPods" -}}
{{- if .Values.autoscaling.enabled -}}
{{- add1 (int .Values.autoscaling.maxReplicas) -}}
{{- else -}}
{{- add1 (int .Values.replicaCount) -}}
{{- end -}}
{{- end -}}

{{/* A cluster pod's PostgreSQL pool: postgresConnections.poolMaxConns when
set, else the pool_max_conns of secrets.postgresUrl (a URL or keyword/value
pairs; the chart cannot read an existing Secret's), else the server's
default, 16 (postgres.defaultPoolSize). */}}
{{- define "surge.postgresPool" -}}
{{- $n := int (.Values.postgresConnections.poolMaxConns | default 0) -}}
{{- if and (eq $n 0) (not .Values.secrets.existingSecret) -}}
{{- with regexFind "pool_max_conns\\s*=\\s*[0-9]+" (.Values.secrets.postgresUrl | default "") -}}
{{- $n = int (regexFind "[0-9]+$" .) -}}
{{- else -}}
{{- $n = 16 -}}
{{- end -}}
{{- else if eq $n 0 -}}
{{- $n = 16 -}}
{{- end -}}
{{- $n -}}
{{- end -}}

{{/* SIGTERM to exit: the preStop sleep, the drain delay, the in-flight requests, and a margin. */}}
{{- define "surge.terminationGracePeriod" -}}
{{- add .Values.preStopSleepSeconds .Values.drainDelaySeconds .Values.shutdownTimeoutSeconds 5 -}}
{{- end -}}

{{/* GOMEMLIMIT: goMemLimitPercent of the container's memory limit, in MiB
("" without a limit, with 0 %, or when env sets GOMEMLIMIT itself). The Go
runtime does not read the cgroup's limit: without this the collector lets
the heap grow to twice what it last found live before the next cycle, and a
spike passes the limit and gets the pod OOM-killed mid-drop. The rest of
the limit is for memory the runtime does not count: SQLite's allocations
through modernc's libc, thread stacks. A Kubernetes quantity is parsed here
(a resourceFieldRef gives the whole limit, not a share of it). */}}
{{- define "surge.goMemLimit" -}}
{{- $pct := int .Values.goMemLimitPercent -}}
{{- if or (lt $pct 0) (gt $pct 100) -}}
{{- fail (printf "goMemLimitPercent must be between 0 (no GOMEMLIMIT) and 100, not %d" $pct) -}}
{{- end -}}
{{- $q := dig "limits" "memory" "" (.Values.resources | default dict) -}}
{{- if and $q (gt $pct 0) (not (hasKey (.Values.env | default dict) "GOMEMLIMIT")) -}}
{{- $s := ternary $q (printf "%d" (int64 $q)) (kindIs "string" $q) -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $s -}}
{{- $suffix := trimPrefix $num $s -}}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- if or (not $num) (not (hasKey $units $suffix)) -}}
{{- fail (printf "resources.limits.memory %q: GOMEMLIMIT is derived only from a number with one of the suffixes k, M, G, T, Ki, Mi, Gi, Ti; give env.GOMEMLIMIT or goMemLimitPercent: 0" $s) -}}
{{- end -}}
{{- $mib := int64 (floor (divf (mulf (float64 $num) (get $units $suffix) $pct) 104857600)) -}}
{{- if lt $mib 1 -}}
{{- fail (printf "resources.limits.memory %q is too small for a GOMEMLIMIT of at least 1 MiB" $s) -}}
{{- end -}}
{{- printf "%dMiB" $mib -}}
{{- end -}}
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
automountServiceAccountToken: {{ .Values.automountServiceAccountToken | default false }}
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
        value: "0.0.0.0:{{ .Values.containerPort }}"
      - name: SURGE_DATA_DIR
        value: /data
      - name: SURGE_LOG_FORMAT
        value: json
      - name: SURGE_DRAIN_DELAY
        value: "{{ .Values.drainDelaySeconds }}s"
      - name: SURGE_SHUTDOWN_TIMEOUT
        value: "{{ .Values.shutdownTimeoutSeconds }}s"
      {{- with .Values.trustedProxies }}
      - name: SURGE_TRUSTED_PROXIES
        value: {{ join "," . | quote }}
      {{- end }}
      {{- with include "surge.goMemLimit" . }}
      - name: GOMEMLIMIT
        value: {{ . | quote }}
      {{- end }}
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
        containerPort: {{ .Values.containerPort }}
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
      {{- toYaml .Values.readinessProbe | nindent 6 }}
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
