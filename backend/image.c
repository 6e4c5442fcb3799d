/* Images: a copy of the source under the import policy (libcurl, or a
 * local file through imgsource.c), checksum (OpenSSL EVP), our own format
 * decision (imgprobe.c), qemu-img under limits, then a pool volume. */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "backend/priv.h"

/* ---- download ------------------------------------------------------- */

enum dl_stop { DL_NONE, DL_BIG, DL_LATE, DL_ADDR };

struct dl {
	int fd;
	const struct be_progress *p;
	const struct be_import_policy *pol;
	time_t deadline;
	uint64_t got;
	int last;
	bool named;             /* this hop's host is named by the operator */
	enum dl_stop stop;
	char addr[INET6_ADDRSTRLEN + 8];
	const char *addr_class;
};

static size_t dl_write(char *data, size_t sz, size_t n, void *arg)
{
	struct dl *d = arg;
	size_t len = sz * n;

	if (d->got + len > d->pol->max_bytes) {
		d->stop = DL_BIG;
		return 0;
	}
	if (core_write_all(d->fd, data, len) < 0)
		return 0;
	d->got += len;
	return len;
}

static int dl_progress(void *arg, curl_off_t total, curl_off_t now,
		       curl_off_t ut, curl_off_t un)
{
	struct dl *d = arg;
	int pct = total > 0 ? (int)(now * 50 / total) : 0;

	if (pct != d->last)
		be_report(d->p, pct, "downloading");
	d->last = pct;
	if (time(NULL) >= d->deadline) {
		d->stop = DL_LATE;
		return 1;
	}
	return be_cancelled(d->p) ? 1 : 0;
}

/* Every connection of every hop comes through here: the address really
 * connected is checked, whatever name, redirect or DNS answer led to it. */
static curl_socket_t dl_socket(void *arg, curlsocktype purpose,
			       struct curl_sockaddr *a)
{
	struct dl *d = arg;
	const char *cls = be_addr_refused(&a->addr, d->addr, sizeof(d->addr));

	if (cls && !d->named) {
		d->stop = DL_ADDR;
		d->addr_class = cls;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Classes of failure, never curl's text: that could carry what a
 * server said, or tell open ports from closed ones. */
static int dl_fail(const struct dl *d, CURLcode cc, long code,
		   const char *shown, char *err, size_t errlen)
{
	const struct be_import_policy *pol = d->pol;

	if (d->stop == DL_ADDR)
		return core_errf(err, errlen, -EACCES, "import %s: refused: address "
			       "%s is %s (allowed only for hosts an "
			       "--import-allow prefix names)", shown, d->addr,
			       d->addr_class);
	if (d->stop == DL_BIG || cc == CURLE_FILESIZE_EXCEEDED)
		return core_errf(err, errlen, -EFBIG, "import %s: larger than "
			       "--import-max-size (%" PRIu64 " bytes)", shown,
			       pol->max_bytes);
	if (d->stop == DL_LATE)
		return core_errf(err, errlen, -ETIMEDOUT, "import %s: longer than "
			       "--import-timeout (%d s)", shown, pol->timeout_s);
	if (cc == CURLE_ABORTED_BY_CALLBACK)
		return core_errf(err, errlen, -ECANCELED, "import: cancelled");
	if (cc == CURLE_OPERATION_TIMEDOUT && code > 0)
		return core_errf(err, errlen, -ETIMEDOUT, "import %s: stalled: under "
			       "%d bytes/s for %d s (--import-low-speed, "
			       "--import-stall)", shown, pol->low_speed,
			       pol->stall_s);
	if (cc == CURLE_COULDNT_RESOLVE_HOST)
		return core_errf(err, errlen, -EHOSTUNREACH, "import %s: cannot "
			       "resolve the host", shown);
	if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_OPERATION_TIMEDOUT)
		return core_errf(err, errlen, -ECONNREFUSED, "import %s: cannot "
			       "connect", shown);
	if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR)
		return core_errf(err, errlen, -EIO, "import %s: TLS handshake or "
			       "certificate check failed", shown);
	if (cc == CURLE_WRITE_ERROR)
		return core_errf(err, errlen, -ENOSPC, "import %s: cannot write "
			       "the download", shown);
	if (cc != CURLE_OK)
		return core_errf(err, errlen, -EIO, "import %s: transfer failed "
			       "(curl error %d)", shown, (int)cc);
	return core_errf(err, errlen, code == 404 ? -ENOENT : -EIO,
		       "import %s: HTTP %ld", shown, code);
}

