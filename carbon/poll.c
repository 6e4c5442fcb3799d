/* A provider: its configuration checked once (zone, URL, trusted files),
 * then one bounded round per poll: libcurl for Electricity Maps and the
 * UK API, one read for the file provider.  Nothing is kept between
 * rounds; the daemon owns the schedule and the back-off. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "carbon/carbon.h"
#include "carbon/priv.h"
#include "core/core.h"

#define EMAPS_BASE "https://api.electricitymap.org"
#define UKGRID_BASE "https://api.carbonintensity.org.uk"
#define TIMEOUT_DEFAULT 10
#define TIMEOUT_MAX 600
#define FILE_MAX (64 * 1024)
#define TOKEN_MAX 512
#define TOKEN_BUF (TOKEN_MAX + 3)       /* a CR LF over, and the NUL */
#define RETRY_MAX 3600
#define UK_REGIONS 17
#define BASE_MAX 512

struct carbon {
	enum carbon_kind kind;
	char zone[CARBON_ZONE_MAX];
	int region;                     /* ukgrid: 0 national, else 1-17 */
	char base[BASE_MAX];            /* scheme://host[:port], no '/' */
	char token[PATH_MAX];           /* the token file, resolved */
	char file[PATH_MAX];            /* the file provider's, resolved */
	unsigned timeout_s;
};

/* An answer as it comes, up to CARBON_BODY_MAX. */
struct body {
	char *p;
	size_t n, cap;
	bool over;
};

/* ---- configuration ---------------------------------------------------- */

/* "GB" (or nothing) is national; "GB-N" region N, written without a
 * leading zero so that one region has one name. */
static bool uk_zone(const char *z, int *region)
{
	char *end;
	long n;

	*region = 0;
	if (!z || !*z || !strcmp(z, "GB"))
		return true;
	if (strncmp(z, "GB-", 3) || z[3] < '1' || z[3] > '9')
		return false;
	n = strtol(z + 3, &end, 10);
	*region = (int)n;
	return !*end && n <= UK_REGIONS;
}

static int check_zone(struct carbon *c, const char *z, char *err,
		      size_t errlen)
{
	if (c->kind == CARBON_UKGRID && !uk_zone(z, &c->region))
		return core_errf(err, errlen, -EINVAL, "zone: expected GB or "
				   "GB-N, N a region id from 1 to %d",
				   UK_REGIONS);
	if (c->kind == CARBON_UKGRID && (!z || !*z))
		z = "GB";
	else if (c->kind == CARBON_FILE && (!z || !*z))
		z = "file";
	else if (c->kind != CARBON_UKGRID && !carbon_zone_ok(z))
		return core_errf(err, errlen, -EINVAL, "zone: expected 1 to "
				   "%d letters, digits, '-' or '_'",
				   CARBON_ZONE_MAX - 1);
	snprintf(c->zone, sizeof(c->zone), "%s", z);
	return 0;
}

static bool has_part(CURLU *u, CURLUPart part)
{
	char *v = NULL;
	bool has = curl_url_get(u, part, &v, 0) == CURLUE_OK && v && *v;

	curl_free(v);
	return has;
}

/* The documented base, or an operator's (a mirror, a test server): a
 * scheme, a host and a port, since the paths are the documented ones. */
static int check_url(struct carbon *c, const char *url, char *err,
		     size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *path = NULL, *all = NULL;
	int rc = -EINVAL;
	size_t n;

	if (!u)
		return -ENOMEM;
	if (strlen(url) >= BASE_MAX ||
	    curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &all, 0) != CURLUE_OK ||
	    !has_part(u, CURLUPART_HOST))
		rc = core_errf(err, errlen, rc, "url: not a URL");
	else if (strcmp(scheme, "http") && strcmp(scheme, "https"))
		rc = core_errf(err, errlen, rc, "url: expected http or https");
	else if (strcmp(path, "/") || has_part(u, CURLUPART_QUERY) ||
		 has_part(u, CURLUPART_FRAGMENT) ||
		 has_part(u, CURLUPART_USER) ||
		 has_part(u, CURLUPART_PASSWORD) ||
		 has_part(u, CURLUPART_OPTIONS))
		rc = core_errf(err, errlen, rc, "url: expected only a scheme, "
				 "a host and a port (the paths are the API's)");
	else
		rc = 0;
	if (rc == 0) {
		n = strlen(all);
		snprintf(c->base, sizeof(c->base), "%.*s",
			 (int)(n && all[n - 1] == '/' ? n - 1 : n), all);
	}
	curl_free(scheme);
	curl_free(path);
	curl_free(all);
	curl_url_cleanup(u);
	return rc;
}

/* Open a file of a trusted folder if it is a regular file (not a link,
 * not a FIFO that would block) that only root, or the daemon's user, can
 * write, and small. */
