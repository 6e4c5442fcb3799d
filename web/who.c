/* Who a request comes from, as the tree would see them: a valid bearer
 * token is root (whoever holds it was given the daemon's key); without
 * one, on loopback, the uid that owns the client's socket with that
 * user's groups; anyone else is nobody, who may do nothing. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "web/priv.h"

void web_who_nobody(struct core_cred *c)
{
	memset(c, 0, sizeof(*c));
	c->uid = (uid_t)-1;
	c->gid = (gid_t)-1;
}

void web_who_root(struct core_cred *c)
{
	memset(c, 0, sizeof(*c));
}

/* The kernel tells the socket's uid only: groups come from the user
 * database, as a login of that user would get them. */
void web_who_uid(uid_t uid, struct core_cred *c)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int n = CORE_GROUPS_MAX;

	web_who_nobody(c);
	c->uid = uid;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res)
		return;
	c->gid = pw.pw_gid;
	if (getgrouplist(pw.pw_name, pw.pw_gid, c->groups, &n) < 0)
		n = CORE_GROUPS_MAX;
	c->ngroups = (size_t)n;
}

int web_may(const struct web *w, const struct core_cred *who, uid_t owner,
	    enum core_right r)
{
	static const struct core_acl none = { .has_group = false };

	return core_may(w->cfg.acl ? w->cfg.acl : &none, who, owner, r);
}
