#!/usr/bin/env bash
# TAP test: hyperctl k8s prints, for fixed inputs, exactly the manifests in
# tests/cli/golden/ (one per -op verb and spelling), and refuses bad input
# with one line on stderr and exit status 2 (usage) or 1 (failure).
# Generated names are fixed by HYPERCTL_NOW.  tests/k8s/hyperctl.sh checks
# that the API server takes these manifests.
#
#   BUILD=build tests/cli/golden.sh        UPDATE=1 rewrites the goldens
set -uo pipefail
export LC_ALL=C

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
HYPERCTL=$BUILD/cli/hyperctl
GOLDEN=$TOP/tests/cli/golden
T=$(mktemp -d /tmp/hsdk-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
export HYPERCTL_NOW=1764180000
unset KUBECONFIG HYPERSDK_MOUNT

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)); failed=$((failed + 1))
	echo "not ok $n - $1"
	[ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/# /'
}

# golden NAME ARGS...: hyperctl k8s ARGS prints golden/NAME.yaml, exit 0
golden() {
	local name=$1 rc
	shift
	"$HYPERCTL" k8s "$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ -n "${UPDATE:-}" ] && [ $rc -eq 0 ]; then
		cp "$T/out" "$GOLDEN/$name.yaml"
	fi
	if [ $rc -ne 0 ]; then
		not_ok "$name: $*" "exit $rc: $(cat "$T/err")"
	elif [ -s "$T/err" ]; then
		not_ok "$name: $*" "stderr: $(cat "$T/err")"
	elif ! diff -u "$GOLDEN/$name.yaml" "$T/out" >"$T/diff" 2>&1; then
		not_ok "$name: $*" "$(cat "$T/diff")"
	else
		ok "$name: $*"
	fi
}

# refuse RC MESSAGE ARGS...: hyperctl ARGS exits RC, prints nothing on
# stdout and exactly MESSAGE (one line) on stderr
refuse() {
	local want_rc=$1 want=$2 rc
	shift 2
	"$HYPERCTL" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ $rc -ne "$want_rc" ] || [ "$(cat "$T/err")" != "$want" ] || [ -s "$T/out" ]; then
		not_ok "refused: $*" "exit $rc (want $want_rc)
stderr: $(cat "$T/err")
want:   $want
stdout: $(head -c 200 "$T/out")"
	else
		ok "refused ($want_rc): $*"
	fi
}

[ -x "$HYPERCTL" ] || { echo "Bail out! no $HYPERCTL (build first)"; exit 1; }

# The seed's examples, as written there.
golden vm-create -op vm-create -vm my-vm -cpus 4 -memory 8Gi -template ubuntu-22-04
golden vm-start -op vm-start -vm my-vm
golden vm-stop -op vm-stop -vm my-vm
golden vm-restart -op vm-restart -vm my-vm
golden vm-clone -op vm-clone -vm my-vm -target my-vm-clone
golden vm-snapshot-create -op vm-snapshot-create -vm my-vm -snapshot my-snapshot -include-memory
# The other verbs.
golden vm-create-full -op vm-create -vm web -cpus 2 -memory 1.5G -disk 20Gi \
	-image https://cloud.example.com/jammy.qcow2 -namespace prod
golden vm-create-bare -op vm-create -vm my-vm
# VMOperation verbs that come from the verb table (CORE_OPS) alone.
golden vm-pause -op vm-pause -vm my-vm
golden vm-resume -op vm-resume -vm my-vm
golden vm-migrate -op vm-migrate -vm my-vm -target-node node-2
golden vm-resize -op vm-resize -vm my-vm -cpus 8 -memory 16Gi
golden vm-resize-memory -op vm-resize -vm my-vm -memory 4096Mi
golden vm-snapshot-create-auto -op vm-snapshot-create -vm my-vm
golden vm-snapshot-delete -op vm-snapshot-delete -vm my-vm -snapshot my-snapshot
golden vm-snapshot-restore -op vm-snapshot-restore -vm my-vm -snapshot my-snapshot
golden vm-delete -op vm-delete -vm my-vm -namespace prod
golden vm-start-named -op vm-start -vm my-vm -name start-now
# A 63-character VM: the generated name is cut to stay a DNS label.
golden vm-stop-long -op vm-stop -vm "$(printf 'a%.0s' {1..55})-bbbbbbb"
# The same manifests from the other flag spellings.
golden vm-create --op=vm-create --vm=my-vm --cpus=4 --memory=8Gi --template=ubuntu-22-04
golden vm-snapshot-create -op=vm-snapshot-create -vm=my-vm -snapshot my-snapshot --include-memory=true
golden vm-clone --op vm-clone --vm my-vm --target my-vm-clone

