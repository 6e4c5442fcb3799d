/* onewrite FILE [DATA|-]: write DATA (or all of stdin) to FILE in exactly
 * one write(2), as one ctl message, and print "ok" or the errno's name.
 * Exit status 0 on success, 1 on a write or close error, 2 on a usage
 * error.
 * The shell's echo cannot promise one write, and only the errno reaches
 * a shell, so the fs tests use this to pin down errnos exactly. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *errname(int e)
{
	static const struct { int e; const char *n; } t[] = {
		{ EINVAL, "EINVAL" }, { ENOENT, "ENOENT" }, { EBUSY, "EBUSY" },
		{ EEXIST, "EEXIST" }, { EACCES, "EACCES" }, { EPERM, "EPERM" },
		{ EOPNOTSUPP, "EOPNOTSUPP" }, { ETIMEDOUT, "ETIMEDOUT" },
		{ EIO, "EIO" }, { EINTR, "EINTR" }, { ENOSPC, "ENOSPC" },
		{ ERANGE, "ERANGE" }, { ENAMETOOLONG, "ENAMETOOLONG" },
		{ ECANCELED, "ECANCELED" }, { EBADMSG, "EBADMSG" },
		{ EFBIG, "EFBIG" }, { ELOOP, "ELOOP" },
		{ EHOSTUNREACH, "EHOSTUNREACH" },
		{ ECONNREFUSED, "ECONNREFUSED" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].e == e)
			return t[i].n;
	return strerror(e);
}

static char *slurp(size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	ssize_t r;

	while (buf && (r = read(0, buf + n, cap - n)) > 0) {
		n += (size_t)r;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	*len = n;
	return buf;
}

int main(int argc, char **argv)
{
	size_t len;
	char *data, *owned = NULL;
	ssize_t w;
	int fd, rc = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: onewrite FILE DATA|-\n");
		return 2;
	}
	if (!strcmp(argv[2], "-"))
		data = owned = slurp(&len);
	else
		data = argv[2], len = strlen(argv[2]);
	if (!data)
		return 2;
	fd = open(argv[1], O_WRONLY | O_TRUNC);
	if (fd < 0) {
		printf("%s\n", errname(errno));
		goto out;
	}
	w = write(fd, data, len);
	/* A spec is applied at close: its errors come back from there. */
	if (close(fd) < 0 && w >= 0)
		w = -1;
	if (w < 0) {
		printf("%s\n", errname(errno));
		goto out;
	}
	printf("ok\n");
	rc = 0;
out:
	free(owned);
	return rc;
}
