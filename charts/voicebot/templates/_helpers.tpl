{{/* Chart name, shortened to the 63 characters a label value allows. */}}
{{- define "voicebot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped base name for every object. */}}
{{- define "voicebot.fullname" -}}
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

{{- define "voicebot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels of every object's own metadata. Call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "voicebot.labels" -}}
helm.sh/chart: {{ include "voicebot.chart" .ctx }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{ include "voicebot.podLabels" . }}
{{- end }}

{{/*
Labels of pod templates (spec.template.metadata.labels): the standard labels without
helm.sh/chart and app.kubernetes.io/version. A change of a pod template rolls every pod (a
bot-worker drains for up to an hour), so it carries nothing that changes with a chart release
alone; the image reference already changes when the software does. Same call as voicebot.labels.
*/}}
{{- define "voicebot.podLabels" -}}
{{ include "voicebot.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: voicebot
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: stable across upgrades, so never add version labels here. */}}
{{- define "voicebot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "voicebot.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/* Object name of one component, e.g. "rel-voicebot-gateway". */}}
{{- define "voicebot.componentName" -}}
{{- printf "%s-%s" (include "voicebot.fullname" .ctx) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "voicebot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "voicebot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Secret holding Twilio, provider and API keys: created by the chart or brought by the user. */}}
{{- define "voicebot.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- printf "%s-secrets" (include "voicebot.fullname" .) }}
{{- end }}
{{- end }}

{{- define "voicebot.profilesConfigMapName" -}}
{{- default (printf "%s-agent-profiles" (include "voicebot.fullname" .)) .Values.agentProfiles.existingConfigMap }}
{{- end }}

{{/* Image reference of a component. Call with (dict "ctx" $ "image" .Values.gateway.image). */}}
{{- define "voicebot.image" -}}
{{- $registry := .image.registry | default .ctx.Values.global.imageRegistry -}}
{{- $ref := .image.repository -}}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $ref }}{{ end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $ref .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (.image.tag | default .ctx.Chart.AppVersion) -}}
{{- end -}}
{{- end }}

{{/* Pod security context shared by every voicebot pod. */}}
{{- define "voicebot.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{/* Container security context: non-root, read-only root filesystem, no capabilities. */}}
{{- define "voicebot.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{- define "voicebot.redisHost" -}}
{{- printf "%s-redis" (include "voicebot.fullname" .) }}
{{- end }}

{{/*
Settings every voicebot process reads (VOICEBOT_* common settings, OTEL). Secret values come from
the secret by reference; optional ones stay unset when the key is missing.
*/}}
{{- define "voicebot.commonEnv" -}}
{{- $ctx := .ctx -}}
{{- $secret := include "voicebot.secretName" $ctx -}}
{{- if $ctx.Values.redis.bundled.enabled }}
{{- if $ctx.Values.redis.bundled.auth.enabled }}
- name: VOICEBOT_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: redis-password
- name: VOICEBOT_REDIS_URL
  value: {{ printf "redis://:$(VOICEBOT_REDIS_PASSWORD)@%s:%d/%d" (include "voicebot.redisHost" $ctx) (int $ctx.Values.redis.bundled.port) (int $ctx.Values.redis.database) | quote }}
{{- else }}
- name: VOICEBOT_REDIS_URL
  value: {{ printf "redis://%s:%d/%d" (include "voicebot.redisHost" $ctx) (int $ctx.Values.redis.bundled.port) (int $ctx.Values.redis.database) | quote }}
{{- end }}
{{- else if $ctx.Values.redis.url }}
- name: VOICEBOT_REDIS_URL
  value: {{ $ctx.Values.redis.url | quote }}
{{- else }}
- name: VOICEBOT_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: redis-url
{{- end }}
{{- with $ctx.Values.redis.sentinel }}
{{- if .hosts }}
{{- if $ctx.Values.redis.bundled.enabled }}
{{- fail "redis.sentinel.hosts and redis.bundled.enabled exclude each other (the bundled Redis is a single node)" }}
{{- end }}
- name: VOICEBOT_REDIS_SENTINELS
  value: {{ join "," .hosts | quote }}
- name: VOICEBOT_REDIS_SENTINEL_MASTER
  value: {{ required "redis.sentinel.masterName is required with redis.sentinel.hosts" .masterName | quote }}
- name: VOICEBOT_REDIS_FAILOVER_RETRY_S
  value: {{ .failoverRetrySeconds | quote }}
{{- if .auth.enabled }}
- name: VOICEBOT_REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .auth.existingSecret | default $secret }}
      key: {{ .auth.key }}
{{- end }}
{{- end }}
{{- end }}
- name: VOICEBOT_REDIS_PREFIX
  value: {{ $ctx.Values.redis.keyPrefix | quote }}
- name: VOICEBOT_TWILIO_ACCOUNT_SID
  value: {{ $ctx.Values.twilio.accountSid | quote }}
- name: VOICEBOT_TWILIO_API_BASE_URL
  value: {{ $ctx.Values.twilio.apiBaseUrl | quote }}
- name: VOICEBOT_TWILIO_AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: twilio-auth-token
- name: VOICEBOT_STREAM_TICKET_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: stream-ticket-secret
- name: VOICEBOT_AGENT_PROFILES_PATH
  value: /etc/voicebot/profiles/{{ $ctx.Values.agentProfiles.key }}
- name: VOICEBOT_TRANSFER_SIP_HOSTS
  value: {{ $ctx.Values.agentProfiles.transferSipHosts | quote }}
- name: VOICEBOT_LOG_LEVEL
  value: {{ $ctx.Values.logLevel | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "voicebot-%s" .component | quote }}
{{- with $ctx.Values.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- /* Caches of libraries that want a writable HOME on a read-only root filesystem. */}}
- name: HOME
  value: /tmp
{{- end }}

{{/* One optional env var taken from the secret. Call with (dict "ctx" $ "name" "VOICEBOT_X" "key" "x"). */}}
{{- define "voicebot.optionalSecretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "voicebot.secretName" .ctx }}
      key: {{ .key }}
      optional: true
{{- end }}

{{/* Volumes every voicebot pod mounts: agent profiles and a scratch /tmp. */}}
{{- define "voicebot.commonVolumes" -}}
- name: agent-profiles
  configMap:
    name: {{ include "voicebot.profilesConfigMapName" . }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{- define "voicebot.commonVolumeMounts" -}}
- name: agent-profiles
  mountPath: /etc/voicebot/profiles
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
Refuse to render when a drain could outlive the pod: the kubelet kills the container
terminationGracePeriodSeconds after the pod starts terminating, preStop delay included, so a
longer drain would cut live calls. Call with (dict "component" "gateway" "delay" N "drain" N "grace" N).
*/}}
{{- define "voicebot.assertDrainFits" -}}
{{- $wait := add (int .delay) (int .drain) -}}
{{- if gt (int $wait) (int .grace) -}}
{{- fail (printf "%s: drain wait %ds (preStop delay %ds + drain timeout %ds) exceeds terminationGracePeriodSeconds %ds; raise %s.terminationGracePeriodSeconds or lower %s.drain.timeoutSeconds so live calls are not killed" .component (int $wait) (int .delay) (int .drain) (int .grace) .component .component) -}}
{{- end -}}
{{- end }}

{{/* bot-worker settings (VOICEBOT_WORKER_* are the worker's own). */}}
{{- define "voicebot.workerEnv" -}}
{{- $c := .Values.botWorker -}}
- name: VOICEBOT_WORKER_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: VOICEBOT_WORKER_ADVERTISE_URL
  value: {{ printf "ws://$(POD_IP):%d" (int $c.port) | quote }}
- name: VOICEBOT_WORKER_HOST
  value: "0.0.0.0"
- name: VOICEBOT_WORKER_PORT
  value: {{ $c.port | quote }}
- name: VOICEBOT_WORKER_CAPACITY
  value: {{ $c.capacity | quote }}
- name: VOICEBOT_WORKER_RECORDING_SEGMENT_S
  value: {{ $c.recordingSegmentSeconds | quote }}
- name: VOICEBOT_WORKER_DRAIN_TIMEOUT_S
  value: {{ $c.drain.timeoutSeconds | quote }}
- name: VOICEBOT_MODELS_DIR
  value: /models
- name: HF_HUB_OFFLINE
  value: "1"
{{- if .Values.llmServer.enabled }}
- name: VOICEBOT_WORKER_LLM_BASE_URL
  value: {{ printf "http://%s:%d/v1" (include "voicebot.componentName" (dict "ctx" $ "component" "llm-server")) (int .Values.llmServer.port) | quote }}
{{- end }}
{{- end }}

{{/*
Dialer settings shared by the dialer API, its Celery worker and the retention job. The API keys are
not among them: only the API reads them, from the file of voicebot.dialerApiKeysVolume.
*/}}
{{- define "voicebot.dialerEnv" -}}
- name: VOICEBOT_GATEWAY_PUBLIC_BASE_URL
  value: {{ .Values.publicBaseUrl | quote }}
{{- with .Values.dialer.fromNumbers }}
- name: VOICEBOT_DIALER_FROM_NUMBERS
  value: {{ . | quote }}
{{- end }}
- name: VOICEBOT_DIALER_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "voicebot.secretName" . }}
      key: dialer-webhook-secret
{{- end }}

{{/* Directory of the dialer API keys file in the dialer API pods (the Secret key dialer-api-keys, file "keys"). */}}
{{- define "voicebot.dialerApiKeysDir" -}}
/etc/voicebot/dialer-api-keys
{{- end }}

{{/*
The dialer API's keys as a file, not an env var: the Secret key dialer-api-keys mounted as a
directory (no subPath), so the kubelet replaces the file when the Secret changes and the API,
which re-reads VOICEBOT_DIALER_API_KEYS_FILE when it changes, rotates keys without a restart.
*/}}
{{- define "voicebot.dialerApiKeysEnv" -}}
- name: VOICEBOT_DIALER_API_KEYS_FILE
  value: {{ printf "%s/keys" (include "voicebot.dialerApiKeysDir" .) | quote }}
{{- end }}

{{- define "voicebot.dialerApiKeysVolume" -}}
- name: dialer-api-keys
  secret:
    secretName: {{ include "voicebot.secretName" . }}
    defaultMode: 0440
    items:
      - key: dialer-api-keys
        path: keys
{{- end }}

{{- define "voicebot.dialerApiKeysVolumeMount" -}}
- name: dialer-api-keys
  mountPath: {{ include "voicebot.dialerApiKeysDir" . }}
  readOnly: true
{{- end }}

{{/*
Storage of call recordings and transcripts, read by the bot-worker and the dialer (API, Celery
worker, retention job) alike. Refuses backend=s3 without endpoint or bucket; the S3 keys always
come from the Secret (required references: a pod whose Secret lacks them does not start).
*/}}
{{- define "voicebot.storageEnv" -}}
{{- $s := .Values.storage -}}
- name: VOICEBOT_STORAGE_BACKEND
  value: {{ $s.backend | quote }}
- name: VOICEBOT_CALL_DATA_RETENTION_DAYS
  value: {{ $s.retentionDays | quote }}
{{- if eq $s.backend "s3" }}
- name: VOICEBOT_STORAGE_S3_ENDPOINT
  value: {{ required "storage.s3.endpoint is required when storage.backend=s3 (host[:port] of the S3-compatible endpoint, e.g. s3.amazonaws.com)" $s.s3.endpoint | quote }}
- name: VOICEBOT_STORAGE_S3_SECURE
  value: {{ ternary "true" "false" $s.s3.secure | quote }}
{{- with $s.s3.region }}
- name: VOICEBOT_STORAGE_S3_REGION
  value: {{ . | quote }}
{{- end }}
- name: VOICEBOT_STORAGE_S3_BUCKET
  value: {{ required "storage.s3.bucket is required when storage.backend=s3" $s.s3.bucket | quote }}
{{- with $s.s3.prefix }}
- name: VOICEBOT_STORAGE_S3_PREFIX
  value: {{ . | quote }}
{{- end }}
- name: VOICEBOT_STORAGE_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "voicebot.secretName" . }}
      key: storage-s3-access-key
- name: VOICEBOT_STORAGE_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "voicebot.secretName" . }}
      key: storage-s3-secret-key
{{- else }}
- name: VOICEBOT_STORAGE_DIR
  value: /data/calls
{{- end }}
{{- end }}

