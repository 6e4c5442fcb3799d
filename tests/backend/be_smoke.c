/* Integration check of backend/ against the real libvirtd (qemu:///system):
 * a temporary pool and a 64 MiB VM through define, start, info, stats,
 * an outside destroy (event within 1 s), pause/resume, stop and undefine.
 * Everything it creates is removed, also when a step fails.  TAP output.
 * Needs root and a running libvirtd (scripts/libvirt-up.sh); skips
 * otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

#include "be_test.h"

/* The RFB handshake up to the security types: true when the server
 * offers VNC authentication (2) and not None (1). */
static bool vnc_wants_password(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	unsigned char ver[12], n = 0, types[32];
	bool two = false, one = false;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    read(fd, ver, sizeof(ver)) != sizeof(ver) ||
	    write(fd, "RFB 003.008\n", 12) != 12 || read(fd, &n, 1) != 1 ||
	    n == 0 || n > sizeof(types) || read(fd, types, n) != n) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	for (unsigned i = 0; i < n; i++) {
		two |= types[i] == 2;
		one |= types[i] == 1;
	}
	close(fd);
	return two && !one;
}

#define UID "8a1c7f3e-2b4d-4c6e-9f10-112233445566"

static char vm[64], vm2[64];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- events ---- */

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond = PTHREAD_COND_INITIALIZER;
static int ev_count;
static double ev_time;          /* when the last event for vm arrived */
static enum core_phase ev_now;  /* and the phase it said */

static void on_event(void *arg, const char *name, enum core_phase phase)
{
	pthread_mutex_lock(&ev_lock);
	if (name && strcmp(name, vm) == 0) {
		ev_count++;
		ev_time = now();
		ev_now = phase;
	}
	pthread_cond_broadcast(&ev_cond);
	pthread_mutex_unlock(&ev_lock);
}

static int events_seen(void)
{
	int n;

	pthread_mutex_lock(&ev_lock);
	n = ev_count;
	pthread_mutex_unlock(&ev_lock);
	return n;
}

/* Wait until more than `seen` events for vm arrived, at most until
 * deadline (monotonic seconds); the arrival time or -1. */
static double wait_event(int seen, double deadline)
{
	struct timespec dl;
	double t = -1, left = deadline - now();

	clock_gettime(CLOCK_REALTIME, &dl);
	if (left > 0) {
		dl.tv_sec += (time_t)left;
		dl.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&ev_lock);
	while (ev_count <= seen && left > 0)
		if (pthread_cond_timedwait(&ev_cond, &ev_lock, &dl) == ETIMEDOUT)
			break;
	if (ev_count > seen)
		t = ev_time;
	pthread_mutex_unlock(&ev_lock);
	return t;
}

/* ---- cleanup (independent of the code under test) ---- */

static void cleanup(void)
{
	virConnectPtr vc = virConnectOpen(URI);
	const char *names[] = { vm, vm2 };
	size_t i;

	for (i = 0; vc && i < 2; i++) {
		virDomainPtr d = virDomainLookupByName(vc, names[i]);

		if (!d)
			continue;
		virDomainDestroy(d);
		virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_NVRAM);
		virDomainFree(d);
	}
	if (vc) {
		drop_pool(vc);
		virConnectClose(vc);
	}
}

/* ---- the spec ---- */

static struct core_disk disk = { .name = "root", .size = 64ULL << 20,
				 .boot_order = 1 };
static struct core_net net = { .name = "default", .type = "pod-network" };

static void small_spec(struct core_spec *s, json_object **j)
{
	memset(s, 0, sizeof(*s));
	s->cpus = 1;
	s->memory = 64ULL << 20;
	s->disks = &disk;
	s->ndisks = 1;
	s->nets = &net;
	s->nnets = 1;
	s->guest_agent = true;
	s->user_data = "#cloud-config\nhostname: smoke\n";
	*j = json_tokener_parse("{\"cpus\":1,\"memory\":\"64Mi\","
				"\"disks\":[{\"name\":\"root\",\"size\":\"64Mi\"}],"
				"\"cloudInit\":{\"userData\":\"#cloud-config\"}}");
}

