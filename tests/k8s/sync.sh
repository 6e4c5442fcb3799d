#!/usr/bin/env bash
# TAP test of the sync module against a real kube-apiserver and etcd.
#
#   tests/k8s/sync.sh            BUILD=<build dir> (default: build/)
#
# Starts a private cluster (tests/k8s/cluster.sh up) in a temporary folder,
# runs tests/k8s/sync_smoke.c against it (list+watch latency, patches,
# claims, leases, cut and refused connections, relist after 410, the
# outbox across an API server outage, in-cluster credentials), then stops
# the cluster.  Cleanup runs on exit and on INT/TERM/HUP; after a SIGKILL
# the cluster's watchdog (HYPERSDK_K8S_OWNER) and sync_smoke's parent-death
# signal take care of it.  On failure the logs are kept in
# /tmp/hypersdk-sync-logs.XXXXXX (printed as a TAP comment).
#
# sync_smoke's hook (internal):
#   sync.sh apiserver-stop DIR    kill DIR's kube-apiserver (SIGKILL), keep
#                                 its command line; etcd keeps running
#   sync.sh apiserver-start DIR   start it again: same flags, port and etcd
set -uo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
CLUSTER=$HERE/cluster.sh

# ---------------------------------------------------------------- the hook

# alive PID: the process exists and is not a zombie
alive() {
	[[ -e /proc/$1 ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

# listening PORT: something accepts connections on 127.0.0.1:PORT
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apiserver_stop() {
	local dir=$1 pid i
	pid=$(cat "$dir/kube-apiserver.pid" 2>/dev/null) || pid=
	# only the API server of this DIR, never a process that reused the pid
	if [[ ! $pid =~ ^[0-9]+$ ]] || ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
		grep -qF -- "$dir/pki"; then
		echo "no kube-apiserver of $dir runs"
		return 1
	fi
	tr '\0' '\n' <"/proc/$pid/cmdline" >"$dir/apiserver.argv"
	kill -KILL "$pid"
	# The leader of a multi-threaded process turns zombie before its
	# other threads have let go of the sockets: wait for the port too.
	# shellcheck disable=SC1091
	. "$dir/env"
	for ((i = 0; i < 200; i++)); do
		if ! alive "$pid" && ! listening "$APISERVER_PORT"; then
			return 0
		fi
		sleep 0.05
	done
	echo "kube-apiserver $pid did not die"
	return 1
}

apiserver_start() {
	local dir=$1 pid i
	local -a argv
	mapfile -t argv <"$dir/apiserver.argv"
	((${#argv[@]} > 0)) || return 1
	(
		# the daemon must not keep our caller's pipes open
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
		done
		exec setsid "${argv[@]}"
	) </dev/null >>"$dir/kube-apiserver.log" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/kube-apiserver.pid"
	# shellcheck disable=SC1091
	. "$dir/env"
	for ((i = 0; i < 600; i++)); do
		if [[ $(curl -fsS --max-time 2 --cacert "$K8S_CA" --cert "$K8S_CLIENT_CERT" \
			--key "$K8S_CLIENT_KEY" "$APISERVER_URL/readyz" 2>/dev/null) == ok ]]; then
			return 0
		fi
		if ! alive "$pid"; then
			echo "kube-apiserver exited:"
			tail -n 5 "$dir/kube-apiserver.log"
			return 1
		fi
		sleep 0.1
	done
	echo "kube-apiserver not ready after 60 s"
	return 1
}

case ${1:-} in
apiserver-stop)
	apiserver_stop "${2:?DIR}"
	exit
	;;
apiserver-start)
	apiserver_start "${2:?DIR}"
	exit
	;;
esac

# ---------------------------------------------------------------- the test

BUILD=${BUILD:-$TOP/build}
SMOKE=$BUILD/tests/k8s/sync_smoke
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
}
check() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}

if [[ ! -x $SMOKE ]]; then
	echo "1..0 # SKIP $SMOKE is not built (set BUILD)"
	exit 0
fi

WORK=$(mktemp -d /tmp/hsdk-sync.XXXXXX)
SMOKE_PID=
cleanup() {
	local rc=$? logs
	trap - EXIT INT TERM HUP
	if [[ -n $SMOKE_PID ]]; then
		kill -KILL "$SMOKE_PID" 2>/dev/null
		wait "$SMOKE_PID" 2>/dev/null
	fi
	"$CLUSTER" down "$WORK/cluster" >/dev/null 2>&1
	if ((rc != 0)); then
		logs=$(mktemp -d /tmp/hypersdk-sync-logs.XXXXXX)
		cp "$WORK"/*.log "$WORK"/cluster/*.log "$logs/" 2>/dev/null
		echo "# logs kept in $logs"
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
export HYPERSDK_K8S_OWNER=$$

if "$CLUSTER" up "$WORK/cluster" >"$WORK/cluster-up.log" 2>&1; then
	ok "cluster up: $(sed -n 's/.*\(up in [0-9]* ms\).*/\1/p' "$WORK/cluster-up.log")"
else
	not_ok "cluster up"
	sed 's/^/# /' "$WORK/cluster-up.log"
	echo "Bail out! no cluster"
	exit 1
fi

# In the background, so that a signal to us is handled at once (bash runs
# traps only between foreground commands).
"$SMOKE" $((n + 1)) "$WORK/cluster" "$HERE/sync.sh" "$TOP/deploy/crds" "$WORK" \
	2>"$WORK/smoke.log" &
SMOKE_PID=$!
wait "$SMOKE_PID"
rc=$?
SMOKE_PID=
ran=0
bad=0
if read -r ran bad <"$WORK/smoke.result" 2>/dev/null; then
	n=$((n + ran))
	failed=$((failed + bad))
	check "sync_smoke ran to its end (exit status $rc)" test "$rc" -eq "$((bad > 0))"
else
	not_ok "sync_smoke ran to its end (exit status $rc)"
fi
# sync's own log: all of it when something failed, else the notable lines
if ((failed > 0)); then
	sed 's/^/# /' "$WORK/smoke.log"
else
	grep -e '410 Gone' -e 'outbox' "$WORK/smoke.log" | sed 's/^/# /'
fi
check "the relist followed a 410 Gone of the watch" grep -q 'expired (410 Gone): relisting' "$WORK/smoke.log"
check "no sanitizer report" bash -c "! grep -q 'Sanitizer\|runtime error' '$WORK/smoke.log'"

pids=$(cat "$WORK/cluster/kube-apiserver.pid" "$WORK/cluster/etcd.pid" 2>/dev/null)
check "cluster down" "$CLUSTER" down "$WORK/cluster"
gone() {
	local p
	for p in $pids; do
		if alive "$p"; then return 1; fi
	done
}
check "no etcd or kube-apiserver left running" gone

echo "1..$n"
((failed == 0))
