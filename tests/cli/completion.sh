#!/usr/bin/env bash
# TAP test: deploy/completion/hyperctl.bash completes verbs, VM names from
# a mount (-m, $HYPERSDK_MOUNT), the k8s -op values and flags, and the
# options of each verb.  A fake tree stands in for the mount: completion
# only lists directories.  kubectl is hidden so that no cluster is asked.
set -uo pipefail
export LC_ALL=C
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
T=$(mktemp -d /tmp/hsdk-comp.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/m/vms/web" "$T/m/vms/db" "$T/bin"
: >"$T/m/vms/ctl"
: >"$T/m/vms/err"
# a kubectl that knows two VMs, so -vm completion is checked without a cluster
cat >"$T/bin/kubectl" <<'K'
#!/bin/sh
case "$*" in *virtualmachines*) printf 'virtualmachine.hypersdk.io/k8s-a\nvirtualmachine.hypersdk.io/k8s-b\n' ;; esac
K
chmod +x "$T/bin/kubectl"
# hyperctl itself gives the verbs (hyperctl __complete), from the build
PATH=$T/bin:${BUILD:-$TOP/build}/cli:$PATH
# shellcheck disable=SC1091
. "$TOP/deploy/completion/hyperctl.bash"

n=0
failed=0
# comp WANT WORDS...: completing the last word gives WANT (space-separated)
comp() {
	local want=$1 got
	shift
	COMP_WORDS=(hyperctl "$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_hyperctl
	got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//')
	n=$((n + 1))
	if [ "$got" = "$want" ]; then
		echo "ok $n - hyperctl $* -> $want"
	else
		failed=$((failed + 1))
		echo "not ok $n - hyperctl $*"
		echo "# got:  '$got'"
		echo "# want: '$want'"
	fi
}

comp "start status stop" st
comp "snapshot spec start status stop" s
comp "k8s" k
comp "db web" -m "$T/m" start ""
comp "web" -m "$T/m" status w
HYPERSDK_MOUNT=$T/m comp "db web" stop ""
comp "force" -m "$T/m" stop web f
comp "linked" -m "$T/m" clone web target l
comp "cpus= memory=" -m "$T/m" resize web ""
comp "Paused Pending" -m "$T/m" wait web P
comp "" -m "$T/m" create ""
comp "vm-snapshot-create vm-snapshot-delete vm-snapshot-list vm-snapshot-restore" k8s -op vm-snap
comp "template-list" k8s -op t
comp "-target -target-node -template" k8s -op vm-clone -t
comp "k8s-a k8s-b" k8s -op vm-start -vm ""
comp "" k8s -op vm-create -cpus ""
echo "1..$n"
[ "$failed" -eq 0 ]
