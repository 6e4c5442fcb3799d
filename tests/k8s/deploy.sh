#!/usr/bin/env bash
# TAP test of deploy/: the Helm chart (lint, template), the manifests of
# deploy/operator/ and deploy/rbac/, against a real kube-apiserver
# (tests/k8s/cluster.sh), the way the README installs them:
#
#   kubectl apply -f deploy/crds/ ; kubectl apply -f deploy/operator/
#   helm install hypersdk-operator ./deploy/helm/hypersdk-operator \
#     --namespace hypersdk-system --create-namespace ; helm uninstall
#
# and the RBAC: with a token of the hypersdk-mountd ServiceAccount,
# `kubectl auth can-i` says yes to every call the daemon makes and no to a
# list of things it must not do, and the real daemon (build/mountd, over the
# machine's libvirtd) runs with nothing but that token and mirrors a VM both
# ways.  Also the systemd unit (systemd-analyze verify).
#
#   tests/k8s/deploy.sh           BUILD=<meson build dir> (default build/)
#
# Helm comes from tests/k8s/helm.sh (built once per machine).  No pods run
# (the test cluster has no kubelet): the DaemonSet is only checked to be
# accepted.  Cleans up through traps; runs any number of times in a row.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CLUSTER=$HERE/cluster.sh
BUILD=${BUILD:-$REPO/build}
MOUNTD=$BUILD/mountd/hypersdk-mountd
export HYPERSDK_HTTP=${HYPERSDK_HTTP:-off} # no dashboard port to share
VIRSH=(virsh -q -c qemu:///system)
CHART=deploy/helm/hypersdk-operator
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hypersdk-deploy.XXXXXX")
chmod 755 "$WORK" # libvirt's QEMU (libvirt-qemu) must reach the pool in it
OUT=$WORK/out
KC=$WORK/cluster/kubeconfig
NS=hypersdk-system
WATCH=default
# names unique to this run: runs never meet each other or real VMs
NODE=d$$
P=d$$-
MOUNTD_PID=
M=$WORK/mnt

export HELM_CACHE_HOME=$WORK/helm/cache HELM_CONFIG_HOME=$WORK/helm/config \
	HELM_DATA_HOME=$WORK/helm/data

# TAP goes to fd 3, a copy of the original stdout, so that it is never caught
# by a redirection active when a signal arrives
exec 3>&1
n=0
failed=0
plan_done=

plan() {
	[[ -n $plan_done ]] && return
	plan_done=1
	echo "1..$n" >&3
}

stop_mountd() {
	[[ -n $MOUNTD_PID ]] || return 0
	kill -TERM "$MOUNTD_PID" 2>/dev/null || true
	wait "$MOUNTD_PID" 2>/dev/null || true
	MOUNTD_PID=
}

cleanup_libvirt() {
	local d
	if [[ -n $MOUNTD_PID ]]; then
		kill -TERM "$MOUNTD_PID" 2>/dev/null || true
		sleep 0.5
		kill -KILL "$MOUNTD_PID" 2>/dev/null || true
		wait "$MOUNTD_PID" 2>/dev/null || true
		MOUNTD_PID=
	fi
	fusermount3 -uz "$M" 2>/dev/null || umount -l "$M" 2>/dev/null || true
	command -v virsh >/dev/null || return 0
	for d in $("${VIRSH[@]}" list --all --name 2>/dev/null | grep "^$P" || true); do
		"${VIRSH[@]}" destroy "$d" >/dev/null 2>&1 || true
		"${VIRSH[@]}" undefine --nvram "$d" >/dev/null 2>&1 ||
			"${VIRSH[@]}" undefine "$d" >/dev/null 2>&1 || true
	done
	"${VIRSH[@]}" pool-destroy "hypersdk-$NODE" >/dev/null 2>&1 || true
	"${VIRSH[@]}" pool-undefine "hypersdk-$NODE" >/dev/null 2>&1 || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if ((rc != 0 && failed == 0)); then
		not_ok "aborted (exit status $rc)"
	fi
	plan
	cleanup_libvirt
	"$CLUSTER" down "$WORK/cluster" >/dev/null 2>&1 || true
	if ((failed)) || ((rc)); then
		local keep
		keep=$(mktemp -d "${TMPDIR:-/tmp}/hypersdk-deploy-logs.XXXXXX")
		cp "$WORK"/cluster/*.log "$WORK"/mountd.log "$keep/" 2>/dev/null || true
		echo "# logs kept in $keep" >&3
	fi
	rm -rf "$WORK"
	if ((rc == 0 && failed)); then
		rc=1
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

diag() { sed 's/^/#   /' "$@" >&3; }
ok() {
	n=$((n + 1))
	echo "ok $n - $1" >&3
}
not_ok() { # not_ok DESC [FILE-with-details]
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1" >&3
	[[ -z ${2:-} || ! -s $2 ]] || diag "$2"
}
skip() {
	n=$((n + 1))
	echo "ok $n - $1 # SKIP ${2:-}" >&3
}
bail() {
	echo "Bail out! $1" >&3
	exit 1
}
# t DESC CMD...: passes when CMD exits 0
t() {
	local desc=$1
	shift
	if "$@" >"$OUT" 2>&1; then ok "$desc"; else not_ok "$desc" "$OUT"; fi
}
# is DESC WANT CMD...: the output of CMD equals WANT
is() {
	local desc=$1 want=$2 got
	shift 2
	if got=$("$@" 2>"$OUT") && [[ $got == "$want" ]]; then
		ok "$desc"
	else
		printf 'want: %s\ngot:  %s\n' "$want" "$got" >>"$OUT"
		not_ok "$desc" "$OUT"
	fi
}
# wait_for SECONDS CMD...: poll until CMD succeeds
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || return 1
		sleep 0.1
	done
}

k() { kubectl --kubeconfig="$KC" --cache-dir="$WORK/kube-cache" "$@"; }
# as the hypersdk-mountd ServiceAccount (its token, nothing else)
ksa() { kubectl --kubeconfig="$WORK/sa.kubeconfig" --cache-dir="$WORK/sa-cache" "$@"; }
h() { "$HELM" --kubeconfig "$KC" "$@"; }

# no_stderr CMD...: CMD succeeds and prints nothing on stderr (no warnings)
no_stderr() {
	local err=$WORK/stderr
	"$@" 2>"$err" || {
		cat "$err"
		return 1
	}
	[[ ! -s $err ]] || {
		echo "unexpected output on stderr:"
		cat "$err"
		return 1
	}
}
# every_line_matches REGEX CMD...: CMD succeeds, prints something, and every
# line of its output matches REGEX
every_line_matches() {
	local re=$1 out
	shift
	out=$("$@") || return 1
	printf '%s\n' "$out"
	[[ -n $out ]] && ! grep -vE -- "$re" <<<"$out"
}

# jp_local FILE JSONPATH: jsonpath over the objects of a manifest, offline
# (kubectl annotate --local never contacts a server; one output per object)
jp_local() {
	KUBECONFIG=/dev/null kubectl annotate --local -f "$1" hypersdk.io/test=1 \
		-o "jsonpath=$2"
}
# kinds FILE: "Kind/namespace/name" of every object, sorted
kinds() { jp_local "$1" '{.kind}/{.metadata.namespace}/{.metadata.name}{"\n"}' | sort; }
# vol FILE NAME: "path type" of the DaemonSet's hostPath volume NAME
vol() {
	jp_local "$1" "{.spec.template.spec.volumes[?(@.name==\"$2\")].hostPath.path} {.spec.template.spec.volumes[?(@.name==\"$2\")].hostPath.type}"
}
# mnt FILE NAME: "mountPath propagation" of the container's mount NAME
mnt() {
	jp_local "$1" "{.spec.template.spec.containers[0].volumeMounts[?(@.name==\"$2\")].mountPath} {.spec.template.spec.containers[0].volumeMounts[?(@.name==\"$2\")].mountPropagation}"
}
podspec() { jp_local "$1" "{.spec.template.spec$2}"; }
like_args() { podspec "$1" '.containers[0].args[*]' | grep -qF -- "$2"; }

# -------------------------------------------------------------- files

cd "$REPO"
HELM=$("$HERE/helm.sh" path 2>"$OUT") || {
	not_ok "helm is built (tests/k8s/helm.sh build)" "$OUT"
	bail "no helm"
}
ok "helm: $("$HELM" version --short)"

same_files() { # DIR-A DIR-B: the same file names with the same bytes
	local a=$1 b=$2 f rc=0
	diff <(cd "$a" && ls) <(cd "$b" && ls) || rc=1
	for f in "$a"/*; do
		cmp "$f" "$b/${f##*/}" || rc=1
	done
	return $rc
}
t "the chart's crds/ are byte-for-byte deploy/crds/ (one source of truth)" \
	same_files deploy/crds "$CHART/crds"
