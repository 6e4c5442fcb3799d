/* be_ops's clones: full and linked copies of a stopped VM (progress,
 * cancel, new identity, dependents block undefine), and linked clones of a
 * running VM, whose disk is frozen under a new overlay as the base. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "be_test.h"

/* ---- clones ---- */

static void mac_of(const char *vm, char *out, size_t len)
{
	char buf[1024], *p;

	out[0] = '\0';
	virsh(buf, sizeof(buf), URI, "domiflist", vm);
	p = strstr(buf, "52:54:00:");
	if (p)
		snprintf(out, len, "%.17s", p);
}

static void uuid_of(const char *vm, char *out, size_t len)
{
	out[0] = '\0';
	virsh(out, len, URI, "domuuid", vm);
}

static void clone_cancel(struct be_conn *c, const char *src,
			 const char *dst)
{
	volatile int cancel = 1;
	struct be_progress pr = { NULL, NULL, &cancel };
	char err[512], path[256];
	int rc;

	rc = be_clone(c, src, dst, "ops", NULL, NULL, false, &pr, E(err),
		      sizeof(err));
	snprintf(path, sizeof(path), "%s/%s_root.qcow2", pooldir, dst);
	ok(rc == -ECANCELED && access(path, F_OK) != 0 &&
	   virsh(NULL, 0, URI, "dominfo", dst) != 0,
	   "cancelled clone: ECANCELED, nothing left: %s", err);
}

static void clone_full(struct be_conn *c, const char *src, const char *dst)
{
	struct be_progress pr = { on_progress, NULL, NULL };
	char err[512], b[256], u1[64], u2[64], m1[32], m2[32], st[32];
	char seed[256];
	int rc;

	max_pct = -1;
	rc = be_clone(c, src, dst, "ops", NULL, NULL, false, &pr, E(err),
		      sizeof(err));
	uuid_of(src, u1, sizeof(u1));
	uuid_of(dst, u2, sizeof(u2));
	mac_of(src, m1, sizeof(m1));
	mac_of(dst, m2, sizeof(m2));
	ok(rc == 0 && max_pct == 100, "full clone (progress to %d%%) (%s)",
	   max_pct, err);
	ok(backing_of(dst, b, sizeof(b)) == 0 && !b[0],
	   "full clone volume has no backing file");
	ok(u1[0] && u2[0] && strcmp(u1, u2) && m1[0] && m2[0] &&
	   strcmp(m1, m2), "new UUID %s and MAC %s", u2, m2);
	snprintf(seed, sizeof(seed), "%s/%s_cidata.iso", pooldir, dst);
	ok(access(seed, F_OK) == 0, "clone has its own seed image");
	domstate(URI, src, st, sizeof(st));
	ok(!strcmp(st, "running"), "running source still runs: %s", st);
	rc = be_clone(c, src, dst, "ops", NULL, NULL, false, NULL, E(err),
		      sizeof(err));
	ok(rc == -EEXIST, "clone onto an existing VM: EEXIST: %s", err);
}

static void clone_linked(struct be_conn *c, const char *src, const char *dst)
{
	char err[512], b[256], want[256], deps[256], st[32];
	int rc;

	be_destroy(c, src, E(err), sizeof(err));
	rc = be_clone(c, src, dst, "ops", NULL, NULL, true, NULL, E(err),
		      sizeof(err));
	snprintf(want, sizeof(want), "%s/%s_root.qcow2", pooldir, src);
	ok(rc == 0 && backing_of(dst, b, sizeof(b)) == 0 && !strcmp(b, want),
	   "linked clone of a stopped VM: qcow2 overlay backed by %s (%s)", b,
	   err);
	rc = be_linked_dependents(c, src, deps, sizeof(deps));
	ok(rc == 0 && !strcmp(deps, dst), "be_linked_dependents: \"%s\"",
	   deps);
	rc = be_undefine(c, src, E(err), sizeof(err));
	ok(rc == -EBUSY && strstr(err, dst), "undefine of the base: EBUSY: %s",
	   err);
	rc = be_start(c, dst, E(err), sizeof(err));
	domstate(URI, dst, st, sizeof(st));
	ok(rc == 0 && !strcmp(st, "running"), "linked clone starts (%s)", err);
	be_destroy(c, dst, E(err), sizeof(err));
}

