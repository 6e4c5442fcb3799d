#!/bin/bash
# A second libvirt "node" on this machine, for migration tests
# (docs/backend-operations.md): its own libvirtd + virtlogd in a private
# mount namespace with their own /etc/libvirt, /run/libvirt and
# /var/lib/libvirt, their own host_uuid, and a TLS listener on
# 127.0.0.2:16514 that takes only clients with a certificate of the node's
# own CA (no plain TCP listener: the connection is authenticated and
# encrypted).  Its own virtlockd, as node 1's (scripts/libvirt-up.sh), guards
# the disks in shared folders.  Migration streams to node 2 are TLS too: its QEMU requires
# a client certificate of the same CA, which node 1's QEMU finds in
# /etc/pki/qemu (libvirt's default_tls_x509_cert_dir).  The certificates
# are made here, once, with openssl (docs/deploy.md, "TLS between nodes").
# The network namespace is shared: node 2's "default"
# network is a bridge network on node 1's virbr0, so guests keep their NIC
# when they move.  Storage: any folder outside /var/lib/libvirt is seen by
# both nodes (shared storage).
#
#   scripts/libvirt-node2.sh up     start (idempotent; recovers from a
#                                    killed previous run)
#   scripts/libvirt-node2.sh down   stop node 2's daemons (its guests die)
#   scripts/libvirt-node2.sh uri    print node 2's libvirt URI (qemu+tls, with
#                                    the pkipath of the client certificate)
#   scripts/libvirt-node2.sh unix-uri
#                                   node 2's local socket (root only)
#   scripts/libvirt-node2.sh node1-uri
#                                   node 1's URI as node 2 sees it (the
#                                   target of a peer-to-peer migration
#                                   back; use the data URI tcp://127.0.0.1)
#
# Run as root, after scripts/libvirt-up.sh (node 1).
set -euo pipefail

ADDR=${NODE2_ADDR:-127.0.0.2}
PORT=${NODE2_PORT:-16514}
# Not /var/lib/hypersdk-node2 (the plain-TCP node 2 of before), so the two
# never share files while both kinds of checkout are in use.
DIR=${NODE2_DIR:-/var/lib/hypersdk-node2-tls}
NODE2_UUID=00000000-0000-4000-8000-000000000003
PKI=$DIR/pki
URI="qemu+tls://$ADDR:$PORT/system?pkipath=$PKI/client"
# Node 1's QEMU reads its migration certificates here (libvirt's default
# default_tls_x509_cert_dir; node 1's qemu.conf sets none).
QEMU_PKI1=${NODE1_QEMU_PKI:-/etc/pki/qemu}
WAIT_S=${NODE2_WAIT:-20}
HERE=$(cd "$(dirname "$0")" && pwd)

die() { echo "libvirt-node2: $*" >&2; exit 1; }
say() { echo "libvirt-node2: $*"; }

answers() { virsh -c "$URI" version >/dev/null 2>&1; }
# The pid files are written inside the namespace to /run/libvirt, which is
# $DIR/run on the host.
pid_of() { cat "$DIR/run/$1.pid" 2>/dev/null || true; }
alive() {
	local p
	p=$(pid_of "$1")
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null &&
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "$1"
}

