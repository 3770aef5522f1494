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

{{/* "true" in the workers' context (the templates rendered once per DaemonSet build it), "" in the chart's own. */}}
{{- define "vipd.isWorker" -}}
{{- if and (hasKey . "Worker") .Worker -}}true{{- end -}}
{{- end -}}

{{/* The DaemonSet's name, and the prefix of the ConfigMap and Service that belong to it. */}}
{{- define "vipd.daemonSetName" -}}
{{- include "vipd.fullname" . -}}{{- if include "vipd.isWorker" . -}}-workers{{- end -}}
{{- end -}}

{{/*
Selector labels: the ones `vipd manifest` writes (vipd-workers for the workers, so neither
DaemonSet selects the other's pods), plus the release, so two releases do not select each other's.
*/}}
{{- define "vipd.selectorLabels" -}}
app.kubernetes.io/name: {{ if include "vipd.isWorker" . }}vipd-workers{{ else }}vipd{{ end }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The monitors select both DaemonSets' pods and Services of this release. */}}
{{- define "vipd.monitorSelector" -}}
matchLabels:
  app.kubernetes.io/instance: {{ .ctx.Release.Name }}
  {{- with .extra }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
matchExpressions:
  - key: app.kubernetes.io/name
    operator: In
    values: [vipd, vipd-workers]
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

{{/* Where the user wrote setting .key: workers.env when the workers' context has it there, else env. */}}
{{- define "vipd.envPath" -}}
{{- if and (include "vipd.isWorker" .ctx) (hasKey .ctx.Values.workers.env .key) -}}workers.env{{- else -}}env{{- end -}}
{{- end -}}

{{/*
The agent's settings as a dict: env, with config.address as `address` and the paths the pod
mounts filled in. Everything the templates derive (probes, volumes, the init container, the FRR
sidecar) reads this, so it follows the settings exactly as the agent will.
*/}}
{{- define "vipd.settings" -}}
{{- $s := deepCopy .Values.env -}}
{{- $ctx := . -}}
{{- range $k, $v := $s -}}
{{- if not (kindIs "string" $v) -}}
{{- fail (printf "%s.%s: must be a string (quote it: \"%v\"), as the container's environment takes it" (include "vipd.envPath" (dict "ctx" $ctx "key" $k)) $k $v) -}}
{{- end -}}
{{- end -}}
{{- if .Values.config.address -}}
{{- $_ := set $s "address" .Values.config.address -}}
{{- end -}}
{{- if hasKey $s "vip_nodename" -}}
{{- fail (printf "%s.vip_nodename: leave it out; the chart sets it to the pod's node (spec.nodeName)" (include "vipd.envPath" (dict "ctx" . "key" "vip_nodename"))) -}}
{{- end -}}
{{- if .Values.inCluster -}}
{{- if hasKey $s "k8s_config_file" -}}
{{- fail (printf "%s.k8s_config_file: leave it out while inCluster is true (the ServiceAccount's kubeconfig is mounted at /etc/vipd/kubeconfig), or set inCluster: false" (include "vipd.envPath" (dict "ctx" . "key" "k8s_config_file"))) -}}
{{- end -}}
{{- $_ := set $s "k8s_config_file" "/etc/vipd/kubeconfig" -}}
{{- end -}}
{{- if eq (get $s "vip_peer_bootstrap" | default "false") "true" -}}
{{- fail (printf "%s.vip_peer_bootstrap: cannot be used in a DaemonSet: bootstrap lets a node hold the VIP alone, so only the first kubeadm init node may have it (use `vipd manifest pod`)" (include "vipd.envPath" (dict "ctx" . "key" "vip_peer_bootstrap"))) -}}
{{- end -}}
{{- if hasKey $s "k8s_fallback_config_file" -}}
{{- fail (printf "%s.k8s_fallback_config_file: is for the static pod of the first kubeadm init node, not for a DaemonSet" (include "vipd.envPath" (dict "ctx" . "key" "k8s_fallback_config_file"))) -}}
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
{{- fail (printf "%s.prometheus_server: %q must be [host]:port, for example :2112 or 127.0.0.1:2112, or empty to disable" (include "vipd.envPath" (dict "ctx" . "key" "prometheus_server")) $addr) -}}
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

{{/*
The workers' values (workers.enabled), as JSON: the chart's, with env minus the VIP's own settings
plus workers.env, and the workers' placement. A worker is a Services-only member outside vip_peers
(docs/services.md, "Workers"): the control-plane agents allocate its Service addresses and grant
them, so it needs their vip_peers and key, and must neither hold a VIP nor run for their Lease.
*/}}
{{- define "vipd.workerValues" -}}
{{- $w := .Values.workers -}}
{{- $wenv := get $w "env" | default dict -}}
{{- range $k, $v := $wenv -}}
{{- if not (kindIs "string" $v) -}}
{{- fail (printf "workers.env.%s: must be a string (quote it: \"%v\"), as the container's environment takes it" $k $v) -}}
{{- end -}}
{{- end -}}
{{- range $k := list "address" "vip_address" "vip_subnet" "vip_cidr" -}}
{{- if hasKey $wenv $k -}}
{{- fail (printf "workers.env.%s: leave it out: a worker holds no VIP, it announces Services only (config.address is the control plane's, and workers do not inherit it)" $k) -}}
{{- end -}}
{{- end -}}
{{- range $k := list "vip_peers" "vip_peer_key_file" -}}
{{- if hasKey $wenv $k -}}
{{- fail (printf "workers.env.%s: leave it out: workers use env.%s, the control-plane agents' own, to reach the agents that grant their Service addresses" $k $k) -}}
{{- end -}}
{{- end -}}
{{- if ne (get .Values.env "svc_enable" | default "false") "true" -}}
{{- fail "env.svc_enable: must be \"true\" with workers.enabled: the control-plane agents allocate the Service addresses the workers announce" -}}
{{- end -}}
{{- if not (get .Values.env "vip_peers") -}}
{{- fail "env.vip_peers: must be set with workers.enabled: the control-plane agents named there grant the workers their Service addresses" -}}
{{- end -}}
{{- if not (get .Values.env "vip_peer_key_file") -}}
{{- fail "env.vip_peer_key_file: must be set with workers.enabled: workers and control-plane agents sign their messages with the key in Secret peerKey.secretName" -}}
{{- end -}}
{{- /* kubernetes_addr: the control plane's names its own nodes' API servers, which a worker does not have. */ -}}
{{- $env := mergeOverwrite (omit .Values.env "address" "vip_address" "vip_subnet" "vip_cidr" "kubernetes_addr") $wenv -}}
{{- $from := dict -}}
{{- range $k, $v := $env -}}
{{- $_ := set $from $k (ternary "workers.env" "env" (hasKey $wenv $k)) -}}
{{- end -}}
{{- if ne (get $env "svc_enable") "true" -}}
{{- fail (printf "%s.svc_enable: must be \"true\" for workers: a worker announces Services and nothing else" (get $from "svc_enable" | default "workers.env")) -}}
{{- end -}}
{{- if eq (get $env "cp_enable") "true" -}}
{{- fail (printf "%s.cp_enable: must be \"false\" for workers: a worker has no API server of its own to guard a VIP for" (get $from "cp_enable")) -}}
{{- end -}}
{{- if eq (get $env "vip_leaderelection") "true" -}}
{{- fail (printf "%s.vip_leaderelection: must be \"false\" for workers: a worker would run for the control plane's Lease (vip_leasename), whose holder allocates the Service addresses" (get $from "vip_leaderelection")) -}}
{{- end -}}
{{- if eq (get $env "svc_membership") "lease" -}}
{{- fail (printf "%s.svc_membership: must not be \"lease\" with workers: a worker outside vip_peers takes its Service addresses from the control-plane agents' grants" (get $from "svc_membership")) -}}
{{- end -}}
{{- if not (get $env "kubernetes_addr") -}}
{{- $vip := index (splitList "," .Values.config.address) 0 | trim -}}
{{- if not $vip -}}
{{- fail "workers.env.kubernetes_addr: must be set when config.address is empty: a worker has no API server of its own, so give it the URL of one it can reach (https://<host>:6443)" -}}
{{- end -}}
{{- if contains ":" $vip -}}{{- $vip = printf "[%s]" $vip -}}{{- end -}}
{{- $_ := set $env "kubernetes_addr" (printf "https://%s:%s" $vip (get $env "port" | default "6443")) -}}
{{- end -}}
{{- $v := deepCopy .Values -}}
{{- $_ := set $v "env" $env -}}
{{- $_ := set $v "config" (dict "address" "") -}}
{{- $_ := set $v.workers "env" $wenv -}}
{{- /* Placement is the workers' own: the control plane's would put them on control-plane nodes. */ -}}
{{- range $k := list "nodeSelector" "tolerations" "affinity" -}}
{{- $_ := set $v $k (get $w $k) -}}
{{- end -}}
{{- with get $w "resources" -}}
{{- $_ := set $v "resources" . -}}
{{- end -}}
{{- range $k := list "podLabels" "podAnnotations" -}}
{{- $_ := set $v $k (mergeOverwrite (deepCopy (get $v $k | default dict)) (get $w $k | default dict)) -}}
{{- end -}}
{{- toJson $v -}}
{{- end -}}
