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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "backend/backend.h"

extern char **environ;

#define URI "qemu:///system"
#define URI2 "qemu+tcp://127.0.0.2:16510/system"

static int ntest, nfail;
static char pfx[32], pool[64], tmpdir[] = "/var/tmp/be-ops-XXXXXX";
static char pooldir[128], top[512];
static pid_t http_pid;

static void ok(bool cond, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", ++ntest);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		nfail++;
}

static void skip(const char *why, const char *what)
{
	printf("ok %d - %s # SKIP %s\n", ++ntest, what, why);
	fflush(stdout);
}

static char *E(char *err)
{
	err[0] = '\0';
	return err;
}

/* Run argv, stdout into out (trimmed, may be NULL); exit status or -1. */
static int run(char *out, size_t len, char *const argv[])
{
	posix_spawn_file_actions_t fa;
	int pfd[2], st = -1;
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	while ((r = read(pfd[0], out ? out + n : (char[256]){0},
			 out ? len - n - 1 : 256)) > 0)
		if (out)
			n += (size_t)r;
	close(pfd[0]);
	if (out) {
		while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
			n--;
		out[n] = '\0';
	}
	if (pid > 0)
		waitpid(pid, &st, 0);
	return pid > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int virsh(char *out, size_t len, const char *uri, const char *a1,
		 const char *a2)
{
	char *argv[] = { "virsh", "-q", "-c", (char *)uri, (char *)a1,
			 (char *)a2, NULL };

	return run(out, len, argv);
}

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

static void domstate(const char *uri, const char *vm, char *out, size_t len)
{
	out[0] = '\0';
	virsh(out, len, uri, "domstate", vm);
}

/* ---- cleanup: only what this run made (prefix tb<pid>-) ---- */

static void quiet(void *arg, virErrorPtr e)
{
}

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
	char *rm[] = { "rm", "-rf", "--one-file-system", tmpdir, NULL };

	if (http_pid > 0) {
		kill(http_pid, SIGTERM);
		waitpid(http_pid, NULL, 0);
	}
	cleanup_uri(URI);
	cleanup_uri(URI2);
	for (int i = 0; i < 2; i++) {
		vc = virConnectOpen(i ? URI2 : URI);
		if (!vc)
			continue;
		virStoragePoolPtr p = virStoragePoolLookupByName(vc, pool);

		if (p) {
			virStoragePoolDestroy(p);
			virStoragePoolUndefine(p);
			virStoragePoolFree(p);
		}
		virConnectClose(vc);
	}
	run(NULL, 0, rm);
}

/* ---- specs ---- */

static struct core_disk disk = { .name = "root", .size = 64ULL << 20,
				 .boot_order = 1 };

static struct core_net net = { .name = "default", .type = "pod-network" };

static void spec64(struct core_spec *s)
{
	memset(s, 0, sizeof(*s));
	s->nets = &net;
	s->nnets = 1;
	s->cpus = 1;
	s->max_cpus = 2;
	s->memory = 64ULL << 20;
	s->max_memory = 128ULL << 20;
	s->disks = &disk;
	s->ndisks = 1;
	s->user_data = "#cloud-config\n";
}

static const char *spec_json =
	"{\"cpus\":1,\"maxCpus\":2,\"memory\":\"64Mi\",\"maxMemory\":\"128Mi\","
	"\"disks\":[{\"name\":\"root\",\"size\":\"64Mi\"}],"
	"\"networks\":[{\"name\":\"default\",\"type\":\"pod-network\"}],"
	"\"cloudInit\":{\"userData\":\"#cloud-config\\n\"}}";

static int define64(struct be_conn *c, const char *vm, char *err, size_t len)
{
	struct core_spec s;
	json_object *j = json_tokener_parse(spec_json);
	int rc;

	spec64(&s);
	rc = be_define(c, vm, "ops", NULL, &s, j, err, len);
	json_object_put(j);
	return rc;
}

