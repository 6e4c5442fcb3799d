#!/usr/bin/env bash
# Bad input everywhere gives the right errno and an err line, and changes
# nothing: not the status, not the spec, not libvirt.
. "$(dirname "$0")/lib.sh"

start_mountd || { not_ok "daemon starts"; done_testing; }
v=${P}v
"$ONEWRITE" "$M/vms/ctl" "create $v memory=64Mi disk=64Mi" >/dev/null
is "a VM to abuse" "$(phase "$v")" Stopped

snap() { cat "$M/vms/$v/status" "$M/vms/$v/spec"; "${VIRSH[@]}" dumpxml "$v" 2>/dev/null | md5sum; ls "$M/vms" "$M/operations"; }
before=$(snap)

# bad FILE MSG ERRNO ERR-REGEX DESC
bad() {
	local got err
	got=$("$ONEWRITE" "$1" "$2")
	if [ "$1" = "$M/vms/ctl" ]; then err=$(cat "$M/vms/err"); else err=$(cat "$M/vms/$v/err"); fi
	is "$5: errno" "$got" "$3"
	like "$5: err line" "$err" "$4"
	is "$5: nothing changed" "$(snap)" "$before"
}
ctl=$M/vms/$v/ctl
printf '' > "$ctl"
is "an empty open-truncate-close changes nothing" "$(snap)" "$before"
bad "$ctl" $'\n' EINVAL "empty control message" "lone newline"
bad "$ctl" "frobnicate" EINVAL 'unknown control message "frobnicate"' "unknown verb"
bad "$ctl" "start later" EINVAL "unknown option for start" "start with an unknown argument"
bad "$ctl" "stop force now" EINVAL "wrong #args|bad argument" "stop with two arguments"
bad "$ctl" "clone" EINVAL "wrong #args" "clone without a target"
bad "$ctl" $'stop\nstart' EINVAL "newline" "embedded newline"
bad "$ctl" $'st\001art' EINVAL "control" "control bytes"
bad "$ctl" "resize memory=lots" EINVAL "memory" "bad quantity in resize"
bad "$ctl" "resize cpus=0" EINVAL "cpus" "resize to 0 cpus"
bad "$ctl" "migrate nowhere-node" ENOENT "does not exist" "migration to a node nobody knows"
bad "$ctl" "revert nosnap" ENOENT "" "revert to a snapshot that does not exist"
bad "$ctl" "resize cpus=500" EINVAL "maximum" "resize over the maximum"
big=$(head -c 307200 /dev/zero | tr '\0' 'a')
is "300 KiB message: errno" "$(printf '%s' "$big" | "$ONEWRITE" "$ctl" -)" EINVAL
like "300 KiB message: err line" "$(cat "$M/vms/$v/err")" "too long"
is "300 KiB message: nothing changed" "$(snap)" "$before"

vctl=$M/vms/ctl
bad "$vctl" "create" EINVAL "wrong #args" "create without a name"
bad "$vctl" "create ../x" EINVAL "name" "name ../x"
bad "$vctl" "create a/b" EINVAL "name" "name a/b"
bad "$vctl" "create $(printf 'a%.0s' $(seq 300))" EINVAL "name" "name of 300 characters"
bad "$vctl" "create Web" EINVAL "name" "upper-case name"
bad "$vctl" "create ${P}q cpus=0" EINVAL "cpus" "cpus 0"
bad "$vctl" "create ${P}q memory=lots" EINVAL "memory" "memory lots"
bad "$vctl" "create ${P}q memory=99999999999999Ei" EINVAL "memory" "memory overflow"
bad "$vctl" "create ${P}q disk=-1Gi" EINVAL "disk" "negative disk"
bad "$vctl" "create ${P}q cpus=1 cpus=2" EINVAL "cpus" "duplicate argument"
bad "$vctl" "create ${P}q running=maybe" EINVAL "running" "running=maybe"
bad "$vctl" "create $v" EEXIST "exists" "a name that is taken"
bad "$vctl" "start" EINVAL "unknown control message" "a VM verb on vms/ctl"

# Read-only files stay read-only, even for root.
for f in status err events wait stats; do
	is "writing $f is EACCES" "$("$ONEWRITE" "$M/vms/$v/$f" start)" EACCES
done
is "writing vms/err is EACCES" "$("$ONEWRITE" "$M/vms/err" x)" EACCES
is "after that, nothing changed" "$(snap)" "$before"

# mkdir with bad names: the kernel or the daemon refuses.
check "mkdir of an upper-case name fails" bash -c "! mkdir '$M/vms/Web' 2>/dev/null"
like "vms/err says why" "$(cat "$M/vms/err")" "name"
check "mkdir outside vms fails" bash -c "! mkdir '$M/x' 2>/dev/null"
check "mkdir of a 300-character name fails" bash -c "! mkdir '$M/vms/$(printf 'b%.0s' $(seq 300))' 2>/dev/null"
is "after all that, nothing changed" "$(snap)" "$before"

# spec: garbage YAML, wrong types, invalid values.
spec=$M/vms/$v/spec
badspec() {
	is "$3: errno" "$(printf '%s' "$1" | "$ONEWRITE" "$spec" -)" EINVAL
	like "$3: err line" "$(cat "$M/vms/$v/err")" "$2"
	is "$3: nothing changed" "$(snap)" "$before"
}
badspec $'cpus: [1\nmemory: {' "yaml|line" "garbage YAML"
badspec "- just\n- a list" "mapping" "a list, not a mapping"
badspec $'cpus: 0\nmemory: 64Mi' "cpus" "cpus 0 in spec"
badspec $'cpus: 1\nmemory: lots' "memory" "memory lots in spec"
badspec $'cpus: two\nmemory: 64Mi' "cpus" "cpus as a string"
badspec $'cpus: 1\nmemory: 64Mi\ndisks:\n- name: root\n  size: 1Zi' "size" "bad disk size"
badspec $'a: &x 1\nb: *x' "alias|anchor" "YAML aliases"
check "nothing was left half-done in libvirt" test "$("${VIRSH[@]}" list --all --name | grep -c "^$P")" = 1
done_testing