static int list_cb(const char *name, const char *ns, const char *uid,
		   json_object *spec, void *arg)
{
	int *found = arg;

	if (strcmp(name, vm) == 0 && strcmp(ns, "smoke") == 0 &&
	    strcmp(uid, UID) == 0 && spec &&
	    json_object_object_get_ex(spec, "cloudInit", NULL))
		(*found)++;
	return 0;
}

static void stats_cb(const char *name, const char *txt, size_t len, void *arg)
{
	int *found = arg;

	if (strcmp(name, vm) == 0 && strstr(txt, "cpu.time_ns ") &&
	    strstr(txt, "block.vda.capacity_bytes 67108864\n") &&
	    strstr(txt, "memory.actual_bytes "))
		*found = 1;
}

/* The seed as cloud-init sees it: volume id cidata, and meta-data and
 * user-data files with our content (extracted with xorriso). */
static bool seed_ok(const char *iso, const char *want_user)
{
	char out[160], label[7] = "", buf[512] = "", want[256];
	char *argv[] = { "xorriso", "-osirrox", "on", "-indev", (char *)iso,
			 "-extract", "/meta-data", out, NULL };
	ssize_t n = -1;
	int fd;

	fd = open(iso, O_RDONLY);
	if (fd >= 0 && pread(fd, label, 6, 32768 + 40) == 6)
		label[6] = '\0';
	if (fd >= 0)
		close(fd);
	snprintf(out, sizeof(out), "%s/meta-data", tmpdir);
	unlink(out);
	if (run(NULL, 0, argv) == 0 && (fd = open(out, O_RDONLY)) >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	snprintf(want, sizeof(want), "instance-id: %s\nlocal-hostname: %s\n",
		 UID, vm);
	if (strcmp(label, "CIDATA") != 0 && strcmp(label, "cidata") != 0)
		return false;
	if (strcmp(buf, want) != 0)
		return false;
	argv[6] = "/user-data";
	snprintf(out, sizeof(out), "%s/user-data", tmpdir);
	unlink(out);
	if (run(NULL, 0, argv) != 0 || (fd = open(out, O_RDONLY)) < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return strcmp(buf, want_user) == 0;
}

static bool exists(const char *dir, const char *vmname, const char *suffix)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s%s", dir, vmname, suffix);
	return access(p, F_OK) == 0;
}

static void check_info(struct be_conn *c, enum core_phase want,
		       const char *reason, const char *what)
{
	struct be_info in;
	char err[512] = "";
	int rc = be_info(c, vm, &in, E(err), sizeof(err));

	ok(rc == 0 && in.phase == want && !strcmp(in.reason, reason),
	   "%s: be_info phase %d reason %s (%s)", what, rc == 0 ? (int)in.phase : -1,
	   rc == 0 ? in.reason : "-", err);
}

static void lifecycle(struct be_conn *c)
{
	char err[512] = "", out[256];
	struct be_info in;
	int rc, seen, found = 0;
	double t0, t1, dt;

	t0 = now();
	rc = be_start(c, vm, E(err), sizeof(err));
	printf("# start: %.3f s\n", now() - t0);
	ok(rc == 0, "be_start (%s)", err);
	rc = be_info(c, vm, &in, E(err), sizeof(err));
	ok(rc == 0 && in.phase == CORE_PHASE_RUNNING &&
	   !strcmp(in.reason, "booted") && in.pid > 0 && in.vnc_port >= 5900 &&
	   !strncmp(in.console, "/dev/pts/", 9) && in.has_agent_channel &&
	   !in.agent_connected && in.cpus == 1 && in.memory == 64ULL << 20 &&
	   in.disk_bytes == 64ULL << 20 && strlen(in.uuid) == 36,
	   "be_info running: pid %d vnc %s:%d console %s disk %llu",
	   in.pid, in.vnc_address, in.vnc_port, in.console,
	   (unsigned long long)in.disk_bytes);
	ok(kill(in.pid, 0) == 0, "qemu pid %d exists", in.pid);
	ok(strlen(in.vnc_password) == 8, "VNC has a password of 8");
	ok(vnc_wants_password(in.vnc_port),
	   "VNC on port %d offers only password auth (RFB type 2, never 1)",
	   in.vnc_port);
	domstate(URI, vm, out, sizeof(out));
	ok(!strcmp(out, "running"), "virsh domstate agrees: %s", out);
	ok(be_stats_all(c, stats_cb, &found) == 0 && found,
	   "be_stats_all renders cpu, memory and block.vda");

	/* virsh destroy returns once QEMU is gone (~1.4 s on nested KVM);
	 * the event must be there within 1 s of that. */
	seen = events_seen();
	t0 = now();
	rc = virsh(NULL, 0, URI, "destroy", vm);
	t1 = now();
	ok(rc == 0, "outside virsh destroy (%.3f s)", t1 - t0);
	dt = wait_event(seen, t1 + 1.0);
	ok(dt >= 0, "lifecycle event %.3f s after virsh destroy returned",
	   dt >= 0 ? dt - t1 : -1.0);
	pthread_mutex_lock(&ev_lock);
	ok(ev_now == CORE_PHASE_STOPPED, "the event says Stopped (%s)",
	   core_phase_name(ev_now));
	pthread_mutex_unlock(&ev_lock);
	check_info(c, CORE_PHASE_STOPPED, "destroyed", "after destroy");
	rc = be_info(c, vm, &in, E(err), sizeof(err));
	ok(rc == 0 && in.pid == 0 && in.vnc_port == -1 && !in.console[0] &&
	   in.has_agent_channel && !in.agent_connected &&
	   in.disk_bytes == 64ULL << 20, "stopped: no pid, vnc or console; "
	   "agent channel still defined");

	ok(be_start(c, vm, E(err), sizeof(err)) == 0, "start again (%s)", err);
	ok(be_suspend(c, vm, E(err), sizeof(err)) == 0, "be_suspend (%s)", err);
	check_info(c, CORE_PHASE_PAUSED, "user", "suspended");
	domstate(URI, vm, out, sizeof(out));
	ok(!strcmp(out, "paused"), "virsh domstate agrees: %s", out);
	ok(be_resume(c, vm, E(err), sizeof(err)) == 0, "be_resume (%s)", err);
	check_info(c, CORE_PHASE_RUNNING, "unpaused", "resumed");
	rc = be_undefine(c, vm, E(err), sizeof(err));
	ok(rc == -EBUSY, "be_undefine while running is EBUSY: %s", err);
	ok(be_shutdown(c, vm, E(err), sizeof(err)) == 0,
	   "be_shutdown asks ACPI (%s)", err);
	ok(be_destroy(c, vm, E(err), sizeof(err)) == 0, "be_destroy (%s)", err);
	check_info(c, CORE_PHASE_STOPPED, "destroyed", "stopped");
	rc = be_suspend(c, vm, E(err), sizeof(err));
	ok(rc == -EBUSY && strncmp(err, "pause ", 6) == 0,
	   "pause of a stopped VM is EBUSY: %s", err);
}

static char kerneldir[160], kernel[192], initrd[192];

static void touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd >= 0)
		close(fd);
}

