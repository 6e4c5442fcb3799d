#!/usr/bin/env bash
# highAvailability on one node, with real QEMU: a killed QEMU comes back
# after 10 s, a second kill after 20 s (the kubelet's CrashLoopBackOff
# spacing, the daemon's defaults), status shows the wait; a stop cancels
# a waiting restart; restartPolicy Never and OnFailure do as named.
#   RESTART_BACKOFF  the first wait in seconds (default 10, the daemon's own;
#                    the sanitizer run takes 2 and checks the doubling)
. "$(dirname "$0")/lib.sh"
B=${RESTART_BACKOFF:-10}
args=()
[ "$B" = 10 ] || args=(--restart-backoff "$B")

start_mountd "${args[@]}" || { not_ok "daemon starts"; done_testing; }

# ha_vm NAME POLICY: a running VM with highAvailability on.
ha_vm() {
	"$ONEWRITE" "$M/vms/ctl" "create $1 memory=64Mi disk=64Mi" >/dev/null &&
		sed '/^running:/d' "$M/vms/$1/spec" >"$T/$1.yaml" &&
		printf 'running: true\nhighAvailability:\n  enabled: true\n  restartPolicy: %s\n' \
			"$2" >>"$T/$1.yaml" &&
		"$ONEWRITE" "$M/vms/$1/spec" "$(cat "$T/$1.yaml")" >/dev/null &&
		wait_for 30 phase_is "$1" Running
}
kill_qemu() { kill -9 "$(status_key "$1" pid)"; }
stopped() { local p; p=$(phase "$1"); [ "$p" = Stopped ] || [ "$p" = Failed ]; }
restart_waits() { [ "$(status_key "$1" nextRestart)" != - ]; }

a=${P}a
check "a VM with restartPolicy Always runs" ha_vm "$a" Always

# seconds_back NAME: kill its QEMU; seconds until it runs again.
seconds_back() {
	local t0=$SECONDS
	kill_qemu "$1"
	wait_for 20 stopped "$1" && wait_for 400 phase_is "$1" Running || return 1
	echo $((SECONDS - t0))
}

t0=$SECONDS
kill_qemu "$a"
check "QEMU killed: the VM is down" wait_for 20 stopped "$a"
check "status says when the restart comes (nextRestart)" restart_waits "$a"
is "Ready's reason is CrashLoopBackOff" "$(status_key "$a" condition.Ready.reason)" CrashLoopBackOff
like "its message names the wait" "$(status_key "$a" condition.Ready.message)" "back-off ${B}s"
check "it runs again" wait_for 60 phase_is "$a" Running
d1=$((SECONDS - t0))
check "after the first wait of $B s ($d1 s)" test "$d1" -ge $((B - 1)) -a "$d1" -le $((B + 10))
is "restarts 1" "$(status_key "$a" restarts)" 1
is "nextRestart is gone" "$(status_key "$a" nextRestart)" -
is "libvirt runs it" "$(domstate "$a")" running
like "its events say so" "$(cat "$M/vms/$a/events")" "restart 1 in ${B}s .highAvailability."

d2=$(seconds_back "$a")
check "a second crash waits $((2 * B)) s ($d2 s)" test "${d2:-0}" -ge $((2 * B - 1)) -a "${d2:-0}" -le $((2 * B + 12))
is "restarts 2" "$(status_key "$a" restarts)" 2

kill_qemu "$a"
check "a third crash waits ($((4 * B)) s)" wait_for 20 restart_waits "$a"
like "and says $((4 * B))s" "$(status_key "$a" condition.Ready.message)" "back-off $((4 * B))s"
is "a stop during the wait cancels the restart" "$("$ONEWRITE" "$M/vms/$a/ctl" stop)" ok
is "nothing waits any more" "$(status_key "$a" nextRestart)" -
like "spec.running is false" "$(cat "$M/vms/$a/spec")" "running: false"
is "Ready's reason says why" "$(status_key "$a" condition.Ready.reason)" RestartCancelled
like "events too" "$(cat "$M/vms/$a/events")" RestartCancelled

n=${P}n
check "a VM with restartPolicy Never runs" ha_vm "$n" Never
kill_qemu "$n"
check "killed, it stays down" wait_for 20 stopped "$n"
check "and is meant to be off" wait_for 10 grep -q "running: false" "$M/vms/$n/spec"
is "no restart waits" "$(status_key "$n" nextRestart)" -

o=${P}o
check "a VM with restartPolicy OnFailure runs" ha_vm "$o" OnFailure
"${VIRSH[@]}" destroy "$o" >/dev/null
check "stopped outside (not a failure), it stays down" wait_for 20 stopped "$o"
is "no restart waits" "$(status_key "$o" nextRestart)" -
like "its events say it stopped outside" "$(cat "$M/vms/$o/events")" StoppedOutside
"$ONEWRITE" "$M/vms/$o/ctl" start >/dev/null
kill_qemu "$o"
check "killed (a failure), OnFailure restarts it" wait_for 20 restart_waits "$o"

stop_mountd
done_testing
