/* Where an image may come from: the import policy (https:// by default,
 * operator-named URL prefixes, local files only under one folder), the
 * addresses a download may connect to, and URLs without credentials for
 * messages.  The daemon is root: a template author must not get it to
 * read host files or to reach the node's private network for them. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <curl/curl.h>

#include "backend/priv.h"

static const struct be_import_policy defaults = {
	.max_bytes = BE_IMPORT_MAX_BYTES, .timeout_s = BE_IMPORT_TIMEOUT_S,
	.low_speed = BE_IMPORT_LOW_SPEED, .stall_s = BE_IMPORT_STALL_S,
	.max_running = BE_IMPORT_MAX_RUNNING,
};

const struct be_import_policy *be_import_policy(const struct be_conn *c)
{
	return c->imp ? c->imp : &defaults;
}

void be_import_free(struct be_import_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nallow; i++)
		free((char *)p->allow[i]);
	free((void *)p->allow);
	free((char *)p->dir);
	free(p);
}

int be_import_set(struct be_conn *c, const struct be_import_policy *p)
{
	struct be_import_policy *n = calloc(1, sizeof(*n));
	char **allow = calloc(p->nallow + 1, sizeof(*allow));
	int rc = 0;

	if (!n || !allow) {
		free(n);
		free(allow);
		return -ENOMEM;
	}
	*n = *p;
	n->allow = (const char *const *)allow;
	n->dir = NULL;
	for (size_t i = 0; i < p->nallow; i++)
		if (!(allow[i] = strdup(p->allow[i])))
			rc = -ENOMEM;
	/* The folder as the kernel resolves it: paths are compared to it. */
	if (p->dir && !(n->dir = realpath(p->dir, NULL)))
		rc = -errno;
	if (rc < 0) {
		be_import_free(n);
		return rc;
	}
	be_import_free(c->imp);
	c->imp = n;
	return 0;
}

/* ---- URLs ------------------------------------------------------------ */

void be_url_redact(const char *source, char *out, size_t len)
{
	const char *s = strstr(source, "://");
	const char *host = s ? s + 3 : NULL;
	const char *end = host ? host + strcspn(host, "/?#") : NULL;
	const char *at = NULL;

	for (const char *q = host; q && q < end; q++)
		if (*q == '@')
			at = q;
	if (!at) {
		snprintf(out, len, "%s", source);
		return;
	}
	snprintf(out, len, "%.*s%s", (int)(host - source), source, at + 1);
}

/* The URL as curl reads it, without credentials, so that a prefix is
 * matched against what is really fetched ("https://a.example@b.example/"
 * goes to b.example). */
static int url_canon(const char *url, char *out, size_t len, char *host,
		     size_t hlen)
{
	CURLU *u = curl_url();
	char *s = NULL, *h = NULL;
	int rc = -EINVAL;

	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK)
		goto out;
	if ((size_t)snprintf(out, len, "%s", s) < len &&
	    (size_t)snprintf(host, hlen, "%s", h) < hlen)
		rc = 0;
out:
	curl_free(s);
	curl_free(h);
	curl_url_cleanup(u);
	return rc;
}

int be_src_check_url(const struct be_conn *c, const char *url, bool *named,
		     char *err, size_t errlen)
{
	const struct be_import_policy *p = be_import_policy(c);
	char canon[4096], host[512], shown[1024];

	*named = false;
	be_url_redact(url, shown, sizeof(shown));
	if (url_canon(url, canon, sizeof(canon), host, sizeof(host)) < 0)
		return core_errf(err, errlen, -EINVAL, "import: %s: not a valid "
			       "URL", shown);
	for (size_t i = 0; i < p->nallow; i++)
		if (!strncmp(canon, p->allow[i], strlen(p->allow[i]))) {
			*named = true;
			return 0;
		}
	if (!strncmp(canon, "https://", 8))
		return 0;
	return core_errf(err, errlen, -EACCES, "import: %s: refused: only "
		       "https:// or a URL under an --import-allow prefix", shown);
}

/* ---- addresses --------------------------------------------------------- */