t "deploy/operator/10-rbac.yaml is byte-for-byte deploy/rbac/hypersdk-mountd.yaml" \
	cmp deploy/rbac/hypersdk-mountd.yaml deploy/operator/10-rbac.yaml
t "no symbolic links in deploy/ (helm warns about them, raw URLs break)" \
	bash -c '! find deploy -type l | grep .'

# ---------------------------------------------------------------- helm offline

t "helm lint --strict" h lint --strict "$CHART"
t "helm lint --strict --set http.listen=off,watchNamespace=" \
	h lint --strict "$CHART" --set http.listen=off --set watchNamespace=
packaged() { # helm package keeps crds/ and templates/ (no symlinks to resolve)
	h package "$CHART" -d "$WORK/pkg" >/dev/null &&
		tar tzf "$WORK"/pkg/hypersdk-operator-*.tgz | sort | grep -E '/(crds|templates)/'
}
is "helm package: the 4 CRDs and the templates" "hypersdk-operator/crds/hypersdk.io_virtualmachines.yaml
hypersdk-operator/crds/hypersdk.io_vmoperations.yaml
hypersdk-operator/crds/hypersdk.io_vmsnapshots.yaml
hypersdk-operator/crds/hypersdk.io_vmtemplates.yaml
hypersdk-operator/templates/NOTES.txt
hypersdk-operator/templates/_helpers.tpl
hypersdk-operator/templates/admission.yaml
hypersdk-operator/templates/daemonset.yaml
hypersdk-operator/templates/role.yaml
hypersdk-operator/templates/serviceaccount.yaml" packaged
R=$WORK/rendered.yaml
t "helm template" bash -c "'$HELM' template hypersdk-operator '$CHART' --namespace $NS >'$R'"
is "rendered: ServiceAccount, Role, RoleBinding, the ClusterRole to get Nodes and its binding, DaemonSet, the admission policies and their ConfigMap; nothing else cluster-wide" \
	"ClusterRole//hypersdk-mountd-nodes
