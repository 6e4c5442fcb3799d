#!/usr/bin/env bash
# Consoles are their owner's: VNC never serves a screen without a
# password, the password is in vms/NAME/console (the owner's, 0400) and
# never in status, and QEMU's serial pty is handed to the owner, 0600.
STOP_TIMEOUT=3
. "$(dirname "$0")/lib.sh"

members hsdc 50000              # A owns the VM, B is another member

# rfb_types PORT: the security types a VNC server offers, as numbers.
rfb_types() {
	local n
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	head -c 12 <&3 >/dev/null
	printf 'RFB 003.008\n' >&3
	n=$(head -c 1 <&3 | od -An -tu1 | tr -d ' ')
	head -c "$n" <&3 | od -An -tu1 | xargs
	exec 3<&-
}

ACCEL=tcg start_mountd --group "$GROUP" || { not_ok "daemon starts"; done_testing; }
v=${P}c
is "a member creates a VM" "$(as_a "$OW" "$M/vms/ctl" "create $v memory=64Mi disk=64Mi")" ok
is "and starts it" "$(as_a "$OW" "$M/vms/$v/ctl" start)" ok
wait_for 10 grep -q '^vnc ' "$M/vms/$v/console"
is "console is the owner's, 0400" "$(stat -c %u:%a "$M/vms/$v/console")" "$UA:400"
con=$(as_a cat "$M/vms/$v/console")
like "the owner reads the VNC address" "$con" "^vnc 127\.0\.0\.1:[0-9]+"
like "and its password" "$con" "vnc\.password [A-Za-z0-9]{8}"
like "and the serial pty" "$con" "serial /dev/pts/[0-9]+"
pw=$(awk '$1 == "vnc.password" { print $2 }' <<<"$con")
port=$(awk '$1 == "vnc" { sub(/.*:/, "", $2); print $2 }' <<<"$con")
pty=$(awk '$1 == "serial" { print $2 }' <<<"$con")
check "another member cannot read it" bash -c "! setpriv --reuid=$UB --regid=$UB --groups=$GID cat '$M/vms/$v/console' 2>/dev/null"
check "nobody cannot read it" bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups cat '$M/vms/$v/console' 2>/dev/null"
like "status (group-readable) names the VNC port" "$(as_b cat "$M/vms/$v/status")" "vnc 127\.0\.0\.1:$port"
check "and holds no password" bash -c "! grep -q -- '$pw' '$M/vms/$v/status'"
check "nor does the spec or libvirt's non-secure XML" \
	bash -c "! grep -q -- '$pw' '$M/vms/$v/spec' && ! ${VIRSH[*]} dumpxml '$v' | grep -q -- '$pw'"
is "the VNC server offers password auth only (RFB type 2, not 1)" "$(rfb_types "$port")" 2
wait_for 10 test "$(stat -c %u "$pty")" = "$UA"
is "the serial pty is the owner's, 0600" "$(stat -c %u:%a "$pty")" "$UA:600"
check "another member cannot open it" bash -c "! setpriv --reuid=$UB --regid=$UB --groups=$GID sh -c 'exec 3<>$pty' 2>/dev/null"
check "the owner can" as_a sh -c "exec 3<>$pty"
is "stop it" "$(as_a "$OW" "$M/vms/$v/ctl" "stop force")" ok
wait_for 10 bash -c "! grep -q '^vnc ' '$M/vms/$v/console'"
is "stopped: console is empty" "$(as_a cat "$M/vms/$v/console")" ""
is "started again" "$(as_a "$OW" "$M/vms/$v/ctl" start)" ok
wait_for 10 grep -q '^vnc ' "$M/vms/$v/console"
is "the password outlives a stop and start" "$(awk '$1 == "vnc.password" { print $2 }' "$M/vms/$v/console")" "$pw"
is "delete it" "$(as_a "$OW" "$M/vms/$v/ctl" "delete force")" ok
done_testing