{{/*
backend=filesystem: the call-data volume (the shared claim, else an emptyDir per pod) and its
mount at /data/calls; empty with backend=s3, so include them with
{{- with include "voicebot.storageVolumes" . }}{{ . | nindent N }}{{- end }}.
*/}}
{{- define "voicebot.storageVolumes" -}}
{{- $fs := .Values.storage.filesystem -}}
{{- if eq .Values.storage.backend "filesystem" -}}
- name: call-data
  {{- if $fs.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ $fs.existingClaim }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ $fs.sizeLimit }}
  {{- end }}
{{- end }}
{{- end }}

{{- define "voicebot.storageVolumeMounts" -}}
{{- if eq .Values.storage.backend "filesystem" -}}
- name: call-data
  mountPath: /data/calls
{{- end }}
{{- end }}

{{/* "true" when the retention CronJob is rendered (storage.retentionJob.enabled with the dialer), else empty. */}}
{{- define "voicebot.retentionJobEnabled" -}}
{{- if and .Values.dialerApi.enabled .Values.storage.retentionJob.enabled -}}
true
{{- end -}}
{{- end }}

{{/* NetworkPolicy peer: Prometheus pods (any pod in the namespaces Prometheus runs in). */}}
{{- define "voicebot.prometheusPeer" -}}
- namespaceSelector:
    matchLabels:
      {{- toYaml .Values.networkPolicy.prometheusNamespaceSelector | nindent 6 }}
{{- end }}