ClusterRoleBinding//hypersdk-mountd-nodes
ConfigMap/$NS/hypersdk-image-sources
DaemonSet/$NS/hypersdk-mountd
Role/$WATCH/hypersdk-mountd
RoleBinding/$WATCH/hypersdk-mountd
ServiceAccount/$NS/hypersdk-mountd
ValidatingAdmissionPolicy//hypersdk-image-sources
ValidatingAdmissionPolicy//hypersdk-kernel-boot
ValidatingAdmissionPolicyBinding//hypersdk-image-sources
ValidatingAdmissionPolicyBinding//hypersdk-kernel-boot" kinds "$R"
ADM=$WORK/adm.yaml
h template hypersdk-operator "$CHART" --namespace $NS -s templates/admission.yaml >"$ADM"
OPADM=deploy/operator/30-admission.yaml
# objspec FILE KIND NAME: the spec of one object, offline
objspec() { jp_local "$1" '{.kind}/{.metadata.name}={.spec}{.data}{"\n"}' | grep "^$2/$3="; }
for o in ValidatingAdmissionPolicy/hypersdk-kernel-boot ValidatingAdmissionPolicy/hypersdk-image-sources \
	ValidatingAdmissionPolicyBinding/hypersdk-kernel-boot ValidatingAdmissionPolicyBinding/hypersdk-image-sources; do
	is "chart and deploy/operator/ agree on the spec of $o" \
		"$(objspec "$OPADM" "${o%/*}" "${o#*/}")" objspec "$ADM" "${o%/*}" "${o#*/}"
done
is "chart and deploy/operator/ agree on the allowed image sources" \
	"$(objspec "$OPADM" ConfigMap hypersdk-image-sources)" objspec "$ADM" ConfigMap hypersdk-image-sources
h template x "$CHART" -n $NS --set admission.create=false >"$WORK/noadm.yaml"
is "admission.create=false: no policy, binding or ConfigMap" "" \
	bash -c "grep -E '^kind: (ValidatingAdmissionPolicy|ConfigMap)' '$WORK/noadm.yaml' || true"
DS=$WORK/ds.yaml
h template hypersdk-operator "$CHART" --namespace $NS -s templates/daemonset.yaml >"$DS"
OPDS=deploy/operator/20-daemonset.yaml
for f in "$DS" "$OPDS"; do
	w=$([[ $f == "$DS" ]] && echo chart || echo deploy/operator)
	is "$w DaemonSet: privileged container" true podspec "$f" '.containers[0].securityContext.privileged'
	is "$w DaemonSet: the node's network, not its pids" "/true" podspec "$f" '.hostPID}/{.spec.template.spec.hostNetwork'
	is "$w DaemonSet: ServiceAccount hypersdk-mountd" hypersdk-mountd podspec "$f" '.serviceAccountName'
	is "$w DaemonSet: no device volumes (privileged sees the node's)" "libvirt state tree passwd group" \
		podspec "$f" '.volumes[*].name'
	is "$w DaemonSet: the node's /etc/group, read-only" "/etc/group File" vol "$f" group
	is "$w DaemonSet: the libvirt socket dir" "/run/libvirt Directory" vol "$f" libvirt
	is "$w DaemonSet: the state dir" "/var/lib/hypersdk DirectoryOrCreate" vol "$f" state
	is "$w DaemonSet: the folder above the tree (a dead mount cannot block a restart)" "/run Directory" vol "$f" tree
	is "$w DaemonSet: it is mounted at /host/run with Bidirectional propagation" \
		"/host/run Bidirectional" mnt "$f" tree
	is "$w DaemonSet: folders and files mounted at their node paths" \
		"/run/libvirt /var/lib/hypersdk /host/run /etc/passwd /etc/group" \
		podspec "$f" '.containers[0].volumeMounts[*].mountPath'
	is "$w DaemonSet: NODE_NAME from spec.nodeName" spec.nodeName \
		podspec "$f" '.containers[0].env[?(@.name=="NODE_NAME")].valueFrom.fieldRef.fieldPath'
	is "$w DaemonSet: watches namespace $WATCH" $WATCH \
		podspec "$f" '.containers[0].env[?(@.name=="WATCH_NAMESPACE")].value'
	# shellcheck disable=SC2016 # $(NODE_NAME) is Kubernetes' syntax, kept literal
	t "$w DaemonSet: --foreground --node \$(NODE_NAME) --namespace \$(WATCH_NAMESPACE) --mount /host/run/hypersdk --state-dir /var/lib/hypersdk" \
		like_args "$f" '--foreground --node $(NODE_NAME) --namespace $(WATCH_NAMESPACE) --mount /host/run/hypersdk --state-dir /var/lib/hypersdk'
	is "$w DaemonSet: the image (placeholder)" ghcr.io/hypersdk/hypersdk-mountd:0.1.0 \
		podspec "$f" '.containers[0].image'
	is "$w DaemonSet: probes run hypersdk-mountd --probe live, live, ready" \
		"live live ready" podspec "$f" '.containers[0].startupProbe.exec.command[2]} {.spec.template.spec.containers[0].livenessProbe.exec.command[2]} {.spec.template.spec.containers[0].readinessProbe.exec.command[2]'