static void name(char *out, size_t len, const char *what)
{
	snprintf(out, len, "%s%s", pfx, what);
}

/* ---- resize ---- */

static void resize_checks(struct be_conn *c)
{
	char vm[64], err[512], st[32];
	uint64_t maxm = 0;
	int maxc = 0, rc;
	bool live = false;

	name(vm, sizeof(vm), "rs");
	rc = define64(c, vm, E(err), sizeof(err));
	if (rc == 0)
		rc = be_start(c, vm, E(err), sizeof(err));
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
	rc = define64(c, vm, E(err), sizeof(err));
	if (rc == 0)
		rc = be_start(c, vm, E(err), sizeof(err));
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

/* ---- clones ---- */

static int max_pct;

static void on_progress(void *arg, int pct, const char *msg)
{
	if (pct > max_pct)
		max_pct = pct;
}

/* qemu-img's view of a volume: its backing file ("" when none). */
static int backing_of(const char *vm, char *out, size_t len)
{
	char path[256], js[4096], *p, *q;
	char *argv[] = { "qemu-img", "info", "-U", "--output=json", path,
			 NULL };

	snprintf(path, sizeof(path), "%s/%s_root.qcow2", pooldir, vm);
	out[0] = '\0';
	if (run(js, sizeof(js), argv) != 0)
		return -1;
	p = strstr(js, "\"backing-filename\": \"");
	if (!p)
		return 0;
	p += strlen("\"backing-filename\": \"");
	q = strchr(p, '"');
	snprintf(out, len, "%.*s", q ? (int)(q - p) : 0, p);
	return 0;
}

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
	rc = define64(c, src, E(err), sizeof(err));
	if (rc == 0)
		rc = be_start(c, src, E(err), sizeof(err));
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

static void clone_checks(struct be_conn *c)
{
	char src[64], full[64], lnk[64], err[512];
	int rc;

	name(src, sizeof(src), "cs");
	name(full, sizeof(full), "cf");
	name(lnk, sizeof(lnk), "cl");
	rc = define64(c, src, E(err), sizeof(err));
	if (rc == 0)
		rc = be_start(c, src, E(err), sizeof(err));
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

static void migrate_checks(const struct be_config *cfg, struct be_conn *c)
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
	rc = define64(c, vm, E(err), sizeof(err));
	if (rc == 0)
		rc = be_start(c, vm, E(err), sizeof(err));
	ok(rc == 0, "migration: define and start (%s)", err);
	migrate_cancel(c, c2, vm, back);
	migrate_there_back(c, c2, vm, back);
	migrate_offline(c, c2, vm, back);
	ok(be_undefine(c, vm, E(err), sizeof(err)) == 0, "undefine (%s)", err);
	be_close(c2);
}

/* ---- images ---- */

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool port_answers(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool up;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	up = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return up;
}

/* python3 -m http.server on 127.0.0.1 serving dir; the port or -1. */
static int http_start(const char *dir)
{
	char ps[16];
	char *argv[] = { "python3", "-m", "http.server", "--bind",
			 "127.0.0.1", "--directory", (char *)dir, ps, NULL };
	posix_spawn_file_actions_t fa;
	int port = free_port(), i;

	if (port < 0)
		return -1;
	snprintf(ps, sizeof(ps), "%d", port);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawnp(&http_pid, "python3", &fa, NULL, argv, environ))
		http_pid = 0;
	posix_spawn_file_actions_destroy(&fa);
	for (i = 0; http_pid > 0 && i < 100 && !port_answers(port); i++)
		usleep(100 * 1000);
	return http_pid > 0 && port_answers(port) ? port : -1;
}