refuse 2 'hyperctl: -memory: bad quantity "lots"' k8s -op vm-create -vm my-vm -memory lots
refuse 2 'hyperctl: -memory: 1Ki: must be at least 1Mi' k8s -op vm-create -vm my-vm -memory 1Ki
refuse 2 'hyperctl: -disk: bad quantity "-1Gi": negative' k8s -op vm-create -vm my-vm -disk -1Gi
refuse 2 'hyperctl: -cpus: 0: must be 1 to 512' k8s -op vm-create -vm my-vm -cpus 0
refuse 2 'hyperctl: -cpus: 513: must be 1 to 512' k8s -op vm-resize -vm my-vm -cpus 513
refuse 2 'hyperctl: -cpus: "two": must be a number from 1 to 512' k8s -op vm-create -vm my-vm -cpus two
refuse 2 'hyperctl: unknown -op "vm-frobnicate"' k8s -op vm-frobnicate -vm my-vm
refuse 2 'hyperctl: -op vm-start needs -vm NAME' k8s -op vm-start
refuse 2 'hyperctl: -op vm-create needs -vm NAME' k8s -op vm-create -cpus 2
refuse 2 'hyperctl: -vm: bad name "My_VM": only lower case letters, digits and '"'"'-'"'"' are allowed' \
	k8s -op vm-start -vm My_VM
refuse 2 'hyperctl: -target: bad name "-x": must start and end with a letter or digit' \
	k8s -op vm-clone -vm my-vm -target -x
refuse 2 'hyperctl: -op vm-clone needs -target' k8s -op vm-clone -vm my-vm
refuse 2 'hyperctl: -target: a VM cannot be cloned onto itself' k8s -op vm-clone -vm my-vm -target my-vm
refuse 2 'hyperctl: -op vm-migrate needs -target-node' k8s -op vm-migrate -vm my-vm
refuse 2 'hyperctl: -target-node: bad node name "Node_2"' k8s -op vm-migrate -vm my-vm -target-node Node_2
refuse 2 'hyperctl: -op vm-resize needs -cpus or -memory' k8s -op vm-resize -vm my-vm
refuse 2 'hyperctl: -op vm-snapshot-restore needs -snapshot' k8s -op vm-snapshot-restore -vm my-vm
refuse 2 'hyperctl: -op vm-snapshot-delete needs -snapshot' k8s -op vm-snapshot-delete -vm my-vm
refuse 2 'hyperctl: -op vm-start does not take -cpus' k8s -op vm-start -vm my-vm -cpus 2
refuse 2 'hyperctl: -op vm-list does not take -vm' k8s -op vm-list -vm my-vm
refuse 2 'hyperctl: unknown flag -bogus' k8s -op vm-start -vm my-vm -bogus 1
refuse 2 'hyperctl: flag -vm needs a value' k8s -op vm-start -vm
refuse 2 'hyperctl: flag -vm given twice' k8s -op vm-start -vm a -vm b
refuse 2 'hyperctl: -include-memory: want true or false, not "yes"' \
	k8s -op vm-snapshot-create -vm my-vm -include-memory=yes
refuse 2 'hyperctl: unexpected argument "my-vm" (flags only after k8s)' k8s -op vm-start my-vm
refuse 2 'hyperctl: -namespace: bad name "Prod": only lower case letters, digits and '"'"'-'"'"' are allowed' \
	k8s -op vm-list -namespace Prod
HYPERCTL_NOW=soon refuse 1 'hyperctl: HYPERCTL_NOW: "soon" is not a number of seconds' k8s -op vm-start -vm my-vm
export HYPERCTL_NOW=1764180000
printf 'apiVersion: v1\nkind: Config\nclusters: []\n' >"$T/kc"
"$HYPERCTL" k8s -op vm-list -kubeconfig "$T/kc" >"$T/out" 2>"$T/err"
rc=$?
if [ $rc -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q '^hyperctl: kubeconfig: ' "$T/err"; then
	ok "vm-list with a kubeconfig without a cluster: exit 1, one line"
else
	not_ok "vm-list with a kubeconfig without a cluster" "exit $rc: $(cat "$T/err")"
fi

# Local verbs refuse before they touch the mount.
refuse 2 'hyperctl: unknown verb "frobnicate" (see hyperctl --help)' -m "$T" frobnicate web
refuse 2 'hyperctl: usage: hyperctl start NAME [args...]' -m "$T" start
refuse 2 'hyperctl: bad name "../etc": only lower case letters, digits and '"'"'-'"'"' are allowed' -m "$T" status ../etc
refuse 1 "hyperctl: $T/none: not a hypersdk mount (is hypersdk-mountd running? -m MOUNT or \$HYPERSDK_MOUNT)" \
	-m "$T/none" start web
HYPERSDK_MOUNT=$T/env refuse 1 "hyperctl: $T/env: not a hypersdk mount (is hypersdk-mountd running? -m MOUNT or \$HYPERSDK_MOUNT)" \
	status web

for h in --help -h help; do
	if "$HYPERCTL" $h | grep -q '^usage: hyperctl k8s'; then ok "hyperctl $h"; else not_ok "hyperctl $h"; fi
done
if "$HYPERCTL" k8s -help | grep -q 'vm-snapshot-restore'; then ok "hyperctl k8s -help lists the ops"; else not_ok "k8s -help"; fi

echo "1..$n"
[ "$failed" -eq 0 ]