static const char *v4_class(uint32_t a)
{
	if ((a >> 24) == 127)
		return "loopback";
	if ((a >> 16) == 0xa9fe)
		return "link-local";
	if ((a >> 24) == 10 || (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8)
		return "private";
	if ((a >> 22) == (100 << 2 | 1))        /* 100.64/10, carrier NAT */
		return "private";
	if ((a >> 24) == 0)
		return "unspecified";
	if ((a >> 28) >= 0xe)
		return "multicast or reserved";
	return NULL;
}

static uint32_t v4_at(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | b[3];
}

/* The forms that carry an IPv4 address reach that address (through the
 * kernel, a NAT64 gateway or a 6to4 relay): they are judged by it. */
static const char *v6_embedded(const uint8_t *b)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					    0xff, 0xff };
	static const uint8_t compat[12] = { 0 };
	static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b };
	static const uint8_t nat64l[6] = { 0, 0x64, 0xff, 0x9b, 0, 1 };

	if (!memcmp(b, mapped, 12) || !memcmp(b, nat64, 12))
		return v4_class(v4_at(b + 12));
	/* ::a.b.c.d (deprecated), but not :: and ::1, judged below. */
	if (!memcmp(b, compat, 12) && v4_at(b + 12) > 1)
		return v4_class(v4_at(b + 12));
	if (!memcmp(b, nat64l, 6))
		return "NAT64 (local)";
	if (b[0] == 0x20 && b[1] == 0x02)
		return v4_class(v4_at(b + 2));
	return NULL;
}

static const char *v6_class(const struct in6_addr *a)
{
	const uint8_t *b = a->s6_addr;
	const char *why = v6_embedded(b);

	if (why || (b[0] == 0x20 && b[1] == 0x02))
		return why;
	if (IN6_IS_ADDR_LOOPBACK(a))
		return "loopback";
	if (IN6_IS_ADDR_UNSPECIFIED(a))
		return "unspecified";
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return "link-local";
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
		return "private";       /* site-local, fec0::/10 */
	if ((b[0] & 0xfe) == 0xfc)
		return "private";
	if (b[0] == 0xff)
		return "multicast";
	return NULL;
}

const char *be_addr_refused(const struct sockaddr *sa, char *text,
			    size_t len)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, text, (socklen_t)len);
		return v4_class(ntohl(in->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, text, (socklen_t)len);
		return v6_class(&in6->sin6_addr);
	}
	snprintf(text, len, "family %d", sa->sa_family);
	return "not an internet address";
}

/* ---- local files ------------------------------------------------------- */

static const char *local_path(const char *source)
{
	return !strncmp(source, "file://", 7) ? source + 7 : source;
}

/* openat2 below the folder with no symbolic link on the way: what
 * realpath saw cannot be swapped for a link out of it afterwards. */
static int open_beneath(const char *dir, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
			 O_NONBLOCK,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS,
	};
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC), fd;

	if (dfd < 0)
		return -errno;
	fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof(how));
	fd = fd < 0 ? -errno : fd;
	close(dfd);
	return fd;
}

int be_src_open_local(const struct be_conn *c, const char *source, int *out,
		      char *err, size_t errlen)
{
	const struct be_import_policy *p = be_import_policy(c);
	const char *path = local_path(source), *rel = NULL;
	char real[PATH_MAX];
	struct stat st;
	int fd;

	if (!p->dir)
		return core_errf(err, errlen, -EACCES, "import: %.200s: refused: "
			       "local files need --import-dir", path);
	if (path[0] == '/')
		rel = core_path_under(p->dir, path, real);
	if (!rel)
		return core_errf(err, errlen, -EACCES, "import: %.200s: refused: "
			       "not a file under --import-dir %.200s", path,
			       p->dir);
	fd = open_beneath(p->dir, rel);
	if (fd < 0)
		return core_errf(err, errlen, -EACCES, "import: %.200s: refused: "
			       "cannot open it under --import-dir: %s", path,
			       strerror(-fd));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return core_errf(err, errlen, -EACCES, "import: %.200s: refused: "
			       "not a regular file", path);
	}
	fcntl(fd, F_SETFL, 0);
	*out = fd;
	return 0;
}

bool be_src_is_local(const char *source)
{
	return source[0] == '/' || !strncmp(source, "file://", 7);
}
