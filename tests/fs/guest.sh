#!/usr/bin/env bash
# A real Linux guest through the tree: the tiny guest of tests/guest/build.sh
# booted by direct kernel boot (spec.kernelBoot) with the guest agent
# (spec.guestAgent), the serial console, AgentConnected, a graceful ACPI
# `stop` (the guest powers itself off, no StopTimeout) and a `restart`.
#
# Runs under TCG: Linux guests hang under nested KVM on our machines
# (docs/operator-guide.md, "KVM or TCG").  Every wait is bounded, so a
# broken guest fails fast.
#
# Environment: GUEST_BOOT_TIMEOUT (seconds from start to an agent answer,
# default 30).
. "$(dirname "$0")/lib.sh"

BOOT_TIMEOUT=${GUEST_BOOT_TIMEOUT:-30}
STOP_TIMEOUT=30 # the daemon's --stop-timeout; a graceful stop is far quicker
GRACEFUL_MAX=15 # seconds a graceful stop may take here (measured: ~2 s)
GUEST=$T/guest
CONSOLE_PID=

guest_cleanup() {
	if [ -n "$CONSOLE_PID" ]; then
		kill "$CONSOLE_PID" 2>/dev/null
		wait "$CONSOLE_PID" 2>/dev/null
	fi
	if [ "$tap_failed" -gt 0 ] && [ -s "$T/console.log" ]; then
		echo "# guest console (last 30 lines):"
		tail -n 30 "$T/console.log" | tr -d '\r' | sed 's/^/#   /'
	fi
	cleanup
}
trap guest_cleanup EXIT

# ctl VM MSG [SECONDS]: one bounded write to vms/VM/ctl; prints ok, the
# errno's name, or TIMEOUT.
ctl() {
	local rc
	timeout -k 5 "${3:-60}" "$ONEWRITE" "$M/vms/$1/ctl" "$2"
	rc=$?
	[ $rc -ne 124 ] && [ $rc -ne 137 ] || echo TIMEOUT
}
ms() { date +%s%3N; }
agent_ping() {
	timeout 10 "${VIRSH[@]}" qemu-agent-command "$1" '{"execute":"guest-ping"}' \
		>/dev/null 2>&1
}
cond_is() { [ "$(status_key "$1" "condition.$2")" = "$3" ]; }
bail() {
	echo "Bail out! $1"
	done_testing
}
# count_events VM REGEX
count_events() { grep -cE "$2" "$M/vms/$1/events" 2>/dev/null || true; }

# capture_console VM: copy the serial console (a pty) to $T/console.log.
# The guest needs seconds under TCG to reach /init, so opening the pty
# right after start catches the marker.
capture_console() {
	local pty
	[ -z "$CONSOLE_PID" ] || { kill "$CONSOLE_PID" 2>/dev/null; wait "$CONSOLE_PID" 2>/dev/null; }
	CONSOLE_PID=
	: >"$T/console.log"
	pty=$(status_key "$1" console)
	[ -c "$pty" ] || return 1
	(stty raw -echo && exec cat) <"$pty" >"$T/console.log" 2>/dev/null &
	CONSOLE_PID=$!
}

# --- the guest
t0=$(ms)
if "$TOP/tests/guest/build.sh" "$GUEST" >"$T/build.log" 2>&1; then
	ok "guest kernel and initramfs ready ($(($(ms) - t0)) ms)"
else
	not_ok "tests/guest/build.sh builds the guest" "$(tail -n 20 "$T/build.log")"
	done_testing
fi
check "vmlinuz and initrd.img are readable by libvirt-qemu" \
	test "$(stat -c %a "$GUEST" "$GUEST/vmlinuz" "$GUEST/initrd.img" | tr '\n' ' ')" = "755 644 644 "

ACCEL=tcg STOP_TIMEOUT=$STOP_TIMEOUT start_mountd --kernel-dir "$GUEST" || { not_ok "daemon starts"; done_testing; }
ok "daemon mounts $M (tcg, --stop-timeout $STOP_TIMEOUT)"

g=${P}g
is "create $g" "$(timeout 30 "$ONEWRITE" "$M/vms/ctl" "create $g memory=256Mi disk=64Mi")" ok
cat >"$T/spec.yaml" <<EOF
cpus: 1
memory: 256Mi
running: false
disks:
- name: root
  size: 64Mi
networks:
- name: default
  type: pod-network
guestAgent: true
kernelBoot:
  kernel: $GUEST/vmlinuz
  initrd: $GUEST/initrd.img
  cmdline: console=ttyS0
EOF
is "spec with kernelBoot and guestAgent is accepted" \
	"$(timeout 30 "$ONEWRITE" "$M/vms/$g/spec" - <"$T/spec.yaml")" ok
spec=$(cat "$M/vms/$g/spec")
like "spec reads back kernelBoot" "$spec" "kernelBoot:.*kernel: $GUEST/vmlinuz"
like "spec reads back guestAgent: true" "$spec" "guestAgent: true"
xml=$("${VIRSH[@]}" dumpxml --inactive "$g" 2>/dev/null)
like "domain boots the kernel directly" "$xml" "<kernel>$GUEST/vmlinuz</kernel>"
like "domain has the initrd" "$xml" "<initrd>$GUEST/initrd.img</initrd>"
like "domain has the cmdline" "$xml" "<cmdline>console=ttyS0</cmdline>"
like "domain has the agent channel" "$xml" "name='org.qemu.guest_agent.0'"
like "domain is TCG" "$xml" "<domain type='qemu'"
is "stopped VM: AgentConnected false" "$(status_key "$g" condition.AgentConnected)" false
# The status follows the redefinition through libvirt's "Defined" event
# (before e1647be a lost wakeup could leave it stale until the next event).
wait_for 2 cond_is "$g" AgentConnected.reason AgentNotConnected
is "stopped VM with a channel: reason AgentNotConnected" \
	"$(status_key "$g" condition.AgentConnected.reason)" AgentNotConnected