/* A raw 8 MiB image with some data, and its digest by coreutils. */
static int make_raw(const char *path, char *sha256, char *sha512)
{
	char *mk[] = { "qemu-img", "create", "-q", "-f", "raw", (char *)path,
		       "8M", NULL };
	char *s256[] = { "sha256sum", (char *)path, NULL };
	char *s512[] = { "sha512sum", (char *)path, NULL };
	char out[256];
	int fd;

	if (run(NULL, 0, mk) != 0 || (fd = open(path, O_WRONLY)) < 0)
		return -1;
	if (pwrite(fd, "hypersdk image", 14, 1 << 20) != 14) {
		close(fd);
		return -1;
	}
	close(fd);
	if (run(out, sizeof(out), s256) != 0)
		return -1;
	snprintf(sha256, 65, "%.64s", out);
	if (run(out, sizeof(out), s512) != 0)
		return -1;
	snprintf(sha512, 129, "%.128s", out);
	return 0;
}

static bool vol_is_qcow2(const char *vol)
{
	char path[256], js[4096];
	char *argv[] = { "qemu-img", "info", "-U", "--output=json", path,
			 NULL };

	snprintf(path, sizeof(path), "%s/%s", pooldir, vol);
	return run(js, sizeof(js), argv) == 0 &&
	       strstr(js, "\"format\": \"qcow2\"");
}

static void import_local(struct be_conn *c, const char *raw,
			 const char *s256)
{
	char err[512], sum[200], url[300];
	uint64_t size = 0;
	int rc;

	max_pct = -1;
	snprintf(sum, sizeof(sum), "sha256:%s", s256);
	rc = be_image_import(c, raw, sum, "img-a.qcow2", &size,
			     &(struct be_progress){ on_progress, NULL, NULL },
			     E(err), sizeof(err));
	ok(rc == 0 && size == 8ULL << 20 && vol_is_qcow2("img-a.qcow2") &&
	   max_pct == 100, "import a raw file with sha256: qcow2, %llu bytes "
	   "(%s)", (unsigned long long)size, err);
	rc = be_image_import(c, raw, sum, "img-a.qcow2", &size, NULL, E(err),
			     sizeof(err));
	ok(rc == -EEXIST, "import onto an existing volume: EEXIST: %s", err);
	snprintf(sum, sizeof(sum), "sha256:%064d", 0);
	rc = be_image_import(c, raw, sum, "img-b.qcow2", &size, NULL, E(err),
			     sizeof(err));
	snprintf(url, sizeof(url), "%s/img-b.qcow2", pooldir);
	ok(rc == -EBADMSG && strstr(err, "checksum mismatch: expected sha256:0")
	   && strstr(err, s256) && access(url, F_OK) != 0,
	   "wrong checksum: EBADMSG, nothing left: %s", err);
	snprintf(url, sizeof(url), "file://%s", raw);
	rc = be_image_import(c, url, NULL, "img-f.qcow2", &size, NULL, E(err),
			     sizeof(err));
	ok(rc == 0 && vol_is_qcow2("img-f.qcow2"), "import a file:// URL (%s)",
	   err);
}

