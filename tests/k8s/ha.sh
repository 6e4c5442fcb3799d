#!/usr/bin/env bash
# Node loss with two nodes (each a daemon with its own libvirtd) on one
# API server, sharing one folder as storage class "san" (:shared):
#   - host death: node 1's daemon is killed (-9) and its QEMU destroyed; an
#     HA VM on shared storage runs on node 2 within 60 s, kubectl agrees on
#     nodeName, a watcher sampling both libvirts never sees two copies
#     running, and events say FailedOver;
#   - a VM on local disks of the dead node becomes Unknown with NodeLost,
#     and is not started elsewhere;
#   - self-fencing: node 2 cut off from the API server (its own proxy is
#     killed) destroys the VM before its Lease could expire, node 1 takes
#     it over, and node 2 lets go once it is back;
#   - frozen daemon (SIGSTOP) with its guest still running: node 2 claims
#     the VM but libvirt's lock manager refuses it the disk; after SIGCONT
#     node 1 fences itself and node 2 starts the VM;
#   - a drain hands the HA VM (not LiveMigrate) to the other node;
#   - kubectl get events shows all of it.
. "$(dirname "$0")/lib.sh"
WATCH_PID=
PROXY_PID=
# A frozen daemon must thaw before its mount can go.
trap '[ -z "$MOUNTD_PID" ] || kill -CONT "$MOUNTD_PID" 2>/dev/null
	kill "$WATCH_PID" 2>/dev/null; proxy_cut; cluster_down; cleanup' EXIT

node2_require
cluster_up
. "$KC/env"
SAN=$T/san
mkdir -p "$SAN" && chmod 755 "$SAN"

# Node 2 reaches the API server through a proxy of its own: killing it
# cuts node 2 off while node 1 and kubectl still reach the server.
PROXY_PORT=$((20000 + $$ % 20000))
proxy_up() {
	socat "TCP-LISTEN:$PROXY_PORT,bind=127.0.0.1,reuseaddr,fork" \
		"TCP:127.0.0.1:$APISERVER_PORT" 2>>"$T/socat.log" &
	PROXY_PID=$!
	wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PROXY_PORT" 2>/dev/null
}
# socat's children carry the open connections (the watches): they go too.
proxy_cut() {
	[ -n "$PROXY_PID" ] || return 0
	pkill -9 -P "$PROXY_PID" 2>/dev/null
	kill -9 "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
	PROXY_PID=
}
sed "s#server: $APISERVER_URL#server: https://127.0.0.1:$PROXY_PORT#" \
	"$KC/kubeconfig" >"$T/kubeconfig2" && chmod 600 "$T/kubeconfig2"
check "node 2's proxy to the API server" proxy_up

NODE1_ARGS=(--kubeconfig "$KC/kubeconfig" --namespace default
	--migration-uri "$BACK" --storage-class "san=$SAN:shared")
ACCEL=tcg start_mountd "${NODE1_ARGS[@]}" ||
	{ not_ok "node 1's daemon starts"; done_testing; }
start_mountd2 --accel tcg --kubeconfig "$T/kubeconfig2" --namespace default \
	--migration-uri "$URI2" --storage-class "san=$SAN:shared"
check "node 2's daemon mounts" test -e "$M2/vms/ctl"

