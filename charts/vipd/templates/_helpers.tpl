{{/* The name of every object: the release name, or <release>-vipd when it does not say vipd. */}}
{{- define "vipd.fullname" -}}
{{- if contains "vipd" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-vipd" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vipd.serviceAccountName" -}}
{{- default (include "vipd.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Selector labels: the ones `vipd manifest` writes, plus the release, so two releases do not select each other's pods. */}}
{{- define "vipd.selectorLabels" -}}
app.kubernetes.io/name: vipd
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vipd.labels" -}}
{{ include "vipd.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "vipd.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The agent's settings as a dict: env, with config.address as `address` and the paths the pod
mounts filled in. Everything the templates derive (probes, volumes, the init container, the FRR
sidecar) reads this, so it follows the settings exactly as the agent will.
*/}}
{{- define "vipd.settings" -}}
{{- $s := deepCopy .Values.env -}}
{{- range $k, $v := $s -}}
{{- if not (kindIs "string" $v) -}}
{{- fail (printf "env.%s: must be a string (quote it: \"%v\"), as the container's environment takes it" $k $v) -}}
{{- end -}}
{{- end -}}
{{- if .Values.config.address -}}
{{- $_ := set $s "address" .Values.config.address -}}
{{- end -}}
{{- if hasKey $s "vip_nodename" -}}
{{- fail "env.vip_nodename: leave it out; the chart sets it to the pod's node (spec.nodeName)" -}}
{{- end -}}
{{- if .Values.inCluster -}}
{{- if hasKey $s "k8s_config_file" -}}
{{- fail "env.k8s_config_file: leave it out while inCluster is true (the ServiceAccount's kubeconfig is mounted at /etc/vipd/kubeconfig), or set inCluster: false" -}}
{{- end -}}
{{- $_ := set $s "k8s_config_file" "/etc/vipd/kubeconfig" -}}
{{- end -}}
{{- if eq (get $s "vip_peer_bootstrap" | default "false") "true" -}}
{{- fail "env.vip_peer_bootstrap: cannot be used in a DaemonSet: bootstrap lets a node hold the VIP alone, so only the first kubeadm init node may have it (use `vipd manifest pod`)" -}}
{{- end -}}
{{- if hasKey $s "k8s_fallback_config_file" -}}
{{- fail "env.k8s_fallback_config_file: is for the static pod of the first kubeadm init node, not for a DaemonSet" -}}
{{- end -}}
{{- if and (ne (get $s "bgp_enable" | default "false") "true") (ne (get $s "vip_leaderelection" | default "false") "true") (not (get $s "vip_peers")) -}}
{{- fail "env.vip_leaderelection: must be \"true\" (or env.vip_peers set) for a DaemonSet: without an election every node it runs on would hold the VIP" -}}
{{- end -}}
{{- toJson $s -}}
{{- end -}}

{{/* "host port" of prometheus_server (default :2112), or "" when it is disabled. */}}
{{- define "vipd.metricsPort" -}}
{{- $s := include "vipd.settings" . | fromJson -}}
{{- $addr := ":2112" -}}
{{- if hasKey $s "prometheus_server" -}}{{- $addr = get $s "prometheus_server" -}}{{- end -}}
{{- if $addr -}}
{{- if not (regexMatch "^(\\[[0-9a-fA-F:.]+\\]|[0-9.]*|[a-zA-Z0-9.-]*):[0-9]{1,5}$" $addr) -}}
{{- fail (printf "env.prometheus_server: %q must be [host]:port, for example :2112 or 127.0.0.1:2112, or empty to disable" $addr) -}}
{{- end -}}
{{- regexReplaceAll ".*:([0-9]+)$" $addr "${1}" -}}
{{- end -}}
{{- end -}}

{{/* The host the kubelet probes: only a specific listen address; a wildcard one is the pod IP. */}}
{{- define "vipd.metricsHost" -}}
{{- $s := include "vipd.settings" . | fromJson -}}
{{- $addr := ":2112" -}}
{{- if hasKey $s "prometheus_server" -}}{{- $addr = get $s "prometheus_server" -}}{{- end -}}
{{- $host := regexReplaceAll "^(.*):[0-9]+$" $addr "${1}" | trimPrefix "[" | trimSuffix "]" -}}
{{- if not (has $host (list "" "0.0.0.0" "::")) -}}{{- $host -}}{{- end -}}
{{- end -}}

{{/* The privileged strict-ARP init container is needed: agent responder and an IPv4 VIP. */}}
{{- define "vipd.needsStrictArp" -}}
{{- $s := include "vipd.settings" . | fromJson -}}
{{- $v4 := false -}}
{{- range (splitList "," (get $s "address" | default "")) -}}
{{- if contains "." . -}}{{- $v4 = true -}}{{- end -}}
{{- end -}}
{{- if and .Values.strictArpInitContainer $v4 (eq (get $s "vip_responder" | default "agent") "agent") -}}true{{- end -}}
{{- end -}}
