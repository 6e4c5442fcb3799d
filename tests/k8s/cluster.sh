#!/usr/bin/env bash
# A real Kubernetes API server (upstream kube-apiserver + etcd) for the tests.
#
#   tests/k8s/cluster.sh build        build kube-apiserver and etcd once per machine (cached)
#   tests/k8s/cluster.sh up DIR       start etcd + kube-apiserver, write DIR/kubeconfig, DIR/env
#   tests/k8s/cluster.sh down DIR     stop them (also after a killed run); keeps DIR/*.log
#   tests/k8s/cluster.sh status DIR   exit 0 when the cluster of DIR answers /readyz
#   tests/k8s/cluster.sh stop-apiserver DIR / start-apiserver DIR
#                                     an outage: only kube-apiserver goes, same port back
#   tests/k8s/cluster.sh node up DIR NAME / node down DIR
#                                     a real node (kubelet, containerd) for it: node.sh
#   tests/k8s/cluster.sh gen-module   regenerate tests/k8s/apiserver/go.{mod,sum} for K8S_VERSION
#
# Environment:
#   HYPERSDK_K8S_CACHE   build cache (default /var/cache/hypersdk/k8s): GOMODCACHE, GOCACHE, bin/
#   HYPERSDK_K8S_OWNER   pid of the process that owns the cluster started by `up`; when it dies
#                        a watchdog stops the cluster (covers a test runner killed with SIGKILL)
#   HYPERSDK_K8S_TIMEOUT seconds to wait for readiness (default 90)
#   HYPERSDK_K8S_APISERVER_ARGS  extra kube-apiserver flags, split on blanks
#                        (e.g. "--etcd-compaction-interval=10s")
#   GO                   go command (default: go on PATH, else /usr/local/go/bin/go)
#   ETCD                 etcd binary to run (default: the one built, $CACHE/bin/etcd-vX)
#
# See docs/k8s-test-cluster.md.
set -euo pipefail

# Pinned; tests/k8s/apiserver/go.mod and go.sum pin every module.  etcd is the
# version that this Kubernetes release requires (its go.mod), built from the
# same wrapper module: Debian's etcd 3.4.23 lacks RequestWatchProgress (needs
# 3.4.31 or 3.5.13), without which watches from "now" and watch-list streams fail.
K8S_VERSION=1.34.4
ETCD_VERSION=3.6.4
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODDIR=$HERE/apiserver
CACHE=${HYPERSDK_K8S_CACHE:-/var/cache/hypersdk/k8s}
BIN=$CACHE/bin/kube-apiserver-v$K8S_VERSION
ETCD_BIN=$CACHE/bin/etcd-v$ETCD_VERSION
ETCD=${ETCD:-$ETCD_BIN} # ETCD=/usr/bin/etcd to try another etcd
TIMEOUT=${HYPERSDK_K8S_TIMEOUT:-90}

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

go_cmd() {
	local g=${GO:-}
	if [[ -z $g ]]; then
		g=$(command -v go || true)
		[[ -n $g ]] || g=/usr/local/go/bin/go
	fi
	[[ -x $g ]] || die "no Go toolchain (set GO=/path/to/go)"
	env GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gocache" GOPATH="$CACHE/gopath" \
		GOBIN="$CACHE/bin" GOTOOLCHAIN=local GOFLAGS="-modcacherw -buildvcs=false" \
		CGO_ENABLED=0 GOWORK=off "$g" "$@"
}

# ---------------------------------------------------------------- build

# The source of the wrapper module: our go.mod/go.sum plus a tools.go that
# imports the command (kept out of the repo, which holds no Go source).
prepare_src() {
	local src=$1
	mkdir -p "$src"
	cp "$MODDIR/go.mod" "$MODDIR/go.sum" "$src/"
	cat >"$src/tools.go" <<'EOF'
//go:build tools

// Package apiserver only pins the upstream control plane and kubelet for the tests.
package apiserver

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
EOF
	mkdir -p "$src/cmd/etcd"
	cat >"$src/cmd/etcd/main.go" <<'EOF'
// Command etcd is the upstream etcd server, built for the tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
}

build_key() {
	{
		cat "$MODDIR/go.mod" "$MODDIR/go.sum"
		echo "$K8S_VERSION $ETCD_VERSION"
		declare -f ldflags prepare_src
	} | sha256sum | cut -c1-16
}

