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
# A pod's hostPath volume is a bind mount at the mount point: mounted over.
mount --bind "$M" "$M"
start_mountd || not_ok "start again"
is "a bind mount at the mount point is mounted over; VMs found Running" "$(phase "$r")" Running
stop_mountd
umount "$M"
start_mountd || not_ok "start again"

# Off while the daemon was away (a host reboot): running: true starts it.
stop_mountd
"${VIRSH[@]}" destroy "$r" >/dev/null
start_mountd || not_ok "start after the VM went off"
is "a VM meant to run is started at start-up" "$(phase "$r")" Running
like "and its spec still says running: true" "$(cat "$M/vms/$r/spec")" "running: true"
"$ONEWRITE" "$M/vms/$r/ctl" "stop force" >/dev/null
stop_mountd

# Objects a crash caught mid-way (their files say so, as a kill -9 leaves
# them): the restart gives each a clear end instead of leaving it running.
h=${P}h
start_mountd || not_ok "start for the interrupted objects"
is "a snapshot of the stopped VM" "$("$ONEWRITE" "$M/vms/$s/ctl" "snapshot ${P}s1")" ok
is "a full clone of it" "$("$ONEWRITE" "$M/vms/$s/ctl" "clone $h")" ok
op=$(ls "$M/operations" | grep -- "-clone-")
stop_mountd
python3 - "$STATE" "${P}s1" "${P}s9" "$op" <<'PY'
import json, sys
state, s1, s9, op = sys.argv[1:]
def edit(path, fn, out=None):
    with open(path) as f:
        o = json.load(f)
    fn(o)
    with open(out or path, "w") as f:
        json.dump(o, f)
def creating(o):
    o["status"] = {"phase": "Creating"}
def gone(o):
    creating(o)
    o["metadata"]["name"] = s9
def running(o):
    o["status"] = {"phase": "Running", "progress": 40}
edit(f"{state}/snapshots/{s1}.json", creating)
edit(f"{state}/snapshots/{s1}.json", gone, f"{state}/snapshots/{s9}.json")
edit(f"{state}/operations/{op}.json", running)
PY
start_mountd || not_ok "restart with interrupted objects"
okey() { awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$M/$1/status" 2>/dev/null; }
is "the operation caught Running ends Failed" "$(okey "operations/$op" phase)" Failed
like "and says why" "$(okey "operations/$op" message)" "interrupted: hypersdk-mountd restarted"
check "its half-made clone target is removed" bash -c "! test -e '$M/vms/$h'"
check "from libvirt too" bash -c "! ${VIRSH[*]} dominfo $h >/dev/null 2>&1"
is "a snapshot libvirt finished is Ready after all" "$(okey "vms/$s/snapshots/${P}s1" phase)" Ready
is "one libvirt does not have is Failed" "$(okey "vms/$s/snapshots/${P}s9" phase)" Failed
is "the source VM is untouched" "$(phase "$s")" Stopped
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