/* A folder of root's kernels, for kernelBoot (be_config.kernel_dir). */
static void make_kernels(void)
{
	char link[192];

	snprintf(kerneldir, sizeof(kerneldir), "%s/kernels", tmpdir);
	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", kerneldir);
	snprintf(initrd, sizeof(initrd), "%s/initrd", kerneldir);
	snprintf(link, sizeof(link), "%s/shadow", kerneldir);
	mkdir(kerneldir, 0755);
	touch(kernel);
	touch(initrd);
	if (symlink("/etc/shadow", link) < 0)
		perror(link);
}

/* kernelBoot names only root's files under the kernel folder: QEMU (and
 * libvirt's relabelling) would otherwise reach any host file. */
static void kernel_checks(struct be_conn *c, const struct be_config *cfg)
{
	const char *bad[] = { "/etc/shadow", "/tmp/../etc/shadow", NULL, NULL };
	char link[192], err[512] = "";
	struct core_spec s;
	struct be_conn *off = NULL;
	json_object *j;
	struct be_config nok = *cfg;
	int rc;

	snprintf(link, sizeof(link), "%s/shadow", kerneldir);
	bad[2] = link;
	for (int i = 0; i < 3; i++) {
		small_spec(&s, &j);
		s.kernel = (char *)bad[i];
		rc = be_define(c, vm2, "smoke", "u5", &s, j, E(err), sizeof(err));
		ok(rc == -EACCES && strstr(err, "spec.kernelBoot.kernel") &&
		   virsh(NULL, 0, URI, "dominfo", vm2) != 0 &&
		   !exists(pooldir, vm2, "_root.qcow2"),
		   "kernel %s is EACCES, nothing defined: %s", bad[i], err);
		s.kernel = NULL;
		json_object_put(j);
	}
	nok.kernel_dir = NULL;
	rc = be_open(&nok, &off, E(err), sizeof(err));
	small_spec(&s, &j);
	s.kernel = kernel;
	if (rc == 0)
		rc = be_define(off, vm2, "smoke", "u5", &s, j, E(err), sizeof(err));
	ok(rc == -EACCES && strstr(err, "kernelBoot is off"),
	   "without a kernel folder kernelBoot is EACCES: %s", err);
	s.kernel = NULL;
	json_object_put(j);
	if (off)
		be_close(off);
}