ldflags() {
	local v=$K8S_VERSION
	local p=k8s.io/component-base/version
	printf '%s ' -s -w \
		"-X $p.gitVersion=v$v" "-X $p.gitMajor=${v%%.*}" \
		"-X $p.gitMinor=$(cut -d. -f2 <<<"$v")" "-X $p.gitTreeState=clean" \
		"-X $p.buildDate=1970-01-01T00:00:00Z" \
		"-X k8s.io/client-go/pkg/version.gitVersion=v$v"
}

# The node's programs (tests/k8s/node.sh) come from the same module.
NODE_CMDS="kubelet kube-scheduler kube-controller-manager"
node_bin() { echo "$CACHE/bin/$1-v$K8S_VERSION"; }

built() {
	local c
	[[ -x $BIN && -x $ETCD_BIN && -f $BIN.key && $(cat "$BIN.key") == "$1" ]] || return 1
	for c in $NODE_CMDS; do [[ -x $(node_bin "$c") ]] || return 1; done
}

cmd_build() {
	local key c
	mkdir -p "$CACHE/bin"
	key=$(build_key)
	built "$key" && return 0
	exec 9>"$CACHE/build.lock"
	flock 9 # another build (another test run) may be under way
	if built "$key"; then
		exec 9>&-
		return 0
	fi
	grep -q "go.etcd.io/etcd/server/v3 v$ETCD_VERSION\b" "$MODDIR/go.mod" ||
		die "ETCD_VERSION=$ETCD_VERSION is not the etcd server version in $MODDIR/go.mod"
	local src=$CACHE/src-v$K8S_VERSION t0
	t0=$(date +%s)
	log "building kube-apiserver, $NODE_CMDS v$K8S_VERSION and etcd v$ETCD_VERSION into $CACHE (once per machine; minutes)"
	rm -rf "$src"
	prepare_src "$src"
	for c in kube-apiserver $NODE_CMDS; do
		(cd "$src" && go_cmd build -trimpath -ldflags "$(ldflags)" \
			-o "$CACHE/bin/$c-v$K8S_VERSION.tmp" "k8s.io/kubernetes/cmd/$c") ||
			die "go build of $c failed"
	done
	(cd "$src" && go_cmd build -trimpath -ldflags "-s -w" -o "$ETCD_BIN.tmp" ./cmd/etcd) ||
		die "go build of etcd failed"
	for c in kube-apiserver $NODE_CMDS; do
		mv -f "$CACHE/bin/$c-v$K8S_VERSION.tmp" "$CACHE/bin/$c-v$K8S_VERSION"
	done
	mv -f "$ETCD_BIN.tmp" "$ETCD_BIN"
	echo "$key" >"$BIN.key"
	log "built $("$BIN" --version) and etcd $("$ETCD_BIN" --version | sed -n 's/^etcd Version: //p') in $(($(date +%s) - t0)) s"
	exec 9>&-
}