static int open_checked(const char *what, const char *path, size_t max,
			char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	int rc;

	if (fd < 0) {
		rc = -errno;
		return core_errf(err, errlen, rc, "%s %.200s: %s", what, path,
				   strerror(-rc));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		rc = core_errf(err, errlen, -EINVAL, "%s %.200s: not a regular "
				 "file", what, path);
	else if ((st.st_uid != 0 && st.st_uid != geteuid()) ||
		 (st.st_mode & 022))
		rc = core_errf(err, errlen, -EPERM, "%s %.200s: others than "
				 "root can write it", what, path);
	else if ((size_t)st.st_size > max)
		rc = core_errf(err, errlen, -EINVAL, "%s %.200s: over %zu bytes",
				 what, path, max);
	else
		return fd;
	close(fd);
	return rc;
}

/* The token and the file are root's input: held to the rule of every
 * file root trusts (core_dir_trusted for the folder and those above). */
static int trust_file(const char *what, const char *path, char *real,
		      char *err, size_t errlen)
{
	char dir[PATH_MAX], checked[PATH_MAX], why[CORE_ERR_MAX / 2];
	char *slash;
	int rc, fd;

	if (!path || !*path)
		return core_errf(err, errlen, -EINVAL, "%s: not given", what);
	if (!realpath(path, real)) {
		rc = -errno;
		return core_errf(err, errlen, rc, "%s %.200s: %s", what, path,
				   strerror(-rc));
	}
	/* The folder: real is absolute, and /f is in "/". */
	snprintf(dir, sizeof(dir), "%s", real);
	slash = strrchr(dir, '/');
	slash[slash == dir] = '\0';
	rc = core_dir_trusted(dir, checked, sizeof(checked), why, sizeof(why));
	if (rc < 0)
		return core_errf(err, errlen, rc, "%s %.200s: %s", what, path,
				   why);
	fd = open_checked(what, real, FILE_MAX, err, errlen);
	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

/* Up to max bytes of a checked file into buf (max + 1 bytes); 0 or
 * -errno. */
static int read_checked(const char *what, const char *path, char *buf,
			size_t max, size_t *n, char *err, size_t errlen)
{
	int fd = open_checked(what, path, max, err, errlen);
	ssize_t r = 0;

	*n = 0;
	if (fd < 0)
		return fd;
	while (*n < max && (r = read(fd, buf + *n, max - *n)) > 0)
		*n += (size_t)r;
	close(fd);
	buf[*n] = '\0';
	if (r < 0)
		return core_errf(err, errlen, -EIO, "%s %.200s: cannot read it",
				   what, path);
	return 0;
}

/* The token goes into a header line: a CR, LF or blank could end it and
 * add a header of the file's choosing. */
static int read_token(const struct carbon *c, char *tok, char *err,
		      size_t errlen)
{
	size_t n;
	int rc = read_checked("token file", c->token, tok, TOKEN_MAX + 2, &n,
			      err, errlen);

	if (rc < 0)
		return rc;
	while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r'))
		tok[--n] = '\0';
	for (size_t i = 0; i < n && rc == 0; i++)
		if (tok[i] <= ' ' || tok[i] > '~')
			rc = -EINVAL;
	if (rc < 0 || n == 0 || n > TOKEN_MAX) {
		explicit_bzero(tok, TOKEN_BUF);
		return core_errf(err, errlen, -EINVAL, "token file %.200s: "
				   "expected 1 to %d printable characters "
				   "without blanks", c->token, TOKEN_MAX);
	}
	return 0;
}

static int check_source(struct carbon *c, const struct carbon_cfg *cfg,
			char *err, size_t errlen)
{
	char tok[TOKEN_BUF];
	int rc;

	if (c->kind == CARBON_FILE)
		return trust_file("file", cfg->file, c->file, err, errlen);
	rc = check_url(c, cfg->url && *cfg->url ? cfg->url :
		       c->kind == CARBON_EMAPS ? EMAPS_BASE : UKGRID_BASE,
		       err, errlen);
	if (rc < 0 || c->kind != CARBON_EMAPS)
		return rc;
	rc = trust_file("token file", cfg->token_file, c->token, err, errlen);
	/* Read once now so a bad token fails the start, not the first poll. */
	rc = rc ? rc : read_token(c, tok, err, errlen);
	explicit_bzero(tok, sizeof(tok));
	return rc;
}

/* curl_global_init is not thread-safe; curl_easy_init would call it from
 * whichever thread comes first. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_rc;

static void curl_init(void)
{
	curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int carbon_open(const struct carbon_cfg *cfg, struct carbon **out, char *err,
		size_t errlen)
{
	struct carbon *c;
	int rc;

	*out = NULL;
	if (!cfg || cfg->kind <= CARBON_NONE || cfg->kind > CARBON_FILE)
		return core_errf(err, errlen, -EINVAL, "no carbon provider");
	if (cfg->timeout_s > TIMEOUT_MAX)
		return core_errf(err, errlen, -EINVAL, "timeout: at most %ds",
				   TIMEOUT_MAX);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->kind = cfg->kind;
	c->timeout_s = cfg->timeout_s ? cfg->timeout_s : TIMEOUT_DEFAULT;
	rc = check_zone(c, cfg->zone, err, errlen);
	rc = rc ? rc : check_source(c, cfg, err, errlen);
	if (rc == 0) {
		pthread_once(&curl_once, curl_init);
		if (curl_rc != CURLE_OK)
			rc = core_errf(err, errlen, -EIO, "curl_global_init: %s",
					 curl_easy_strerror(curl_rc));
	}
	if (rc < 0) {
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void carbon_close(struct carbon *c)
{
	free(c);
}

enum carbon_kind carbon_kind_of(const struct carbon *c)
{
	return c->kind;
}

const char *carbon_zone(const struct carbon *c)
{
	return c->zone;
}

/* ---- HTTP ------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb, cap;
	char *np;

	/* Returning less than n aborts the transfer. */
	if (n > CARBON_BODY_MAX - b->n) {
		b->over = true;
		return 0;
	}
	if (b->n + n > b->cap) {
		cap = b->cap ? b->cap * 2 : 16384;
		while (cap < b->n + n)
			cap *= 2;
		if (cap > CARBON_BODY_MAX)
			cap = CARBON_BODY_MAX;
		np = realloc(b->p, cap + 1);
		if (!np)
			return 0;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

static void setup(CURL *h, const struct carbon *c, const char *url,
		  struct curl_slist *hdr, struct body *b)
{
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "hypersdk-vmfs");
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS,
			 (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	/* A redirect could carry the token to another host. */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)c->timeout_s);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)c->timeout_s);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
			 (curl_off_t)CARBON_BODY_MAX);
	/* Timeouts by signal would hit whatever thread the daemon runs. */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
}