{{/* NetworkPolicy peer: pods of one component of this release, same namespace. */}}
{{- define "voicebot.componentPeer" -}}
- podSelector:
    matchLabels:
      {{- include "voicebot.selectorLabels" . | nindent 6 }}
{{- end }}

{{/*
Target of the bot-worker autoscaler in active calls per pod, in thousandths of a call (an
integer: 2800 is 2.8 calls). Unset (null): 70 % of botWorker.capacity, so new calls still find
free slots while added pods start. Refuses a target at or above capacity: the per-pod average of
active calls can never exceed capacity, so such an autoscaler would never add a pod.
Call with (dict "ctx" $ "target" <value> "name" "botWorker.autoscaling.targetActiveCallsPerPod").
*/}}
{{- define "voicebot.botWorkerTargetMilli" -}}
{{- $capacity := int .ctx.Values.botWorker.capacity -}}
{{- $milli := mul $capacity 700 -}}
{{- if not (kindIs "invalid" .target) -}}
{{- $milli = round (mulf (float64 .target) 1000) 0 | int -}}
{{- if lt (int $milli) 1 -}}
{{- fail (printf "%s must be above 0 (got %v)" .name .target) -}}
{{- end -}}
{{- if ge (int $milli) (mul $capacity 1000) -}}
{{- fail (printf "%s (%v) must be below botWorker.capacity (%d): the average of active calls per pod never exceeds the capacity, so the autoscaler would never add a pod; lower it, or leave it unset (null) for 70%% of capacity" .name .target $capacity) -}}
{{- end -}}
{{- end -}}
{{- $milli -}}
{{- end }}