done
# the chart and deploy/operator/ must not drift apart
for p in .volumes .containers[0].volumeMounts .containers[0].securityContext \
	.containers[0].env .containers[0].command .containers[0].readinessProbe \
	.containers[0].livenessProbe .containers[0].startupProbe .containers[0].resources \
	.hostNetwork .dnsPolicy; do
	is "chart and deploy/operator/ DaemonSets agree on $p" \
		"$(podspec "$OPDS" "$p")" podspec "$DS" "$p"
done
h template x "$CHART" -n $NS --set http.tokenSecret=dash -s templates/daemonset.yaml >"$WORK/token.yaml"
is "http.tokenSecret=dash: the Secret's key token is mounted" "dash token" \
	podspec "$WORK/token.yaml" '.volumes[?(@.name=="http-token")].secret.secretName} {.spec.template.spec.volumes[?(@.name=="http-token")].secret.items[0].key'
t "http.tokenSecret=dash: --http-token names it" \
	grep -q -- '- /etc/hypersdk/http/token' "$WORK/token.yaml"
h template x "$CHART" -n vmns --set watchNamespace= -s templates/role.yaml >"$WORK/ns.yaml"
is "watchNamespace empty: Role and RoleBinding in the release namespace" \
	"ClusterRole//hypersdk-mountd-nodes
ClusterRoleBinding//hypersdk-mountd-nodes
Role/vmns/hypersdk-mountd
RoleBinding/vmns/hypersdk-mountd" kinds "$WORK/ns.yaml"
refused_values() { ! h template x "$CHART" "$@" >/dev/null 2>&1; }
t "values refused: accel=fast" refused_values --set accel=fast
t "values refused: http.listen=localhost:8080 (numeric only)" refused_values --set http.listen=localhost:8080
t "values refused: mountPath relative" refused_values --set mountPath=run/hypersdk
t "values refused: mountPath right below / (the pod would mount /)" refused_values --set mountPath=/hypersdk
t "values refused: watchNamespace Bad_NS" refused_values --set watchNamespace=Bad_NS
t "values refused: an image source prefix without the host's /" \
	refused_values --set admission.imageSources.x=https://example.org

# ---------------------------------------------------------------- systemd

UNIT=deploy/systemd/hypersdk-mountd.service
unit_key() { sed -n "s/^$1=//p" "$UNIT"; }
is "systemd unit: Type=simple with --foreground" "simple" unit_key Type
t "systemd unit: ExecStart runs --foreground on /run/hypersdk and /var/lib/hypersdk" \
	bash -c "grep -q '^ExecStart=/usr/local/bin/hypersdk-mountd --foreground --mount /run/hypersdk --state-dir /var/lib/hypersdk ' '$UNIT'"
is "systemd unit: KillMode=process" process unit_key KillMode
# shellcheck disable=SC2016 # systemd's $MAINPID, kept literal
is "systemd unit: ExecStop sends SIGTERM" '/bin/kill -TERM $MAINPID' unit_key ExecStop
t "systemd unit: After=libvirtd.service" bash -c "grep -q '^After=.*libvirtd.service' '$UNIT'"
if command -v systemd-analyze >/dev/null && [[ -x $MOUNTD ]]; then
	# verify needs ExecStart to exist: point it at the build
	sed "s|/usr/local/bin/hypersdk-mountd|$MOUNTD|" "$UNIT" >"$WORK/hypersdk-mountd.service"
	t "systemd-analyze verify" systemd-analyze verify "$WORK/hypersdk-mountd.service"
else
	skip "systemd-analyze verify" "no systemd-analyze or no $MOUNTD"
fi

# ---------------------------------------------------------------- cluster

export HYPERSDK_K8S_OWNER=$$ # a watchdog stops the cluster if this script is killed
if "$CLUSTER" up "$WORK/cluster" >"$OUT" 2>&1; then
	ok "cluster up: $(grep -o 'up in [0-9]* ms' "$OUT" || true)"
