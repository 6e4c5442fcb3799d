/* HTTP to the API server through libcurl.
 *
 * A sync_http is one curl easy handle with the TLS identity set once:
 * verification always on (the cluster CA only, when one is given), the
 * client certificate as files or in-memory blobs, the bearer token as a
 * header re-read from its file when that changes (kubelets rotate
 * service account tokens).  Easy handles are not thread-safe, so each
 * thread uses its own (client.c keeps a pool for callers' threads); the
 * handle keeps its connection alive between requests. */
#include "sync/priv.h"

#include "core/core.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A list of every VM of a big node fits; a runaway answer does not. */
#define BODY_MAX (128u * 1024 * 1024)
#define CONNECT_TIMEOUT_MS 5000L
#define REQUEST_TIMEOUT_MS 30000L

struct sync_http {
	CURL *c;
	const struct sync_creds *creds; /* outlives the handle */
	const int *stop;
	char *token;
	struct timespec token_mtime;
	char errbuf[CURL_ERROR_SIZE];
	/* the transfer under way */
	struct sync_resp *rs;
	struct sync_stream *st;
	struct sync_lines lines;
	int line_r;
	bool opened, too_big;
	bool fresh;             /* the next transfer opens a new connection */
	long timeout_ms;        /* of a request (not of a stream) */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
		       curl_off_t un)
{
	struct sync_http *h = arg;

	return h->stop && __atomic_load_n(h->stop, __ATOMIC_RELAXED) ? 1 : 0;
}

static int body_append(struct sync_resp *rs, const char *p, size_t n)
{
	size_t cap = rs->cap ? rs->cap : 16384;
	char *nb;

	if (rs->len + n > BODY_MAX)
		return -EFBIG;
	/* Doubling: a list of thousands of objects comes in 16 KiB pieces. */
	while (cap < rs->len + n + 1)
		cap *= 2;
	if (cap != rs->cap) {
		nb = realloc(rs->body, cap);
		if (!nb)
			return -ENOMEM;
		rs->body = nb;
		rs->cap = cap;
	}
	memcpy(rs->body + rs->len, p, n);
	rs->len += n;
	rs->body[rs->len] = '\0';
	return 0;
}

static size_t on_body(char *p, size_t sz, size_t nmemb, void *arg)
{
	struct sync_http *h = arg;
	size_t n = sz * nmemb;
	int r;

	if (h->st && h->opened) {
		r = sync_lines_feed(&h->lines, p, n, h->st->line, h->st->arg);
		if (r) {
			h->line_r = r;
			return 0;
		}
		return n;
	}
	r = body_append(h->rs, p, n);
	if (r < 0) {
		h->too_big = true;
		return 0;
	}
	return n;
}

/* The end of the headers of a 200 answer opens a stream, even one that
 * then stays silent for minutes. */
static size_t on_header(char *p, size_t sz, size_t nmemb, void *arg)
{
	struct sync_http *h = arg;
	size_t n = sz * nmemb;
	long code = 0;

	if (!h->st || h->opened || !(n == 2 && p[0] == '\r' && p[1] == '\n'))
		return n;
	curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200)
		return n;
	h->opened = true;
	if (h->st->open && (h->line_r = h->st->open(h->st->arg)) != 0)
		return 0;
	return n;
}

static int set_blob(CURL *c, CURLoption opt, const char *pem)
{
	struct curl_blob b = {
		.data = (void *)pem, .len = strlen(pem),
		.flags = CURL_BLOB_COPY,
	};

	return curl_easy_setopt(c, opt, &b) == CURLE_OK ? 0 : -EIO;
}

static int set_tls(struct sync_http *h, char *err, size_t errlen)
{
	const struct sync_creds *cr = h->creds;
	const char *allow = getenv("HYPERSDK_ALLOW_INSECURE");
	bool insecure = cr->insecure && allow && strcmp(allow, "1") == 0;
	CURL *c = h->c;
	int r = 0;

	if (cr->insecure && !insecure) {
		snprintf(err, errlen, "insecure-skip-tls-verify is refused "
			 "(HYPERSDK_ALLOW_INSECURE=1 allows it)");
		return -EACCES;
	}
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, insecure ? 0L : 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, insecure ? 0L : 2L);
	/* A cluster CA replaces the system's: a public CA must not be able
	 * to vouch for the API server. */
	if (cr->ca_pem || cr->ca_file) {
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
		curl_easy_setopt(c, CURLOPT_CAINFO, cr->ca_file);
	}
	if (cr->ca_pem)
		r = set_blob(c, CURLOPT_CAINFO_BLOB, cr->ca_pem);
	if (r == 0 && cr->cert_pem)
		r = set_blob(c, CURLOPT_SSLCERT_BLOB, cr->cert_pem);
	if (r == 0 && cr->key_pem)
		r = set_blob(c, CURLOPT_SSLKEY_BLOB, cr->key_pem);
	if (r < 0) {
		snprintf(err, errlen, "curl: this libcurl cannot take "
			 "in-memory certificates");
		return r;
	}
	curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
	curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
	if (cr->cert_file)
		curl_easy_setopt(c, CURLOPT_SSLCERT, cr->cert_file);
	if (cr->key_file)
		curl_easy_setopt(c, CURLOPT_SSLKEY, cr->key_file);
	return 0;
}