{{/* That target as a decimal string without trailing zeros ("2.8", "5"), e.g. for KEDA's threshold. */}}
{{- define "voicebot.botWorkerTargetDecimal" -}}
{{- $milli := int (include "voicebot.botWorkerTargetMilli" .) -}}
{{- if eq (mod $milli 1000) 0 -}}
{{- div $milli 1000 -}}
{{- else -}}
{{- printf "%d.%03d" (div $milli 1000) (mod $milli 1000) | trimSuffix "0" | trimSuffix "0" -}}
{{- end -}}
{{- end }}

{{/* That target as a Kubernetes quantity ("2800m", "5"), e.g. for the HPA's averageValue. */}}
{{- define "voicebot.botWorkerTargetQuantity" -}}
{{- $milli := int (include "voicebot.botWorkerTargetMilli" .) -}}
{{- if eq (mod $milli 1000) 0 -}}
{{- div $milli 1000 -}}
{{- else -}}
{{- printf "%dm" $milli -}}
{{- end -}}
{{- end }}

{{/*
Checksum of a ConfigMap template's data only, for a pod annotation that rolls the pods when the
data changes. Not of the whole rendered object: its labels carry the chart version, and a
chart-only release must not roll pods. Call with (dict "ctx" $ "template" "/agent-profiles-configmap.yaml").
*/}}
{{- define "voicebot.configDataChecksum" -}}
{{- (include (print .ctx.Template.BasePath .template) .ctx | fromYaml).data | toYaml | sha256sum -}}
{{- end }}
