/* --probe live|ready: the pod's liveness and readiness, judged through the
 * tree itself, so that a mount nobody serves fails the probe.  Live: the
 * mount point holds a FUSE file system that answers.  Ready: live, and
 * this node's nodes/NODE/status says libvirt is connected and (in cluster
 * mode) the API server reachable. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mountd/priv.h"

#define STATUS_MAX 4096

static int probe_live(const char *mount, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	int rc = fs_mounted(mount);

	if (rc == -EMEDIUMTYPE) {
		snprintf(err, errlen, "%s: the tree is not mounted", mount);
		return -ENOENT;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s%s", mount, strerror(-rc),
			 rc == -ENOTCONN ? " (its daemon is gone)" : "");
		return rc;
	}
	snprintf(path, sizeof(path), "%s/vms/ctl", mount);
	if (stat(path, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	return 0;
}

/* The value of KEY in flat "key value" lines, or NULL. */
static const char *value_of(char *text, const char *key, char *out,
			    size_t len)
{
	size_t kl = strlen(key);
	char *l;

	for (l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, key, kl) || l[kl] != ' ')
			continue;
		snprintf(out, len, "%.*s", (int)strcspn(l + kl + 1, "\n"),
			 l + kl + 1);
		return out;
	}
	return NULL;
}

static int read_status(int dirfd, const char *node, char *buf, size_t len)
{
	char path[NAME_MAX + 16];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/status", node);
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* This node's status: the one directory of nodes/ whose status says
 * "self true". */
static int self_status(const char *mount, char *buf, size_t len, char *err,
		       size_t errlen)
{
	char path[PATH_MAX], v[16];
	struct dirent *de;
	int rc = -ENOENT;
	DIR *d;

	snprintf(path, sizeof(path), "%s/nodes", mount);
	d = opendir(path);
	if (!d) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	while (rc == -ENOENT && (de = readdir(d))) {
		if (de->d_name[0] == '.' ||
		    read_status(dirfd(d), de->d_name, buf, len) < 0)
			continue;
		if (value_of(buf, "self", v, sizeof(v)) && !strcmp(v, "true"))
			rc = 0;
	}
	closedir(d);
	if (rc < 0)
		snprintf(err, errlen, "%s: no status of this node", path);
	return rc;
}

static int probe_ready(const char *mount, char *err, size_t errlen)
{
	char buf[STATUS_MAX], v[256];
	int rc = probe_live(mount, err, errlen);

	if (rc == 0)
		rc = self_status(mount, buf, sizeof(buf), err, errlen);
	if (rc < 0)
		return rc;
	if (!value_of(buf, "libvirt.connected", v, sizeof(v)) ||
	    strcmp(v, "true")) {
		snprintf(err, errlen, "libvirt at %s is not connected",
			 value_of(buf, "libvirt", v, sizeof(v)) ? v : "?");
		return -EHOSTDOWN;
	}
	if (value_of(buf, "apiserver", v, sizeof(v)) &&
	    !strcmp(v, "unreachable")) {
		snprintf(err, errlen, "the API server is unreachable");
		return -EHOSTDOWN;
	}
	return 0;
}

int md_probe(const char *mount, const char *what, char *err, size_t errlen)
{
	if (!strcmp(what, "live"))
		return probe_live(mount, err, errlen);
	if (!strcmp(what, "ready"))
		return probe_ready(mount, err, errlen);
	snprintf(err, errlen, "--probe: want live or ready, not '%s'", what);
	return -EINVAL;
}
