/* be_ops's live and offline migration to node 2
 * (scripts/libvirt-node2.sh) and back, and cancelling one. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "be_test.h"

/* ---- migration ---- */

static bool node2_up(void)
{
	char script[600];
	char *argv[] = { script, "up", NULL };

	if (virsh(NULL, 0, URI2, "version", NULL) == 0)
		return true;
	snprintf(script, sizeof(script), "%s/scripts/libvirt-node2.sh", top);
	return run(NULL, 0, argv) == 0 &&
	       virsh(NULL, 0, URI2, "version", NULL) == 0;
}

static bool meta_node(const char *uri, const char *vm, const char *node)
{
	char out[4096], want[128];
	char *argv[] = { "virsh", "-q", "-c", (char *)uri, "metadata",
			 (char *)vm, "--uri", "https://hypersdk.io/xmlns/vm/1",
			 NULL };

	snprintf(want, sizeof(want), "node>%s</", node);
	out[0] = '\0';
	if (run(out, sizeof(out), argv) == 0 && strstr(out, want))
		return true;
	printf("# metadata of %s at %s: %.300s\n", vm, uri, out);
	return false;
}

static const char *cancel_on;   /* progress message that cancels */

static void on_cancel(void *arg, int pct, const char *msg)
{
	volatile int *cancel = arg;

	if (!strcmp(msg, cancel_on))
		*cancel = 1;
}

/* A cancel before the job starts, and one while it runs.  An idle
 * firmware-only guest has only zero pages and may move in a few ms, before
 * the cancel reaches the job: then it is brought back and that check is
 * skipped. */
static void migrate_cancel(struct be_conn *c, struct be_conn *c2,
			   const char *vm, const char *back_uri)
{
	volatile int cancel = 0;
	struct be_progress pr = { on_cancel, (void *)&cancel, &cancel };
	struct be_migrate_opts o = { .dest_uri = URI2,
				     .migrate_uri = "tcp://127.0.0.2",
				     .dest_node = "ops-node2",
				     .bandwidth = 8ULL * 1048576 };
	struct be_migrate_opts back = { .dest_uri = back_uri,
					.migrate_uri = "tcp://127.0.0.1",
					.dest_node = "ops-node" };
	char err[512], st[32];
	int rc;

	cancel_on = "starting migration";
	rc = be_migrate(c, vm, &o, &pr, E(err), sizeof(err));
	domstate(URI, vm, st, sizeof(st));
	ok(rc == -ECANCELED && !strcmp(st, "running"),
	   "cancel before the job starts: ECANCELED, still here: %s (%s)", st,
	   err);
	cancel = 0;
	cancel_on = "migrating";
	rc = be_migrate(c, vm, &o, &pr, E(err), sizeof(err));
	domstate(URI, vm, st, sizeof(st));
	if (rc == 0) {
		be_migrate(c2, vm, &back, NULL, E(err), sizeof(err));
		skip("the idle guest moved before the cancel reached the job",
		     "cancel during migration");
		return;
	}
	ok(rc == -ECANCELED && !strcmp(st, "running") &&
	   virsh(NULL, 0, URI2, "dominfo", vm) != 0,
	   "cancel during the job (abort): ECANCELED, still running here: "
	   "%s (%s)", st, err);
}

static void migrate_there_back(struct be_conn *c, struct be_conn *c2,
			       const char *vm, const char *back_uri)
{
	struct be_migrate_opts o = { .dest_uri = URI2,
				     .migrate_uri = "tcp://127.0.0.2",
				     .dest_node = "ops-node2",
				     .autoconverge = true };
	struct be_progress pr = { on_progress, NULL, NULL };
	char err[512], st[32];
	int rc;

	max_pct = -1;
	rc = be_migrate(c, vm, &o, &pr, E(err), sizeof(err));
	domstate(URI2, vm, st, sizeof(st));
	ok(rc == 0 && !strcmp(st, "running") && max_pct == 100,
	   "live migration to node 2: %s there (%s)", st, err);
	ok(virsh(NULL, 0, URI, "dominfo", vm) != 0 &&
	   meta_node(URI2, vm, "ops-node2"),
	   "undefined here; its metadata names node ops-node2");
	o.dest_uri = back_uri;
	o.migrate_uri = "tcp://127.0.0.1";
	o.dest_node = "ops-node";
	o.autoconverge = false;
	o.postcopy = true;
	rc = be_migrate(c2, vm, &o, NULL, E(err), sizeof(err));
	ok(rc == 0 || (rc == -EOPNOTSUPP && strstr(err, "post-copy")),
	   "post-copy: done, or EOPNOTSUPP where QEMU cannot: %s", err);
	o.postcopy = false;
	if (rc == -EOPNOTSUPP)
		rc = be_migrate(c2, vm, &o, NULL, E(err), sizeof(err));
	domstate(URI, vm, st, sizeof(st));
	ok(rc == 0 && !strcmp(st, "running") && meta_node(URI, vm, "ops-node")
	   && virsh(NULL, 0, URI2, "dominfo", vm) != 0,
	   "and back: %s on node 1 (%s)", st, err);
}

static void migrate_offline(struct be_conn *c, struct be_conn *c2,
			    const char *vm, const char *back_uri)
{
	struct be_migrate_opts o = { .dest_uri = URI2, .offline = true,
				     .dest_node = "ops-node2" };
	char err[512], st[32];
	int rc;

	be_destroy(c, vm, E(err), sizeof(err));
	rc = be_migrate(c, vm, &o, NULL, E(err), sizeof(err));
	domstate(URI2, vm, st, sizeof(st));
	ok(rc == 0 && !strcmp(st, "shut off") &&
	   virsh(NULL, 0, URI, "dominfo", vm) != 0 &&
	   meta_node(URI2, vm, "ops-node2"),
	   "offline migration of a stopped VM: %s on node 2 (%s)", st, err);
	o.dest_uri = back_uri;
	o.dest_node = "ops-node";
	rc = be_migrate(c2, vm, &o, NULL, E(err), sizeof(err));
	ok(rc == 0 && virsh(NULL, 0, URI, "dominfo", vm) == 0,
	   "offline back to node 1 (%s)", err);
}

void migrate_checks(const struct be_config *cfg, struct be_conn *c)
{
	struct be_config cfg2 = *cfg;
	struct be_conn *c2 = NULL;
	char vm[64], err[512], back[600];
	char script[600];
	char *argv[] = { script, "node1-uri", NULL };
	int rc;

	if (!node2_up()) {
		skip("node 2 (scripts/libvirt-node2.sh up) does not start",
		     "migration");
		return;
	}
	snprintf(script, sizeof(script), "%s/scripts/libvirt-node2.sh", top);
	back[0] = '\0';
	run(back, sizeof(back), argv);
	cfg2.uri = URI2;
	cfg2.node = "ops-node2";
	rc = be_open(&cfg2, &c2, E(err), sizeof(err));
	ok(rc == 0 && back[0], "be_open node 2, same pool folder (%s)", err);
	if (rc < 0)
		return;
	name(vm, sizeof(vm), "mg");
	rc = start64(c, vm, E(err), sizeof(err));
	ok(rc == 0, "migration: define and start (%s)", err);
	migrate_cancel(c, c2, vm, back);
	migrate_there_back(c, c2, vm, back);
	migrate_offline(c, c2, vm, back);
	ok(be_undefine(c, vm, E(err), sizeof(err)) == 0, "undefine (%s)", err);
	be_close(c2);
}