static void import_http(struct be_conn *c, const char *srv,
			const char *s512)
{
	char err[512], sum[200], url[300];
	uint64_t size = 0;
	int rc, port = http_start(srv);

	if (port < 0) {
		skip("python3 -m http.server does not start", "import http");
		return;
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/disk.raw", port);
	snprintf(sum, sizeof(sum), "sha512:%s", s512);
	rc = be_image_import(c, url, sum, "img-h.qcow2", &size, NULL, E(err),
			     sizeof(err));
	ok(rc == 0 && size == 8ULL << 20 && vol_is_qcow2("img-h.qcow2"),
	   "import over HTTP with sha512 (%s)", err);
	sum[strlen(sum) - 1] = sum[strlen(sum) - 1] == '0' ? '1' : '0';
	rc = be_image_import(c, url, sum, "img-i.qcow2", &size, NULL, E(err),
			     sizeof(err));
	ok(rc == -EBADMSG && strstr(err, "checksum mismatch: expected sha512:"),
	   "HTTP with a wrong sha512: %s", err);
	{
		volatile int cancel = 1;
		struct be_progress pr = { NULL, NULL, &cancel };

		snprintf(sum, sizeof(sum), "%s/img-k.qcow2", pooldir);
		rc = be_image_import(c, url, NULL, "img-k.qcow2", &size, &pr,
				     E(err), sizeof(err));
		ok(rc == -ECANCELED && access(sum, F_OK) != 0,
		   "cancelled download: ECANCELED, nothing left: %s", err);
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/nope.raw", port);
	rc = be_image_import(c, url, NULL, "img-j.qcow2", &size, NULL, E(err),
			     sizeof(err));
	ok(rc == -ENOENT && strstr(err, "HTTP 404"), "HTTP 404: %s", err);
}

static void image_use(struct be_conn *c)
{
	char vm[64], err[512], b[256], want[256], st[32];
	int rc;

	name(vm, sizeof(vm), "im");
	rc = be_volume_from_image(c, vm, "root", "img-a.qcow2", true,
				  64ULL << 20, E(err), sizeof(err));
	snprintf(want, sizeof(want), "%s/img-a.qcow2", pooldir);
	ok(rc == 0 && backing_of(vm, b, sizeof(b)) == 0 && !strcmp(b, want),
	   "be_volume_from_image linked: overlay on the image (%s)", err);
	rc = be_volume_from_image(c, vm, "root", "img-a.qcow2", true,
				  64ULL << 20, E(err), sizeof(err));
	ok(rc == -EEXIST, "again: EEXIST: %s", err);
	rc = define64(c, vm, E(err), sizeof(err));
	if (rc == 0)
		rc = be_start(c, vm, E(err), sizeof(err));
	domstate(URI, vm, st, sizeof(st));
	ok(rc == 0 && !strcmp(st, "running"), "a VM on it runs (%s)", err);
	be_destroy(c, vm, E(err), sizeof(err));
	rc = be_image_delete(c, "img-a.qcow2", E(err), sizeof(err));
	ok(rc == -EBUSY && strstr(err, vm), "image in use: EBUSY: %s", err);
	rc = be_undefine(c, vm, E(err), sizeof(err));
	if (rc == 0)
		rc = be_image_delete(c, "img-a.qcow2", E(err), sizeof(err));
	ok(rc == 0 && access(want, F_OK) != 0, "then deleted (%s)", err);
	name(vm, sizeof(vm), "im2");
	rc = be_volume_from_image(c, vm, "root", "img-f.qcow2", false,
				  32ULL << 20, E(err), sizeof(err));
	ok(rc == 0 && backing_of(vm, b, sizeof(b)) == 0 && !b[0],
	   "be_volume_from_image full copy (%s)", err);
}

static void image_checks(struct be_conn *c)
{
	char srv[200], raw[260], s256[65] = "", s512[129] = "";

	snprintf(srv, sizeof(srv), "%s/srv", tmpdir);
	snprintf(raw, sizeof(raw), "%s/disk.raw", srv);
	mkdir(srv, 0755);
	ok(make_raw(raw, s256, s512) == 0, "images: a raw test image");
	import_local(c, raw, s256);
	import_http(c, srv, s512);
	image_use(c);
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
	char out[256];

	if (geteuid() != 0 || virsh(out, sizeof(out), URI, "version", NULL)) {
		printf("1..0 # SKIP needs root and libvirtd (scripts/libvirt-up.sh)\n");
		return 0;
	}
	virSetErrorFunc(NULL, quiet);
	snprintf(pfx, sizeof(pfx), "tb%d-", (int)getpid());
	snprintf(pool, sizeof(pool), "hypersdk-tb%d", (int)getpid());
	if (!mkdtemp(tmpdir) || chmod(tmpdir, 0711) < 0) {
		printf("1..0 # SKIP cannot make %s\n", tmpdir);
		return 0;
	}
	snprintf(pooldir, sizeof(pooldir), "%s/pool", tmpdir);
	snprintf(top, sizeof(top), "%s", getenv("TOP") ? getenv("TOP") : ".");
	run_all();
	cleanup();
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
