#!/usr/bin/env bash
# Ownership in the tree (docs/security.md, "Local user" and "Group
# member"), tried as the attackers would: nobody, two members of the
# daemon's --group, and root.  Every refusal has its errno, changes
# nothing and leaks nothing (a secret in a VM's cloud-init userData is
# read by no one but its owner and root).  Then whole specs: a spec cut
# in two writes never applies, a big one in one write does.
STOP_TIMEOUT=3
. "$(dirname "$0")/lib.sh"

members hsdk 40000
SECRET=s3cr3t-$$-$RANDOM
# The errno a command's message names (C locale), or "ok".
errno_of() {
	local out
	if out=$("$@" 2>&1 >/dev/null); then echo ok; return; fi
	case $out in
	*"Permission denied"*) echo EACCES ;;
	*"Operation not permitted"*) echo EPERM ;;
	*"No such file"*) echo ENOENT ;;
	*) echo "other: $out" ;;
	esac
}

start_mountd --group "$GROUP" || { not_ok "daemon starts"; done_testing; }
ok "daemon mounts $M with --group $GROUP"

r=${P}root a=${P}a b=${P}b
spec_with_secret() {
	printf 'cpus: 1\nmemory: 64Mi\ndisks:\n- name: root\n  size: 64Mi\n'
	printf 'cloudInit:\n  userData: |\n    #cloud-config\n    password: %s\n' "$SECRET"
}
is "root creates $r" "$("$OW" "$M/vms/ctl" "create $r cpus=1 memory=64Mi disk=64Mi")" ok
is "root puts a secret in its userData" "$(spec_with_secret | "$OW" "$M/vms/$r/spec" -)" ok
like "root reads it back" "$(cat "$M/vms/$r/spec")" "$SECRET"
is "root's VM belongs to root:$GROUP" "$(stat -c %u:%g "$M/vms/$r")" "0:$GID"
is "vms/ is root:$GROUP, sticky, 1770" "$(stat -c %u:%g:%a "$M/vms")" "0:$GID:1770"
is "spec is 600, status 440, ctl 200" \
	"$(stat -c %a "$M/vms/$r/spec" "$M/vms/$r/status" "$M/vms/$r/ctl" | tr '\n' ' ')" "600 440 200 "

snap() {
	cat "$M/vms/$r/status" "$M/vms/$r/spec" "$M/vms/$r/err" "$M/vms/$r/events"
	"${VIRSH[@]}" dumpxml "$r" 2>/dev/null | md5sum
}
before=$(snap)

# ---- nobody: sees nothing, does nothing ------------------------------
is "nobody: ls vms/ is EACCES" "$(errno_of as_nobody ls "$M/vms")" EACCES
is "nobody: cat spec is EACCES" "$(errno_of as_nobody cat "$M/vms/$r/spec")" EACCES
is "nobody: cat status is EACCES" "$(errno_of as_nobody cat "$M/vms/$r/status")" EACCES
is "nobody: cat events is EACCES" "$(errno_of as_nobody cat "$M/vms/$r/events")" EACCES
is "nobody: stat of a VM is EACCES" "$(errno_of as_nobody stat "$M/vms/$r")" EACCES
is "nobody: write ctl is EACCES" "$(as_nobody "$OW" "$M/vms/$r/ctl" "stop force")" EACCES
is "nobody: write spec is EACCES" "$(as_nobody "$OW" "$M/vms/$r/spec" "cpus: 2")" EACCES
is "nobody: create via vms/ctl is EACCES" "$(as_nobody "$OW" "$M/vms/ctl" "create ${P}n")" EACCES
is "nobody: mkdir in vms/ is EACCES" "$(errno_of as_nobody mkdir "$M/vms/${P}n")" EACCES
is "nobody: rmdir is EACCES" "$(errno_of as_nobody rmdir "$M/vms/$r")" EACCES
is "nobody: mv is EACCES" "$(errno_of as_nobody mv "$M/vms/$r" "$M/vms/${P}n")" EACCES
is "nobody: ls templates/ is EACCES" "$(errno_of as_nobody ls "$M/templates")" EACCES
is "nobody: ls operations/ is EACCES" "$(errno_of as_nobody ls "$M/operations")" EACCES
is "nobody: node status is EACCES" "$(errno_of as_nobody cat "$M/nodes/$NODE/status")" EACCES
is "nobody: vms/err is EACCES" "$(errno_of as_nobody cat "$M/vms/err")" EACCES

