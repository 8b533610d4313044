{{/* Chart name, overridable. */}}
{{- define "couchestor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource-name prefix: the release name, plus the chart name unless already in it. */}}
{{- define "couchestor.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "couchestor.controllerName" -}}
{{- printf "%s-controller" (include "couchestor.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "couchestor.agentName" -}}
{{- printf "%s-agent" (include "couchestor.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels common to every object. */}}
{{- define "couchestor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "couchestor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: couchestor
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: pass (dict "ctx" $ "component" "controller"). */}}
{{- define "couchestor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "couchestor.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The agent label selector the controller finds agent pods with (--agent-selector). */}}
{{- define "couchestor.agentSelector" -}}
{{- printf "app.kubernetes.io/name=%s,app.kubernetes.io/instance=%s,app.kubernetes.io/component=agent" (include "couchestor.name" .) .Release.Name -}}
{{- end -}}

{{/* image reference: pass (dict "image" .Values.x.image "ctx" $). Digest wins over tag. */}}
{{- define "couchestor.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "couchestor.agentSecret" -}}
{{- default (printf "%s-agent-tls" (include "couchestor.fullname" .)) .Values.tls.agentSecret -}}
{{- end -}}

{{- define "couchestor.controllerSecret" -}}
{{- default (printf "%s-controller-tls" (include "couchestor.fullname" .)) .Values.tls.controllerSecret -}}
{{- end -}}

{{/* Pod security context shared by the controller: non-root, RuntimeDefault seccomp. */}}
{{- define "couchestor.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