/* Define-only of every spec field against QEMU's driver, which checks
 * more than the schema (firmware selection, machine type, buses). */
static void full_define(struct be_conn *c)
{
	struct core_disk d2[] = { { .name = "root", .size = 64ULL << 20,
				    .boot_order = 1 },
				  { .name = "data", .size = 32ULL << 20 } };
	struct core_net n2[] = { { .name = "a", .type = "pod-network" },
				 { .name = "b", .type = "user" } };
	struct core_spec s = { .cpus = 1, .max_cpus = 2,
			       .memory = 64ULL << 20, .max_memory = 128ULL << 20,
			       .disks = d2, .ndisks = 2, .nets = n2, .nnets = 2,
			       .machine_type = "q35", .firmware = "uefi",
			       .guest_agent = true, .kernel = kernel,
			       .initrd = initrd,
			       .cmdline = "console=ttyS0 a=<'&\">",
			       .user_data = "#cloud-config\n",
			       .network_data = "version: 2\n",
			       .meta_data = "instance-id: x\n" };
	char err[512] = "";
	int rc;

	rc = be_define(c, vm2, "smoke", "u2", &s, NULL, E(err), sizeof(err));
	ok(rc == 0, "define with every field (uefi, q35, kernel, 2 disks): %s",
	   err);
	ok(be_undefine(c, vm2, E(err), sizeof(err)) == 0 &&
	   !exists(pooldir, vm2, "_root.qcow2") &&
	   !exists(pooldir, vm2, "-data.qcow2") &&
	   !exists(pooldir, vm2, "_cidata.iso"), "undefine removes its files (%s)",
	   err);
}

