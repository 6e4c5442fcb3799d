/* Folders and files root may trust: nobody but root can change what a
 * path inside them names.  A folder that another user can write (or that
 * sits under one) lets that user swap a file for a symlink between our
 * check and our use, and so point root's writes or QEMU's reads anywhere. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

/* The daemon is root; a daemon run by another user (a developer's) trusts
 * what that user owns. */
static bool trusted_owner(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

static int check_folder(const char *path, bool leaf, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%.300s is not a folder", path);
		return -ENOTDIR;
	}
	if (!trusted_owner(st.st_uid)) {
		snprintf(err, errlen, "%.300s belongs to uid %u, not root",
			 path, (unsigned)st.st_uid);
		return -EPERM;
	}
	/* A sticky ancestor (/tmp) lets others add names but not replace
	 * ours; the folder itself must be root's alone. */
	if ((st.st_mode & 022) && (leaf || !(st.st_mode & S_ISVTX))) {
		snprintf(err, errlen, "%.300s can be written by %s (mode %04o)",
			 path, st.st_mode & 002 ? "everyone" : "its group",
			 (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int core_dir_trusted(const char *dir, char *out, size_t outlen, char *err,
		     size_t errlen)
{
	char real[PATH_MAX];
	int rc;

	if (!realpath(dir, real)) {
		rc = -errno;
		snprintf(err, errlen, "%s", strerror(-rc));
		return rc;
	}
	if (snprintf(out, outlen, "%s", real) >= (int)outlen)
		return -ENAMETOOLONG;
	rc = check_folder(real, true, err, errlen);
	/* Walk up: each ancestor could rename the folder away and put
	 * another in its place. */
	for (char *s = strrchr(real, '/'); rc == 0 && s; s = strrchr(real, '/')) {
		if (s == real) {
			rc = check_folder("/", false, err, errlen);
			break;
		}
		*s = '\0';
		rc = check_folder(real, false, err, errlen);
	}
	return rc;
}

const char *core_path_under(const char *dir, const char *path, char *real)
{
	size_t n = strlen(dir);

	if (!realpath(path, real) || strncmp(real, dir, n) != 0)
		return NULL;
	if (real[n] == '/')
		return real + n + 1;
	/* The root folder holds everything (and ends in its own '/'). */
	return n > 0 && dir[n - 1] == '/' && real[n] ? real + n : NULL;
}

int core_file_under(const char *dir, const char *path, char *out, size_t outlen,
		    char *err, size_t errlen)
{
	char rdir[PATH_MAX], rpath[PATH_MAX];
	struct stat st;

	if (!realpath(dir, rdir)) {
		snprintf(err, errlen, "folder %.300s: %s", dir, strerror(errno));
		return -EACCES;
	}
	if (!core_path_under(rdir, path, rpath)) {
		snprintf(err, errlen, "%.300s is not a file under %.300s", path,
			 rdir);
		return -EACCES;
	}
	if (lstat(rpath, &st) < 0 || !S_ISREG(st.st_mode) ||
	    !trusted_owner(st.st_uid) ||
	    (st.st_mode & 022)) {
		snprintf(err, errlen, "%.300s is not a regular file that only "
			 "root can write", path);
		return -EACCES;
	}
	if (snprintf(out, outlen, "%s", rpath) >= (int)outlen)
		return -ENAMETOOLONG;
	return 0;
}
