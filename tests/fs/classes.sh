#!/usr/bin/env bash
# Storage classes on one node: --storage-class NAME=DIR[:shared] makes a
# libvirt dir pool per class; a disk naming a class lives there, a class
# the node lacks is EINVAL and changes nothing, a disk keeps its class,
# nodes/NODE/status lists the classes with their free space, and delete
# removes the class's volume.
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/shared" && chmod 755 "$T/shared"
out=$("$MOUNTD" --foreground --mount "$M" --state-dir "$STATE" --pool-dir "$POOL" \
	--node "$NODE" --storage-class "bad_name=$T/x" 2>&1)
like "a bad class name is refused at start" "$out" "storage-class bad_name"
out=$("$MOUNTD" --foreground --mount "$M" --state-dir "$STATE" --pool-dir "$POOL" \
	--node "$NODE" --storage-class "fast=relative" 2>&1)
like "a relative folder is refused" "$out" "want NAME=/DIR"
start_mountd --storage-class "fast=$T/fast" --storage-class "san=$T/shared:shared" ||
	{ not_ok "daemon starts with two classes"; done_testing; }
ok "daemon starts with two classes"
nkey() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$M/nodes/$NODE/status"; }
like "nodes/ lists class fast, local, with its free space" "$(nkey class.fast)" "^$T/fast local [0-9.]+[KMGT]i?/[0-9.]+[KMGT]i?$"
like "and class san, shared" "$(nkey class.san)" "^$T/shared shared "
is "libvirt has a pool per class" "$("${VIRSH[@]}" pool-list --all --name | grep -c "^hypersdk-$NODE-")" 2

a=${P}a
is "create" "$("$ONEWRITE" "$M/vms/ctl" "create $a memory=64Mi disk=64Mi")" ok
cp "$M/vms/$a/spec" "$T/a.yaml"
python3 - "$T/a.yaml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("disks:\n", "disks:\n- name: data\n  size: 32Mi\n  storageClass: san\n", 1)
open(p, "w").write(s)
PY
is "a second disk on class san" "$("$ONEWRITE" "$M/vms/$a/spec" "$(cat "$T/a.yaml")")" ok
check "its volume is in the shared folder" test -f "$T/shared/${a}_data.qcow2"
is "the VM starts" "$("$ONEWRITE" "$M/vms/$a/ctl" start)" ok
like "its domain uses it" "$("${VIRSH[@]}" domblklist "$a")" "$T/shared/${a}_data.qcow2"
"$ONEWRITE" "$M/vms/$a/ctl" "stop force" >/dev/null
sed 's/storageClass: san/storageClass: gold/' "$T/a.yaml" >"$T/b.yaml"
before=$(cat "$M/vms/$a/spec")
is "a class this node lacks: EINVAL" "$("$ONEWRITE" "$M/vms/$a/spec" "$(cat "$T/b.yaml")")" EINVAL
like "err names it" "$(cat "$M/vms/$a/err")" "no storage class gold on node $NODE"
is "and the spec is as it was" "$(cat "$M/vms/$a/spec")" "$before"
sed 's/storageClass: san/storageClass: fast/' "$T/a.yaml" >"$T/c.yaml"
is "an existing disk moved to another class: EINVAL" "$("$ONEWRITE" "$M/vms/$a/spec" "$(cat "$T/c.yaml")")" EINVAL
like "err says it keeps its class" "$(cat "$M/vms/$a/err")" "disk data exists on class san"
is "delete" "$("$ONEWRITE" "$M/vms/$a/ctl" delete)" ok
check "the class's volume is gone" test ! -e "$T/shared/${a}_data.qcow2"

stop_mountd
done_testing
