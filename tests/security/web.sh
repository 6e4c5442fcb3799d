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

# ---- on loopback: each request is its socket's user, with the tree's rules
# The dashboard knows a client by its socket's uid and that user's groups
# in the user database: real users, made here and removed on exit.
GROUP=hsdw$$ UA=hsdwa$$ UB=hsdwb$$
trap 'cleanup; userdel "$UA" 2>/dev/null; userdel "$UB" 2>/dev/null; groupdel "$GROUP" 2>/dev/null' EXIT
groupadd "$GROUP" && useradd -M -N -g "$GROUP" -s /usr/sbin/nologin "$UA" &&
	useradd -M -N -g "$GROUP" -s /usr/sbin/nologin "$UB" || { not_ok "test users"; done_testing; }
AID=$(id -u "$UA")
SECRET=s3cret-web-$$-$RANDOM
start_web 127.0.0.1 --group "$GROUP" || { not_ok "daemon serves on loopback"; done_testing; }
is "on loopback a GET needs no token" "$(code /api/k8s/vms)" 200
r=${P}r a=${P}a
"$ONEWRITE" "$M/vms/ctl" "create $r memory=64Mi disk=64Mi" >/dev/null
printf 'cpus: 1\nmemory: 64Mi\ndisks:\n- name: root\n  size: 64Mi\ncloudInit:\n  userData: |\n    #cloud-config\n    password: %s\n' \
	"$SECRET" | "$ONEWRITE" "$M/vms/$r/spec" - >/dev/null
like "root's VM holds the secret" "$(cat "$M/vms/$r/spec")" "$SECRET"
snap() { cat "$M/vms/$r/status" "$M/vms/$r/spec" "$M/vms/$r/err"; }
before=$(snap)

# as USER CURL-ARGS...: the status of a request made by USER; body in $T/body.
# (USER cannot write in $T: the body comes back on stdout, the status last.)
as() {
	local u=$1 out
	shift
	out=$(runuser -u "$u" -- curl -s --max-time 60 -w '\n%{http_code}' "$@")
	printf '%s' "${out%$'\n'*}" >"$T/body.$u"
	cp "$T/body.$u" "$T/body"
	echo "${out##*$'\n'}"
}
json=(-H 'Content-Type: application/json')
is "member A creates a VM through the dashboard (201)" \
	"$(as "$UA" -X POST "${json[@]}" --data-binary "{\"name\":\"$a\",\"memory\":\"64Mi\",\"disk\":\"64Mi\"}" "$URL/api/k8s/vms")" 201
is "it is A's in the tree" "$(stat -c %u "$M/vms/$a" 2>/dev/null)" "$AID"
is "A lists VMs (200)" "$(as "$UA" "$URL/api/k8s/vms")" 200
check "  both, as the group sees them" bash -c "grep -q '$r' '$T/body' && grep -q '$a' '$T/body'"
check "  without root's spec (no secret)" bash -c "! grep -q '$SECRET' '$T/body'"
is "A reads root's VM (200)" "$(as "$UA" "$URL/api/k8s/vms/default/$r")" 200
check "  status only: no spec, no secret" bash -c "! grep -q '\"spec\"' '$T/body' && ! grep -q '$SECRET' '$T/body'"
is "A reads its own VM with its spec" "$(as "$UA" "$URL/api/k8s/vms/default/$a") $(grep -c '"spec"' "$T/body")" "200 1"
is "A cannot act on root's VM (403)" "$(as "$UA" -X POST "${json[@]}" --data-binary '{"action":"delete"}' "$URL/api/k8s/vms/default/$r/actions")" 403
like "  and is told why" "$(cat "$T/body")" "only the VM's owner and root"
is "B cannot act on A's VM (403)" "$(as "$UB" -X POST "${json[@]}" --data-binary '{"action":"delete"}' "$URL/api/k8s/vms/default/$a/actions")" 403
check "  A's VM is still there" test -d "$M/vms/$a"
is "A's vm-metrics hold only A's VM" "$(as "$UA" "$URL/api/k8s/vm-metrics") $(grep -c "$r" "$T/body")" "200 0"
is "A may not read /metrics (root's) (403)" "$(as "$UA" "$URL/metrics")" 403
is "A may follow the event stream" "$(as "$UA" --max-time 2 "$URL/api/k8s/events")" 200
is "nobody lists no VM" "$(as nobody "$URL/api/k8s/vms") $(grep -c "$P" "$T/body")" "200 0"
is "nobody: root's VM does not exist (404)" "$(as nobody "$URL/api/k8s/vms/default/$r")" 404
is "nobody may not create (403)" "$(as nobody -X POST "${json[@]}" --data-binary "{\"name\":\"${P}n\"}" "$URL/api/k8s/vms")" 403
check "  nothing made" test ! -e "$M/vms/${P}n"
is "nobody may not act on root's VM (404)" "$(as nobody -X POST "${json[@]}" --data-binary '{"action":"start"}' "$URL/api/k8s/vms/default/$r/actions")" 404
is "nobody may not follow events (403)" "$(as nobody --max-time 2 "$URL/api/k8s/events")" 403
is "nobody may not read /metrics (403)" "$(as nobody "$URL/metrics")" 403
# A template whose source carries credentials: root's spec, as in the tree.
tp=${P}tp
mkdir "$M/templates/$tp"
printf 'displayName: Creds\ndefaultSpec: {cpus: 1, memory: 64Mi}\nimage:\n  source: https://user:%s@127.0.0.1:9/x.img\n' \
	"$SECRET" | "$ONEWRITE" "$M/templates/$tp/spec" - >/dev/null
is "A lists templates (200)" "$(as "$UA" "$URL/api/k8s/templates")" 200
check "  sees the template" grep -q "$tp" "$T/body"
check "  but not its source's credentials" bash -c "! grep -q '$SECRET' '$T/body'"
check "A cannot read the template's spec file" bash -c "! runuser -u $UA -- cat '$M/templates/$tp/spec' 2>/dev/null"
is "A deletes its own VM (200)" "$(as "$UA" -X POST "${json[@]}" --data-binary '{"action":"delete"}' "$URL/api/k8s/vms/default/$a/actions")" 200
is "root's VM unchanged by all of it" "$(snap)" "$before"
check "no answer to A, B or nobody held the secret" bash -c "! grep -l '$SECRET' '$T'/body.* 2>/dev/null | grep -q ."
done_testing
