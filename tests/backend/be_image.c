/* be_ops's image import (a file, a file:// URL and HTTP from a local
 * python3 http.server, each refused until the policy allows it;
 * checksums, cancel) and VMs on the images. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "be_test.h"

extern char **environ;

static pid_t http_pid;

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
	char err[512], sum[200], url[300], dir[300];
	struct be_import_policy pol = { .max_bytes = BE_IMPORT_MAX_BYTES,
		.timeout_s = 600, .max_running = 2 };
	uint64_t size = 0;
	int rc;

	rc = be_image_import(c, raw, NULL, "img-a.qcow2", &size, NULL, E(err),
			     sizeof(err));
	ok(rc == -EACCES && strstr(err, "--import-dir"), "by default a local "
	   "file is refused: %s", err);
	snprintf(dir, sizeof(dir), "%s", raw);
	*strrchr(dir, '/') = '\0';
	pol.dir = dir;
	pol.need_checksum = true;
	ok(be_import_set(c, &pol) == 0, "import policy: --import-dir %s, "
	   "checksums required (cluster mode)", dir);
	rc = be_image_import(c, raw, NULL, "img-a.qcow2", &size, NULL, E(err),
			     sizeof(err));
	ok(rc == -EACCES && strstr(err, "checksum is required"), "cluster mode: "
	   "no checksum, no import: %s", err);
	pol.need_checksum = false;
	ok(be_import_set(c, &pol) == 0, "import policy: --import-dir %s", dir);

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
	rc = be_image_import(c, url, NULL, "img-h.qcow2", &size, NULL, E(err),
			     sizeof(err));
	ok(rc == -EACCES && strstr(err, "--import-allow"), "http:// is refused "
	   "unless allowed: %s", err);
	{
		char prefix[64], dir[300];
		const char *allow[] = { prefix };
		struct be_import_policy pol = { .allow = allow, .nallow = 1,
			.dir = dir, .max_bytes = BE_IMPORT_MAX_BYTES,
			.timeout_s = 600, .max_running = 2 };

		snprintf(prefix, sizeof(prefix), "http://127.0.0.1:%d/", port);
		snprintf(dir, sizeof(dir), "%s", srv);
		ok(be_import_set(c, &pol) == 0, "import policy: --import-allow "
		   "%s", prefix);
	}
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
	rc = be_volume_from_image(c, vm, "root", NULL, "img-a.qcow2", true,
				  64ULL << 20, E(err), sizeof(err));
	snprintf(want, sizeof(want), "%s/img-a.qcow2", pooldir);
	ok(rc == 0 && backing_of(vm, b, sizeof(b)) == 0 && !strcmp(b, want),
	   "be_volume_from_image linked: overlay on the image (%s)", err);
	rc = be_volume_from_image(c, vm, "root", NULL, "img-a.qcow2", true,
				  64ULL << 20, E(err), sizeof(err));
	ok(rc == -EEXIST, "again: EEXIST: %s", err);
	rc = start64(c, vm, E(err), sizeof(err));
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
	rc = be_volume_from_image(c, vm, "root", NULL, "img-f.qcow2", false,
				  32ULL << 20, E(err), sizeof(err));
	ok(rc == 0 && backing_of(vm, b, sizeof(b)) == 0 && !b[0],
	   "be_volume_from_image full copy (%s)", err);
}

void image_checks(struct be_conn *c)
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

void http_stop(void)
{
	if (http_pid > 0) {
		kill(http_pid, SIGTERM);
		waitpid(http_pid, NULL, 0);
	}
}
