#!/usr/bin/env bash
# The dashboard as a web client on the network sees it: off loopback every
# request for VM data needs the bearer token, reads included; the page and
# what it needs to ask for a token do not.
. "$(dirname "$0")/../fs/lib.sh"

# start_web ADDR ARGS...: the daemon with its dashboard on ADDR:0.
start_web() {
	local addr=$1
	shift
	start_mountd --http "$addr:0" "$@" || return 1
	wait_for 10 grep -q "dashboard on http://" "$T/mountd.log" || return 1
	PORT=$(grep -o "dashboard on http://[^ ]*" "$T/mountd.log" | tail -n 1 |
		sed 's|.*:\([0-9]*\)/k8s/vms$|\1|')
	URL=http://127.0.0.1:$PORT
}
# code PATH [curl args...]: the HTTP status of a GET.
code() { local p=$1; shift; curl -s --max-time 10 -o "$T/body" -w '%{http_code}' "$@" "$URL$p"; }

head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/token"
TOK=$(cat "$T/token")
start_web 0.0.0.0 --http-token "$T/token" || { not_ok "daemon serves on 0.0.0.0 with a token"; done_testing; }
ok "daemon serves on 0.0.0.0:$PORT with --http-token"
v=${P}w
"$ONEWRITE" "$M/vms/ctl" "create $v memory=64Mi disk=64Mi" >/dev/null
printf '#cloud-config\npassword: %s\n' "s3cret-$$" >"$T/ud"
for p in /api/k8s/vms "/api/k8s/vms/default/$v" /api/k8s/templates /api/k8s/snapshots \
	/api/k8s/operations /api/k8s/vm-metrics /metrics /api/k8s/events; do
	is "GET $p without a token: 401" "$(code "$p")" 401
	check "  and no VM name in the answer" bash -c "! grep -q '$v' '$T/body'"
	is "GET $p with a wrong token: 401" "$(code "$p" -H "Authorization: Bearer wrong-$TOK")" 401
done
is "GET /api/k8s/vms with the token: 200" "$(code /api/k8s/vms -H "Authorization: Bearer $TOK")" 200
check "  lists the VM" grep -q "$v" "$T/body"
is "the event stream with the token: 200" \
	"$(code /api/k8s/events -H "Authorization: Bearer $TOK" --max-time 2 || true)" 200
for p in /k8s/vms /api/k8s/config /healthz; do
	is "GET $p needs no token (the page asks for it)" "$(code "$p")" 200
done
like "the config says a token is required" "$(code /api/k8s/config >/dev/null; cat "$T/body")" '"authRequired": *true'
stop_mountd

start_web 127.0.0.1 || { not_ok "daemon serves on loopback"; done_testing; }
is "on loopback a GET needs no token" "$(code /api/k8s/vms)" 200
done_testing
