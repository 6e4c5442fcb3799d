#!/usr/bin/env bash
# Templates through the tree: an image imported from a local HTTP server
# with a right and a wrong checksum, a raw image converted to qcow2, a VM
# made from a template (its disk an overlay on the template's image),
# usageCount, and a template in use that cannot be deleted.
. "$(dirname "$0")/lib.sh"

HTTP_PID=
trap '[ -n "$HTTP_PID" ] && kill "$HTTP_PID" 2>/dev/null; cleanup' EXIT

# The images, served on a free loopback port.
mkdir -p "$T/www"
qemu-img create -q -f qcow2 "$T/www/tiny.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' "$T/www/tiny.qcow2" >/dev/null
qemu-img create -q -f raw "$T/www/tiny.raw" 32M
SUM=$(sha256sum "$T/www/tiny.qcow2" | cut -d' ' -f1)
SUM512=$(sha512sum "$T/www/tiny.raw" | cut -d' ' -f1)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$T/www" "$PORT" >"$T/http.log" 2>&1 &
HTTP_PID=$!
wait_for 10 curl -sf -o /dev/null "http://127.0.0.1:$PORT/tiny.qcow2"
check "a local HTTP server serves the images" curl -sf -o /dev/null "http://127.0.0.1:$PORT/tiny.qcow2"

# Plain http on loopback is refused unless the operator allows it.
start_mountd --stats-interval 1 --import-allow "http://127.0.0.1:$PORT/" ||
	{ not_ok "daemon starts"; done_testing; }
ok "daemon mounts $M (--import-allow http://127.0.0.1:$PORT/)"

tp=${P}tp
bad=${P}bad
raw=${P}raw
w() { "$ONEWRITE" "$@"; }
tphase() { awk '$1 == "phase" { print $2 }' "$M/templates/$1/status" 2>/dev/null; }
tkey() { awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$M/templates/$1/status"; }
backing() { qemu-img info -U --output=json "$POOL/$1" 2>/dev/null |
	python3 -c 'import json,sys; print(json.load(sys.stdin).get("backing-filename",""))'; }

tspec() { # URL CHECKSUM
	cat <<YAML
displayName: Tiny test image
version: "1.0"
defaultSpec:
  cpus: 1
  memory: 64Mi
  disks:
  - name: root
    size: 64Mi
image:
  source: $1
${2:+  checksum: $2}
YAML
}

check "mkdir templates/NAME makes a template" mkdir "$M/templates/$tp"
is "it waits for a spec" "$(tphase "$tp")" Pending
is "a spec with the right sha256 imports it" \
	"$(w "$M/templates/$tp/spec" "$(tspec "http://127.0.0.1:$PORT/tiny.qcow2" "sha256:$SUM")")" ok
is "the template is Ready" "$(tphase "$tp")" Ready
is "progress 100" "$(tkey "$tp" progress)" 100
is "its size is the image's" "$(tkey "$tp" size)" 64Mi
is "condition Ready" "$(tkey "$tp" condition.Ready)" true
like "the message says the checksum was verified" "$(tkey "$tp" message)" "checksum verified"
check "the image is in the pool" test -f "$POOL/tmpl.$tp.qcow2"
like "spec reads back" "$(cat "$M/templates/$tp/spec")" "version: \"?1.0"

check "mkdir a second template" mkdir "$M/templates/$bad"
is "a wrong checksum is refused" \
	"$(w "$M/templates/$bad/spec" "$(tspec "http://127.0.0.1:$PORT/tiny.qcow2" "sha256:$(printf '0%.0s' $(seq 64))")")" EBADMSG
is "the template is Failed" "$(tphase "$bad")" Failed
like "saying checksum mismatch" "$(tkey "$bad" message)" "checksum mismatch"
check "and no image is left" test ! -e "$POOL/tmpl.$bad.qcow2"
is "a missing file is an error too" \
	"$(w "$M/templates/$bad/spec" "$(tspec "http://127.0.0.1:$PORT/nope.qcow2")")" ENOENT
like "naming the HTTP status" "$(tkey "$bad" message)" "404"
is "a spec without image.source is EINVAL" "$(w "$M/templates/$bad/spec" "version: x")" EINVAL
check "rmdir removes the failed template" rmdir "$M/templates/$bad"

check "mkdir a raw-image template" mkdir "$M/templates/$raw"
is "a raw image with sha512 is imported" \
	"$(w "$M/templates/$raw/spec" "$(tspec "http://127.0.0.1:$PORT/tiny.raw" "sha512:$SUM512")")" ok
like "and converted to qcow2" "$(qemu-img info -U "$POOL/tmpl.$raw.qcow2" 2>&1)" "file format: qcow2"
is "ctl import imports it again" "$(w "$M/templates/$raw/ctl" import)" ok
is "still Ready" "$(tphase "$raw")" Ready

v=${P}v
is "create a VM from the template" "$(w "$M/vms/ctl" "create $v template=$tp")" ok
like "it got the template's memory" "$(cat "$M/vms/$v/spec")" "memory: 64Mi"
like "and names the template" "$(cat "$M/vms/$v/spec")" "name: $tp"
like "its disk is an overlay on the template's image" "$(backing "${v}_root.qcow2")" "tmpl.$tp.qcow2"
is "it starts" "$(w "$M/vms/$v/ctl" start)" ok
usage() { [ "$(tkey "$tp" usageCount)" = "$1" ]; }
check "usageCount counts it" wait_for 15 usage 1
check "a template in use cannot be deleted" bash -c "! rmdir '$M/templates/$tp' 2>/dev/null"
like "err names the VM" "$(cat "$M/vms/err")" "$v"
is "create from a template that does not exist" "$(w "$M/vms/ctl" "create ${P}x template=${P}nope")" ENOENT
is "delete the VM" "$(w "$M/vms/$v/ctl" "delete force")" ok
check "usageCount drops" wait_for 15 usage 0
check "now the template can go" rmdir "$M/templates/$tp"
check "with its image" test ! -e "$POOL/tmpl.$tp.qcow2"
check "rmdir the raw one" rmdir "$M/templates/$raw"
done_testing
