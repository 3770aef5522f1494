{{/*
One agent DaemonSet, for the control plane (the chart's own context) or for the workers (a context
whose .Values is vipd.workerValues): everything here reads .Values, so the workers' DaemonSet
follows the merged worker values as the control plane's follows the chart's.
*/}}
{{- define "vipd.daemonset" -}}
{{- $s := include "vipd.settings" . | fromJson -}}
{{- $name := include "vipd.daemonSetName" . -}}
{{- $image := include "vipd.image" . -}}
{{- $port := include "vipd.metricsPort" . -}}
{{- $probeHost := include "vipd.metricsHost" . -}}
{{- $stateDir := get $s "vip_state_dir" | default "/var/lib/vipd" -}}
{{- $bgp := eq (get $s "bgp_enable" | default "false") "true" -}}
{{- $socketDir := get $s "bgp_frr_socket_dir" | default "/var/run/frr" -}}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "vipd.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- include "vipd.selectorLabels" . | nindent 6 }}
  # One node at a time: the others keep the election alive while one restarts.
  updateStrategy:
    {{- toYaml .Values.updateStrategy | nindent 4 }}
  template:
    metadata:
      labels:
        {{- include "vipd.selectorLabels" . | nindent 8 }}
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "vipd.serviceAccountName" . }}
      automountServiceAccountToken: {{ .Values.inCluster }}
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      hostNetwork: true
      {{- with .Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- if $bgp }}
      # vipd reaches FRR's vty sockets (mode 0770, group frrvty) as a member of frrvty.
      securityContext:
        supplementalGroups: [{{ .Values.frr.vtyGid }}]
      {{- end }}
      {{- if include "vipd.needsStrictArp" . }}
      # vip_responder=agent: the kernel must not answer ARP for the VIP, only vipd while it holds a
      # grant. hostNetwork pods may not set net.* sysctls, so this one container is privileged to
      # raise arp_ignore to 1 and arp_announce to 2, then exits (strictArpInitContainer: false drops it).
      initContainers:
        - name: strict-arp
          image: {{ $image }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          command: ["/bin/sh", "-c"]
          args:
            - |
              set -eu
              conf=/proc/sys/net/ipv4/conf
              {{- with get $s "vip_interface" }}
              for f in "$conf/all/arp_ignore" "$conf/{{ . }}/arp_ignore"; do
              {{- else }}
              for f in "$conf"/*/arp_ignore; do
              {{- end }}
                v=$(cat "$f")
                case "$v" in 0|3) echo 1 > "$f"; echo "$f: $v -> 1" ;; esac
              done
              v=$(cat "$conf/all/arp_announce")
              if [ "$v" -lt 2 ]; then echo 2 > "$conf/all/arp_announce"; echo "$conf/all/arp_announce: $v -> 2"; fi
          securityContext:
            privileged: true
      {{- end }}
      containers:
        - name: vipd
          image: {{ $image }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args: ["run"]
          env:
            - name: vip_nodename
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            {{- range $name, $value := $s }}
            - name: {{ $name }}
              value: {{ $value | quote }}
            {{- end }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            # NET_ADMIN: add and remove the VIP (netlink). NET_RAW: AF_PACKET for ARP/NA frames.
            capabilities:
              add: ["NET_ADMIN", "NET_RAW"]
              drop: ["ALL"]
          {{- with .Values.resources }}
          # A request and no limit: a BestEffort agent wakes too late for its heartbeats under load,
          # and a CPU limit throttles it in 100 ms slices (docs/cluster-lab.md).
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            {{- if .Values.inCluster }}
            - name: kubeconfig
              mountPath: /etc/vipd/kubeconfig
              subPath: kubeconfig
              readOnly: true
            {{- else }}
            {{- $kc := get $s "k8s_config_file" | default "/etc/kubernetes/admin.conf" }}
            - name: kubeconfig
              mountPath: {{ $kc }}
              readOnly: true
            {{- end }}
            - name: state
              mountPath: {{ $stateDir }}
            {{- with get $s "vip_peer_key_file" }}
            - name: peer-key
              mountPath: {{ . }}
              subPath: key
              readOnly: true
            {{- end }}
            {{- if $bgp }}
            - name: frr-sockets
              mountPath: {{ $socketDir }}
            {{- end }}
          {{- if $port }}
          ports:
            - name: metrics
              containerPort: {{ $port }}
              protocol: TCP
          # Restarts the agent only when its event loop stays blocked (~30 s); the VIP is safe
          # meanwhile: the holder stops answering at its grant deadline.
          livenessProbe:
            httpGet:
              path: /healthz
              port: {{ $port }}
              {{- with $probeHost }}
              host: {{ . }}
              {{- end }}
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: {{ $port }}
              {{- with $probeHost }}
              host: {{ . }}
              {{- end }}
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          {{- end }}
        {{- if $bgp }}
        - name: frr
          image: {{ .Values.frr.image }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          # tini (the image's entrypoint) reaps the daemons, which detach from watchfrr.
          command: ["/sbin/tini", "--", "/bin/sh", "-c"]
          args:
            - |
              set -eu
              gid=$(sed -n 's/^frrvty:[^:]*:\([0-9]*\):.*$/\1/p' /etc/group)
              if [ "$gid" != {{ .Values.frr.vtyGid }} ]; then
                echo "vipd: group frrvty is gid ${gid:-(none)} in this image, but the pod gives vipd gid {{ .Values.frr.vtyGid }} to reach the vty sockets: generate the manifest with --frr-vty-gid=${gid:-N}" >&2
                exit 1
              fi
              cat > /etc/frr/daemons <<'EOF'
              bgpd=yes
              bfdd=yes
              zebra_options="-P 0 -s 90000000"
              bgpd_options="-P 0 -p 0 -n"
              bfdd_options="-P 0"
              staticd_options="-P 0"
              EOF
              : > /etc/frr/frr.conf
              echo 'service integrated-vtysh-config' > /etc/frr/vtysh.conf
              exec /usr/lib/frr/docker-start
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            # What FRR 8.4's daemons ask for at start (lib/privs.c) and watchfrr needs; see
            # `vipd manifest daemonset --bgp_enable=true` for the reason of each.
            capabilities:
              add: ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE", "SYS_ADMIN", "SETUID", "SETGID", "KILL", "CHOWN"]
              drop: ["ALL"]
          resources:
            requests:
              cpu: 50m
              memory: 64Mi
          volumeMounts:
            - name: frr-sockets
              mountPath: {{ $socketDir }}
            {{- if ne $socketDir "/var/run/frr" }}
            - name: frr-sockets
              mountPath: /var/run/frr
            {{- end }}
            - name: frr-config
              mountPath: /etc/frr
            - name: frr-tmp
              mountPath: /var/tmp/frr
        {{- end }}
      volumes:
        {{- if .Values.inCluster }}
        - name: kubeconfig
          configMap:
            name: {{ $name }}-kubeconfig
        {{- else }}
        - name: kubeconfig
          hostPath:
            path: {{ get $s "k8s_config_file" | default "/etc/kubernetes/admin.conf" }}
            type: File
        {{- end }}
        - name: state
          hostPath:
            path: {{ $stateDir }}
            type: DirectoryOrCreate
        {{- if get $s "vip_peer_key_file" }}
        - name: peer-key
          secret:
            secretName: {{ .Values.peerKey.secretName }}
            defaultMode: 256 # 0400
        {{- end }}
        {{- if $bgp }}
        - name: frr-sockets
          emptyDir: {}
        - name: frr-config
          emptyDir: {}
        - name: frr-tmp
          emptyDir: {}
        {{- end }}
{{- end -}}