# Regenerate the wrapper module for K8S_VERSION (edit it above first).
cmd_gen_module() {
	local v=$K8S_VERSION mod src e
	mod=$(go_cmd mod download -json "k8s.io/kubernetes@v$v" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
	[[ -f $mod ]] || die "cannot download k8s.io/kubernetes@v$v"
	mkdir -p "$MODDIR"
	{
		echo "// Wrapper module: builds the upstream kube-apiserver and etcd for the k8s tests."
		echo "// Generated by tests/k8s/cluster.sh gen-module; see docs/k8s-test-cluster.md."
		echo "module hypersdk.io/vmfs/tests/k8s/apiserver"
		echo
		echo "go 1.24.0"
		echo
		echo "require k8s.io/kubernetes v$v"
		echo
		echo "replace ("
		# every staging module of k8s.io/kubernetes -> its published v0.MINOR.PATCH;
		# the sample-* ones are never published and nothing needs them
		sed -n '/^replace (/,/^)/p' "$mod" | grep -o 'k8s.io/[a-z0-9-]* =>' |
			awk '{print $1}' | grep -v '/sample-' | while read -r m; do
			printf '\t%s => %s v0.%s\n' "$m" "$m" "${v#1.}"
		done
		echo ")"
	} >"$MODDIR/go.mod"
	: >"$MODDIR/go.sum"
	src=$(mktemp -d)
	prepare_src "$src"
	(cd "$src" && go_cmd mod tidy) || die "go mod tidy failed"
	cp "$src/go.mod" "$src/go.sum" "$MODDIR/"
	rm -rf "$src"
	log "wrote $MODDIR/go.mod and go.sum for v$v"
	e=$(sed -n 's/^[[:space:]]*go.etcd.io\/etcd\/server\/v3 v\([^ ]*\).*/\1/p' "$MODDIR/go.mod")
	[[ $e == "$ETCD_VERSION" ]] || log "note: set ETCD_VERSION=$e in $0 (it says $ETCD_VERSION)"
}

# ---------------------------------------------------------------- processes

# pid_alive FILE NEEDLE: the pid in FILE runs and its command line contains NEEDLE
# (guards against killing an unrelated process that reused the pid).
pid_alive() {
	local f=$1 needle=$2 pid
	[[ -f $f ]] || return 1
	pid=$(cat "$f" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$needle"
}

stop_pid() {
	local f=$1 needle=$2 pid i
	if pid_alive "$f" "$needle"; then
		pid=$(cat "$f")
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			pid_alive "$f" "$needle" || break
			sleep 0.1
		done
		if pid_alive "$f" "$needle"; then
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do
				pid_alive "$f" "$needle" || break
				sleep 0.1
			done
		fi
	fi
	rm -f "$f"
}

abs_dir() { # abs_dir DIR [create]
	[[ -n ${1:-} ]] || die "usage: $0 up|down|status DIR"
	[[ -z ${2:-} ]] || mkdir -p "$1"
	(cd "$1" 2>/dev/null && pwd)
}

cmd_down() {
	local dir data
	dir=$(abs_dir "$1") || return 0 # no DIR: nothing runs
	cmd_node_down "$dir"
	stop_pid "$dir/watchdog.pid" cluster.sh
	stop_pid "$dir/kube-apiserver.pid" "$dir/pki"
	if [[ -f $dir/etcd.datadir ]]; then
		data=$(cat "$dir/etcd.datadir")
		stop_pid "$dir/etcd.pid" "$data"
		case $data in
		/dev/shm/hypersdk-etcd.* | "$dir"/etcd-data) rm -rf "$data" ;;
		esac
		rm -f "$dir/etcd.datadir"
	else
		rm -f "$dir/etcd.pid"
	fi
	rm -f "$dir/ready"
}

# A free TCP port on 127.0.0.1, not in use and not handed out before in this run.
declare -A USED_PORTS=()
free_port() {
	local p i listening
	listening=$(ss -Htln 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 30000))
		[[ -z ${USED_PORTS[$p]:-} ]] || continue
		grep -qx "$p" <<<"$listening" && continue
		# connect succeeds -> somebody listens (also where ss is missing)
		if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
		USED_PORTS[$p]=1
		echo "$p"
		return 0
	done
	die "no free port found"
}

ec_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }

# sign_cert CADIR OUT SUBJECT EXTENSIONS: OUT.key and OUT.crt, signed by
# CADIR/ca.{crt,key}, readable by root only
sign_cert() {
	(
		umask 077
		ec_key "$2.key"
		openssl req -new -key "$2.key" -subj "$3" -out "$2.csr" 2>/dev/null
		printf '%s\n' "$4" >"$2.ext"
		openssl x509 -req -in "$2.csr" -CA "$1/ca.crt" -CAkey "$1/ca.key" -CAcreateserial \
			-sha256 -days 3650 -extfile "$2.ext" -out "$2.crt" 2>/dev/null
		rm -f "$2.csr" "$2.ext"
	)
}

CLIENT_EXT="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

gen_certs() {
	local pki=$1
	mkdir -p "$pki"
	(
		cd "$pki" || exit 1
		umask 077
		ec_key ca.key
		openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=hypersdk-test-ca" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
			-out ca.crt 2>/dev/null
		sign_cert . apiserver "/CN=kube-apiserver" \
			"basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
		sign_cert . admin "/O=system:masters/CN=hypersdk-admin" "$CLIENT_EXT"
		ec_key sa.key
		openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
		chmod 644 ./*.crt sa.pub
	)
}

b64() { base64 -w0 <"$1"; }

# write_kubeconfig DIR URL CERT KEY OUT: a kubeconfig of the cluster's CA and
# that client certificate
write_kubeconfig() {
	local dir=$1 url=$2 cert=$3 key=$4 out=$5
	# not the caller's umask: the node's programs start after this
	(
		umask 077
		cat >"$out"
	) <<EOF
apiVersion: v1
kind: Config
clusters:
- name: hypersdk-test
  cluster:
    server: $url
    certificate-authority-data: $(b64 "$dir/pki/ca.crt")
users:
- name: hypersdk-admin
  user:
    client-certificate-data: $(b64 "$cert")
    client-key-data: $(b64 "$key")
contexts:
- name: hypersdk-test
  context:
    cluster: hypersdk-test
    user: hypersdk-admin
    namespace: default
current-context: hypersdk-test
EOF
}

curl_api() { # dir path
	local dir=$1
	curl -fsS --max-time 5 --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" \
		--key "$dir/pki/admin.key" "$(sed -n 's/^APISERVER_URL=//p' "$dir/env")$2"
}

cmd_status() {
	local dir
	dir=$(abs_dir "$1") || return 1
	[[ -f $dir/env ]] || return 1
	[[ $(curl_api "$dir" /readyz 2>/dev/null) == ok ]]
}

# The daemons must not inherit the caller's descriptors beyond 0-2: a test
# harness that reads our output through a pipe (meson, prove, `| tee`) would
# wait for them.  Called in the subshell that then execs the daemon.
close_fds() {
	local fd
	for fd in "/proc/$BASHPID/fd/"*; do
		fd=${fd##*/}
		((fd > 2)) || continue
		eval "exec $fd>&-" 2>/dev/null || true
	done
}