static void dl_setup(CURL *h, struct dl *d)
{
	const struct be_import_policy *pol = d->pol;

	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dl_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, dl_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, d);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, dl_socket);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, d);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	/* Redirects are followed below, each hop checked like the first. */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	/* A proxy would be the address connected; the policy is about the
	 * image server. */
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
			 (curl_off_t)pol->max_bytes);
	if (pol->stall_s > 0) {
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, (long)pol->low_speed);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)pol->stall_s);
	}
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
}

/* curl_global_init is not thread-safe; curl_easy_init would call it
 * implicitly from whichever thread comes first. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

#define MAX_HOPS 5

/* One hop: 1 and next set when it redirects. */
static int dl_hop(struct be_conn *c, CURL *h, struct dl *d, const char *url,
		  char *next, size_t nextlen, char *err, size_t errlen)
{
	char shown[1024];
	char *loc = NULL;
	long code = 0;
	CURLcode cc;
	int rc = be_src_check_url(c, url, &d->named, err, errlen);

	if (rc < 0)
		return rc;
	be_url_redact(url, shown, sizeof(shown));
	if (ftruncate(d->fd, 0) < 0 || lseek(d->fd, 0, SEEK_SET) < 0)
		return core_errf(err, errlen, -errno, "import: %s", strerror(errno));
	/* Each hop is judged on its own: a refused address of an earlier
	 * hop must not name this one's failure. */
	d->got = 0;
	d->stop = DL_NONE;
	d->addr_class = NULL;
	curl_easy_setopt(h, CURLOPT_URL, url);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (cc != CURLE_OK || code >= 400 || (code >= 300 && code < 400 &&
	    (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK ||
	     !loc)))
		return dl_fail(d, cc, code, shown, err, errlen);
	if (code < 300)
		return 0;
	if ((size_t)snprintf(next, nextlen, "%s", loc) >= nextlen)
		return core_errf(err, errlen, -EINVAL, "import %s: redirect too "
			       "long", shown);
	return 1;
}

static int download(struct be_conn *c, const char *url, int fd,
		    time_t deadline, const struct be_progress *p, char *err,
		    size_t errlen)
{
	struct dl d = { .fd = fd, .p = p, .pol = be_import_policy(c),
			.deadline = deadline, .last = -1 };
	char *cur = malloc(8192), *next = malloc(8192);
	int rc = -ENOMEM, hop;
	CURL *h;

	pthread_once(&curl_once, curl_init);
	h = curl_easy_init();
	if (!h || !cur || !next) {
		core_errf(err, errlen, rc, "import: out of memory");
		goto out;
	}
	dl_setup(h, &d);
	snprintf(cur, 8192, "%s", url);
	for (hop = 0; (rc = dl_hop(c, h, &d, cur, next, 8192, err, errlen)) == 1;
	     hop++) {
		char *t = cur;

		if (hop == MAX_HOPS) {
			be_url_redact(url, next, 8192);
			rc = core_errf(err, errlen, -ELOOP, "import %s: more than %d "
				     "redirects", next, MAX_HOPS);
			break;
		}
		cur = next;
		next = t;
	}
out:
	if (h)
		curl_easy_cleanup(h);
	free(cur);
	free(next);
	return rc;
}

