{{/*
The chart name, or nameOverride.
*/}}
{{- define "federation-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every object: fullnameOverride, else the release name, with the chart name
appended unless the release name already contains it. At most 63 characters (DNS labels).
*/}}
{{- define "federation-controller.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "federation-controller.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The labels that select the controller's pods. They never change after an install (a
Deployment's selector is immutable).
*/}}
{{- define "federation-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "federation-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The standard labels of every object. Note: app.kubernetes.io/managed-by is Helm's here; the
controller marks what *it* creates with app.kubernetes.io/managed-by=federation-controller and
watches that label, so the chart's objects never carry that value.
*/}}
{{- define "federation-controller.labels" -}}
helm.sh/chart: {{ include "federation-controller.chart" . }}
{{ include "federation-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: federation-controller
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The ServiceAccount the controller runs as.
*/}}
{{- define "federation-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "federation-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The controller image: repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "federation-controller.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
"true" when the controller may use a foreign control-plane namespace: the flag is on and it
watches every namespace (with --namespace it refuses them).
*/}}
{{- define "federation-controller.foreignNamespaces" -}}
{{- if and .Values.allowForeignControlPlaneNamespaces (not .Values.watchNamespace) }}true{{ end }}
{{- end }}

{{/*
"true" when the controller may make cluster-scoped installer bindings (same reasoning).
*/}}
{{- define "federation-controller.clusterScopedCharts" -}}
{{- if and (or .Values.allowClusterScopedCharts (include "federation-controller.clusterAdmin" .)) (not .Values.watchNamespace) }}true{{ end }}
{{- end }}

{{/*
"true" when the controller may create a namespace of its own for an enablement and delete it:
a foreign control-plane namespace, or a Karmada one (installer.allowClusterAdmin).
*/}}
{{- define "federation-controller.createsNamespaces" -}}
{{- if or (include "federation-controller.foreignNamespaces" .) (include "federation-controller.clusterAdmin" .) }}true{{ end }}
{{- end }}

{{/*
"true" when Karmada enablements may install as cluster-admin (installer.allowClusterAdmin; the
chart refuses it with watchNamespace).
*/}}
{{- define "federation-controller.clusterAdmin" -}}
{{- if .Values.installer.allowClusterAdmin }}true{{ end }}
{{- end }}

{{/*
--allowed-installer-roles, comma-separated: allowedInstallerRoles, and cluster-admin with
installer.allowClusterAdmin. The controller may `bind` exactly these.
*/}}
{{- define "federation-controller.installerRoles" -}}
{{- $roles := .Values.allowedInstallerRoles }}
{{- if include "federation-controller.clusterAdmin" . }}
{{- $roles = append $roles "cluster-admin" | uniq }}
{{- end }}
{{- join "," $roles }}
{{- end }}

{{/*
HTTP or HTTPS, for the probes and the scrape configuration.
*/}}
{{- define "federation-controller.scheme" -}}
{{- if .Values.tls.secretName }}https{{ else }}http{{ end }}
{{- end }}

{{/*
The rights the controller uses in the namespaces it watches: cluster-wide in the ClusterRole, or
in a Role in watchNamespace. Each rule says which part of the controller needs it; the verbs are
exactly the calls the code makes (tests/rbac.rs derives them from the requests of full scenarios
and fails on a missing or an unused permission). Server-side apply, merge and JSON patches are `patch`.
*/}}
{{- define "federation-controller.namespacedRules" -}}
# The process's one watch of the enablements (src/controller/mod.rs, shared with the HTTP
# API's cache) lists and watches them; the controller adds and removes its finalizer with a
# JSON patch.
- apiGroups: [federation.fleet.dev]
  resources: [federationenablements]
  verbs: [list, watch, patch]
# The controller writes each enablement's status with one merge patch per reconcile that changes it.
- apiGroups: [federation.fleet.dev]
  resources: [federationenablements/status]
  verbs: [patch]
# The controller records an event per transition (kube-runtime's Recorder creates an event,
# then patches it when the same one repeats).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# CreateNetworkResource applies the federation API server's Service (get, then server-side
# apply), repairs it, and DeleteNetworkResource deletes it (list by label, delete); the
# controller watches the Services it made.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, patch, delete]
# CreateCert applies the CA and serving-certificate Secrets, InstallFederationChart the values
# Secret and reads chart.credentialsSecretRef; DeleteCert and UninstallFederationChart delete
# them (list by label, delete); the controller watches the Secrets it made.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, patch, delete]
# InstallFederationChart applies the installer's ServiceAccount; UninstallFederationChart
# deletes it; the controller watches it.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, list, watch, patch, delete]
# InstallFederationChart applies the installer's RoleBinding (deleted and made again if its
# roleRef changed); UninstallFederationChart deletes it; the controller watches it.
- apiGroups: [rbac.authorization.k8s.io]
  resources: [rolebindings]
  verbs: [get, list, watch, patch, delete]
# InstallFederationChart and UninstallFederationChart run `helm` in Jobs (get, server-side
# apply); a new attempt deletes the previous attempt's Job (list by label, delete), teardown the
# install Jobs; the controller watches them.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, patch, delete]
# UninstallFederationChart waits for the pods of stopped install Jobs to go before helm
# uninstall starts (list by label).
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
{{- end }}
