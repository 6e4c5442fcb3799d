/* Images: download (libcurl), checksum (OpenSSL EVP), format detection
 * and conversion to qcow2 (qemu-img), then a pool volume. */
#include <errno.h>
#include <fcntl.h>
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

static void report(const struct be_progress *p, int pct, const char *msg)
{
	if (p && p->fn)
		p->fn(p->arg, pct, msg);
}

static bool cancelled(const struct be_progress *p)
{
	return p && p->cancel && *p->cancel;
}

/* ---- download ------------------------------------------------------- */

struct dl {
	FILE *f;
	const struct be_progress *p;
	int last;
};

static size_t dl_write(char *data, size_t sz, size_t n, void *arg)
{
	struct dl *d = arg;

	return fwrite(data, sz, n, d->f) * sz;
}

static int dl_progress(void *arg, curl_off_t total, curl_off_t now,
		       curl_off_t ut, curl_off_t un)
{
	struct dl *d = arg;
	int pct = total > 0 ? (int)(now * 50 / total) : 0;

	if (pct != d->last)
		report(d->p, pct, "downloading");
	d->last = pct;
	return cancelled(d->p) ? 1 : 0;
}

static int curl_fail(CURLcode cc, const char *url, const char *why,
		     char *err, size_t errlen)
{
	int rc = cc == CURLE_ABORTED_BY_CALLBACK ? -ECANCELED :
		 cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT :
		 cc == CURLE_WRITE_ERROR ? -ENOSPC : -EIO;

	if (rc == -ECANCELED)
		return be_errf(err, errlen, rc, "download %s: cancelled", url);
	return be_errf(err, errlen, rc, "download %s: %s", url,
		       *why ? why : curl_easy_strerror(cc));
}

static void dl_setup(CURL *h, const char *url, struct dl *d, char *why)
{
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dl_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, dl_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, d);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, why);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	/* A redirect must not turn a download into a read of local files. */
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https,file");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
	/* Stalled for a minute: give up rather than hang a ctl write. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
}

/* curl_global_init is not thread-safe; curl_easy_init would call it
 * implicitly from whichever thread comes first. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int download(const char *url, const char *path,
		    const struct be_progress *p, char *err, size_t errlen)
{
	char why[CURL_ERROR_SIZE] = "";
	struct dl d = { .p = p, .last = -1 };
	long code = 0;
	CURLcode cc;
	CURL *h;
	int rc = 0;

	pthread_once(&curl_once, curl_init);
	d.f = fopen(path, "we");
	if (!d.f)
		return be_errf(err, errlen, -errno, "download %s: %s", url,
			       strerror(errno));
	h = curl_easy_init();
	if (!h) {
		fclose(d.f);
		return be_errf(err, errlen, -ENOMEM, "download: out of memory");
	}
	dl_setup(h, url, &d, why);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (cc != CURLE_OK)
		rc = curl_fail(cc, url, why, err, errlen);
	else if (code >= 400)
		rc = be_errf(err, errlen, code == 404 ? -ENOENT : -EIO,
			     "download %s: HTTP %ld", url, code);
	if (fclose(d.f) != 0 && rc == 0)
		rc = be_errf(err, errlen, -errno, "download %s: %s", url,
			     strerror(errno));
	curl_easy_cleanup(h);
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
		return be_errf(err, errlen, -EINVAL, "checksum \"%s\": want "
			       "sha256:HEX, sha512:HEX or md5:HEX", sum);
	snprintf(algo, sizeof(algo), "%.*s", (int)(colon - sum), sum);
	if (strcmp(algo, "sha256") && strcmp(algo, "sha512") &&
	    strcmp(algo, "md5"))
		return be_errf(err, errlen, -EINVAL, "checksum: unknown "
			       "algorithm %s", algo);
	*md = EVP_get_digestbyname(algo);
	*hex = colon + 1;
	if (!*md)
		return be_errf(err, errlen, -EOPNOTSUPP, "checksum: %s is not "
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
		return be_errf(err, errlen, rc, "checksum of %s: %s", path,
			       strerror(-rc));
	if (strcasecmp(got, want) != 0)
		return be_errf(err, errlen, -EBADMSG, "checksum mismatch: "
			       "expected %s got %.*s:%s", sum,
			       (int)(want - 1 - sum), sum, got);
	return 0;
}

/* ---- format and conversion ----------------------------------------- */

struct img_info {
	char format[32];
	uint64_t vsize;
};

/* An image naming a backing file would make QEMU open that file (any
 * path on this host) for every VM made from it. */
static int probe(const char *path, struct img_info *ii, char *err,
		 size_t errlen)
{
	char out[8192];
	char *argv[] = { "qemu-img", "info", "--output=json", (char *)path,
			 NULL };
	json_object *j, *v;
	int rc = be_spawn(argv, out, sizeof(out), true, NULL, NULL, NULL);

	if (rc < 0)
		return be_errf(err, errlen, rc == -EIO ? -EINVAL : rc, "image "
			       "%s: qemu-img info: %s", path,
			       rc == -EIO ? be_last_line(out) : strerror(-rc));
	j = json_tokener_parse(out);
	rc = 0;
	if (!j || !json_object_object_get_ex(j, "format", &v))
		rc = be_errf(err, errlen, -EINVAL, "image %s: qemu-img info "
			     "gave no format", path);
	else
		snprintf(ii->format, sizeof(ii->format), "%s",
			 json_object_get_string(v));
	if (rc == 0 && json_object_object_get_ex(j, "virtual-size", &v))
		ii->vsize = (uint64_t)json_object_get_int64(v);
	if (rc == 0 && json_object_object_get_ex(j, "backing-filename", &v))
		rc = be_errf(err, errlen, -EINVAL, "image %s has a backing file "
			     "(%s); import a flattened image", path,
			     json_object_get_string(v));
	json_object_put(j);
	return rc;
}