# detached PIDFILE LOG CMD...: CMD in a session of its own, stdin from
# /dev/null, output appended to LOG, its pid in PIDFILE
detached() {
	local pidf=$1 logf=$2
	shift 2
	(
		close_fds
		exec setsid "$@"
	) </dev/null >>"$logf" 2>&1 &
	echo $! >"$pidf"
}

start_etcd() {
	local dir=$1 cport=$2 pport=$3 data
	if [[ -d /dev/shm && -w /dev/shm ]]; then
		data=$(mktemp -d /dev/shm/hypersdk-etcd.XXXXXX)
	else
		data=$dir/etcd-data
		rm -rf "$data"
		mkdir -p "$data"
	fi
	chmod 700 "$data"
	echo "$data" >"$dir/etcd.datadir"
	detached "$dir/etcd.pid" "$dir/etcd.log" \
		"$ETCD" --name=hypersdk-test --data-dir="$data" \
		--listen-client-urls="http://127.0.0.1:$cport" \
		--advertise-client-urls="http://127.0.0.1:$cport" \
		--listen-peer-urls="http://127.0.0.1:$pport" \
		--initial-advertise-peer-urls="http://127.0.0.1:$pport" \
		--initial-cluster="hypersdk-test=http://127.0.0.1:$pport" \
		--initial-cluster-state=new --logger=zap --log-outputs=stderr
}

start_apiserver() {
	local dir=$1 cport=$2 sport=$3
	local -a extra=()
	read -r -a extra <<<"${HYPERSDK_K8S_APISERVER_ARGS:-}"
	detached "$dir/kube-apiserver.pid" "$dir/kube-apiserver.log" "$BIN" \
		--etcd-servers="http://127.0.0.1:$cport" \
		--cert-dir="$dir/pki" \
		--tls-cert-file="$dir/pki/apiserver.crt" \
		--tls-private-key-file="$dir/pki/apiserver.key" \
		--secure-port="$sport" \
		--bind-address=127.0.0.1 \
		--advertise-address=127.0.0.1 \
		--service-cluster-ip-range=10.0.0.0/24 \
		--authorization-mode=Node,RBAC \
		--client-ca-file="$dir/pki/ca.crt" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$dir/pki/sa.pub" \
		--service-account-signing-key-file="$dir/pki/sa.key" \
		--enable-admission-plugins=NodeRestriction \
		--kubelet-client-certificate="$dir/pki/admin.crt" \
		--kubelet-client-key="$dir/pki/admin.key" \
		--allow-privileged=true \
		--profiling=false \
		"${extra[@]}"
}

