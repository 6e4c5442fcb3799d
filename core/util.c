/* Names, quoting, time, UUIDs and the pure reconcile rules. */
#include "core/core.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

void core_quote(char *buf, size_t len, const char *s, size_t n)
{
	/* Long enough to recognise the input, short enough for one err line. */
	const size_t keep = 64;
	size_t o = 0;

	if (len == 0)
		return;
	if (!s)
		n = 0;
	if (o + 1 < len)
		buf[o++] = '"';
	for (size_t i = 0; i < n && i < keep && o + 1 < len; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (n > keep) {
		for (int i = 0; i < 3 && o + 1 < len; i++)
			buf[o++] = '.';
	}
	if (o + 1 < len)
		buf[o++] = '"';
	buf[o] = '\0';
}

int core_name_check(const char *name, char *err, size_t errlen)
{
	char q[80];
	size_t n;

	if (!name || !*name) {
		snprintf(err, errlen, "empty name");
		return -EINVAL;
	}
	n = strlen(name);
	core_quote(q, sizeof(q), name, n);
	if (n > CORE_NAME_MAX) {
		snprintf(err, errlen, "bad name %s: longer than %d characters",
			 q, CORE_NAME_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!is_lower_alnum(name[i]) && name[i] != '-') {
			snprintf(err, errlen, "bad name %s: only lower case "
				 "letters, digits and '-' are allowed", q);
			return -EINVAL;
		}
	}
	if (name[0] == '-' || name[n - 1] == '-') {
		snprintf(err, errlen, "bad name %s: must start and end with "
			 "a letter or digit", q);
		return -EINVAL;
	}
	return 0;
}

int core_rfc3339_parse(const char *s, time_t *out)
{
	struct tm tm = { 0 };

	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return -EINVAL;
	*out = timegm(&tm);
	return 0;
}

void core_rfc3339(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (len == 0)
		return;
	if (!gmtime_r(&t, &tm) ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "-");
}

static void fill_random(unsigned char *p, size_t n)
{
	size_t got = 0;
	int fd;

	while (got < n) {
		ssize_t r = getrandom(p + got, n - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got == n)
		return;
	/* Old kernels without getrandom(2): fall back to the device. */
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	while (fd >= 0 && got < n) {
		ssize_t r = read(fd, p + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (fd >= 0)
		close(fd);
	/* Uniqueness still matters more than quality here. */
	for (size_t i = got; i < n; i++)
		p[i] = (unsigned char)((uintptr_t)p ^ (uintptr_t)time(NULL) ^
				       (i * 131u) ^ (unsigned)getpid());
}

void core_uuid(char out[40])
{
	unsigned char b[16];

	fill_random(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 40,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

int core_errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}
