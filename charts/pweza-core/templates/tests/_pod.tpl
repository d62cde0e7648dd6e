{{- /*
The pod of a `helm test` Job: the pweza image calling the manager with a token of role operator.
(dict "root" $ "args" (list ...) "volumes" bool "initContainers" (list (list args...)))
*/ -}}
{{- define "pweza-core.testPod" -}}
{{- $root := .root }}
{{- $tokenSecret := $root.Values.tests.tokenSecret | default $root.Values.operator.managerToken.secretName }}
{{- $image := include "pweza-core.image" (dict "root" $root "image" $root.Values.manager.image) }}
{{- $env := list
  (dict "name" "PWEZA_URL" "value" (printf "%s://%s:%v" (include "pweza-core.scheme" $root) (include "pweza-core.managerHost" $root) $root.Values.manager.ports.http))
  (dict "name" "PWEZA_TOKEN" "valueFrom" (dict "secretKeyRef" (dict "name" $tokenSecret "key" $root.Values.tests.tokenKey)))
  (dict "name" "HOME" "value" "/tmp") }}
metadata:
  labels:
    {{- include "pweza-core.componentLabels" (dict "root" $root "component" "test") | nindent 4 }}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    {{- toYaml $root.Values.manager.podSecurityContext | nindent 4 }}
  {{- with .initContainers }}
  initContainers:
    {{- range $index, $args := . }}
    - name: step-{{ $index }}
      image: {{ $image | quote }}
      args: {{ toJson $args }}
      env: {{ toJson $env }}
      # A namespace with a LimitRange or ResourceQuota refuses containers without them.
      resources:
        requests: {cpu: 50m, memory: 128Mi, ephemeral-storage: 16Mi}
        limits: {cpu: 500m, memory: 256Mi, ephemeral-storage: 256Mi}
      securityContext:
        {{- toYaml $root.Values.manager.securityContext | nindent 8 }}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
    {{- end }}
  {{- end }}
  containers:
    - name: test
      image: {{ $image | quote }}
      args: {{ toJson .args }}
      env: {{ toJson $env }}
      resources:
        requests: {cpu: 50m, memory: 128Mi, ephemeral-storage: 16Mi}
        limits: {cpu: 500m, memory: 256Mi, ephemeral-storage: 256Mi}
      securityContext:
        {{- toYaml $root.Values.manager.securityContext | nindent 8 }}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
        {{- if .workflow }}
        - {name: workflow, mountPath: /etc/pweza-tests, readOnly: true}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir: {}
    {{- if .workflow }}
    - name: workflow
      configMap:
        name: {{ include "pweza-core.fullname" $root }}-test-workflow
    {{- end }}
{{- end }}

{{- define "pweza-core.testJobMeta" -}}
namespace: {{ include "pweza-core.systemNamespace" .root }}
labels:
  {{- include "pweza-core.componentLabels" (dict "root" .root "component" "test") | nindent 2 }}
annotations:
  helm.sh/hook: test
  helm.sh/hook-weight: {{ .weight | quote }}
  helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end }}