/* ---- linked clone of a running VM (its disk frozen as the base) ---- */

/* The file the running domain writes for vda. */
static void top_of(const char *vm, char *out, size_t len)
{
	char buf[1024], *p;

	out[0] = '\0';
	virsh(buf, sizeof(buf), URI, "domblklist", vm);
	p = strstr(buf, "vda");
	p = p ? strchr(p, '/') : NULL;
	if (p)
		snprintf(out, len, "%.*s", (int)strcspn(p, " \n"), p);
}

/* qemu-img info --backing-chain of path names base as one of its images. */
static bool chain_has(const char *path, const char *base)
{
	char out[8192], want[300];
	char *argv[] = { "qemu-img", "info", "-U", "--backing-chain",
			 (char *)path, NULL };

	snprintf(want, sizeof(want), "image: %s\n", base);
	return run(out, sizeof(out), argv) == 0 && strstr(out, want);
}

static bool inactive_has(const char *vm, const char *path)
{
	char out[16384];
	char *argv[] = { "virsh", "-q", "-c", URI, "dumpxml", "--inactive",
			 (char *)vm, NULL };

	return run(out, sizeof(out), argv) == 0 && strstr(out, path);
}

static int files_of(const char *vm)
{
	char glob[300], out[4096];
	char *argv[] = { "sh", "-c", glob, NULL };

	snprintf(glob, sizeof(glob), "ls %s | grep -c '^%s_'", pooldir, vm);
	run(out, sizeof(out), argv);
	return atoi(out);
}

static void running_linked(struct be_conn *c, const char *src,
			   const char *dst, char *base, char *cur, size_t len)
{
	char err[512], st[32], st2[32], want[300];
	int rc;

	rc = be_clone(c, src, dst, "ops", NULL, NULL, true, NULL, E(err),
		      sizeof(err));
	domstate(URI, src, st, sizeof(st));
	ok(rc == 0 && !strcmp(st, "running") &&
	   virsh(NULL, 0, URI, "dominfo", dst) == 0,
	   "linked clone of a running VM: source %s, clone defined (%s)", st,
	   err);
	snprintf(base, len, "%s/%s_root.qcow2", pooldir, src);
	top_of(src, cur, len);
	snprintf(want, sizeof(want), "%s/%s_root.", pooldir, src);
	ok(!strncmp(cur, want, strlen(want)) && strcmp(cur, base) &&
	   inactive_has(src, cur), "source writes a new overlay %s, also in "
	   "its definition", cur);
	snprintf(want, sizeof(want), "%s/%s_root.qcow2", pooldir, dst);
	ok(chain_has(cur, base) && chain_has(want, base),
	   "qemu-img --backing-chain: both on the frozen base %s", base);
	rc = define64(c, src, E(err), sizeof(err));
	ok(rc == 0 && inactive_has(src, cur), "redefine from the spec keeps "
	   "the overlay (%s)", err);
	rc = be_start(c, dst, E(err), sizeof(err));
	domstate(URI, src, st, sizeof(st));
	domstate(URI, dst, st2, sizeof(st2));
	ok(rc == 0 && !strcmp(st, "running") && !strcmp(st2, "running"),
	   "clone starts: source %s, clone %s (%s)", st, st2, err);
}

