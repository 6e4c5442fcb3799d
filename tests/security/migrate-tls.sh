#!/usr/bin/env bash
# The network peer: node 2 (scripts/libvirt-node2.sh) takes libvirt
# connections only over TLS with a client certificate of its CA, and a
# migration to a qemu+tls:// peer moves the guest's memory over TLS
# (VIR_MIGRATE_TLS).  Proved on the wire: a sniffer on the loopback sees
# a TLS handshake, and never QEMU's plaintext stream opening "QEVM", on the
# connections to node 2's migration ports; and, as a control, the
# plaintext magic on the way back (node 1 is reached over a unix socket,
# so that migration is plain TCP).
. "$(dirname "$0")/../fs/lib.sh"
command -v python3 >/dev/null || { echo "1..0 # SKIP no python3"; exit 0; }

node2_require
like "node 2's URI is TLS with a client certificate" "$URI2" '^qemu\+tls://.*pkipath='
DIR2=$(sed -n 's/.*pkipath=\(.*\)\/pki\/client$/\1/p' <<<"$URI2")
host_port=$(sed -n 's|^qemu+tls://\([^/]*\)/.*|\1|p' <<<"$URI2")
ADDR2=${host_port%:*}

# ---- no unauthenticated transport
# (checkouts from before TLS may run their own plain-TCP node 2 beside
# this one, on another folder: only this node's libvirtd is looked at)
pid2=$(cat "$DIR2/run/libvirtd.pid" 2>/dev/null)
listeners=$(ss -Htlnp | awk -v p="pid=$pid2," 'index($0, p) { print $4 }')
is "node 2's libvirtd has one TCP listener: the TLS port" "$listeners" "$host_port"
mkdir -p "$T/nocert" "$T/othercert"
cp "$DIR2/pki/client/cacert.pem" "$T/nocert/"
# refused PKIPATH: virsh fails to connect with those files
refused() {
	local out
	out=$(virsh -c "qemu+tls://$host_port/system?pkipath=$1" version 2>&1) && return 1
	[[ $out == *"failed to connect"* ]]
}
check "TLS without a client certificate: refused" refused "$T/nocert"
(
	cd "$T/othercert" || exit 1
	openssl req -x509 -newkey rsa:2048 -nodes -keyout clientkey.pem -out clientcert.pem \
		-subj /CN=hypersdk-node-client -days 1 2>/dev/null
	cp "$DIR2/pki/client/cacert.pem" .
)
check "TLS with a certificate of another CA (same CN): refused" refused "$T/othercert"
answers() { virsh -q -c "$URI2" version >/dev/null 2>&1; }
check "with the node's client certificate: answers" answers

# ---- the migration stream on the wire
# sniff OUT: every TCP connection opened on lo while it runs (its SYN
# seen), client to server: "daddr dport first-bytes-hex qevm(0|1)", qevm 1
# when the stream opens with QEMU's plaintext magic (ciphertext that
# happens to hold those bytes somewhere later does not count)
sniff() {
	python3 - "$1" <<'PY' &
import ctypes, socket, struct, sys, signal, time
out = sys.argv[1]
# never outlive the test (killed with SIGKILL) or run for more than 2 min
ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
end = time.monotonic() + 120
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
s.bind(("lo", 0))
s.settimeout(1)
opened, flows = set(), {}
def dump(*_):
    with open(out, "w") as f:
        for (daddr, dport, sport), (first, qevm) in flows.items():
            f.write("%s %d %s %d\n" % (daddr, dport, first.hex(), qevm))
    sys.exit(0)
signal.signal(signal.SIGTERM, dump)
while time.monotonic() < end:
    try:
        pkt, addr = s.recvfrom(65536)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING or len(pkt) < 34:
        continue
    ip = pkt[14:]
    if ip[0] >> 4 != 4 or ip[9] != 6:
        continue
    ihl = (ip[0] & 15) * 4
    tcp = ip[ihl:]
    sport, dport = struct.unpack("!HH", tcp[:4])
    key = (socket.inet_ntoa(ip[16:20]), dport, sport)
    if tcp[13] & 0x12 == 0x02:      # SYN without ACK: a client connects
        opened.add(key)
    data = tcp[(tcp[12] >> 4) * 4:struct.unpack("!H", ip[2:4])[0] - ihl]
    if data and key in opened and key not in flows:
        flows[key] = (data[:8], int(data[:4] == b"QEVM"))
dump()
PY
	SNIFF=$!
	sleep 0.5
}
unsniff() { kill -TERM "$SNIFF" 2>/dev/null; wait "$SNIFF" 2>/dev/null; SNIFF=; }
# flows FILE ADDR LO HI: the connections to ADDR, ports LO..HI
flows() { awk -v a="$2" -v lo="$3" -v hi="$4" '$1 == a && $2 >= lo && $2 <= hi' "$1"; }
trap 'unsniff; cleanup' EXIT
SNIFF=

ACCEL=tcg start_mountd --peer "$NODE2=$URI2" || { not_ok "node 1's daemon starts"; done_testing; }
start_mountd2 --accel tcg --peer "$NODE=$BACK"
check "node 2's daemon mounts" test -e "$M2/vms/ctl"
a=${P}a
w() { "$ONEWRITE" "$@"; }
is "create a running VM on node 1" \
	"$(w "$M/vms/ctl" "create $a cpus=1 memory=64Mi disk=64Mi running=true")" ok

lo2=$(sed -n 's/^migration_port_min = //p' "$DIR2/etc/qemu.conf")
hi2=$(sed -n 's/^migration_port_max = //p' "$DIR2/etc/qemu.conf")
sniff "$T/to2"
is "migrate to node 2 (qemu+tls peer)" "$(w "$M/vms/$a/ctl" "migrate $NODE2")" ok
unsniff
check "it runs on node 2" wait_for 20 test -d "$M2/vms/$a"
to2=$(flows "$T/to2" "$ADDR2" "$lo2" "$hi2")
like "a connection to node 2's migration ports ($lo2-$hi2) was seen" "$to2" '.'
is "every one opens with a TLS handshake record (16 03 ...)" \
	"$(awk '$3 !~ /^1603/' <<<"$to2")" ""
is "no plaintext QEMU stream (QEVM) on it" "$(awk '$4 == 1' <<<"$to2")" ""

# the control: the way back is not TLS, and the sniffer sees it
sniff "$T/to1"
is "migrate back to node 1 (a unix-socket peer: no TLS)" "$(w "$M2/vms/$a/ctl" "migrate $NODE")" ok
unsniff
check "it runs on node 1 again" wait_for 20 test -d "$M/vms/$a"
like "control: the sniffer sees the plaintext stream (QEVM) of that migration" \
	"$(awk '$1 == "127.0.0.1" && $4 == 1' "$T/to1")" '.'
is "delete force" "$(w "$M/vms/$a/ctl" "delete force")" ok
done_testing