/* A status other than 200 as the errno carbon.h promises. */
static int status(CURL *h, long code, const char *what,
		  struct carbon_poll *out, char *err, size_t errlen)
{
	curl_off_t ra = 0;

	if (code == 401 || code == 403)
		return core_errf(err, errlen, -EACCES, "GET %s: HTTP %ld: access "
				   "refused", what, code);
	if (code == 429) {
		/* curl reads Retry-After as seconds or as an HTTP date. */
		curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra);
		out->retry_after_s = ra < 0 ? 0 : ra > RETRY_MAX ? RETRY_MAX :
				     (unsigned)ra;
		return core_errf(err, errlen, -EAGAIN, "GET %s: HTTP 429: rate "
				   "limited, retry after %us", what,
				   out->retry_after_s);
	}
	if (code >= 300 && code < 400)
		return core_errf(err, errlen, -EIO, "GET %s: HTTP %ld: redirects "
				   "are not followed", what, code);
	return core_errf(err, errlen, -EIO, "GET %s: HTTP %ld", what, code);
}

/* GET base + path into b; 0 on a 200.  The token travels only in its
 * header, and err quotes neither it nor the answer. */
static int fetch(const struct carbon *c, const char *path, const char *token,
		 struct body *b, struct carbon_poll *out, char *err,
		 size_t errlen)
{
	char url[BASE_MAX + 256], auth[TOKEN_MAX + 16];
	struct curl_slist *hdr, *more = NULL;
	CURL *h = curl_easy_init();
	long code = 0;
	CURLcode cc;
	int rc = -ENOMEM;

	b->n = 0;
	b->over = false;
	hdr = h ? curl_slist_append(NULL, "Accept: application/json") : NULL;
	if (hdr && token) {
		snprintf(auth, sizeof(auth), "auth-token: %s", token);
		more = curl_slist_append(hdr, auth);
		explicit_bzero(auth, sizeof(auth));
	}
	if (!hdr || (token && !more))
		goto out;
	snprintf(url, sizeof(url), "%s%s", c->base, path);
	setup(h, c, url, hdr, b);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	out->http_status = (int)code;
	if (cc == CURLE_OPERATION_TIMEDOUT)
		rc = core_errf(err, errlen, -ETIMEDOUT, "GET %s: no answer "
				 "within %us", path, c->timeout_s);
	else if (b->over || cc == CURLE_FILESIZE_EXCEEDED)
		rc = core_errf(err, errlen, -EIO, "GET %s: answer over 1 MiB",
				 path);
	else if (cc != CURLE_OK)
		rc = core_errf(err, errlen, -EIO, "GET %s: %s", path,
				 curl_easy_strerror(cc));
	else
		rc = code == 200 ? 0 : status(h, code, path, out, err, errlen);
out:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return rc;
}