else
	not_ok "cluster up" "$OUT"
	bail "no API server"
fi

# ---- kubectl apply -f deploy/operator/ (the README's "Or using kubectl")

t "kubectl apply -f deploy/crds/ (README step 1)" no_stderr k apply -f deploy/crds/
t "CRDs Established" k wait --for=condition=Established crd --all --timeout=60s
t "kubectl apply --dry-run=server of the Namespace" \
	every_line_matches '^namespace/hypersdk-system created \(server dry run\)$' \
	k apply --dry-run=server -f deploy/operator/00-namespace.yaml
t "... creates nothing" bash -c "! kubectl --kubeconfig='$KC' get ns $NS"
no_stderr k apply -f deploy/operator/00-namespace.yaml >/dev/null
t "kubectl apply --dry-run=server -f deploy/operator/: the server accepts every object" \
	every_line_matches '(unchanged|created) \(server dry run\)$' \
	k apply --dry-run=server -f deploy/operator/
t "... and stores none" bash -c "! kubectl --kubeconfig='$KC' -n $NS get ds hypersdk-mountd"
t "kubectl apply -f deploy/operator/ (no warnings)" no_stderr k apply -f deploy/operator/
is "objects created" "daemonset.apps/hypersdk-mountd
serviceaccount/hypersdk-mountd" \
	bash -c "kubectl --kubeconfig='$KC' -n $NS get ds,sa -o name | grep hypersdk | sort"
is "Role and RoleBinding in $WATCH" "role.rbac.authorization.k8s.io/hypersdk-mountd
rolebinding.rbac.authorization.k8s.io/hypersdk-mountd" \
	bash -c "kubectl --kubeconfig='$KC' -n $WATCH get role,rolebinding -o name | grep hypersdk"
is "one ClusterRole of ours (get Nodes) and its binding" "clusterrole.rbac.authorization.k8s.io/hypersdk-mountd-nodes
clusterrolebinding.rbac.authorization.k8s.io/hypersdk-mountd-nodes" \
	bash -c "kubectl --kubeconfig='$KC' get clusterrole,clusterrolebinding -o name | grep hypersdk || true"
is "the DaemonSet is accepted as written (pod spec stored)" "true Bidirectional" \
	k -n $NS get ds hypersdk-mountd -o 'jsonpath={.spec.template.spec.containers[0].securityContext.privileged} {.spec.template.spec.containers[0].volumeMounts[?(@.name=="tree")].mountPropagation}'
t "kubectl apply -f deploy/operator/ again: everything unchanged" \
	every_line_matches ' unchanged$' k apply -f deploy/operator/
RULES_KUBECTL=$(k -n $WATCH get role hypersdk-mountd -o 'jsonpath={.rules}')
is "the admission policies and bindings are installed" "hypersdk-image-sources hypersdk-kernel-boot/hypersdk-image-sources hypersdk-kernel-boot" \
	k get validatingadmissionpolicy,validatingadmissionpolicybinding -l app.kubernetes.io/part-of=hypersdk \
	-o 'jsonpath={.items[?(@.kind=="ValidatingAdmissionPolicy")].metadata.name}/{.items[?(@.kind=="ValidatingAdmissionPolicyBinding")].metadata.name}'

# ---- RBAC: a token of the ServiceAccount, nothing else

sa_kubeconfig() { # write $WORK/sa.kubeconfig from a fresh token of the SA
	local tok
	tok=$(k -n $NS create token hypersdk-mountd --duration=1h) || return 1
	# shellcheck disable=SC1091 # written by cluster.sh up
	. "$WORK/cluster/env"
	(
		umask 077
		cat >"$WORK/sa.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 <"$K8S_CA")
users:
- name: hypersdk-mountd
  user:
    token: $tok
contexts:
- name: mountd
  context:
    cluster: test
    user: hypersdk-mountd
    namespace: $WATCH
current-context: mountd
EOF
	)
}
t "kubectl create token hypersdk-mountd; a kubeconfig of server, CA and token" sa_kubeconfig
is "the token is the ServiceAccount's" "system:serviceaccount:$NS:hypersdk-mountd" \
	ksa auth whoami -o 'jsonpath={.status.userInfo.username}'

