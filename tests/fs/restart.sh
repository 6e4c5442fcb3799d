#!/usr/bin/env bash
# The daemon's life: refusals at start, SIGTERM leaves VMs running,
# kill -9 and restart over the stale mount keeps every VM as it was.
. "$(dirname "$0")/lib.sh"

r=${P}r
s=${P}s
start_mountd || { not_ok "daemon starts"; done_testing; }
"$ONEWRITE" "$M/vms/ctl" "create $r memory=64Mi disk=64Mi running=true" >/dev/null
"$ONEWRITE" "$M/vms/ctl" "create $s memory=64Mi disk=64Mi" >/dev/null
is "one VM running" "$(phase "$r")" Running
is "one VM stopped" "$(phase "$s")" Stopped
pid=$(status_key "$r" pid)

# A second daemon on the same mount point is refused with one line.
out=$("$MOUNTD" --foreground --mount "$M" --state-dir "$T/other" --pool-dir "$T/otherpool" --node "${NODE}x" 2>&1)
rc=$?
check "a second daemon on a busy mount point fails" test "$rc" -ne 0
like "it says the mount point is busy" "$out" "busy"
is "and says it in one line" "$(printf '%s\n' "$out" | wc -l)" 1 || echo "# $out"

kill9_mountd
check "after kill -9 the mount is stale" bash -c "! ls '$M/vms' >/dev/null 2>&1"
is "the running VM kept running" "$(domstate "$r")" running
start_mountd || not_ok "restart over the stale mount"
ok "restart over a stale mount works"
is "running VM is Running again" "$(phase "$r")" Running
is "same QEMU process" "$(status_key "$r" pid)" "$pid"
is "stopped VM is Stopped" "$(phase "$s")" Stopped
is "libvirt agrees: stopped one is shut off" "$(domstate "$s")" "shut off"
like "spec of the running one still says running" "$(cat "$M/vms/$r/spec")" "running: true"

check "SIGTERM unmounts" stop_mountd
is "VMs keep running after SIGTERM" "$(domstate "$r")" running
start_mountd || not_ok "start again"
is "and are found Running" "$(phase "$r")" Running

# Off while the daemon was away (a host reboot): running: true starts it.
stop_mountd
"${VIRSH[@]}" destroy "$r" >/dev/null
start_mountd || not_ok "start after the VM went off"
is "a VM meant to run is started at start-up" "$(phase "$r")" Running
like "and its spec still says running: true" "$(cat "$M/vms/$r/spec")" "running: true"
"$ONEWRITE" "$M/vms/$r/ctl" "stop force" >/dev/null
stop_mountd

# Refusals, each with a one-line reason.
out=$("$MOUNTD" --foreground --mount "$M" --state-dir "$STATE" --pool-dir "$POOL" \
	--node "$NODE" --libvirt "qemu+unix:///system?socket=$T/nope.sock" 2>&1)
check "refuses when libvirt does not answer" test $? -ne 0
like "and says libvirt does not answer" "$out" "libvirt"
is "in one line" "$(printf '%s\n' "$out" | wc -l)" 1
check "and leaves nothing mounted" bash -c "! mountpoint -q '$M'"
out=$("$MOUNTD" --foreground --bogus 2>&1)
check "refuses unknown options" test $? -ne 0
out=$("$MOUNTD" --foreground --node "Bad_Node" --mount "$M" 2>&1)
check "refuses a bad node name" test $? -ne 0
like "and names the option" "$out" "node"
done_testing