/* A local file, through the descriptor the policy opened. */
static int copy_local(struct be_conn *c, const char *source, int out,
		      time_t deadline, const struct be_progress *p, char *err,
		      size_t errlen)
{
	const struct be_import_policy *pol = be_import_policy(c);
	char buf[65536];
	uint64_t got = 0;
	ssize_t r = 0;
	int in, rc = be_src_open_local(c, source, &in, err, errlen);

	if (rc < 0)
		return rc;
	be_report(p, 0, "copying");
	while (rc == 0 && (r = read(in, buf, sizeof(buf))) > 0) {
		got += (uint64_t)r;
		if (got > pol->max_bytes)
			rc = core_errf(err, errlen, -EFBIG, "import %.200s: larger "
				     "than --import-max-size (%" PRIu64 " bytes)",
				     source, pol->max_bytes);
		else if (be_cancelled(p))
			rc = core_errf(err, errlen, -ECANCELED, "import: cancelled");
		else if (time(NULL) >= deadline)
			rc = core_errf(err, errlen, -ETIMEDOUT, "import %.200s: longer "
				     "than --import-timeout (%d s)", source,
				     pol->timeout_s);
		else if ((rc = core_write_all(out, buf, (size_t)r)) < 0)
			core_errf(err, errlen, rc, "import: cannot write the copy: "
				"%s", strerror(-rc));
	}
	if (rc == 0 && r < 0)
		rc = core_errf(err, errlen, -EIO, "import %.200s: read: %s", source,
			     strerror(errno));
	close(in);
	return rc;
}

/* ---- checksum ------------------------------------------------------- */

static int digest_file(const char *path, const EVP_MD *md, char *hex,
		       size_t hexlen)
{
	unsigned char buf[65536], out[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	ssize_t r;
	int fd, rc = 0;

	if (!ctx)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !EVP_DigestInit_ex(ctx, md, NULL)) {
		rc = fd < 0 ? -errno : -EIO;
		goto out;
	}
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		if (!EVP_DigestUpdate(ctx, buf, (size_t)r))
			break;
	if (r != 0 || !EVP_DigestFinal_ex(ctx, out, &n))
		rc = r < 0 ? -errno : -EIO;
	for (i = 0; rc == 0 && i < n && 2 * i + 2 < hexlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", out[i]);
out:
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(ctx);
	return rc;
}

static int parse_sum(const char *sum, const EVP_MD **md, const char **hex,
		     char *err, size_t errlen)
{
	const char *colon = strchr(sum, ':');
	char algo[16];

	if (!colon || colon - sum >= (long)sizeof(algo) || !colon[1])
		return core_errf(err, errlen, -EINVAL, "checksum \"%s\": want "
			       "sha256:HEX, sha512:HEX or md5:HEX", sum);
	snprintf(algo, sizeof(algo), "%.*s", (int)(colon - sum), sum);
	if (strcmp(algo, "sha256") && strcmp(algo, "sha512") &&
	    strcmp(algo, "md5"))
		return core_errf(err, errlen, -EINVAL, "checksum: unknown "
			       "algorithm %s", algo);
	*md = EVP_get_digestbyname(algo);
	*hex = colon + 1;
	if (!*md)
		return core_errf(err, errlen, -EOPNOTSUPP, "checksum: %s is not "
			       "available", algo);
	return 0;
}

static int check_sum(const char *path, const char *sum, char *err,
		     size_t errlen)
{
	char got[2 * EVP_MAX_MD_SIZE + 1] = "";
	const EVP_MD *md = NULL;
	const char *want = NULL;
	int rc = parse_sum(sum, &md, &want, err, errlen);

	if (rc < 0)
		return rc;
	rc = digest_file(path, md, got, sizeof(got));
	if (rc < 0)
		return core_errf(err, errlen, rc, "checksum of %s: %s", path,
			       strerror(-rc));
	if (strcasecmp(got, want) != 0)
		return core_errf(err, errlen, -EBADMSG, "checksum mismatch: "
			       "expected %s got %.*s:%s", sum,
			       (int)(want - 1 - sum), sum, got);
	return 0;
}

/* ---- format and conversion ----------------------------------------- */

/* qemu-img reads what an attacker wrote: it runs with bounded memory and
 * CPU, and cannot write past the size an image may have. */
#define QEMU_IMG_AS (2ULL << 30)
#define QEMU_IMG_INFO_CPU_S 30

struct img_info {
	char format[16];
	uint64_t vsize;
};

static int sniff(const char *path, struct img_info *ii, char *err,
		 size_t errlen)
{
	unsigned char head[4096], tail[512];
	ssize_t h = 0, t = 0;
	const char *why = NULL;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0)
		return core_errf(err, errlen, -EIO, "import: %s", strerror(errno));
	h = pread(fd, head, sizeof(head), 0);
	if (st.st_size >= (off_t)sizeof(tail))
		t = pread(fd, tail, sizeof(tail), st.st_size - (off_t)sizeof(tail));
	close(fd);
	if (h < 0 || t < 0)
		return core_errf(err, errlen, -EIO, "import: read: %s",
			       strerror(errno));
	switch (be_imgprobe(head, (size_t)h, tail, (size_t)t, &why)) {
	case BE_IMG_QCOW2:
		snprintf(ii->format, sizeof(ii->format), "qcow2");
		return 0;
	case BE_IMG_RAW:
		snprintf(ii->format, sizeof(ii->format), "raw");
		return 0;
	default:
		return core_errf(err, errlen, -EINVAL, "import: %s image refused: "
			       "only raw and qcow2 without references to other "
			       "files", why);
	}
}