# ---- member A: its own VMs -------------------------------------------
is "member: mkdir makes a VM" "$(errno_of as_a mkdir "$M/vms/$a")" ok
is "member: it belongs to the member" "$(stat -c %u:%g "$M/vms/$a")" "$UA:$GID"
is "member: create via vms/ctl" "$(as_a "$OW" "$M/vms/ctl" "create $b cpus=1 memory=64Mi disk=64Mi")" ok
is "member: that one is the member's too" "$(stat -c %u "$M/vms/$b")" "$UA"
is "member: writes its own spec (with a secret)" "$(spec_with_secret | as_a "$OW" "$M/vms/$a/spec" -)" ok
like "member: reads its own spec" "$(as_a cat "$M/vms/$a/spec")" "$SECRET"
is "member: starts its own VM" "$(as_a "$OW" "$M/vms/$a/ctl" start)" ok
is "member: it runs" "$(phase "$a")" Running
is "member: stops it" "$(as_a "$OW" "$M/vms/$a/ctl" "stop force")" ok
is "member: it stopped" "$(phase "$a")" Stopped
like "member: reads another's status" "$(as_a cat "$M/vms/$r/status")" "^phase "
like "member: lists vms/" "$(as_a ls "$M/vms" | tr '\n' ' ')" "$a"
like "member: lists templates/" "$(errno_of as_a ls "$M/templates")" ok
is "member: mv of its own VM is EPERM" "$(errno_of as_a mv "$M/vms/$b" "$M/vms/${P}c")" EPERM

# ---- member A against root's VM, member B against A's ------------------
for f in spec err events stats; do
	is "member: another's $f is EACCES" "$(errno_of as_a cat "$M/vms/$r/$f")" EACCES
done
is "member: another's snapshots/ is EACCES" "$(errno_of as_a ls "$M/vms/$r/snapshots")" EACCES
is "member: another's ctl is EACCES" "$(as_a "$OW" "$M/vms/$r/ctl" "stop force")" EACCES
is "member: another's spec write is EACCES" "$(as_a "$OW" "$M/vms/$r/spec" "cpus: 2")" EACCES
is "member: rmdir of another's VM is EPERM" "$(errno_of as_a rmdir "$M/vms/$r")" EPERM
is "member: mv of another's VM is EPERM" "$(errno_of as_a mv "$M/vms/$r" "$M/vms/${P}c")" EPERM
is "member: mkdir in templates/ is EACCES" "$(errno_of as_a mkdir "$M/templates/${P}t")" EACCES
is "member B: A's spec is EACCES" "$(errno_of as_b cat "$M/vms/$a/spec")" EACCES
is "member B: A's ctl is EACCES" "$(as_b "$OW" "$M/vms/$a/ctl" start)" EACCES
is "member B: rmdir of A's VM is EPERM" "$(errno_of as_b rmdir "$M/vms/$a")" EPERM
is "member B: A's VM is still Stopped" "$(phase "$a")" Stopped

is "member: chmod of its own spec is EPERM" "$(errno_of as_a chmod 666 "$M/vms/$a/spec")" EPERM
is "member: chown of its own VM is EPERM" "$(errno_of as_a chown "$UB" "$M/vms/$a")" EPERM
is "member: clones its own VM" "$(as_a "$OW" "$M/vms/$a/ctl" "clone ${P}c")" ok
is "member: the clone is the member's" "$(stat -c %u "$M/vms/${P}c" 2>&1)" "$UA"
is "member: snapshots its own VM (mkdir)" "$(errno_of as_a mkdir "$M/vms/$a/snapshots/s1")" ok
is "member: the snapshot is the member's" "$(stat -c %u:%a "$M/vms/$a/snapshots/s1" 2>&1)" "$UA:700"
is "member B: mkdir in A's snapshots/ is EACCES" "$(errno_of as_b mkdir "$M/vms/$a/snapshots/s2")" EACCES
is "member B: A's operations are closed" \
	"$(for o in "$M"/operations/*; do errno_of as_b cat "$o/status"; done | sort -u)" EACCES
is "member: removes its snapshot" "$(errno_of as_a rmdir "$M/vms/$a/snapshots/s1")" ok
is "member: removes its clone" "$(errno_of as_a rmdir "$M/vms/${P}c")" ok

is "root's VM unchanged by all of it" "$(snap)" "$before"
is "vms/ holds only the VMs made on purpose" "$(ls "$M/vms" | tr '\n' ' ')" "ctl err $a $b $r "
is "no err line left by the refusals" "$(cat "$M/vms/$r/err" "$M/vms/$a/err")" ""

