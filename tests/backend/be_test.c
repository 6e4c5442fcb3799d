/* TAP output, commands and the run's names for be_smoke and be_ops, so
 * that each check file reports and cleans up the same way. */
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "be_test.h"

extern char **environ;

int ntest, nfail;
char pool[64], pooldir[128], tmpdir[64];
char pfx[32], top[512];
int max_pct;

void ok(bool cond, const char *fmt, ...)
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

void skip(const char *why, const char *what)
{
	printf("ok %d - %s # SKIP %s\n", ++ntest, what, why);
	fflush(stdout);
}

/* A cleared err buffer, so a line shows only this call's reason. */
char *E(char *err)
{
	err[0] = '\0';
	return err;
}

/* Run argv, stdout into out (trimmed, may be NULL); exit status or -1. */
int run(char *out, size_t len, char *const argv[])
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

int virsh(char *out, size_t len, const char *uri, const char *a1,
	  const char *a2)
{
	char *argv[] = { "virsh", "-q", "-c", (char *)uri, (char *)a1,
			 (char *)a2, NULL };

	return run(out, len, argv);
}

void domstate(const char *uri, const char *vm, char *out, size_t len)
{
	out[0] = '\0';
	virsh(out, len, uri, "domstate", vm);
}

void drop_pool(virConnectPtr vc)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(vc, pool);

	if (p) {
		virStoragePoolDestroy(p);
		virStoragePoolUndefine(p);
		virStoragePoolFree(p);
	}
}

static void quiet(void *arg, virErrorPtr e)
{
}

/* tests/sweep.sh removes the folder of a run killed with SIGKILL: it
 * knows the run is gone when this pid is. */
static void write_owner(void)
{
	char path[96];
	FILE *f;

	snprintf(path, sizeof(path), "%s/owner", tmpdir);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
}

bool setup(const char *tmpl)
{
	char out[256];

	if (geteuid() != 0 || virsh(out, sizeof(out), URI, "version", NULL)) {
		printf("1..0 # SKIP needs root and libvirtd (scripts/libvirt-up.sh)\n");
		return false;
	}
	virSetErrorFunc(NULL, quiet);
	snprintf(tmpdir, sizeof(tmpdir), "%s", tmpl);
	if (!mkdtemp(tmpdir) || chmod(tmpdir, 0711) < 0) {
		printf("1..0 # SKIP cannot make %s\n", tmpdir);
		return false;
	}
	snprintf(pooldir, sizeof(pooldir), "%s/pool", tmpdir);
	write_owner();
	return true;
}

int finish(void)
{
	char *rm[] = { "rm", "-rf", "--one-file-system", tmpdir, NULL };

	/* Whatever is left in the pool directory is ours alone. */
	run(NULL, 0, rm);
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}

/* ---- be_ops's files ---- */

void on_progress(void *arg, int pct, const char *msg)
{
	if (pct > max_pct)
		max_pct = pct;
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

int define64(struct be_conn *c, const char *vm, char *err, size_t len)
{
	struct core_spec s;
	json_object *j = json_tokener_parse(spec_json);
	int rc;

	spec64(&s);
	rc = be_define(c, vm, "ops", NULL, &s, j, err, len);
	json_object_put(j);
	return rc;
}

int start64(struct be_conn *c, const char *vm, char *err, size_t len)
{
	int rc = define64(c, vm, err, len);

	return rc ? rc : be_start(c, vm, err, len);
}

void name(char *out, size_t len, const char *what)
{
	snprintf(out, len, "%s%s", pfx, what);
}

/* qemu-img's view of a volume: its backing file ("" when none). */
int backing_of(const char *vm, char *out, size_t len)
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