/* Whatever sniff let through, qemu-img must agree that the image names
 * no other file: a backing file, or (qcow2) an external data file. */
static int refers_out(json_object *j)
{
	static const char *const keys[] = { "backing-filename",
		"full-backing-filename", "backing-filename-format", NULL };
	json_object *fs, *data;

	for (int i = 0; keys[i]; i++)
		if (json_object_object_get_ex(j, keys[i], NULL))
			return 1;
	return json_object_object_get_ex(j, "format-specific", &fs) &&
	       json_object_object_get_ex(fs, "data", &data) &&
	       json_object_object_get_ex(data, "data-file", NULL);
}

static int probe(const char *path, struct img_info *ii, uint64_t max,
		 char *err, size_t errlen)
{
	char out[8192];
	char *argv[] = { "qemu-img", "info", "-f", ii->format,
			 "--output=json", (char *)path, NULL };
	struct be_limits lim = { .as_bytes = QEMU_IMG_AS,
				 .cpu_s = QEMU_IMG_INFO_CPU_S };
	json_object *j, *v;
	int rc = be_spawn_lim(argv, &lim, out, sizeof(out), NULL, NULL, NULL);

	if (rc < 0)
		return core_errf(err, errlen, rc == -EIO ? -EINVAL : rc, "import: "
			       "not a valid %s image", ii->format);
	j = json_tokener_parse(out);
	rc = 0;
	if (!j || !json_object_object_get_ex(j, "virtual-size", &v))
		rc = core_errf(err, errlen, -EINVAL, "import: qemu-img info "
			     "gave no size");
	else if (refers_out(j))
		rc = core_errf(err, errlen, -EINVAL, "import: %s image refused: it "
			     "names a backing or data file; import a flattened "
			     "image", ii->format);
	else if ((ii->vsize = (uint64_t)json_object_get_int64(v)) > max)
		rc = core_errf(err, errlen, -EFBIG, "import: virtual size %" PRIu64
			     " is larger than --import-max-size (%" PRIu64
			     " bytes)", ii->vsize, max);
	json_object_put(j);
	return rc;
}

static int convert(const char *src, const struct img_info *ii,
		   const char *dst, time_t deadline, int cpu_s,
		   const struct be_progress *p, char *err, size_t errlen)
{
	char out[2048];
	char *argv[] = { "qemu-img", "convert", "-f", (char *)ii->format,
			 "-O", "qcow2", "-o", "compat=1.1", (char *)src,
			 (char *)dst, NULL };
	/* qcow2 metadata of an image of vsize bytes stays well under 1/8
	 * of it (64 KiB clusters), plus room for the header. */
	struct be_limits lim = { .as_bytes = QEMU_IMG_AS, .cpu_s = cpu_s,
				 .fsize = ii->vsize + ii->vsize / 8 + (64 << 20),
				 .deadline = deadline };
	struct be_file_tick t = { .p = p, .path = dst, .what = "converting",
				  .done = 50, .share = 45, .last = -1 };
	struct stat st;
	int rc;

	if (stat(src, &st) == 0)
		t.total = (uint64_t)st.st_blocks * 512;
	be_report(p, 50, "converting");
	rc = be_spawn_lim(argv, &lim, out, sizeof(out), p ? p->cancel : NULL,
			  be_file_tick, &t);
	if (rc == -ECANCELED)
		return core_errf(err, errlen, rc, "import: cancelled");
	if (rc == -ETIMEDOUT)
		return core_errf(err, errlen, rc, "import: conversion longer than "
			       "--import-timeout");
	if (rc < 0)
		return core_errf(err, errlen, rc, "import: qemu-img convert: %s",
			       rc == -EIO ? be_last_line(out) : strerror(-rc));
	return 0;
}