/* A parser's reason, prefixed with the request it was the answer to. */
static int parsed(int rc, const char *path, const char *why, char *err,
		  size_t errlen)
{
	return rc < 0 ? core_errf(err, errlen, rc, "GET %s: %s", path, why)
		      : rc;
}

static void paths(const struct carbon *c, char *now, char *fc, size_t len)
{
	time_t t = time(NULL);
	char from[32];
	struct tm tm;

	if (c->kind == CARBON_EMAPS) {
		snprintf(now, len, "/v3/carbon-intensity/latest?zone=%s", c->zone);
		snprintf(fc, len, "/v3/carbon-intensity/forecast?zone=%s",
			 c->zone);
		return;
	}
	/* From the start of the current half hour: the API's periods. */
	t -= t % 1800;
	gmtime_r(&t, &tm);
	strftime(from, sizeof(from), "%Y-%m-%dT%H:%MZ", &tm);
	if (c->region) {
		snprintf(now, len, "/regional/regionid/%d", c->region);
		snprintf(fc, len, "/regional/intensity/%s/fw24h/regionid/%d",
			 from, c->region);
	} else {
		snprintf(now, len, "/intensity");
		snprintf(fc, len, "/intensity/%s/fw24h", from);
	}
}

static int parse_now(const struct carbon *c, const struct body *b,
		     struct carbon_reading *r, char *why, size_t len)
{
	return c->kind == CARBON_EMAPS ?
	       carbon_parse_emaps_latest(b->p, b->n, r, why, len) :
	       carbon_parse_ukgrid(b->p, b->n, r, why, len);
}

static int parse_fc(const struct carbon *c, const struct body *b,
		    struct carbon_forecast *fc, char *why, size_t len)
{
	return c->kind == CARBON_EMAPS ?
	       carbon_parse_emaps_forecast(b->p, b->n, fc, why, len) :
	       carbon_parse_ukgrid_forecast(b->p, b->n, fc, why, len);
}

/* A forecast that fails only says why in err: the round stands. */
static void forecast(const struct carbon *c, const char *path,
		     const char *token, struct body *b, struct carbon_poll *out,
		     char *err, size_t errlen)
{
	char why[CORE_ERR_MAX];
	int rc = fetch(c, path, token, b, out, err, errlen);

	if (rc == 0)
		rc = parsed(parse_fc(c, b, &out->fc, why, sizeof(why)), path, why,
			    err, errlen);
	if (rc < 0)
		out->fc.n = 0;
}

static int poll_http(const struct carbon *c, bool want_fc,
		     struct carbon_poll *out, char *err, size_t errlen)
{
	char token[TOKEN_BUF] = "", now[256], fc[256], why[CORE_ERR_MAX];
	struct body b = { 0 };
	int rc = 0;

	paths(c, now, fc, sizeof(now));
	if (c->kind == CARBON_EMAPS)
		rc = read_token(c, token, err, errlen);
	rc = rc ? rc : fetch(c, now, *token ? token : NULL, &b, out, err,
			     errlen);
	if (rc == 0)
		rc = parsed(parse_now(c, &b, &out->now, why, sizeof(why)), now,
			    why, err, errlen);
	if (rc == 0 && want_fc)
		forecast(c, fc, *token ? token : NULL, &b, out, err, errlen);
	explicit_bzero(token, sizeof(token));
	free(b.p);
	return rc;
}

/* ---- the file --------------------------------------------------------- */

static int poll_file(const struct carbon *c, bool want_fc,
		     struct carbon_poll *out, char *err, size_t errlen)
{
	char *buf = malloc(FILE_MAX + 1), why[CORE_ERR_MAX];
	size_t n;
	int rc = -ENOMEM;

	if (!buf)
		goto out;
	/* Whatever went wrong reading it, the source is unreachable: -EIO,
	 * as for a transport error. */
	rc = read_checked("file", c->file, buf, FILE_MAX, &n, err, errlen);
	if (rc < 0) {
		rc = -EIO;
		goto out;
	}
	rc = carbon_parse_file(buf, n, &out->now, &out->fc, why, sizeof(why));
	if (rc < 0) {
		core_errf(err, errlen, rc, "file %.200s: %s", c->file, why);
		goto out;
	}
	if (!out->now.zone[0])
		snprintf(out->now.zone, sizeof(out->now.zone), "%s", c->zone);
	if (!want_fc)
		out->fc.n = 0;
out:
	free(buf);
	return rc;
}

int carbon_poll(struct carbon *c, bool want_forecast, struct carbon_poll *out,
		char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	if (c->kind == CARBON_FILE)
		return poll_file(c, want_forecast, out, err, errlen);
	return poll_http(c, want_forecast, out, err, errlen);
}
