/* Integration check of backend/'s long operations against the real
 * libvirtd (qemu:///system): resize (live vCPU and DIMM hotplug, limits),
 * snapshots (memory, disk-only, tree, revert, delete), full and linked
 * clones (backing chain, dependents block undefine; a running source
 * frozen under an overlay), image import (file
 * and HTTP, checksums) and live migration to node 2
 * (scripts/libvirt-node2.sh) and back.  Everything it creates is named
 * tb<pid>-* (pool hypersdk-tb<pid>) and removed at the end, also when a
 * step fails.  TAP output.  Needs root and libvirtd; skips otherwise. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

#include "be_test.h"

/* "Used memory:    131072 KiB" -> 131072 from virsh dominfo. */
static long dominfo_num(const char *vm, const char *key)
{
	char out[2048], *p;

	if (virsh(out, sizeof(out), URI, "dominfo", vm) != 0)
		return -1;
	p = strstr(out, key);
	if (!p)
		return -1;
	p = strchr(p, ':');
	return p ? strtol(p + 1, NULL, 10) : -1;
}

/* ---- cleanup: only what this run made (prefix tb<pid>-) ---- */

static void cleanup_uri(const char *uri)
{
	virConnectPtr vc = virConnectOpen(uri);
	virDomainPtr *doms = NULL;
	int i, n;

	if (!vc)
		return;
	n = virConnectListAllDomains(vc, &doms, 0);
	for (i = 0; i < n; i++) {
		if (!strncmp(virDomainGetName(doms[i]), pfx, strlen(pfx))) {
			virDomainDestroy(doms[i]);
			virDomainUndefineFlags(doms[i],
				VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
				VIR_DOMAIN_UNDEFINE_NVRAM);
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	virConnectClose(vc);
}

static void cleanup(void)
{
	virConnectPtr vc;

	http_stop();
	cleanup_uri(URI);
	cleanup_uri(URI2);
	for (int i = 0; i < 2; i++) {
		vc = virConnectOpen(i ? URI2 : URI);
		if (!vc)
			continue;
		drop_pool(vc);
		virConnectClose(vc);
	}
}

/* ---- resize ---- */

static void resize_checks(struct be_conn *c)
{
	char vm[64], err[512], st[32];
	uint64_t maxm = 0;
	int maxc = 0, rc;
	bool live = false;

	name(vm, sizeof(vm), "rs");
	rc = start64(c, vm, E(err), sizeof(err));
	ok(rc == 0, "resize: define and start a 64 MiB VM (%s)", err);
	rc = be_limits(c, vm, &maxc, &maxm, E(err), sizeof(err));
	ok(rc == 0 && maxc == 2 && maxm == 128ULL << 20,
	   "be_limits: %d cpus, %llu bytes (%s)", maxc,
	   (unsigned long long)maxm, err);
	rc = be_resize(c, vm, 2, 0, &live, E(err), sizeof(err));
	ok(rc == 0 && live && dominfo_num(vm, "CPU(s)") == 2,
	   "vcpus 1 -> 2 live: dominfo says %ld (%s)",
	   dominfo_num(vm, "CPU(s)"), err);
	rc = be_resize(c, vm, 0, 96ULL << 20, &live, E(err), sizeof(err));
	ok(rc == 0 && live && dominfo_num(vm, "Used memory") == 96 * 1024,
	   "memory 64 -> 96 MiB live (DIMM): dominfo says %ld KiB (%s)",
	   dominfo_num(vm, "Used memory"), err);
	rc = be_resize(c, vm, 3, 0, &live, E(err), sizeof(err));
	ok(rc == -EINVAL && strstr(err, "cpus=3: the maximum of this VM is 2"),
	   "cpus over max: EINVAL: %s", err);
	rc = be_resize(c, vm, 0, 256ULL << 20, &live, E(err), sizeof(err));
	ok(rc == -EINVAL && strstr(err, "maximum of this VM is 128Mi"),
	   "memory over max: EINVAL: %s", err);
	rc = be_resize(c, vm, 0, 64ULL << 20, &live, E(err), sizeof(err));
	ok(rc == 0 && !live, "memory down on a running VM: config only, "
	   "live=%d (%s)", live, err);
	be_destroy(c, vm, E(err), sizeof(err));
	rc = be_start(c, vm, E(err), sizeof(err));
	domstate(URI, vm, st, sizeof(st));
	ok(rc == 0 && dominfo_num(vm, "Used memory") == 64 * 1024 &&
	   dominfo_num(vm, "CPU(s)") == 2 && !strcmp(st, "running"),
	   "after restart: 64 MiB, 2 vcpus, %s (%s)", st, err);
	be_destroy(c, vm, E(err), sizeof(err));
	rc = be_resize(c, vm, 1, 128ULL << 20, &live, E(err), sizeof(err));
	ok(rc == 0 && !live && dominfo_num(vm, "Max memory") == 128 * 1024 &&
	   dominfo_num(vm, "CPU(s)") == 1, "stopped VM: config resize (%s)",
	   err);
	ok(be_undefine(c, vm, E(err), sizeof(err)) == 0, "undefine (%s)", err);
}

/* ---- snapshots ---- */

static void snap_list_checks(struct be_conn *c, const char *vm)
{
	struct be_snap_info *v = NULL;
	char err[512];
	size_t n = 0;
	int rc;

	rc = be_snapshot_list(c, vm, &v, &n, E(err), sizeof(err));
	ok(rc == 0 && n == 3 && !strcmp(v[0].name, "s1") && !v[0].parent[0] &&
	   !strcmp(v[1].name, "s2") && !strcmp(v[1].parent, "s1") &&
	   !strcmp(v[2].name, "s3") && !strcmp(v[2].parent, "s2") &&
	   v[0].memory && !v[1].memory && !v[2].memory &&
	   v[0].vm_phase == CORE_PHASE_RUNNING &&
	   v[2].vm_phase == CORE_PHASE_STOPPED && v[2].current,
	   "list: s1 <- s2 <- s3, memory only in s1, s3 current (%zu, %s)", n,
	   err);
	free(v);
}

static void snapshot_checks(struct be_conn *c)
{
	struct be_snap_info si;
	char vm[64], err[512], st[32];
	bool q = true;
	int rc;

	name(vm, sizeof(vm), "sn");
	rc = start64(c, vm, E(err), sizeof(err));
	ok(rc == 0, "snapshots: define and start (%s)", err);
	rc = be_snapshot_create(c, vm, "s1", true, true, &q, &si, E(err),
				sizeof(err));
	ok(rc == 0 && !q && si.memory && si.vm_phase == CORE_PHASE_RUNNING &&
	   si.created > 0, "memory snapshot of a running VM; no agent, so "
	   "quiesced=false and no hang (%s)", err);
	rc = be_snapshot_create(c, vm, "s1", true, false, NULL, NULL, E(err),
				sizeof(err));
	ok(rc == -EEXIST, "same name again: EEXIST: %s", err);
	rc = be_snapshot_create(c, vm, "s2", false, false, NULL, &si, E(err),
				sizeof(err));
	ok(rc == 0 && !si.memory && !strcmp(si.parent, "s1"),
	   "running VM without memory: disk-only semantics (%s)", err);
	be_destroy(c, vm, E(err), sizeof(err));
	rc = be_snapshot_create(c, vm, "s3", true, false, NULL, &si, E(err),
				sizeof(err));
	ok(rc == 0 && !si.memory && si.vm_phase == CORE_PHASE_STOPPED,
	   "disk snapshot of a stopped VM (%s)", err);
	snap_list_checks(c, vm);
	rc = be_snapshot_revert(c, vm, "s1", E(err), sizeof(err));
	domstate(URI, vm, st, sizeof(st));
	ok(rc == 0 && !strcmp(st, "running"), "revert to the memory snapshot: "
	   "%s (%s)", st, err);
	rc = be_snapshot_revert(c, vm, "s2", E(err), sizeof(err));
	domstate(URI, vm, st, sizeof(st));
	ok(rc == 0 && !strcmp(st, "shut off"), "revert to the disk-only one: "
	   "%s (%s)", st, err);
	rc = be_snapshot_delete(c, vm, "s2", E(err), sizeof(err));
	ok(rc == 0 && be_snapshot_info(c, vm, "s3", &si, E(err),
				       sizeof(err)) == 0 &&
	   !strcmp(si.parent, "s1"), "delete s2: s3 re-parented to %s (%s)",
	   si.parent, err);
	rc = be_snapshot_info(c, vm, "s2", &si, E(err), sizeof(err));
	ok(rc == -ENOENT, "deleted snapshot is ENOENT: %s", err);
	ok(be_undefine(c, vm, E(err), sizeof(err)) == 0,
	   "undefine with snapshots (%s)", err);
}

static void run_all(void)
{
	struct be_config cfg = { .uri = URI, .pool_dir = pooldir,
				 .pool_name = pool, .node = "ops-node",
				 .accel = BE_ACCEL_AUTO };
	struct be_conn *c = NULL;
	char err[512];
	int rc;

	rc = be_open(&cfg, &c, E(err), sizeof(err));
	ok(rc == 0, "be_open %s (%s)", rc == 0 ? be_accel_name(c) : "-", err);
	if (rc < 0)
		return;
	if (!getenv("ONLY") || strstr(getenv("ONLY"), "resize"))
		resize_checks(c);
	if (!getenv("ONLY") || strstr(getenv("ONLY"), "snap"))
		snapshot_checks(c);
	if (!getenv("ONLY") || strstr(getenv("ONLY"), "clone"))
		clone_checks(c);
	if (!getenv("ONLY") || strstr(getenv("ONLY"), "image"))
		image_checks(c);
	if (!getenv("ONLY") || strstr(getenv("ONLY"), "migrate"))
		migrate_checks(&cfg, c);
	be_close(c);
}

int main(int argc, char **argv)
{
	if (!setup("/var/tmp/be-ops-XXXXXX"))
		return 0;
	snprintf(pfx, sizeof(pfx), "tb%d-", (int)getpid());
	snprintf(pool, sizeof(pool), "hypersdk-tb%d", (int)getpid());
	snprintf(top, sizeof(top), "%s", getenv("TOP") ? getenv("TOP") : ".");
	run_all();
	cleanup();
	return finish();
}