/* ---- import --------------------------------------------------------- */

struct import_ctx {
	const char *source, *checksum, *vol;
	uint64_t *size_out;
	const struct be_progress *p;
};

static bool is_url(const char *s)
{
	return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

static int vol_free(virStoragePoolPtr pool, const char *vol,
		    const char *path, char *err, size_t errlen)
{
	virStorageVolPtr v = virStorageVolLookupByName(pool, vol);

	if (v) {
		virStorageVolFree(v);
		return core_errf(err, errlen, -EEXIST, "import: volume %s exists",
			       vol);
	}
	virResetLastError();
	if (access(path, F_OK) == 0)
		return core_errf(err, errlen, -EEXIST, "import: %s exists", path);
	return 0;
}

/* The source, whatever it is, first becomes a file of ours (0600). */
static int fetch(struct be_conn *c, struct import_ctx *x, const char *dlpath,
		 time_t deadline, char *err, size_t errlen)
{
	int fd = open(dlpath, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW |
		      O_CLOEXEC, 0600);
	int rc;

	if (fd < 0)
		return core_errf(err, errlen, -errno, "import: %s", strerror(errno));
	if (be_src_is_local(x->source))
		rc = copy_local(c, x->source, fd, deadline, x->p, err, errlen);
	else
		rc = download(c, x->source, fd, deadline, x->p, err, errlen);
	close(fd);
	return rc;
}

/* Fetch, verify, probe and convert into part. */
static int import_file(struct be_conn *c, struct import_ctx *x,
		       const char *dlpath, const char *part,
		       struct img_info *ii, char *err, size_t errlen)
{
	const struct be_import_policy *pol = be_import_policy(c);
	time_t deadline = time(NULL) + pol->timeout_s;
	int rc = fetch(c, x, dlpath, deadline, err, errlen);

	if (rc == 0 && be_cancelled(x->p))
		rc = core_errf(err, errlen, -ECANCELED, "import: cancelled");
	if (rc == 0 && x->checksum && *x->checksum)
		rc = check_sum(dlpath, x->checksum, err, errlen);
	if (rc == 0)
		rc = sniff(dlpath, ii, err, errlen);
	if (rc == 0)
		rc = probe(dlpath, ii, pol->max_bytes, err, errlen);
	if (rc == 0)
		rc = convert(dlpath, ii, part, deadline, pol->timeout_s, x->p,
			     err, errlen);
	return rc;
}

static int import_op(struct be_conn *c, virConnectPtr vc, void *arg,
		     char *err, size_t errlen)
{
	struct import_ctx *x = arg;
	virStoragePoolPtr pool = virStoragePoolLookupByName(vc, c->pool_name);
	char path[PATH_MAX], part[PATH_MAX], dlpath[PATH_MAX];
	struct img_info ii = { "", 0 };
	int rc;

	if (!pool)
		return be_err(err, errlen, "import", x->vol);
	snprintf(path, sizeof(path), "%s/%s", c->pool_dir, x->vol);
	snprintf(part, sizeof(part), "%s/.%s.part", c->pool_dir, x->vol);
	snprintf(dlpath, sizeof(dlpath), "%s/.%s.download", c->pool_dir,
		 x->vol);
	rc = vol_free(pool, x->vol, path, err, errlen);
	if (rc < 0)
		goto out;
	be_report(x->p, 0, "importing");
	rc = import_file(c, x, dlpath, part, &ii, err, errlen);
	if (rc == 0 && (rc = be_commit_file(part, path, c->pool_dir)) < 0)
		core_errf(err, errlen, rc, "import %s: %s", x->vol, strerror(-rc));
	/* libvirt learns of files made behind its back on refresh. */
	if (rc == 0 && virStoragePoolRefresh(pool, 0) < 0) {
		rc = be_err(err, errlen, "import", x->vol);
		unlink(path);
	}
	if (rc == 0 && x->size_out)
		*x->size_out = ii.vsize;
	if (rc == 0)
		be_report(x->p, 100, "imported");
out:
	unlink(dlpath);
	if (rc < 0)
		unlink(part);
	virStoragePoolFree(pool);
	return rc;
}

static int import_checks(struct be_conn *c, const char *source,
			 const char *checksum, const char *vol, char *err,
			 size_t errlen)
{
	const struct be_import_policy *pol = be_import_policy(c);
	char shown[1024];
	bool named;
	int rc;

	if (!be_name_ok(vol))
		return core_errf(err, errlen, -EINVAL, "import: bad volume name "
			       "\"%s\"", vol ? vol : "");
	if (!source || (!be_src_is_local(source) && !is_url(source)))
		return core_errf(err, errlen, -EINVAL, "import: source must be an "
			       "absolute path or a file://, http:// or https:// "
			       "URL");
	be_url_redact(source, shown, sizeof(shown));
	/* Checked before anything is touched; redirects again later. */
	if (is_url(source) &&
	    (rc = be_src_check_url(c, source, &named, err, errlen)) < 0)
		return rc;
	if (pol->need_checksum && (!checksum || !*checksum))
		return core_errf(err, errlen, -EACCES, "import %s: refused: a "
			       "checksum is required in cluster mode "
			       "(spec.image.checksum)", shown);
	return 0;
}

int be_image_import(struct be_conn *c, const char *source,
		    const char *checksum, const char *vol,
		    uint64_t *size_out, const struct be_progress *p,
		    char *err, size_t errlen)
{
	const struct be_import_policy *pol = be_import_policy(c);
	struct import_ctx x = { source, checksum, vol, size_out, p };
	int rc = import_checks(c, source, checksum, vol, err, errlen);

	if (rc < 0)
		return rc;
	if (atomic_fetch_add(&c->imports, 1) >= pol->max_running) {
		atomic_fetch_sub(&c->imports, 1);
		return core_errf(err, errlen, -EBUSY, "import: %d imports already "
			       "running on this node (--import-max)",
			       pol->max_running);
	}
	rc = be_run(c, import_op, &x, err, errlen);
	atomic_fetch_sub(&c->imports, 1);
	return rc;
}

/* ---- delete --------------------------------------------------------- */

static int image_delete_op(struct be_conn *c, virConnectPtr vc, void *arg,
			   char *err, size_t errlen)
{
	const char *vol = arg;
	virStoragePoolPtr pool = virStoragePoolLookupByName(vc, c->pool_name);
	virStorageVolPtr v = pool ? virStorageVolLookupByName(pool, vol) : NULL;
	char *path = v ? virStorageVolGetPath(v) : NULL;
	char deps[CORE_ERR_MAX / 2];
	int rc;

	if (!path) {
		rc = be_err(err, errlen, "delete image", vol);
		goto out;
	}
	rc = be_deps_of(c, vc, NULL, &path, 1, deps, sizeof(deps));
	if (rc < 0)
		rc = be_err(err, errlen, "delete image", vol);
	else if (deps[0])
		rc = core_errf(err, errlen, -EBUSY, "delete image %s: VMs use it "
			     "as their base: %s", vol, deps);
	else if (virStorageVolDelete(v, 0) < 0)
		rc = be_err(err, errlen, "delete image", vol);
out:
	free(path);
	if (v)
		virStorageVolFree(v);
	if (pool)
		virStoragePoolFree(pool);
	return rc;
}

int be_image_delete(struct be_conn *c, const char *vol, char *err,
		    size_t errlen)
{
	if (!be_name_ok(vol))
		return core_errf(err, errlen, -EINVAL, "delete image: bad name");
	return be_run(c, image_delete_op, (void *)vol, err, errlen);
}