jp() { k get vm "$1" -o jsonpath="$2" 2>/dev/null; }
owner_is() { [ "$(jp "$1" '{.status.nodeName}')" = "$2" ]; }
state1() { virsh -q -c qemu:///system domstate "$1" 2>/dev/null | head -n 1; }
state2() { virsh -q -c "$URI2" domstate "$1" 2>/dev/null | head -n 1; }

a=${P}a  # HA, on shared storage: fails over
l=${P}l  # HA, on node 1's local pool: cannot move
vm() { vm_yaml "$1" node="$NODE" ha="restartPolicy: Always" "${@:2}"; } # NAME [OPTION...]
vm "$a" class=san | k apply -f - >/dev/null
vm "$l" | k apply -f - >/dev/null
check "the shared VM runs on node 1" wait_for 60 phase_is "$a" Running
check "the local one too" wait_for 60 phase_is "$l" Running
check "its disk is in the shared folder" test -f "$SAN/${a}_root.qcow2"
# The nodeSelector put them on node 1; node 2 may take the shared one.
k patch vm "$a" --type json -p '[{"op":"remove","path":"/spec/nodeSelector"}]' >/dev/null
k patch vm "$l" --type json -p '[{"op":"remove","path":"/spec/nodeSelector"}]' >/dev/null

# watch: until $T/stop-watch, count samples where both libvirts run $a.
watch() {
	local both=0 n=0
	while [ ! -e "$T/stop-watch" ]; do
		[ "$(state1 "$a")" = running ] && [ "$(state2 "$a")" = running ] &&
			both=$((both + 1))
		n=$((n + 1))
		sleep 0.2
	done
	echo "$both/$n" >"$T/watch.out"
}
watch &
WATCH_PID=$!

# ---- host death
sleep 25        # both nodes online for a whole Lease period
t0=$SECONDS
kill9_mountd
virsh -q -c qemu:///system destroy "$a" >/dev/null 2>&1
virsh -q -c qemu:///system destroy "$l" >/dev/null 2>&1
check "the shared VM runs on node 2 within 60 s" wait_for 60 owner_is "$a" "$NODE2"
running2() { [ "$(state2 "$a")" = running ]; }
check "(libvirt of node 2)" wait_for 30 running2
took=$((SECONDS - t0))
echo "# failover: $took s from host death to Running on node 2"
is "kubectl: phase Running" "$(jp "$a" '{.status.phase}')" Running
like "its events say FailedOver from node 1" "$(cat "$M2/vms/$a/events")" "FailedOver from $NODE after"
nl() { [ "$(jp "$l" '{.status.phase}/{.status.conditions[?(@.type=="Ready")].reason}')" = Unknown/NodeLost ]; }
check "the local VM: Unknown, NodeLost" wait_for 30 nl
is "still assigned to node 1" "$(jp "$l" '{.status.nodeName}')" "$NODE"
is "and not started on node 2" "$(state2 "$l")" ""

# ---- self-fencing: node 2 loses the API server, node 1 does not
fusermount3 -uz "$M" 2>/dev/null
ACCEL=tcg start_mountd "${NODE1_ARGS[@]}"
check "node 1's daemon is back" test -e "$M/vms/ctl"
lback() { [ "$(jp "$l" '{.status.phase}/{.status.nodeName}')" = "Running/$NODE" ]; }
check "node 1, back, runs its local VM again (it stayed assigned)" wait_for 60 lback
sleep 3         # node 1 synced and renewing
t0=$SECONDS
proxy_cut
stopped2() { [ "$(state2 "$a")" != running ]; }
check "node 2, cut off, destroys the VM itself" wait_for 20 stopped2
fenced=$((SECONDS - t0))
# Its Lease (15 s) had not expired: nobody could have claimed the VM yet.
is "(before its Lease expired: ${fenced} s after the cut)" "$((fenced < 15))" 1
has_event() { grep -q "$3" "$1/vms/$2/events" 2>/dev/null; } # MOUNT VM RE
check "node 2's events say Fenced" wait_for 10 has_event "$M2" "$a" "Fenced.*has not renewed its Lease"
running1() { [ "$(state1 "$a")" = running ]; }
check "node 1 takes the VM over and runs it" wait_for 60 running1
echo "# fencing: node 2 stopped the VM ${fenced} s after the cut, node 1 ran it after $((SECONDS - t0)) s"
is "kubectl: node 1 owns it" "$(jp "$a" '{.status.nodeName}')" "$NODE"
check "node 2's proxy is back" proxy_up
check "node 2, back, lets go of the VM (event Lost)" wait_for 30 has_event "$M2" "$a" "Lost"
is "and does not run it" "$(state2 "$a")" ""
is "node 1 still runs it" "$(state1 "$a")" running

# ---- frozen daemon: node 1's daemon stops, its guest does not
sleep 10        # node 2 online again for a whole Lease period by the claim
# (node 1's tree is not read while its daemon is stopped: it would hang)
gone1=$(grep -c 'Fenced\|Lost' "$M/vms/$a/events")
t0=$SECONDS
kill -STOP "$MOUNTD_PID"
check "node 2 claims the VM of the frozen node" wait_for 60 owner_is "$a" "$NODE2"
locked2() { grep -qi "lock" "$M2/vms/$a/err" "$M2/vms/$a/events" 2>/dev/null; }
check "node 2's start is refused: the disk is locked" wait_for 30 locked2
# Node 1's virtlockd holds a POSIX lock on the disk file itself (libvirt's
# lockd, direct mode): another node's virtlockd cannot take it.
lockd_holds() { # FILE
	awk -v p="$(cat /run/virtlockd.pid)" -v i=":$(stat -c %i "$1")\$" \
		'$2 == "POSIX" && $4 == "WRITE" && $5 == p && $6 ~ i { f = 1 } END { exit !f }' /proc/locks
}
check "node 1's virtlockd holds the disk's lock" lockd_holds "$SAN/${a}_root.qcow2"
sleep 6         # one more try of node 2's (every 5 s)
not_running2() { [ "$(state2 "$a")" != running ]; }
check "node 2 does not run it" not_running2
is "the frozen node's guest still runs" "$(state1 "$a")" running
echo "# frozen: node 2 claimed after $((SECONDS - t0)) s; lock: $(grep -hi lock "$M2/vms/$a/err" 2>/dev/null | tail -n 1 | cut -c1-160)"
t1=$SECONDS
kill -CONT "$MOUNTD_PID"
check "thawed, node 1 fences itself and node 2 runs the VM" wait_for 60 running2
echo "# frozen: Running on node 2 $((SECONDS - t1)) s after SIGCONT"
stopped1() { [ "$(state1 "$a")" != running ]; }
check "node 1 does not run it" wait_for 10 stopped1
more_gone() { [ "$(grep -c 'Fenced\|Lost' "$M/vms/$a/events")" -gt "$gone1" ]; }
check "node 1's events say why (Fenced, or Lost when the watch was first)" wait_for 10 more_gone

# ---- drain: the HA VM on shared storage is handed over, not stopped
# (evictionStrategy defaults to LiveMigrate: this one shuts down)
k patch vm "$a" --type merge -p '{"spec":{"highAvailability":{"evictionStrategy":"Shutdown"}}}' >/dev/null
sleep 2
check "drain node 2 (from node 1's tree)" sh -c "echo drain > '$M/nodes/$NODE2/ctl'"
check "the VM runs on node 1" wait_for 60 running1
is "kubectl: node 1 owns it, spec.running still true" \
	"$(jp "$a" '{.status.nodeName}/{.spec.running}')" "$NODE/true"
check "events: Drained, handed over" wait_for 10 has_event "$M2" "$a" "Drained.*handed over to node $NODE"
is "node 2 no longer has the domain" "$(state2 "$a")" ""

touch "$T/stop-watch"
wait "$WATCH_PID"
like "never two copies running (samples with both / all)" "$(cat "$T/watch.out")" '^0/[0-9]+$'

# Node 2 posts its Events a few seconds after its tree shows them.
reasons() { k get events --field-selector "involvedObject.name=$a" -o jsonpath='{range .items[*]}{.reason} {end}' 2>&1; }
all_posted() { ev=$(reasons); for r in Started FailedOver Fenced Lost Drained; do
	case " $ev" in *" $r "*) ;; *) sleep 1; return 1;; esac; done; }
wait_for 20 all_posted || true
ev=$(reasons)
for r in Started FailedOver Fenced Lost Drained; do
	like "kubectl get events: $r" "$ev" "$r"
done

stop2
done_testing
