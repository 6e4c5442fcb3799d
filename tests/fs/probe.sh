#!/usr/bin/env bash
# hypersdk-mountd --probe live|ready, the pod's probes (docs/deploy.md,
# "Probes"): judged through the tree, so a folder with nothing mounted, a
# libvirtd gone away and a dead daemon's mount each fail with their reason.
# The daemon runs over node 2's libvirtd, which this test stops and starts.
. "$(dirname "$0")/lib.sh"

probe() { "$MOUNTD" --probe "$1" --mount "$M" 2>&1; }
probe_rc() { "$MOUNTD" --probe "$1" --mount "$M" >/dev/null 2>&1; echo $?; }
fails() { [ "$(probe_rc "$1")" = 1 ]; }
passes() { [ "$(probe_rc "$1")" = 0 ]; }

mkdir -p "$M"
is "a folder with no tree: live fails, exit 1" "$(probe_rc live)" 1
is "   and says so" "$(probe live)" "live: $M: the tree is not mounted"
is "a word other than live or ready: usage error, exit 2" "$(probe_rc sideways)" 2

node2_require
start_mountd2 || { not_ok "daemon starts on node 2's libvirt"; done_testing; }
M=$M2
is "a serving daemon: live passes" "$(probe live)" "live: ok"
is "   ready passes (standalone: no API server to ask)" "$(probe ready)" "ready: ok"
is "   nodes/NODE/status says libvirt.connected true" \
	"$(awk '$1 == "libvirt.connected" {print $2}' "$M/nodes/$NODE2/status")" true

"$TOP/scripts/libvirt-node2.sh" down >/dev/null 2>&1
check "libvirtd gone: ready fails once keepalive notices (within 45 s)" wait_for 45 fails ready
like "   with the reason" "$(probe ready)" "^ready: libvirt at .* is not connected$"
check "   live still passes: the tree answers" passes live
"$TOP/scripts/libvirt-node2.sh" up >/dev/null 2>&1
check "libvirtd back: ready passes again (within 30 s)" wait_for 30 passes ready

kill -9 "$PID2"
wait "$PID2" 2>/dev/null
PID2=
is "a daemon killed with -9: live fails, exit 1" "$(probe_rc live)" 1
is "   and names the dead mount" "$(probe live)" \
	"live: $M: Transport endpoint is not connected (its daemon is gone)"
done_testing