# Every file each of them can read, read whole: no secret.
leak() {
	find "$M" -path '*/wait' -prune -o -type f -readable -print 2>/dev/null |
		while read -r f; do timeout 5 cat "$f" 2>/dev/null; done | grep -c "$SECRET"
}
is "nobody reads the secret in no file" "$(as_nobody bash -c "$(declare -f leak); M=$M SECRET=$SECRET leak")" 0
is "member B reads the secret in no file" "$(as_b bash -c "$(declare -f leak); M=$M SECRET=$SECRET leak")" 0
is "root reads both secrets" "$(leak)" 2

# ---- owner survives a restart ------------------------------------------
stop_mountd
start_mountd --group "$GROUP" || not_ok "daemon restarts"
is "after a restart A's VM is still A's" "$(stat -c %u "$M/vms/$a")" "$UA"
is "and root's still root's" "$(stat -c %u "$M/vms/$r")" 0

# ---- whole specs -------------------------------------------------------
specbefore=$(cat "$M/vms/$a/spec")
# The first 21 bytes are a valid spec on their own, ending on a line.
printf 'cpus: 1\nmemory: 80Mi\n# and the rest\n' >"$T/two.yaml"
is "a spec in two writes is refused (EINVAL)" \
	"$(errno_of as_a dd if="$T/two.yaml" of="$M/vms/$a/spec" bs=21 status=none)" \
	"other: dd: error writing '$M/vms/$a/spec': Invalid argument"
is "and its valid first half did not apply" "$(cat "$M/vms/$a/spec")" "$specbefore"
like "err says why" "$(cat "$M/vms/$a/err")" "one write of at most 131072 bytes"
is "a shell's echo (one write a line) is refused too" \
	"$(errno_of as_a bash -c "echo 'cpus: 1
memory: 80Mi' > $M/vms/$a/spec")" "other: bash: line 2: echo: write error: Invalid argument"
is "and changes nothing" "$(cat "$M/vms/$a/spec")" "$specbefore"
printf 'cpus: 1\nmemory: 96Mi\n' >"$T/one.yaml"
is "cat FILE > spec works" "$(errno_of as_a bash -c "cat $T/one.yaml > $M/vms/$a/spec")" ok
like "and applied" "$(cat "$M/vms/$a/spec")" "memory: 96Mi"
is "a write at offset 0 then nothing else: still one write" "$(as_a "$OW" "$M/vms/$a/spec" - <"$T/one.yaml")" ok
big=$(head -c 120000 /dev/zero | tr '\0' x)
printf 'cpus: 1\nmemory: 64Mi\ncloudInit:\n  userData: |\n    #cloud-config\n    # %s\n' "$big" >"$T/big.yaml"
is "a 120 KB spec through cat works" "$(errno_of as_a bash -c "cat $T/big.yaml > $M/vms/$a/spec")" ok
is "and it is all there" "$(as_a cat "$M/vms/$a/spec" | tr -cd x | wc -c)" 120000
head -c 140000 /dev/zero | tr '\0' x | sed 's/^/# /' >>"$T/big.yaml"
is "a 260 KB spec through cat (two writes) is refused" \
	"$(errno_of as_a bash -c "cat $T/big.yaml > $M/vms/$a/spec")" \
	"other: cat: write error: Invalid argument"
is "a 260 KB spec in one write(2) is refused" "$(as_a "$OW" "$M/vms/$a/spec" - <"$T/big.yaml")" EINVAL
like "too long, says err" "$(cat "$M/vms/$a/err")" "too long"
mkdir "$M/templates/${P}t"
is "a template spec in two writes is refused" \
	"$(errno_of dd if="$T/two.yaml" of="$M/templates/${P}t/spec" bs=21 status=none)" \
	"other: dd: error writing '$M/templates/${P}t/spec': Invalid argument"
rmdir "$M/templates/${P}t" 2>/dev/null

# ---- clean up as the owners would ---------------------------------------
is "member: rmdir of its own VM" "$(errno_of as_a rmdir "$M/vms/$b")" ok
is "root: rmdir of a member's VM" "$(errno_of rmdir "$M/vms/$a")" ok
rmdir "$M/vms/$r"

# ---- no such group: root only ---------------------------------------------
stop_mountd
start_mountd --group "nosuch$$" || not_ok "daemon starts without its group"
like "a missing group is a warning" "$(cat "$T/mountd.log")" "group nosuch$$ does not exist"
is "vms/ has no group bits then" "$(stat -c %a "$M/vms")" 1700
is "a member of the old group is refused" "$(errno_of as_a ls "$M/vms")" EACCES
is "root still creates" "$("$OW" "$M/vms/ctl" "create $r cpus=1 memory=64Mi disk=64Mi")" ok
rmdir "$M/vms/$r"
done_testing