/* Connection failures and pool conflicts come back as one clear line. */
static void open_errors(const struct be_config *cfg)
{
	struct be_config bad = *cfg;
	struct be_conn *c2 = NULL;
	char err[512], otherdir[160];
	int rc;

	snprintf(otherdir, sizeof(otherdir), "%s/other", tmpdir);
	bad.pool_dir = otherdir;
	rc = be_open(&bad, &c2, E(err), sizeof(err));
	ok(rc < 0 && strstr(err, "exists with path"),
	   "same pool name, other dir: %s", err);
	be_close(c2);
	bad = *cfg;
	bad.uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock";
	rc = be_open(&bad, &c2, E(err), sizeof(err));
	ok(rc == -EIO && !strchr(err, '\n') &&
	   !strncmp(err, "libvirt at qemu+unix:///system", 30) &&
	   strstr(err, "does not answer"), "libvirtd not answering: %s", err);
	be_close(c2);
}

static int define_checks(struct be_conn *c)
{
	char err[512], iso[256];
	struct core_spec s;
	struct stat st1, st2;
	json_object *j;
	double t0;
	int rc, rc2, found = 0;

	small_spec(&s, &j);
	t0 = now();
	rc = be_define(c, vm, "smoke", UID, &s, j, E(err), sizeof(err));
	printf("# define (volume + seed iso + domain): %.3f s\n", now() - t0);
	ok(rc == 0 && exists(pooldir, vm, "_root.qcow2") &&
	   exists(pooldir, vm, "_cidata.iso"), "be_define (%s)", err);
	t0 = now();
	rc2 = be_define(c, vm, "smoke", UID, &s, j, E(err), sizeof(err));
	printf("# define again: %.3f s\n", now() - t0);
	ok(rc2 == 0, "be_define again is idempotent (%s)", err);
	snprintf(iso, sizeof(iso), "%s/%s_cidata.iso", pooldir, vm);
	ok(seed_ok(iso, s.user_data), "seed image: label cidata, meta-data "
	   "and user-data as given");
	stat(iso, &st1);
	ok((st1.st_mode & 07777) == 0600, "the seed image is 0600 (user data "
	   "holds secrets): %o", (unsigned)(st1.st_mode & 07777));
	s.user_data = "#cloud-config\nhostname: changed\n";
	rc2 = be_define(c, vm, "smoke", UID, &s, j, E(err), sizeof(err));
	stat(iso, &st2);
	ok(rc2 == 0 && st1.st_ino != st2.st_ino && seed_ok(iso, s.user_data),
	   "changed userData rebuilds the seed (%s)", err);
	ok(be_list(c, list_cb, &found) == 0 && found == 1,
	   "be_list finds it with ns, uid and spec");
	json_object_put(j);
	return rc;
}

static void undefine_checks(struct be_conn *c)
{
	struct be_info in;
	char err[512];
	int rc;

	rc = be_undefine(c, vm, E(err), sizeof(err));
	ok(rc == 0 && !exists(pooldir, vm, "_root.qcow2") &&
	   !exists(pooldir, vm, "_cidata.iso"),
	   "be_undefine removes domain, volume and seed (%s)", err);
	rc = be_info(c, vm, &in, E(err), sizeof(err));
	ok(rc == -ENOENT, "be_info after undefine is ENOENT: %s", err);
}

/* Forced TCG: type='qemu' with qemu64 starts, with UEFI on q35 (which
 * nested KVM here cannot run). */