can() { # can VERB RESOURCE [kubectl auth can-i args...]: "yes"
	ksa auth can-i "$@" 2>/dev/null || true
}
VM=virtualmachines.hypersdk.io
# what the daemon does (sync/*.c, mountd/cluster/)
yes_list=(
	"get $VM -n $WATCH"
	"list $VM -n $WATCH"
	"watch $VM -n $WATCH"
	"create $VM -n $WATCH"
	"patch $VM -n $WATCH"
	"delete $VM -n $WATCH"
	"patch $VM --subresource=status -n $WATCH"
	"list vmoperations.hypersdk.io -n $WATCH"
	"watch vmoperations.hypersdk.io -n $WATCH"
	"list vmtemplates.hypersdk.io -n $WATCH"
	"watch vmtemplates.hypersdk.io -n $WATCH"
	"list vmsnapshots.hypersdk.io -n $WATCH"
	"watch vmsnapshots.hypersdk.io -n $WATCH"
	"create vmoperations.hypersdk.io -n $WATCH"
	"create vmsnapshots.hypersdk.io -n $WATCH"
	"create vmtemplates.hypersdk.io -n $WATCH"
	"delete vmsnapshots.hypersdk.io -n $WATCH"
	"delete vmtemplates.hypersdk.io -n $WATCH"
	"patch vmtemplates.hypersdk.io -n $WATCH"
	"patch vmoperations.hypersdk.io -n $WATCH"
	"patch vmoperations.hypersdk.io --subresource=status -n $WATCH"
	"patch vmsnapshots.hypersdk.io --subresource=status -n $WATCH"
	"patch vmtemplates.hypersdk.io --subresource=status -n $WATCH"
	"create leases.coordination.k8s.io -n $WATCH"
	"patch leases.coordination.k8s.io/hypersdk-node-$NODE -n $WATCH"
	"list leases.coordination.k8s.io -n $WATCH"
	"create events.events.k8s.io -n $WATCH"
	"patch events.events.k8s.io -n $WATCH"
	"get nodes"
)
for q in "${yes_list[@]}"; do
	# shellcheck disable=SC2086
	is "can-i $q: yes" yes can $q
done
# what it must not do
no_list=(
	"update $VM -n $WATCH"
	"deletecollection $VM -n $WATCH"
	"update $VM --subresource=status -n $WATCH"
	"get $VM -n $NS"
	"list $VM -n kube-system"
	"list $VM --all-namespaces"
	"patch vmsnapshots.hypersdk.io -n $WATCH"
	"delete vmoperations.hypersdk.io -n $WATCH"
	"update vmoperations.hypersdk.io --subresource=status -n $WATCH"
	"get vmtemplates.hypersdk.io -n $WATCH"
	"get leases.coordination.k8s.io -n $WATCH"
	"watch leases.coordination.k8s.io -n $WATCH"
	"update leases.coordination.k8s.io -n $WATCH"
	"delete leases.coordination.k8s.io -n $WATCH"
	"create leases.coordination.k8s.io -n kube-node-lease"
	"get secrets -n $WATCH"
	"list secrets -n $NS"
	"get configmaps -n $WATCH"
	"list pods -n $WATCH"
	"create pods -n $WATCH"
	"create pods/exec -n $NS"
	"create events -n $WATCH"
	"get events.events.k8s.io -n $WATCH"
	"list events.events.k8s.io -n $WATCH"
	"update events.events.k8s.io -n $WATCH"
	"delete events.events.k8s.io -n $WATCH"
	"create events.events.k8s.io -n $NS"
	"create serviceaccounts/token -n $NS"
	"patch daemonsets.apps -n $NS"
	"list nodes"
	"watch nodes"
	"patch nodes"
	"update nodes"
	"create customresourcedefinitions.apiextensions.k8s.io"
	"delete customresourcedefinitions.apiextensions.k8s.io"
	"create rolebindings.rbac.authorization.k8s.io -n $WATCH"
	"escalate roles.rbac.authorization.k8s.io -n $WATCH"
	"impersonate serviceaccounts"
	"* *"
)
for q in "${no_list[@]}"; do
	# "* *" must not glob
	set -f
	# shellcheck disable=SC2086
	is "can-i $q: no" no can $q
	set +f
done

# ---- the real daemon with that token

daemon_ready() {
	[[ -x $MOUNTD ]] || {
		echo "no $MOUNTD (ninja -C build)"
		return 1
	}
	[[ -c /dev/fuse && $(id -u) == 0 ]] || {
		echo "needs root and /dev/fuse"
		return 1
	}
	"${VIRSH[@]}" version >/dev/null 2>&1 || {
		echo "libvirtd does not answer (scripts/libvirt-up.sh)"
		return 1
	}
}
phase() { head -n 1 "$M/vms/$1/status" 2>/dev/null | cut -d' ' -f2; }
jp() { k -n $WATCH get vm "$1" -o "jsonpath=$2"; }
jp_is() { [[ $(jp "$1" "$2" 2>/dev/null) == "$3" ]]; }
vm_yaml() { # NAME: the smallest VM, stopped, pinned to this run's node
	cat <<EOF
apiVersion: hypersdk.io/v1alpha1
kind: VirtualMachine
metadata:
  name: $1
  namespace: $WATCH
spec:
  cpus: 1
  memory: 64Mi
  running: false
  disks:
  - name: root
    size: 64Mi
  nodeSelector:
    hypersdk.io/node: $NODE
EOF
}

