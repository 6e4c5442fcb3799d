# Shared by tests/security scripts that act as other users: tests/fs/lib.sh
# (a private daemon, TAP helpers, cleanup), then members GROUP-PREFIX
# UID-BASE makes a group of the test's own for the daemon's --group and
# two members A and B (uids without a passwd entry: the tree takes groups
# from the caller's credentials), removed again on exit.
. "$(dirname "${BASH_SOURCE[0]}")/../fs/lib.sh"

# members PREFIX BASE: sets GROUP (PREFIX<pid>, which tests/sweep.sh
# removes when the test is gone), GID, UA, UB and OW (onewrite where
# every uid reaches it).
members() {
	GROUP=$1$$
	UA=$(($2 + $$ % 10000))
	UB=$((UA + 1))
	trap 'cleanup; groupdel "$GROUP" 2>/dev/null' EXIT
	groupadd "$GROUP" || { not_ok "groupadd $GROUP"; done_testing; }
	GID=$(getent group "$GROUP" | cut -d: -f3)
	cp "$ONEWRITE" "$T/onewrite" && chmod 755 "$T/onewrite"
	OW=$T/onewrite
}
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
as_a() { setpriv --reuid="$UA" --regid="$UA" --groups="$GID" "$@"; }
as_b() { setpriv --reuid="$UB" --regid="$UB" --groups="$GID" "$@"; }