# --- start, console marker, agent
t0=$(ms)
is "start" "$(ctl "$g" start)" ok
t_start=$(($(ms) - t0))
is "start returns with phase Running" "$(phase "$g")" Running
is "libvirt says running" "$(domstate "$g")" running
like "status has the console pty" "$(status_key "$g" console)" '^/dev/pts/[0-9]+$'
check "console capture starts" capture_console "$g"
wait_for "$BOOT_TIMEOUT" grep -q HYPERSDK-GUEST-UP "$T/console.log"
t_marker=$(($(ms) - t0))
check "serial console shows HYPERSDK-GUEST-UP" grep -q HYPERSDK-GUEST-UP "$T/console.log"
wait_for "$BOOT_TIMEOUT" agent_ping "$g"
t_agent=$(($(ms) - t0))
agent_ping "$g" && ok "guest agent answers guest-ping within $BOOT_TIMEOUT s" ||
	bail "the guest agent did not answer within $BOOT_TIMEOUT s"
wait_for 10 cond_is "$g" AgentConnected true
t_cond=$(($(ms) - t0))
is "condition AgentConnected becomes true" "$(status_key "$g" condition.AgentConnected)" true
is "AgentConnected reason" "$(status_key "$g" condition.AgentConnected.reason)" AgentConnected
echo "# start returned in $t_start ms; marker at $t_marker ms, agent ping at $t_agent ms, AgentConnected at $t_cond ms"
like "the guest ran acpid and qemu-ga" "$(tr -d '\r' <"$T/console.log")" \
	"acpid running.*qemu-ga on /dev/vport"

# --- graceful stop: ACPI power button, the guest powers off by itself
t0=$(ms)
is "stop" "$(ctl "$g" stop $((STOP_TIMEOUT + 30)))" ok
t_stop=$(($(ms) - t0))
is "stop returns with phase Stopped" "$(phase "$g")" Stopped
is "libvirt says shut off" "$(domstate "$g")" "shut off"
like "libvirt's reason: the guest shut down" \
	"$("${VIRSH[@]}" domstate --reason "$g" 2>/dev/null | head -n 1)" "shut off \(shutdown\)"
check "graceful stop took $t_stop ms, well before --stop-timeout ${STOP_TIMEOUT}s" \
	test "$t_stop" -lt $((GRACEFUL_MAX * 1000))
ev=$(cat "$M/vms/$g/events")
like "events: the guest shut down by itself" "$(tail -n 3 <<<"$ev")" "Stopped shut down by the guest"
is "events: no StopTimeout" "$(count_events "$g" ' StopTimeout ')" 0
is "events: not powered off" "$(count_events "$g" 'powered off')" 0
is "events: not seen as stopped outside" "$(count_events "$g" 'StoppedOutside|Crashed')" 0
wait_for 5 grep -q "reboot: Power down" "$T/console.log"
check "guest console shows the kernel powering down" grep -q "reboot: Power down" "$T/console.log"
is "AgentConnected false once stopped" "$(status_key "$g" condition.AgentConnected)" false
like "spec says running: false" "$(cat "$M/vms/$g/spec")" "running: false"
is "status drops the console when stopped" "$(status_key "$g" console)" -

# --- restart round trip: graceful stop, then a new boot
is "start again" "$(ctl "$g" start)" ok
check "console capture restarts" capture_console "$g"
t0=$(ms)
wait_for "$BOOT_TIMEOUT" agent_ping "$g"
check "agent answers before restart" agent_ping "$g"
wait_for 10 cond_is "$g" AgentConnected true
pid1=$(status_key "$g" pid)
t0=$(ms)
is "restart" "$(ctl "$g" restart $((STOP_TIMEOUT + 60)))" ok
t_restart=$(($(ms) - t0))
is "restart ends Running" "$(phase "$g")" Running
pid2=$(status_key "$g" pid)
check "restart made a new QEMU process ($pid1 -> $pid2)" test "$pid1" != "$pid2" -a -n "$pid2"
check "restart's stop was graceful ($t_restart ms)" test "$t_restart" -lt $((GRACEFUL_MAX * 1000))
wait_for 5 grep -q "reboot: Power down" "$T/console.log"
check "old guest powered itself down" grep -q "reboot: Power down" "$T/console.log"
is "events: two graceful stops" "$(count_events "$g" 'Stopped shut down by the guest')" 2
is "events: still no StopTimeout" "$(count_events "$g" ' StopTimeout |powered off')" 0
check "console capture follows the new QEMU" capture_console "$g"
t0=$(ms)
wait_for "$BOOT_TIMEOUT" agent_ping "$g"
check "agent answers after restart ($(($(ms) - t0)) ms)" agent_ping "$g"
wait_for 10 cond_is "$g" AgentConnected true
is "AgentConnected true again" "$(status_key "$g" condition.AgentConnected)" true
# The pty may have opened after the marker; the agent proves the boot.

# --- done: a last graceful stop, delete, unmount
is "final stop" "$(ctl "$g" stop $((STOP_TIMEOUT + 30)))" ok
is "events: three graceful stops, no timeout" \
	"$(count_events "$g" 'Stopped shut down by the guest') $(count_events "$g" ' StopTimeout ')" "3 0"
is "delete" "$(ctl "$g" delete)" ok
check "domain gone from libvirt" bash -c "! ${VIRSH[*]} dominfo $g >/dev/null 2>&1"
check "SIGTERM unmounts cleanly" stop_mountd
done_testing