if why=$(daemon_ready); then
	mkdir -p "$M"
	"$MOUNTD" --foreground --mount "$M" --state-dir "$WORK/state" --pool-dir "$WORK/pool" \
		--node "$NODE" --stop-timeout 3 --kubeconfig "$WORK/sa.kubeconfig" \
		--namespace $WATCH >>"$WORK/mountd.log" 2>&1 &
	MOUNTD_PID=$!
	if wait_for 30 test -e "$M/vms/ctl" && kill -0 "$MOUNTD_PID" 2>/dev/null; then
		ok "hypersdk-mountd starts in cluster mode with the ServiceAccount's token"
	else
		not_ok "hypersdk-mountd starts in cluster mode with the ServiceAccount's token" "$WORK/mountd.log"
		bail "no daemon"
	fi
	# the systemd unit's readiness check, as systemd would run it
	post=$(sed -n 's/^ExecStartPost=//p' "$UNIT" | sed "s|\\\$\\\$|\$|g; s|\${MAINPID}|$MOUNTD_PID|g; s|/run/hypersdk|$M|g")
	t "systemd unit's ExecStartPost sees the mounted tree" eval "$post"

	a=${P}a
	vm_yaml "$a" | k apply -f - >/dev/null
	t "kubectl apply (admin): the VM appears in the daemon's tree" wait_for 10 test -d "$M/vms/$a"
	t "claimed through the status subresource: status.nodeName = $NODE" \
		wait_for 20 jp_is "$a" '{.status.nodeName}' "$NODE"
	t "status published: phase Stopped in kubectl" wait_for 20 jp_is "$a" '{.status.phase}' Stopped
	t "echo start > ctl: Running in the tree" bash -c "echo start > '$M/vms/$a/ctl'"
	t "spec.running=true and phase Running in kubectl (spec and status patches)" \
		wait_for 20 jp_is "$a" '{.spec.running}/{.status.phase}' true/Running
	t "echo 'stop force' > ctl" bash -c "echo 'stop force' > '$M/vms/$a/ctl'"
	t "spec.running=false and phase Stopped in kubectl" \
		wait_for 20 jp_is "$a" '{.spec.running}/{.status.phase}' false/Stopped
	b=${P}b
	t "create through the tree (create on virtualmachines)" \
		bash -c "echo 'create $b memory=64Mi disk=64Mi' > '$M/vms/ctl' || { cat '$M/vms/err'; exit 1; }"
	t "kubectl sees it, owned by $NODE" wait_for 10 jp_is "$b" '{.status.nodeName}' "$NODE"
	t "rmdir in the tree deletes the object (delete on virtualmachines)" rmdir "$M/vms/$b"
	t "gone from the API server" wait_for 10 bash -c "! kubectl --kubeconfig='$KC' -n $WATCH get vm $b"
	k -n $WATCH delete vm "$a" >/dev/null
	t "kubectl delete (admin): the directory goes" wait_for 20 test ! -e "$M/vms/$a"
	is "the node Lease is there (create, patch on leases)" "$NODE" \
		k -n $WATCH get lease "hypersdk-node-$NODE" -o 'jsonpath={.spec.holderIdentity}'
	peer=${NODE}p
	k apply -f - >/dev/null <<EOF
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: hypersdk-node-$peer
  namespace: $WATCH
  labels:
    hypersdk.io/node: "true"