static void running_snap(struct be_conn *c, const char *src,
			 const char *cur)
{
	char err[512], st[32], now[300], other[64];
	int rc;

	rc = be_snapshot_create(c, src, "s1", true, false, NULL, NULL, E(err),
				sizeof(err));
	if (rc == 0)
		rc = be_snapshot_revert(c, src, "s1", E(err), sizeof(err));
	domstate(URI, src, st, sizeof(st));
	top_of(src, now, sizeof(now));
	ok(rc == 0 && !strcmp(st, "running") && !strcmp(now, cur),
	   "internal snapshot of the overlay, revert: %s on %s (%s)", st, now,
	   err);
	name(other, sizeof(other), "crx");
	rc = be_clone(c, src, other, "ops", NULL, NULL, true, NULL, E(err),
		      sizeof(err));
	domstate(URI, src, st, sizeof(st));
	ok(rc == 0 && !strcmp(st, "running"), "linked clone of a running VM "
	   "with a snapshot: source %s (%s)", st, err);
	rc = be_snapshot_revert(c, src, "s1", E(err), sizeof(err));
	ok(rc == -EBUSY && strstr(err, "frozen"), "the older snapshot cannot "
	   "be reverted to: %s", err);
	rc = be_snapshot_delete(c, src, "s1", E(err), sizeof(err));
	ok(rc == 0, "but can be deleted (%s)", err);
	be_destroy(c, other, E(err), sizeof(err));
	rc = be_undefine(c, other, E(err), sizeof(err));
	ok(rc == 0 && files_of(other) == 0, "second clone deleted (%s)", err);
}

static void running_linked_checks(struct be_conn *c)
{
	char src[64], dst[64], err[512], st[32], deps[256];
	char base[300], cur[300];
	int rc;

	name(src, sizeof(src), "cr");
	name(dst, sizeof(dst), "crl");
	rc = start64(c, src, E(err), sizeof(err));
	ok(rc == 0, "running linked: source defined and running (%s)", err);
	running_linked(c, src, dst, base, cur, sizeof(cur));
	rc = be_linked_dependents(c, src, deps, sizeof(deps));
	ok(rc == 0 && !strcmp(deps, dst), "dependents of the frozen source: "
	   "\"%s\"", deps);
	running_snap(c, src, cur);
	be_destroy(c, src, E(err), sizeof(err));
	rc = be_undefine(c, src, E(err), sizeof(err));
	ok(rc == -EBUSY && strstr(err, dst), "undefine of the frozen source: "
	   "EBUSY: %s", err);
	rc = be_start(c, src, E(err), sizeof(err));
	ok(rc == 0, "source starts again on its overlay (%s)", err);
	be_destroy(c, dst, E(err), sizeof(err));
	rc = be_undefine(c, dst, E(err), sizeof(err));
	domstate(URI, src, st, sizeof(st));
	ok(rc == 0 && !strcmp(st, "running") && files_of(dst) == 0 &&
	   access(base, F_OK) == 0, "clone deleted, source %s (%s)", st, err);
	be_destroy(c, src, E(err), sizeof(err));
	rc = be_undefine(c, src, E(err), sizeof(err));
	ok(rc == 0 && files_of(src) == 0, "undefine of the source removes "
	   "all its files, the base too (%d left) (%s)", files_of(src), err);
}

void clone_checks(struct be_conn *c)
{
	char src[64], full[64], lnk[64], err[512];
	int rc;

	name(src, sizeof(src), "cs");
	name(full, sizeof(full), "cf");
	name(lnk, sizeof(lnk), "cl");
	rc = start64(c, src, E(err), sizeof(err));
	ok(rc == 0, "clones: source defined and running (%s)", err);
	clone_cancel(c, src, full);
	clone_full(c, src, full);
	clone_linked(c, src, lnk);
	running_linked_checks(c);
	ok(be_undefine(c, lnk, E(err), sizeof(err)) == 0 &&
	   be_undefine(c, src, E(err), sizeof(err)) == 0 &&
	   be_undefine(c, full, E(err), sizeof(err)) == 0,
	   "undefine clone, then base, then full copy (%s)", err);
}
