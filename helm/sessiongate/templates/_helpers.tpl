{{/*
Every helper here works in two contexts: this chart's own templates, and the app's chart that depends on
this one and includes "sessiongate.sidecar" in its pod spec. There `.Values` is the app chart's, and this
chart's values are under `.Values.sessiongate`. An app chart that aliases the dependency passes
(dict "Values" .Values.<alias> "Release" .Release) instead of `.`.
*/}}
{{- define "sessiongate.values" -}}
{{- if and (hasKey .Values "sessiongate") (kindIs "map" .Values.sessiongate) -}}
{{- toYaml .Values.sessiongate -}}
{{- else -}}
{{- toYaml .Values -}}
{{- end -}}
{{- end -}}

{{- define "sessiongate.fullname" -}}
{{- $v := include "sessiongate.values" . | fromYaml -}}
{{- $v.fullnameOverride | default (printf "%s-sessiongate" .Release.Name) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sessiongate.selectorLabels" -}}
app.kubernetes.io/name: sessiongate
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sessiongate.labels" -}}
{{ include "sessiongate.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sessiongate
{{- end -}}

{{/* A duration as the gateway writes it (500ms, 5s, 1.5m, 1h) -> milliseconds. */}}
{{- define "sessiongate.ms" -}}
{{- $s := toString . | trim -}}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$" $s) -}}
{{- fail (printf "sessiongate: expected a duration such as 500ms, 5s or 1m, got %q" $s) -}}
{{- end -}}
{{- $n := regexReplaceAll "^([0-9.]+)[a-z]+$" $s "${1}" | float64 -}}
{{- $unit := regexReplaceAll "^[0-9.]+([a-z]+)$" $s "${1}" -}}
{{- mulf $n (get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit) -}}
{{- end -}}

{{/*
The pod's terminationGracePeriodSeconds: the gateway keeps serving for shutdown.delay, drains for
shutdown.grace, and gets exitSeconds to close the store and exit; past the sum the kubelet SIGKILLs it.
*/}}
{{- define "sessiongate.terminationGracePeriodSeconds" -}}
{{- $v := include "sessiongate.values" . | fromYaml -}}
{{- $ms := addf (include "sessiongate.ms" $v.shutdown.delay) (include "sessiongate.ms" $v.shutdown.grace) -}}
{{- add (ceil (divf $ms 1000) | int) (int $v.shutdown.exitSeconds) -}}
{{- end -}}

{{/* Refuses values that would deploy a gateway that cannot work or leaks a secret; one message each. */}}
{{- define "sessiongate.validate" -}}
{{- $v := include "sessiongate.values" . | fromYaml -}}
{{- if $v.secrets.create -}}
{{- if or (lt (len $v.secrets.secret) 16) (lt (len $v.secrets.adminToken) 16) -}}
{{- fail "sessiongate: secrets.create needs secrets.secret and secrets.adminToken, 16 characters or more each" -}}
{{- end -}}
{{- else if not $v.secrets.existingSecret -}}
{{- fail "sessiongate: secrets.existingSecret is required: a Secret with the token-id key and the admin token (or secrets.create: true for a trial)" -}}
{{- end -}}
{{- if eq $v.store.type "redis" -}}
{{- if and $v.store.redis.url $v.store.redis.existingSecret -}}
{{- fail "sessiongate: store.redis: give url or existingSecret, not both" -}}
{{- end -}}
{{- if not (or $v.store.redis.url $v.store.redis.existingSecret) -}}
{{- fail "sessiongate: store.redis.url or store.redis.existingSecret is required with store.type: redis" -}}
{{- end -}}
{{- if regexMatch "^rediss?://[^/@]*@" ($v.store.redis.url | default "") -}}
{{- fail "sessiongate: store.redis.url carries credentials, which would land in a ConfigMap: put the URL in a Secret (store.redis.existingSecret)" -}}
{{- end -}}
{{- end -}}
{{- if eq $v.mode "standalone" -}}
{{- if not $v.upstream.url -}}
{{- fail "sessiongate: upstream.url is required in standalone mode (the Service in front of the app, http://app.namespace.svc:80)" -}}
{{- end -}}
{{- if and (eq $v.store.type "memory") (or (gt (int $v.replicas) 1) $v.autoscaling.enabled) -}}
{{- fail "sessiongate: store.type: memory counts sessions per replica, so a user could hold a session on each: use store.type: redis with more than one replica (or autoscaling)" -}}
{{- end -}}
{{- else if $v.serviceMonitor.enabled -}}
{{- fail "sessiongate: serviceMonitor is for standalone mode; in sidecar mode scrape the app's pods on port sg-admin (a PodMonitor in the app's chart)" -}}
{{- end -}}
{{- range $key := list "listen" "upstream" "store" "secret" "shutdown" "shutdownGrace" -}}
{{- if hasKey ($v.config | default dict) $key -}}
{{- fail (printf "sessiongate: config.%s is set by the chart (from ports, upstream, store, secrets, shutdown); remove it from config" $key) -}}
{{- end -}}
{{- end -}}
{{- if and (hasKey ($v.config | default dict) "admin") (or (hasKey $v.config.admin "listen") (hasKey $v.config.admin "token")) -}}
{{- fail "sessiongate: config.admin.listen and config.admin.token are set by the chart (ports.admin, secrets); remove them from config" -}}
{{- end -}}
{{- end -}}

{{/* The gateway's configuration file: values.config plus the keys the chart owns. */}}
{{- define "sessiongate.config" -}}
{{- include "sessiongate.validate" . -}}
{{- $v := include "sessiongate.values" . | fromYaml -}}
{{- $c := deepCopy ($v.config | default dict) -}}
{{- $_ := set $c "listen" (printf "0.0.0.0:%d" (int $v.ports.http)) -}}
{{- if eq $v.mode "sidecar" -}}
{{- $_ := set $c "upstream" (printf "http://127.0.0.1:%d" (int $v.upstream.appPort)) -}}
{{- else -}}
{{- $_ := set $c "upstream" $v.upstream.url -}}
{{- end -}}
{{- if eq $v.store.type "memory" -}}
{{- $_ := set $c "store" "memory" -}}
{{- else -}}
{{- $url := $v.store.redis.url | default "${SESSIONGATE_REDIS_URL}" -}}
{{- $_ := set $c "store" (dict "url" $url "keyPrefix" $v.store.redis.keyPrefix) -}}
{{- end -}}
{{- $_ := set $c "secret" "${SESSIONGATE_SECRET}" -}}
{{- $admin := deepCopy ($c.admin | default dict) -}}
{{- $_ := set $admin "listen" (printf "0.0.0.0:%d" (int $v.ports.admin)) -}}
{{- $_ := set $admin "token" "${SESSIONGATE_ADMIN_TOKEN}" -}}
{{- $_ := set $c "admin" $admin -}}
{{- $_ := set $c "shutdown" (dict "delay" $v.shutdown.delay "grace" $v.shutdown.grace) -}}
{{- toYaml $c -}}
{{- end -}}

{{- define "sessiongate.secretName" -}}
{{- $v := include "sessiongate.values" . | fromYaml -}}
{{- if $v.secrets.create -}}{{ include "sessiongate.fullname" . }}{{- else -}}{{ $v.secrets.existingSecret }}{{- end -}}
{{- end -}}

{{/* The Service targetPort that sends traffic through the gateway (sidecar mode: the app's Service). */}}
{{- define "sessiongate.targetPort" -}}sg-http{{- end -}}

{{/* Pod annotations: a config change rolls the pods. */}}
{{- define "sessiongate.podAnnotations" -}}
checksum/sessiongate-config: {{ include "sessiongate.config" . | sha256sum }}
{{- end -}}

{{/* The gateway container, a list item for a pod's `containers:`. */}}
{{- define "sessiongate.sidecar" -}}
{{- $v := include "sessiongate.values" . | fromYaml -}}
- name: sessiongate
  image: "{{ $v.image.repository }}:{{ $v.image.tag }}"
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: ["--config", "/etc/sessiongate/config.yaml"]
  ports:
    - name: sg-http
      containerPort: {{ $v.ports.http }}
      protocol: TCP
    - name: sg-admin
      containerPort: {{ $v.ports.admin }}
      protocol: TCP
  env:
    - name: SESSIONGATE_SECRET
      valueFrom:
        secretKeyRef:
          name: {{ include "sessiongate.secretName" . }}
          key: {{ $v.secrets.secretKey }}
    - name: SESSIONGATE_ADMIN_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ include "sessiongate.secretName" . }}
          key: {{ $v.secrets.adminTokenKey }}
    {{- if and (eq $v.store.type "redis") $v.store.redis.existingSecret }}
    - name: SESSIONGATE_REDIS_URL
      valueFrom:
        secretKeyRef:
          name: {{ $v.store.redis.existingSecret }}
          key: {{ $v.store.redis.existingSecretKey }}
    {{- end }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: sg-admin
    periodSeconds: {{ $v.probes.readiness.periodSeconds }}
    failureThreshold: {{ $v.probes.readiness.failureThreshold }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: sg-admin
    periodSeconds: {{ $v.probes.liveness.periodSeconds }}
    failureThreshold: {{ $v.probes.liveness.failureThreshold }}
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  securityContext:
    runAsNonRoot: true
    runAsUser: {{ $v.runAsUser }}
    runAsGroup: {{ $v.runAsGroup }}
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities:
      drop: [ALL]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    - name: sessiongate-config
      mountPath: /etc/sessiongate
      readOnly: true
    - name: sessiongate-tmp
      mountPath: /tmp
{{- end -}}

{{/* The gateway's volumes, list items for the pod's `volumes:`. */}}
{{- define "sessiongate.volumes" -}}
- name: sessiongate-config
  configMap:
    name: {{ include "sessiongate.fullname" . }}
- name: sessiongate-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}