static void tcg_checks(const struct be_config *cfg)
{
	struct be_config tc = *cfg;
	struct be_conn *c = NULL;
	struct core_spec s;
	struct be_info in;
	json_object *j;
	char err[512], out[64];
	int rc;

	tc.accel = BE_ACCEL_TCG;
	rc = be_open(&tc, &c, E(err), sizeof(err));
	ok(rc == 0 && !strcmp(be_accel_name(c), "tcg"), "be_open tcg (%s)",
	   err);
	if (rc < 0)
		return;
	small_spec(&s, &j);
	s.user_data = NULL;
	s.firmware = "uefi";
	s.machine_type = "q35";
	rc = be_define(c, vm2, "smoke", "u3", &s, j, E(err), sizeof(err));
	if (rc == 0)
		rc = be_start(c, vm2, E(err), sizeof(err));
	if (rc == 0)
		rc = be_info(c, vm2, &in, E(err), sizeof(err));
	domstate(URI, vm2, out, sizeof(out));
	ok(rc == 0 && in.phase == CORE_PHASE_RUNNING && !strcmp(out, "running"),
	   "tcg uefi q35 domain runs: %s (%s)", out, err);
	be_destroy(c, vm2, E(err), sizeof(err));
	ok(be_undefine(c, vm2, E(err), sizeof(err)) == 0 &&
	   !exists(pooldir, vm2, "_root.qcow2") &&
	   !exists("/var/lib/libvirt/qemu/nvram", vm2, "_VARS.fd"),
	   "tcg domain removed with its nvram (%s)", err);
	json_object_put(j);
	be_close(c);
}

/* A define that fails (here: xorriso fails) leaves nothing behind of
 * what it created, and keeps what was there before. */
static void undo_checks(struct be_conn *c)
{
	char err[512], bin[200], path[4200], *old = getenv("PATH");
	struct core_spec s;
	json_object *j;
	FILE *f;
	int rc;

	snprintf(bin, sizeof(bin), "%s/fakebin", tmpdir);
	mkdir(bin, 0755);
	snprintf(path, sizeof(path), "%s/xorriso", bin);
	f = fopen(path, "w");
	if (f) {
		fputs("#!/bin/sh\necho 'xorriso : FAILURE : fake failure' >&2\n"
		      "echo \"xorriso : aborting : -abort_on 'FAILURE'\" >&2\n"
		      "exit 5\n", f);
		fclose(f);
	}
	chmod(path, 0755);
	snprintf(path, sizeof(path), "%s:%s", bin, old ? old : "/usr/bin:/bin");
	old = old ? strdup(old) : NULL;
	setenv("PATH", path, 1);
	small_spec(&s, &j);
	rc = be_define(c, vm2, "smoke", "u4", &s, j, E(err), sizeof(err));
	if (old)
		setenv("PATH", old, 1);
	free(old);
	ok(rc == -EIO && strstr(err, "fake failure") &&
	   !exists(pooldir, vm2, "_root.qcow2") &&
	   !exists(pooldir, vm2, "_cidata.iso") &&
	   virsh(NULL, 0, URI, "dominfo", vm2) != 0,
	   "failed define removes what it made: %s", err);
	json_object_put(j);
}

static void run_all(void)
{
	struct be_config cfg = { .uri = URI, .pool_dir = pooldir,
				 .pool_name = pool, .node = "smoke-node",
				 .accel = BE_ACCEL_AUTO, .kernel_dir = kerneldir };
	struct be_conn *c = NULL;
	char err[512];
	int rc;

	rc = be_open(&cfg, &c, E(err), sizeof(err));
	ok(rc == 0, "be_open %s (%s)", rc == 0 ? be_accel_name(c) : "-", err);
	if (rc < 0)
		return;
	printf("# accelerator: %s\n", be_accel_name(c));
	open_errors(&cfg);
	ok(be_watch(c, on_event, NULL) == 0, "be_watch");
	undo_checks(c);
	if (define_checks(c) == 0)
		lifecycle(c);
	undefine_checks(c);
	kernel_checks(c, &cfg);
	full_define(c);
	tcg_checks(&cfg);
	be_close(c);
}

int main(void)
{
	if (!setup("/var/tmp/be-smoke-XXXXXX"))
		return 0;
	snprintf(vm, sizeof(vm), "be-smoke-%d", (int)getpid());
	snprintf(vm2, sizeof(vm2), "be-smoke-full-%d", (int)getpid());
	snprintf(pool, sizeof(pool), "be-smoke-%d", (int)getpid());
	make_kernels();
	run_all();
	cleanup();
	return finish();
}