int sync_http_new(const struct sync_creds *c, const int *stop,
		  struct sync_http **out, char *err, size_t errlen)
{
	struct sync_http *h;
	int r = -ENOMEM;

	*out = NULL;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		snprintf(err, errlen, "curl_global_init: %s",
			 curl_easy_strerror(global_rc));
		return -EIO;
	}
	h = calloc(1, sizeof(*h));
	if (!h || !(h->c = curl_easy_init()))
		goto out;
	if (c->token && !(h->token = strdup(c->token)))
		goto out;
	h->creds = c;
	h->stop = stop;
	h->timeout_ms = REQUEST_TIMEOUT_MS;
	curl_easy_setopt(h->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->c, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(h->c, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(h->c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	/* Notices a peer that vanished without a FIN on idle connections. */
	curl_easy_setopt(h->c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h->c, CURLOPT_TCP_KEEPIDLE, 15L);
	curl_easy_setopt(h->c, CURLOPT_TCP_KEEPINTVL, 5L);
	curl_easy_setopt(h->c, CURLOPT_USERAGENT, "hypersdk-vmfs/sync");
	curl_easy_setopt(h->c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h->c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h->c, CURLOPT_XFERINFODATA, h);
	curl_easy_setopt(h->c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h->c, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(h->c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h->c, CURLOPT_HEADERDATA, h);
	r = set_tls(h, err, errlen);
out:
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (r < 0) {
		sync_http_free(h);
		return r;
	}
	*out = h;
	return 0;
}

void sync_http_free(struct sync_http *h)
{
	if (!h)
		return;
	if (h->c)
		curl_easy_cleanup(h->c);
	if (h->token)
		explicit_bzero(h->token, strlen(h->token));
	free(h->token);
	sync_lines_free(&h->lines);
	free(h);
}

void sync_http_timeout(struct sync_http *h, long ms)
{
	h->timeout_ms = ms > 0 ? ms : REQUEST_TIMEOUT_MS;
}

void sync_resp_free(struct sync_resp *rs)
{
	free(rs->body);
	memset(rs, 0, sizeof(*rs));
}

/* A rotated token file has a new mtime; an unreadable one keeps the
 * token we have (the kubelet replaces it atomically). */
static void refresh_token(struct sync_http *h)
{
	struct stat st;
	char *t = NULL;

	if (!h->creds->token_file || stat(h->creds->token_file, &st) < 0)
		return;
	if (st.st_mtim.tv_sec == h->token_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == h->token_mtime.tv_nsec)
		return;
	if (sync_read_token(h->creds->token_file, &t) < 0)
		return;
	if (h->token)
		explicit_bzero(h->token, strlen(h->token));
	free(h->token);
	h->token = t;
	h->token_mtime = st.st_mtim;
}

static struct curl_slist *headers(struct sync_http *h, const char *ctype)
{
	struct curl_slist *l = NULL, *n;
	char line[256];
	char *auth = NULL;

	refresh_token(h);
	/* Expect: 100-continue costs a round trip for nothing here. */
	l = curl_slist_append(l, "Accept: application/json");
	n = l ? curl_slist_append(l, "Expect:") : NULL;
	if (n && ctype) {
		snprintf(line, sizeof(line), "Content-Type: %s", ctype);
		n = curl_slist_append(l, line);
	}
	if (n && h->token) {
		if (asprintf(&auth, "Authorization: Bearer %s", h->token) < 0)
			auth = NULL;
		n = auth ? curl_slist_append(l, auth) : NULL;
		if (auth)
			explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	if (!n) {
		curl_slist_free_all(l);
		return NULL;
	}
	return l;
}

static bool unreachable_rc(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static int map_rc(struct sync_http *h, CURLcode rc, char *err, size_t errlen)
{
	const char *why = h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);

	if (rc == CURLE_OK)
		return 0;
	if (rc == CURLE_ABORTED_BY_CALLBACK) {
		snprintf(err, errlen, "cancelled");
		return -ECANCELED;
	}
	if (rc == CURLE_WRITE_ERROR && h->too_big) {
		snprintf(err, errlen, "the answer is too big");
		return -EFBIG;
	}
	if ((rc == CURLE_WRITE_ERROR || rc == CURLE_ABORTED_BY_CALLBACK) &&
	    h->line_r)
		return h->line_r;
	snprintf(err, errlen, "%s", why);
	if (unreachable_rc(rc))
		return h->opened ? SYNC_CUT : SYNC_UNREACHABLE;
	return -EIO;
}

static int perform(struct sync_http *h, const char *url, const char *ctype,
		   long timeout_ms, char *err, size_t errlen)
{
	struct curl_slist *hdrs = headers(h, ctype);
	CURLcode rc;
	int r;

	if (!hdrs) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	h->errbuf[0] = '\0';
	h->line_r = 0;
	h->opened = h->too_big = false;
	/* After a timeout or a cut the cached connection may be dead without
	 * the socket knowing (curl would reuse a silent HTTP/2 connection). */
	curl_easy_setopt(h->c, CURLOPT_FRESH_CONNECT, h->fresh ? 1L : 0L);
	curl_easy_setopt(h->c, CURLOPT_URL, url);
	curl_easy_setopt(h->c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h->c, CURLOPT_TIMEOUT_MS, timeout_ms);
	rc = curl_easy_perform(h->c);
	curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &h->rs->code);
	r = map_rc(h, rc, err, errlen);
	h->fresh = r == SYNC_UNREACHABLE || r == SYNC_CUT;
	/* A line callback may stop a stream that had already completed. */
	if (r == 0 && h->line_r)
		r = h->line_r;
	curl_easy_setopt(h->c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	return r;
}

int sync_http_do(struct sync_http *h, const char *method, const char *url,
		 const char *body, const char *ctype, struct sync_resp *rs,
		 char *err, size_t errlen)
{
	bool get = strcmp(method, "GET") == 0;
	int r;

	memset(rs, 0, sizeof(*rs));
	h->rs = rs;
	h->st = NULL;
	/* HTTPGET undoes an earlier request's body and method. */
	curl_easy_setopt(h->c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(h->c, CURLOPT_CUSTOMREQUEST, get ? NULL : method);
	if (body) {
		curl_easy_setopt(h->c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h->c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)strlen(body));
	}
	r = perform(h, url, body ? ctype : NULL, h->timeout_ms, err, errlen);
	curl_easy_setopt(h->c, CURLOPT_POSTFIELDS, NULL);
	h->rs = NULL;
	if (r < 0)
		sync_resp_free(rs);
	return r;
}

int sync_http_stream(struct sync_http *h, struct sync_stream *st, char *err,
		     size_t errlen)
{
	int r;

	memset(&st->rs, 0, sizeof(st->rs));
	h->rs = &st->rs;
	h->st = st;
	sync_lines_reset(&h->lines);
	curl_easy_setopt(h->c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(h->c, CURLOPT_CUSTOMREQUEST, NULL);
	r = perform(h, st->url, NULL, st->timeout_s * 1000L, err, errlen);
	/* A line without its newline at the end is an event cut short. */
	sync_lines_reset(&h->lines);
	h->st = NULL;
	h->rs = NULL;
	return r;
}

/* The message of a Status answer, else the start of the body. */
static void answer_text(const struct sync_resp *rs, char *buf, size_t len)
{
	json_object *o = NULL, *m;
	char q[96];

	if (rs->body && sync_json_parse(rs->body, rs->len, &o) == 0 &&
	    json_object_object_get_ex(o, "message", &m) &&
	    json_object_is_type(m, json_type_string)) {
		snprintf(buf, len, "%s", json_object_get_string(m));
	} else if (rs->len > 0) {
		core_quote(q, sizeof(q), rs->body, rs->len);
		snprintf(buf, len, "HTTP %ld: %s", rs->code, q);
	} else {
		snprintf(buf, len, "HTTP %ld", rs->code);
	}
	json_object_put(o);
}

static bool reason_is(const struct sync_resp *rs, const char *reason)
{
	json_object *o = NULL, *v;
	bool yes = false;

	if (rs->body && sync_json_parse(rs->body, rs->len, &o) == 0 &&
	    json_object_object_get_ex(o, "reason", &v))
		yes = strcmp(json_object_get_string(v), reason) == 0;
	json_object_put(o);
	return yes;
}

int sync_http_errno(const struct sync_resp *rs, char *err, size_t errlen)
{
	if (rs->code >= 200 && rs->code < 300)
		return 0;
	answer_text(rs, err, errlen);
	switch (rs->code) {
	case 400:
	case 422:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 409:
		return reason_is(rs, "AlreadyExists") ? -EEXIST : -EBUSY;
	case 410:
		return -ESTALE;
	case 429:
	case 502:
	case 503:
	case 504:
		return SYNC_UNREACHABLE;
	default:
		return -EIO;
	}
}