stop_one() { # NAME
	local p i
	alive "$1" || { rm -f "$DIR/run/$1.pid"; return 0; }
	p=$(pid_of "$1")
	kill "$p" 2>/dev/null || true
	for i in $(seq 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
	kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null || true
	rm -f "$DIR/run/$1.pid"
}

down() {
	stop_one libvirtd
	stop_one virtlogd
	stop_one virtlockd
	say "stopped"
}

# node 2's /etc/libvirt: node 1's configuration without its domains, pools,
# networks and secrets (those would be started twice), plus the listener.
make_etc() {
	local etc=$DIR/etc
	mkdir -p "$etc"
	if [ ! -f "$etc/.hypersdk-node2" ]; then
		cp -a /etc/libvirt/. "$etc/"
		rm -rf "$etc/qemu/networks" "$etc/storage" "$etc/secrets"
		find "$etc/qemu" -maxdepth 1 -name '*.xml' -delete
		rm -rf "$etc/qemu/autostart"
		mkdir -p "$etc/qemu/networks/autostart" "$etc/storage/autostart"
		touch "$etc/.hypersdk-node2"
	fi
	# Rewritten on every run: node 1's file may have changed meanwhile.
	grep -Ev '^[[:space:]]*(host_uuid|listen_tcp|listen_tls|listen_addr|tcp_port|tls_port|auth_tcp|auth_tls|key_file|cert_file|ca_file|crl_file|tls_no_verify_certificate|tls_allowed_dn_list)[[:space:]]*=' \
		/etc/libvirt/libvirtd.conf >"$etc/libvirtd.conf.new"
	# TLS only, and only for a certificate of our CA with our client DN;
	# auth_tls "none" = no SASL on top: the certificate is the credential.
	cat >>"$etc/libvirtd.conf.new" <<EOF

# hypersdk node 2 (scripts/libvirt-node2.sh)
host_uuid = "$NODE2_UUID"
listen_tcp = 0
listen_tls = 1
listen_addr = "$ADDR"
tls_port = "$PORT"
auth_tls = "none"
key_file = "$PKI/server.key"
cert_file = "$PKI/server.pem"
ca_file = "$PKI/ca.pem"
tls_no_verify_certificate = 0
tls_allowed_dn_list = ["CN=hypersdk-node-client"]
EOF
	mv "$etc/libvirtd.conf.new" "$etc/libvirtd.conf"
	# Both nodes share one network stack: node 2 takes its VNC and
	# incoming-migration ports from ranges of its own, or a guest moved
	# here may find its port taken by one of node 1's ("Address already
	# in use").
	# (Not those of the plain-TCP node 2 of before, which may still run.)
	# Incoming migrations with VIR_MIGRATE_TLS: QEMU's own TLS, server
	# certificate of our CA, and the client's certificate required.
	grep -Ev '^[[:space:]]*(remote_display_port_min|remote_display_port_max|remote_websocket_port_min|remote_websocket_port_max|migration_port_min|migration_port_max|migrate_tls_x509_cert_dir|migrate_tls_x509_verify)[[:space:]]*=' \
		/etc/libvirt/qemu.conf >"$etc/qemu.conf.new"
	cat >>"$etc/qemu.conf.new" <<EOF

# hypersdk node 2 (scripts/libvirt-node2.sh)
remote_display_port_min = 27900
remote_display_port_max = 28899
remote_websocket_port_min = 28900
remote_websocket_port_max = 29899
migration_port_min = 49464
migration_port_max = 49527
migrate_tls_x509_cert_dir = "$DIR/qemu-pki"
migrate_tls_x509_verify = 1
EOF
	mv "$etc/qemu.conf.new" "$etc/qemu.conf"
	touch "$etc/.tls-v2"
}

# ---- certificates (openssl; made once, kept in $PKI) ----

# sign NAME SUBJECT EXTENSIONS: $PKI/NAME.{key,pem}, signed by our CA
sign() {
	openssl genrsa -out "$PKI/$1.key" 2048 2>/dev/null
	openssl req -new -key "$PKI/$1.key" -subj "$2" -out "$PKI/$1.csr" 2>/dev/null
	printf '%s\n' "$3" >"$PKI/$1.ext"
	openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
		-CAcreateserial -CAserial "$PKI/ca.srl" -sha256 -days 3650 \
		-extfile "$PKI/$1.ext" -out "$PKI/$1.pem" 2>/dev/null
	rm -f "$PKI/$1.csr" "$PKI/$1.ext"
}

# The CA, node 2's server certificate (libvirtd and QEMU), and one client
# certificate (libvirt clients and node 1's QEMU).  Keys stay root's,
# except the copies QEMU reads (it runs as libvirt-qemu, group kvm).
make_pki() {
	local g
	g=$(id -gn libvirt-qemu 2>/dev/null || echo root)
	command -v openssl >/dev/null || die "openssl not found"
	if [ ! -s "$PKI/client/clientkey.pem" ]; then
		rm -rf "$PKI"
		mkdir -p -m 0700 "$PKI"
		(
			umask 077
			openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
			openssl req -x509 -new -key "$PKI/ca.key" -sha256 -days 3650 \
				-subj "/CN=hypersdk-node2-test-ca" \
				-addext "basicConstraints=critical,CA:TRUE" \
				-addext "keyUsage=critical,keyCertSign,cRLSign" \
				-out "$PKI/ca.pem" 2>/dev/null
			sign server "/CN=$ADDR" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$ADDR,DNS:localhost"
			sign client "/CN=hypersdk-node-client" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
			# libvirt's pkipath layout, for ?pkipath= in the URI
			mkdir -p "$PKI/client"
			cp "$PKI/ca.pem" "$PKI/client/cacert.pem"
			cp "$PKI/client.pem" "$PKI/client/clientcert.pem"
			cp "$PKI/client.key" "$PKI/client/clientkey.pem"
		) || die "cannot make the certificates in $PKI"
	fi
	# QEMU's layout (ca-cert.pem, server-*.pem / client-*.pem), readable
	# by the QEMU user's group only
	qemu_pki "$DIR/qemu-pki" server "$g"
	if [ -d "$QEMU_PKI1" ] && [ ! -f "$QEMU_PKI1/.hypersdk-node2" ]; then
		say "warning: $QEMU_PKI1 is not ours; left alone (TLS migrations to node 2 need our client certificate there)"
	else
		qemu_pki "$QEMU_PKI1" client "$g"
	fi
}

qemu_pki() { # DIR server|client GROUP
	mkdir -p "$1"
	cp "$PKI/ca.pem" "$1/ca-cert.pem"
	cp "$PKI/$2.pem" "$1/$2-cert.pem"
	install -m 0640 -g "$3" "$PKI/$2.key" "$1/$2-key.pem"
	chgrp "$3" "$1" && chmod 0750 "$1"
	chmod 0644 "$1/ca-cert.pem" "$1/$2-cert.pem"
	touch "$1/.hypersdk-node2"
}

start_daemons() {
	mkdir -p "$DIR/run" "$DIR/lib"
	# Node 1's folders (owners and modes matter: QEMU runs as
	# libvirt-qemu), not its files: no images, no per-domain state.
	(cd /var/lib/libvirt && find . -maxdepth 3 -type d ! -name 'domain-*') |
		while read -r d; do
			[ -d "$DIR/lib/$d" ] && continue
			mkdir -p "$DIR/lib/$d"
			chown --reference="/var/lib/libvirt/$d" "$DIR/lib/$d"
			chmod --reference="/var/lib/libvirt/$d" "$DIR/lib/$d"
		done
	# Left by a killed run: the daemons refuse to start on a live-looking
	# socket and the pid files would name someone else.
	rm -f "$DIR/run/libvirt-sock" "$DIR/run/libvirt-sock-ro" \
		"$DIR/run/libvirt-admin-sock" "$DIR/run/virtlogd-sock" \
		"$DIR/run/virtlogd-admin-sock" "$DIR/run/libvirtd.pid" \
		"$DIR/run/virtlogd.pid" "$DIR/run/virtlockd-sock" \
		"$DIR/run/virtlockd-admin-sock" "$DIR/run/virtlockd.pid"
	mkdir -p "$DIR/node1-run"
	"$HERE/detached" unshare -m --propagation private bash -euc '
		# Node 1 stays reachable from here (migrating back is
		# peer-to-peer from this libvirtd): its /run/libvirt, seen
		# before ours covers it.
		mount --bind /run/libvirt "$1/node1-run"
		mount --bind "$1/etc" /etc/libvirt
		mount --bind "$1/run" /run/libvirt
		mount --bind "$1/lib" /var/lib/libvirt
		virtlogd -d -p /run/libvirt/virtlogd.pid
		virtlockd -d -p /run/libvirt/virtlockd.pid
		libvirtd -d --listen -p /run/libvirt/libvirtd.pid
	' node2 "$DIR"
}

# A bridge network on node 1's virbr0, named like node 1's NAT network so a
# guest's <interface type='network'><source network='default'/> works here.
ensure_network() {
	local x
	ip link show virbr0 >/dev/null 2>&1 || return 0
	if ! virsh -c "$URI" net-info default >/dev/null 2>&1; then
		x=$(mktemp)
		printf '%s\n' "<network><name>default</name><forward mode='bridge'/><bridge name='virbr0'/></network>" >"$x"
		virsh -c "$URI" net-define "$x" >/dev/null
		rm -f "$x"
	fi
	virsh -c "$URI" net-start default >/dev/null 2>&1 || true
	virsh -c "$URI" net-autostart default >/dev/null 2>&1 || true
}

up() {
	[ "$(id -u)" -eq 0 ] || die "must run as root"
	command -v unshare >/dev/null || die "unshare not found (util-linux)"
	make_pki
	# A node 2 started with another configuration: start over.
	if answers && [ ! -f "$DIR/etc/.tls-v2" ]; then
		say "restarting node 2 for its configuration"
		stop_one libvirtd
		stop_one virtlogd
		stop_one virtlockd
	fi
	if answers; then
		# Without its virtlogd, node 2 answers but cannot start guests.
		if ! alive virtlogd; then
			say "restarting node 2's virtlogd"
			rm -f "$DIR/run/virtlogd-sock" "$DIR/run/virtlogd-admin-sock"
			"$HERE/detached" nsenter --target "$(pid_of libvirtd)" --mount \
				virtlogd -d -p /run/libvirt/virtlogd.pid
		fi
		if ! alive virtlockd; then
			say "restarting node 2's virtlockd"
			rm -f "$DIR/run/virtlockd-sock" "$DIR/run/virtlockd-admin-sock"
			"$HERE/detached" nsenter --target "$(pid_of libvirtd)" --mount \
				virtlockd -d -p /run/libvirt/virtlockd.pid
		fi
		ensure_network
		say "answers at $URI"
		return 0
	fi
	# Half-alive (killed run, hung daemon): start over.
	stop_one libvirtd
	stop_one virtlogd
	stop_one virtlockd
	make_etc
	start_daemons
	local i=0
	while ! answers; do
		i=$((i + 1))
		[ "$i" -le $((WAIT_S * 4)) ] ||
			die "node 2 does not answer at $URI after ${WAIT_S}s: $(virsh -c "$URI" version 2>&1 | tail -1)"
		sleep 0.25
	done
	ensure_network
	say "answers at $URI (host uuid $NODE2_UUID)"
}

case ${1:-} in
up) up ;;
down) down ;;
uri) echo "$URI" ;;
unix-uri) echo "qemu+unix:///system?socket=$DIR/run/libvirt-sock" ;;
node1-uri) echo "qemu+unix:///system?socket=$DIR/node1-run/libvirt-sock" ;;
*) echo "usage: $0 up|down|uri|unix-uri|node1-uri" >&2; exit 2 ;;
esac