struct conv_tick {
	const struct be_progress *p;
	const char *path;
	uint64_t total;
	int last;
};

static void conv_tick(void *arg)
{
	struct conv_tick *t = arg;
	struct stat st;
	uint64_t got;
	int pct;

	if (t->total == 0 || stat(t->path, &st) < 0)
		return;
	got = (uint64_t)st.st_blocks * 512;
	pct = 50 + (int)((got > t->total ? t->total : got) * 45 / t->total);
	if (pct != t->last)
		report(t->p, pct, "converting");
	t->last = pct;
}

static int convert(const char *src, const struct img_info *ii,
		   const char *dst, const struct be_progress *p, char *err,
		   size_t errlen)
{
	char out[2048];
	char *argv[] = { "qemu-img", "convert", "-f", (char *)ii->format,
			 "-O", "qcow2", "-o", "compat=1.1", (char *)src,
			 (char *)dst, NULL };
	struct conv_tick t = { p, dst, 0, -1 };
	struct stat st;
	int rc;

	if (stat(src, &st) == 0)
		t.total = (uint64_t)st.st_blocks * 512;
	report(p, 50, "converting");
	rc = be_spawn(argv, out, sizeof(out), true, p ? p->cancel : NULL,
		      conv_tick, &t);
	if (rc == -ECANCELED)
		return be_errf(err, errlen, rc, "import: cancelled");
	if (rc < 0)
		return be_errf(err, errlen, rc, "import: qemu-img convert: %s",
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
	return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8) ||
	       !strncmp(s, "file://", 7);
}

static int vol_free(virStoragePoolPtr pool, const char *vol,
		    const char *path, char *err, size_t errlen)
{
	virStorageVolPtr v = virStorageVolLookupByName(pool, vol);

	if (v) {
		virStorageVolFree(v);
		return be_errf(err, errlen, -EEXIST, "import: volume %s exists",
			       vol);
	}
	virResetLastError();
	if (access(path, F_OK) == 0)
		return be_errf(err, errlen, -EEXIST, "import: %s exists", path);
	return 0;
}

/* Fetch (when a URL), verify, probe and convert into part. */
static int import_file(struct import_ctx *x, const char *dlpath,
		       const char *part, struct img_info *ii, char *err,
		       size_t errlen)
{
	const char *local = x->source;
	int rc = 0;

	if (is_url(x->source)) {
		rc = download(x->source, dlpath, x->p, err, errlen);
		local = dlpath;
	}
	if (rc == 0 && cancelled(x->p))
		rc = be_errf(err, errlen, -ECANCELED, "import: cancelled");
	if (rc == 0 && x->checksum && *x->checksum)
		rc = check_sum(local, x->checksum, err, errlen);
	if (rc == 0)
		rc = probe(local, ii, err, errlen);
	if (rc == 0)
		rc = convert(local, ii, part, x->p, err, errlen);
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
	report(x->p, 0, "importing");
	rc = import_file(x, dlpath, part, &ii, err, errlen);
	if (rc == 0 && (chmod(part, 0644) < 0 || rename(part, path) < 0))
		rc = be_errf(err, errlen, -errno, "import %s: %s", x->vol,
			     strerror(errno));
	/* libvirt learns of files made behind its back on refresh. */
	if (rc == 0 && virStoragePoolRefresh(pool, 0) < 0) {
		rc = be_err(err, errlen, "import", x->vol);
		unlink(path);
	}
	if (rc == 0 && x->size_out)
		*x->size_out = ii.vsize;
	if (rc == 0)
		report(x->p, 100, "imported");
out:
	unlink(dlpath);
	if (rc < 0)
		unlink(part);
	virStoragePoolFree(pool);
	return rc;
}

int be_image_import(struct be_conn *c, const char *source,
		    const char *checksum, const char *vol,
		    uint64_t *size_out, const struct be_progress *p,
		    char *err, size_t errlen)
{
	struct import_ctx x = { source, checksum, vol, size_out, p };

	if (!be_name_ok(vol))
		return be_errf(err, errlen, -EINVAL, "import: bad volume name "
			       "\"%s\"", vol ? vol : "");
	if (!source || (source[0] != '/' && !is_url(source)))
		return be_errf(err, errlen, -EINVAL, "import: source must be an "
			       "absolute path or a file://, http:// or https:// "
			       "URL");
	return be_run(c, import_op, &x, err, errlen);
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
		rc = be_errf(err, errlen, -EBUSY, "delete image %s: VMs use it "
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
		return be_errf(err, errlen, -EINVAL, "delete image: bad name");
	return be_run(c, image_delete_op, (void *)vol, err, errlen);
}
