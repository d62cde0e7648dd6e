{{/*
Names, labels and small building blocks shared by every template.
*/}}

{{- define "pweza-core.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's base name: "pweza-core" for `helm install pweza-core ...`, so that the objects
get the seed's names (pweza-core-manager, pweza-core-secrets, pweza-core-config, ...).
*/}}
{{- define "pweza-core.fullname" -}}
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

{{- define "pweza-core.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "pweza-core.labels" -}}
helm.sh/chart: {{ include "pweza-core.chart" . }}
app.kubernetes.io/name: {{ include "pweza-core.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pweza-core
{{- end }}

{{/*
Labels of one component: (dict "root" $ "component" "manager").
`app: <fullname>-<component>` is the seed's selector label (pweza-core-manager).
*/}}
{{- define "pweza-core.componentLabels" -}}
{{ include "pweza-core.labels" .root }}
app.kubernetes.io/component: {{ .component }}
app: {{ include "pweza-core.fullname" .root }}-{{ .component }}
{{- end }}

{{/* The selector of one component's pods: the seed's `app` label. */}}
{{- define "pweza-core.selectorLabels" -}}
app: {{ include "pweza-core.fullname" .root }}-{{ .component }}
{{- end }}

{{- define "pweza-core.managerName" -}}
{{- include "pweza-core.fullname" . }}-manager
{{- end }}

{{- define "pweza-core.operatorName" -}}
{{- include "pweza-core.fullname" . }}-operator
{{- end }}

{{- define "pweza-core.configMapName" -}}
{{- include "pweza-core.fullname" . }}-config
{{- end }}

{{/* Where the manager and the operator run (the seed's .Values.namespace.system). */}}
{{- define "pweza-core.systemNamespace" -}}
{{- .Values.namespace.system | default .Release.Namespace }}
{{- end }}

{{- define "pweza-core.agentsNamespace" -}}
{{- .Values.namespace.agents | default (include "pweza-core.systemNamespace" .) }}
{{- end }}

{{- define "pweza-core.dataNamespace" -}}
{{- .Values.namespace.data | default (include "pweza-core.systemNamespace" .) }}
{{- end }}

{{- define "pweza-core.monitoringNamespace" -}}
{{- .Values.namespace.monitoring | default (include "pweza-core.systemNamespace" .) }}
{{- end }}

{{/* The manager's in-cluster DNS name. */}}
{{- define "pweza-core.managerHost" -}}
{{- printf "%s.%s.svc" (include "pweza-core.managerName" .) (include "pweza-core.systemNamespace" .) }}
{{- end }}

{{- define "pweza-core.managerFQDN" -}}
{{- printf "%s.%s.svc.%s" (include "pweza-core.managerName" .) (include "pweza-core.systemNamespace" .) .Values.clusterDomain }}
{{- end }}

{{/*
The one pweza-core image (manager, operator and agents): (dict "root" $ "image" .Values.manager.image).
Empty fields of the component's image fall back to .Values.image; the tag to the chart's appVersion.
*/}}
{{- define "pweza-core.image" -}}
{{- $global := .root.Values.image }}
{{- $own := .image | default dict }}
{{- $repository := $own.repository | default $global.repository }}
{{- $tag := $own.tag | default $global.tag | default .root.Chart.AppVersion }}
{{- printf "%s:%s" $repository (toString $tag) }}
{{- end }}

{{- define "pweza-core.pullPolicy" -}}
{{- $own := .image | default dict }}
{{- $own.pullPolicy | default .root.Values.image.pullPolicy }}
{{- end }}

{{/*
The database (database.mode: sqlite | bundled | cloudnativepg | external), checked once here
so that every template can rely on a coherent set of values.
*/}}
{{- define "pweza-core.databaseMode" -}}
{{- $db := .Values.database }}
{{- if and (eq $db.mode "sqlite") (or $db.url $db.existingSecret) }}
{{- fail "database: url and existingSecret name an external database; set database.mode=external" }}
{{- end }}
{{- if and (eq $db.mode "external") (not (or $db.url $db.existingSecret)) }}
{{- fail "database.mode=external: set database.existingSecret (a Secret you manage) or database.url" }}
{{- end }}
{{- if and (eq $db.mode "cloudnativepg") $db.cloudnativepg.backup.enabled (not $db.cloudnativepg.backup.destinationPath) }}
{{- fail "database.cloudnativepg.backup.enabled: set backup.destinationPath (s3://bucket/path), or backup.enabled=false" }}
{{- end }}
{{- $db.mode }}
{{- end }}

{{/* True when the manager's database is SQLite (one file, so one manager replica). */}}
{{- define "pweza-core.sqlite" -}}
{{- if eq (include "pweza-core.databaseMode" .) "sqlite" }}true{{ end }}
{{- end }}

{{/* True when the chart writes <fullname>-secrets (sqlite, bundled, external with database.url). */}}
{{- define "pweza-core.chartWritesDatabaseSecret" -}}
{{- $mode := include "pweza-core.databaseMode" . }}
{{- if or (eq $mode "sqlite") (eq $mode "bundled") (and (eq $mode "external") (not .Values.database.existingSecret)) }}true{{ end }}
{{- end }}

{{/* The Secret and key the manager reads DATABASE_URL from, per mode. */}}
{{- define "pweza-core.databaseSecretName" -}}
{{- $mode := include "pweza-core.databaseMode" . }}
{{- if eq $mode "cloudnativepg" }}
{{- /* CNPG writes <cluster>-app (username, password, host, uri, ...) beside the Cluster. */}}
{{- include "pweza-core.cnpgName" . }}-app
{{- else if and (eq $mode "external") .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- include "pweza-core.fullname" . }}-secrets
{{- end }}
{{- end }}

{{- define "pweza-core.databaseSecretKey" -}}
{{- if eq (include "pweza-core.databaseMode" .) "cloudnativepg" }}uri{{ else }}{{ .Values.database.secretKey }}{{ end }}
{{- end }}

{{/* The URL the chart writes to <fullname>-secrets. */}}
{{- define "pweza-core.databaseURL" -}}
{{- $mode := include "pweza-core.databaseMode" . }}
{{- if eq $mode "bundled" }}
{{- $bundled := .Values.database.bundled }}
{{- printf "postgresql://%s:%s@%s:5432/%s" $bundled.user (include "pweza-core.postgresPassword" .) (include "pweza-core.postgresHost" .) $bundled.database }}
{{- else if eq $mode "external" }}
{{- .Values.database.url }}
{{- else }}
{{- printf "sqlite:///%s/pweza.db" .Values.manager.persistence.mountPath }}
{{- end }}
{{- end }}

{{/* The bundled PostgreSQL: StatefulSet, Services and password Secret share this name. */}}
{{- define "pweza-core.postgresName" -}}
{{- include "pweza-core.fullname" . }}-postgres
{{- end }}

{{- define "pweza-core.postgresHost" -}}
{{- printf "%s.%s.svc.%s" (include "pweza-core.postgresName" .) (include "pweza-core.dataNamespace" .) .Values.clusterDomain }}
{{- end }}

{{/*
The bundled PostgreSQL's password: the one in its Secret when the release already made it
(`lookup`, so upgrades keep it: the data directory was initialised with it), else a new one.
Two Secrets and a checksum need the same value in one render, so the first call keeps it in
the values (only for this render: values.schema.json is checked before, nothing stores it).
*/}}
{{- define "pweza-core.postgresPassword" -}}
{{- $bundled := .Values.database.bundled }}
{{- if not (hasKey $bundled "generatedPassword") }}
{{- $found := lookup "v1" "Secret" (include "pweza-core.dataNamespace" .) (include "pweza-core.postgresName" .) }}
{{- $password := "" }}
{{- if and $found $found.data (hasKey $found.data "password") }}
{{- $password = index $found.data "password" | b64dec }}
{{- else }}
{{- $password = randAlphaNum 32 }}
{{- end }}
{{- $_ := set $bundled "generatedPassword" $password }}
{{- end }}
{{- $bundled.generatedPassword }}
{{- end }}

{{/* The CloudNativePG Cluster (its pods carry cnpg.io/cluster: <name>) and its Pooler. */}}
{{- define "pweza-core.cnpgName" -}}
{{- .Values.database.cloudnativepg.name | default (printf "%s-postgres" (include "pweza-core.fullname" .)) }}
{{- end }}

{{- define "pweza-core.cnpgPoolerName" -}}
{{- include "pweza-core.cnpgName" . }}-pooler
{{- end }}

{{/* A database volume's StorageClass: its own value, else the chart's class when it creates one, else "" (the cluster's default). */}}
{{- define "pweza-core.databaseStorageClass" -}}
{{- $sc := .root.Values.database.storageClass }}
{{- .own | default (ternary $sc.name "" $sc.create) }}
{{- end }}

{{/* Namespace labels: the seed's `name` and `istio-injection`, plus Pod Security Admission. */}}
{{- define "pweza-core.namespaceLabels" -}}
{{- $root := .root }}
{{- $level := index $root.Values.namespace.podSecurity .key }}
name: {{ .name }}
istio-injection: {{ ternary "enabled" "disabled" (and $root.Values.istio.enabled $root.Values.istio.injection) }}
pod-security.kubernetes.io/enforce: {{ $level.enforce }}
pod-security.kubernetes.io/enforce-version: {{ $root.Values.namespace.podSecurityVersion }}
pod-security.kubernetes.io/warn: {{ $level.warn | default $level.enforce }}
pod-security.kubernetes.io/warn-version: {{ $root.Values.namespace.podSecurityVersion }}
pod-security.kubernetes.io/audit: {{ $level.audit | default $level.warn | default $level.enforce }}
pod-security.kubernetes.io/audit-version: {{ $root.Values.namespace.podSecurityVersion }}
{{- end }}

{{/* The HTTP scheme of the manager's endpoints. */}}
{{- define "pweza-core.scheme" -}}
{{- if and .Values.tls.enabled .Values.tls.serve }}https{{ else }}http{{ end }}
{{- end }}

{{/* The admission webhook's serving certificate: Secret, mount, and the Service DNS names it is for. */}}
{{- define "pweza-core.webhookSecretName" -}}
{{- include "pweza-core.operatorName" . }}-webhook-tls
{{- end }}

{{- define "pweza-core.webhookMountPath" -}}
/etc/pweza-operator-webhook
{{- end }}

{{- define "pweza-core.webhookEnabled" -}}
{{- if and .Values.operator.enabled .Values.admissionWebhook.enabled }}true{{ end }}
{{- end }}

{{/* Whether cert-manager issues the webhook's certificate: its own switch, or (null) the chart's. */}}
{{- define "pweza-core.webhookCertManager" -}}
{{- $own := .Values.admissionWebhook.certManager.enabled }}
{{- if kindIs "invalid" $own }}
{{- if and .Values.tls.enabled .Values.tls.certManager.enabled }}true{{ end }}
{{- else if $own }}true{{ end }}
{{- end }}