# running PIDFILE: the process started into PIDFILE has not exited.  Not
# pid_alive: until the subshell of close_fds has exec'd the daemon its
# command line is bash's, which a loaded machine made look like an exit.
running() {
	local pid st
	pid=$(cat "$1" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || return 1
	[[ -n $st && ${st%% *} != Z ]]
}

# wait_for NAME PIDFILE LOG CMD...: until CMD succeeds; fail if the process exits
wait_for() {
	local name=$1 pidf=$2 logf=$3 deadline
	shift 3
	deadline=$((SECONDS + TIMEOUT))
	until "$@" >/dev/null 2>&1; do
		if ! running "$pidf"; then
			log "$name exited; last lines of $logf:"
			tail -n 20 "$logf" >&2 || true
			return 1
		fi
		if ((SECONDS >= deadline)); then
			log "$name not ready after $TIMEOUT s; last lines of $logf:"
			tail -n 20 "$logf" >&2 || true
			return 1
		fi
		sleep 0.2
	done
}

readyz() { [[ $(curl_api "$1" /readyz) == ok ]]; }
etcd_health() { curl -fsS --max-time 2 "http://127.0.0.1:$1/health" | grep -q '"health":"true"'; }

watchdog() { # dir owner-pid: stop the cluster when its owner is gone
	local dir=$1 owner=$2
	while kill -0 "$owner" 2>/dev/null; do sleep 1; done
	rm -f "$dir/watchdog.pid"
	"$HERE/cluster.sh" down "$dir" >>"$dir/watchdog.log" 2>&1 || true
}

cmd_up() {
	local dir cport pport sport url t0
	t0=$(date +%s%N)
	dir=$(abs_dir "$1" create)
	cmd_down "$dir" # stale processes of an earlier (maybe killed) run in this DIR
	cmd_build
	[[ -x $ETCD ]] || die "etcd not found: $ETCD"
	rm -f "$dir/kubeconfig" "$dir/env"
	gen_certs "$dir/pki"
	for _ in 1 2 3; do
		cport=$(free_port)
		pport=$(free_port)
		sport=$(free_port)
		url=https://127.0.0.1:$sport
		cat >"$dir/env" <<EOF
ETCD_PORT=$cport
ETCD_PEER_PORT=$pport
ETCD_URL=http://127.0.0.1:$cport
APISERVER_PORT=$sport
APISERVER_URL=$url
KUBECONFIG=$dir/kubeconfig
K8S_VERSION=$K8S_VERSION
K8S_CA=$dir/pki/ca.crt
K8S_CLIENT_CERT=$dir/pki/admin.crt
K8S_CLIENT_KEY=$dir/pki/admin.key
K8S_SA_KEY=$dir/pki/sa.key
EOF
		start_etcd "$dir" "$cport" "$pport"
		if ! wait_for etcd "$dir/etcd.pid" "$dir/etcd.log" \
			etcd_health "$cport"; then
			cmd_down "$dir"
			continue # most likely a port race: try other ports
		fi
		start_apiserver "$dir" "$cport" "$sport"
		if wait_for kube-apiserver "$dir/kube-apiserver.pid" \
			"$dir/kube-apiserver.log" readyz "$dir"; then
			write_kubeconfig "$dir" "$url" "$dir/pki/admin.crt" "$dir/pki/admin.key" \
				"$dir/kubeconfig"
			if [[ -n ${HYPERSDK_K8S_OWNER:-} ]]; then
				(
					close_fds
					watchdog "$dir" "$HYPERSDK_K8S_OWNER"
				) </dev/null >/dev/null 2>&1 &
				echo $! >"$dir/watchdog.pid"
			fi
			date -u +%FT%TZ >"$dir/ready"
			log "up in $((($(date +%s%N) - t0) / 1000000)) ms: $url (etcd :$cport), KUBECONFIG=$dir/kubeconfig"
			return 0
		fi
		cmd_down "$dir"
		if ! grep -q 'address already in use' "$dir/kube-apiserver.log" "$dir/etcd.log" 2>/dev/null; then
			break
		fi
	done
	die "cluster did not come up; see $dir/*.log"
}

# stop-apiserver DIR / start-apiserver DIR: take only the API server away
# and bring it back on the same port, over the same etcd (an outage).
cmd_stop_apiserver() {
	local dir
	dir=$(abs_dir "$1")
	stop_pid "$dir/kube-apiserver.pid" "$dir/pki"
}

cmd_start_apiserver() {
	local dir
	dir=$(abs_dir "$1")
	# shellcheck disable=SC1091
	. "$dir/env"
	start_apiserver "$dir" "$ETCD_PORT" "$APISERVER_PORT"
	wait_for kube-apiserver "$dir/kube-apiserver.pid" \
		"$dir/kube-apiserver.log" readyz "$dir" ||
		die "kube-apiserver did not come back; see $dir/kube-apiserver.log"
}

# shellcheck source=tests/k8s/node.sh
. "$HERE/node.sh"

case ${1:-} in
build) cmd_build ;;
node)
	case ${2:-} in
	up) cmd_node_up "${3:-}" "${4:-}" ;;
	down) cmd_node_down "${3:-}" ;;
	*) die "usage: $0 node up DIR NAME | node down DIR" ;;
	esac
	;;
stop-apiserver) cmd_stop_apiserver "${2:-}" ;;
start-apiserver) cmd_start_apiserver "${2:-}" ;;
up) cmd_up "${2:-}" ;;
down) cmd_down "${2:-}" ;;
status) cmd_status "${2:-}" ;;
gen-module) cmd_gen_module ;;
*)
	echo "usage: $0 build | up DIR | down DIR | status DIR | node up DIR NAME | node down DIR | stop-apiserver DIR | start-apiserver DIR | gen-module" >&2
	exit 2
	;;
esac