spec:
  holderIdentity: $peer
  leaseDurationSeconds: 600
  renewTime: $(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
EOF
	t "another node's Lease shows in nodes/ (list on leases)" wait_for 15 test -d "$M/nodes/$peer"
	t "... alive" grep -qx 'alive true' "$M/nodes/$peer/status"
	t "the daemon's log has no 403 (forbidden)" bash -c "! grep -iE 'forbidden| 403' '$WORK/mountd.log'"
	stop_mountd
	cleanup_libvirt
	[[ ! -s $WORK/mountd.log ]] || diag <(grep -vE ' (debug|info): ' "$WORK/mountd.log" | tail -n 5)
else
	skip "the real daemon with the ServiceAccount's token" "$why"
fi

# ---- back to nothing: delete the kubectl install (the Namespace stays: the
# test cluster has no namespace controller to finish a deletion), and the
# CRDs, so that Helm installs them itself

t "kubectl delete the RBAC, the DaemonSet and the admission policies of deploy/operator/" \
	k delete -f deploy/operator/10-rbac.yaml -f deploy/operator/20-daemonset.yaml \
	-f deploy/operator/30-admission.yaml --wait=true --timeout=60s
t "kubectl delete -f deploy/crds/ (the API server's own finalizer removes them)" \
	k delete -f deploy/crds/ --wait=true --timeout=60s
is "nothing of ours is left but the Namespace" "" bash -c \
	"kubectl --kubeconfig='$KC' get crd,clusterrole,clusterrolebinding,validatingadmissionpolicy,validatingadmissionpolicybinding -o name | grep hypersdk; kubectl --kubeconfig='$KC' get -A sa,role,rolebinding,ds,cm -o name | grep hypersdk; true"

# kube-apiserver stops its ConfigMap informer for policy params for good
# once no binding names a ConfigMap paramKind (kubernetes/kubernetes#133827,
# still in 1.34): the re-installed policy would then find no params until
# the API server restarts.  docs/deploy.md says so; here it restarts.
t "kube-apiserver restarted (the params informer of the deleted policy)" \
	bash -c "'$CLUSTER' stop-apiserver '$WORK/cluster' && '$CLUSTER' start-apiserver '$WORK/cluster'"

# ---- helm install (the README's command, as written)

t "helm install hypersdk-operator ./deploy/helm/hypersdk-operator --namespace hypersdk-system --create-namespace" \
	h install hypersdk-operator ./deploy/helm/hypersdk-operator --namespace hypersdk-system --create-namespace
cp "$OUT" "$WORK/install.out"
t "... prints the chart's NOTES" grep -q 'hypersdk-mountd runs on every node' "$WORK/install.out"
is "helm status: deployed" "STATUS: deployed" \
	bash -c "'$HELM' --kubeconfig '$KC' status hypersdk-operator -n $NS | grep '^STATUS:'"
t "the chart's CRDs are installed and Established" \
	k wait --for=condition=Established crd/virtualmachines.hypersdk.io crd/vmoperations.hypersdk.io \
	crd/vmtemplates.hypersdk.io crd/vmsnapshots.hypersdk.io --timeout=60s
is "VirtualMachine short names: vm and the unique hvm" '["vm","hvm"]' \
	k get crd virtualmachines.hypersdk.io -o 'jsonpath={.spec.names.shortNames}'
# KubeVirt's VirtualMachine CRD claims the short name vm too (docs/deploy.md)
kubevirt_crd() {
	cat <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: virtualmachines.kubevirt.io
spec:
  group: kubevirt.io
  scope: Namespaced
  names: {kind: VirtualMachine, plural: virtualmachines, singular: virtualmachine, shortNames: [vm, vms]}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
EOF
}
kubevirt_crd | k apply -f - >/dev/null && k wait --for=condition=Established crd/virtualmachines.kubevirt.io --timeout=60s >/dev/null
rm -rf "$WORK/kube-cache" # fresh discovery
# group_of NAME: kubectl's warnings for `kubectl get NAME`, and the API group
# of the list it sent
group_of() {
	k get "$1" -v=6 2>&1 | sed -n 's/^Warning: //p
		s|.* GET https://[^/]*/apis/\([^/]*\)/[^/]*/namespaces/default/virtualmachines?.*|\1|p'
}
is "with KubeVirt's CRD beside: hvm is unambiguous" hypersdk.io group_of hvm
is "... vm is ambiguous (kubectl warns, picks hypersdk.io)" \
	'short name "vm" could also match lower priority resource virtualmachines.kubevirt.io
hypersdk.io' group_of vm
is "... vm.kubevirt.io is KubeVirt's" kubevirt.io group_of vm.kubevirt.io
t "KubeVirt's CRD removed" k delete crd virtualmachines.kubevirt.io --wait=true --timeout=60s
is "objects of the release" "daemonset.apps/hypersdk-mountd
serviceaccount/hypersdk-mountd" \
	bash -c "kubectl --kubeconfig='$KC' -n $NS get ds,sa -o name | grep hypersdk | sort"
is "the DaemonSet is accepted (no kubelet: nothing scheduled)" "hypersdk-mountd 0" \
	k -n $NS get ds -l app.kubernetes.io/instance=hypersdk-operator -o 'jsonpath={.items[0].metadata.name} {.items[0].status.desiredNumberScheduled}'
is "the chart's Role has the rules of deploy/rbac/" "$RULES_KUBECTL" \
	k -n $WATCH get role hypersdk-mountd -o 'jsonpath={.rules}'
kb_refused() { # a VM with spec.kernelBoot: refused by the chart's policy
	! k create -f - 2>"$WORK/kb.out" <<EOF && grep -q "AdmissionPolicy 'hypersdk-kernel-boot'" "$WORK/kb.out"
apiVersion: hypersdk.io/v1alpha1
kind: VirtualMachine
metadata: {name: ${P}kb, namespace: $WATCH}
spec: {memory: 64Mi, kernelBoot: {kernel: /etc/shadow}}
EOF
}
t "the chart's admission policy refuses spec.kernelBoot (once its ConfigMap is seen)" \
	wait_for 30 kb_refused
t "a token of the chart's ServiceAccount" sa_kubeconfig
is "can-i patch $VM/status: yes" yes can patch $VM --subresource=status -n $WATCH
is "can-i get secrets: no" no can get secrets -n $WATCH
t "helm upgrade with the same values" h upgrade hypersdk-operator ./deploy/helm/hypersdk-operator --namespace $NS
t "helm uninstall" h uninstall hypersdk-operator --namespace $NS --wait --timeout 60s
is "the release's objects are gone" "" bash -c \
	"kubectl --kubeconfig='$KC' get -A sa,role,rolebinding,ds,cm,validatingadmissionpolicy,validatingadmissionpolicybinding -o name | grep hypersdk; true"
is "the CRDs stay (Helm never deletes crds/)" 4 \
	bash -c "kubectl --kubeconfig='$KC' get crd -o name | grep -c hypersdk.io"
is "helm list is empty" "" h list -n $NS -q
