/* Credentials: a kubeconfig read the way kubectl reads it, or the
 * in-cluster service account.
 *
 * Strictness follows client-go where it matters to the user: a value of
 * the wrong type is an error (kubectl refuses `server: 1` too), a missing
 * context, cluster or user is named in the error, and a feature we do not
 * implement (credential plugins, basic auth, proxies) is refused instead of
 * silently connecting without it. */
#include "sync/priv.h"

#include "core/core.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* kubectl has no limit; a real kubeconfig is a few KiB. */
#define KUBECONFIG_MAX (16 * 1024 * 1024)
#define TOKEN_MAX (1024 * 1024)
#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kc {
	json_object *root;
	const char *dir;        /* relative paths are against it */
	char *err;
	size_t errlen;
};

int sync_read_file(const char *path, size_t max, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = NULL, *nb;
	int fd, r = 0;
	ssize_t got;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (!b || n + 1 >= cap) {
			cap = b ? cap * 2 : cap;
			nb = cap > max + 2 ? NULL : realloc(b, cap);
			if (!nb) {
				r = cap > max + 2 ? -EFBIG : -ENOMEM;
				goto out;
			}
			b = nb;
		}
		got = read(fd, b + n, cap - n - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = -errno;
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (n > max)
		r = -EFBIG;
out:
	close(fd);
	if (r < 0) {
		free(b);
		return r;
	}
	b[n] = '\0';
	*out = b;
	if (len)
		*len = n;
	return 0;
}

int sync_read_token(const char *path, char **out)
{
	struct stat st;
	size_t n = 0;
	int r;

	*out = NULL;
	/* Not a FIFO or a device: reading one could block forever. */
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	r = sync_read_file(path, TOKEN_MAX, out, &n);
	if (r < 0)
		return r;
	/* The kubelet and humans both leave a newline at the end. */
	while (n > 0 && strchr(" \t\r\n", (*out)[n - 1]))
		(*out)[--n] = '\0';
	if (n == 0 || strpbrk(*out, "\r\n")) {
		free(*out);
		*out = NULL;
		return -EINVAL;
	}
	return 0;
}

static int dup_str(const char *in, char **out)
{
	*out = NULL;
	if (!in)
		return 0;
	*out = strdup(in);
	return *out ? 0 : -ENOMEM;
}

int sync_creds_copy(const struct sync_creds *in, struct sync_creds *out)
{
	int r;

	memset(out, 0, sizeof(*out));
	out->insecure = in->insecure;
	r = dup_str(in->server, &out->server);
	r = r ? r : dup_str(in->ca_file, &out->ca_file);
	r = r ? r : dup_str(in->ca_pem, &out->ca_pem);
	r = r ? r : dup_str(in->cert_file, &out->cert_file);
	r = r ? r : dup_str(in->key_file, &out->key_file);
	r = r ? r : dup_str(in->cert_pem, &out->cert_pem);
	r = r ? r : dup_str(in->key_pem, &out->key_pem);
	r = r ? r : dup_str(in->token, &out->token);
	r = r ? r : dup_str(in->token_file, &out->token_file);
	r = r ? r : dup_str(in->ns, &out->ns);
	if (r < 0)
		sync_creds_free(out);
	return r;
}

void sync_creds_free(struct sync_creds *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->ca_file);
	free(c->ca_pem);
	free(c->cert_file);
	free(c->key_file);
	free(c->cert_pem);
	/* Secrets do not linger in freed memory. */
	if (c->token)
		explicit_bzero(c->token, strlen(c->token));
	if (c->key_pem)
		explicit_bzero(c->key_pem, strlen(c->key_pem));
	free(c->key_pem);
	free(c->token);
	free(c->token_file);
	free(c->ns);
	memset(c, 0, sizeof(*c));
}

/* ---- typed access to the parsed document ------------------------------- */

__attribute__((format(printf, 2, 3)))
static int kerr(struct kc *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A string field: 0 with *out NULL when absent or null. */
static int get_str(struct kc *c, json_object *o, const char *where,
		   const char *key, const char **out)
{
	json_object *v = NULL;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return kerr(c, "%s: %s is not a string", where, key);
	*out = json_object_get_string(v);
	return 0;
}

static int get_bool(struct kc *c, json_object *o, const char *where,
		    const char *key, bool *out)
{
	json_object *v = NULL;

	*out = false;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return kerr(c, "%s: %s is not true or false", where, key);
	*out = json_object_get_boolean(v);
	return 0;
}

/* The body of the entry called name in a named list: clusters[i].cluster
 * where clusters[i].name == name.  -ENOENT (err untouched) when absent. */
static int find_named(struct kc *c, const char *list, const char *field,
		      const char *name, json_object **out)
{
	json_object *arr = NULL, *e, *body;
	const char *n;
	size_t len;
	char where[64];
	int r;

	*out = NULL;
	if (!json_object_object_get_ex(c->root, list, &arr) || !arr)
		return -ENOENT;
	if (!json_object_is_type(arr, json_type_array))
		return kerr(c, "%s is not a list", list);
	len = json_object_array_length(arr);
	for (size_t i = 0; i < len; i++) {
		e = json_object_array_get_idx(arr, i);
		snprintf(where, sizeof(where), "%s[%zu]", list, i);
		if (!json_object_is_type(e, json_type_object))
			return kerr(c, "%s is not a mapping", where);
		r = get_str(c, e, where, "name", &n);
		if (r < 0)
			return r;
		if (!n || strcmp(n, name) != 0)
			continue;
		/* "- name: x" with no body is an empty entry, not an error. */
		if (json_object_object_get_ex(e, field, &body) && body &&
		    !json_object_is_type(body, json_type_object))
			return kerr(c, "%s.%s is not a mapping", where, field);
		*out = body;
		return 0;
	}
	return -ENOENT;
}

static int b64_val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Standard base64 as Go's encoding/json decodes []byte: padding optional
 * at the very end, line breaks ignored, anything else is an error. */
static int b64_decode(const char *in, char **out)
{
	size_t n = strlen(in), o = 0, pad = 0;
	unsigned acc = 0, bits = 0;
	char *b = malloc(n / 4 * 3 + 4);

	*out = NULL;
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		int v = b64_val(ch);

		if (ch == '\r' || ch == '\n')
			continue;
		if (ch == '=' && pad < 2) {
			pad++;
			continue;
		}
		if (v < 0 || pad) {
			free(b);
			return -EINVAL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			b[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	/* A dangling 6 bits, or padding that does not match the length. */
	if (bits >= 6 || (pad && (bits / 2 != pad)) || memchr(b, 0, o)) {
		free(b);
		return -EINVAL;
	}
	b[o] = '\0';
	*out = b;
	return 0;
}

/* key-data (base64 PEM) wins over key (a file), as in client-go. */
static int get_pem_or_file(struct kc *c, json_object *o, const char *where,
			   const char *key, char **pem, char **file)
{
	char dkey[64];
	const char *data, *path;
	int r;

	snprintf(dkey, sizeof(dkey), "%s-data", key);
	r = get_str(c, o, where, dkey, &data);
	r = r ? r : get_str(c, o, where, key, &path);
	if (r < 0)
		return r;
	if (data && *data) {
		r = b64_decode(data, pem);
		if (r == -EINVAL)
			return kerr(c, "%s: %s is not valid base64", where,
				    dkey);
		if (r == 0 && !strstr(*pem, "-----BEGIN "))
			return kerr(c, "%s: %s is not PEM", where, dkey);
		return r;
	}
	if (!path || !*path)
		return 0;
	if (path[0] == '/' || !c->dir)
		*file = strdup(path);
	else if (asprintf(file, "%s/%s", c->dir, path) < 0)
		*file = NULL;
	if (!*file)
		return -ENOMEM;
	if (access(*file, R_OK) < 0)
		return kerr(c, "%s: %s %s: %s", where, key, *file,
			    strerror(errno));
	return 0;
}

/* ---- the three sections -------------------------------------------------- */

static int refuse(struct kc *c, json_object *o, const char *where,
		  const char *const *keys)
{
	for (; *keys; keys++) {
		if (json_object_object_get_ex(o, *keys, NULL)) {
			kerr(c, "%s: %s is not supported", where, *keys);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

/* libcurl's own URL parser decides, so what we accept is what it can
 * connect to ("http://" alone has no host and is refused). */
static bool url_has_host(const char *server)
{
	CURLU *u;
	char *host = NULL;
	bool ok;

	if (strncmp(server, "https://", 8) && strncmp(server, "http://", 7))
		return false;
	u = curl_url();
	if (!u)
		return false;
	ok = curl_url_set(u, CURLUPART_URL, server, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	     host && *host;
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

static int load_cluster(struct kc *c, const char *name,
			struct sync_creds *out)
{
	static const char *const unsupported[] = {
		"proxy-url", "tls-server-name", NULL
	};
	json_object *cl = NULL;
	const char *server;
	char where[300];
	size_t n;
	int r;

	r = find_named(c, "clusters", "cluster", name, &cl);
	if (r == -ENOENT)
		return kerr(c, "cluster \"%s\" not found", name);
	snprintf(where, sizeof(where), "cluster \"%s\"", name);
	r = r ? r : get_str(c, cl, where, "server", &server);
	if (r < 0)
		return r;
	if (!server || !*server)
		return kerr(c, "%s has no server", where);
	if (!url_has_host(server))
		return kerr(c, "%s: server \"%s\" is not an http(s) URL "
			    "with a host", where, server);
	r = refuse(c, cl, where, unsupported);
	r = r ? r : get_bool(c, cl, where, "insecure-skip-tls-verify",
			     &out->insecure);
	r = r ? r : get_pem_or_file(c, cl, where, "certificate-authority",
				    &out->ca_pem, &out->ca_file);
	if (r < 0)
		return r;
	out->server = strdup(server);
	if (!out->server)
		return -ENOMEM;
	/* URLs are built as server + "/api..."; keep a path prefix. */
	n = strlen(out->server);
	while (n > 0 && out->server[n - 1] == '/')
		out->server[--n] = '\0';
	return 0;
}

static int load_token(struct kc *c, json_object *u, const char *where,
		      struct sync_creds *out)
{
	const char *token, *file;
	int r;

	r = get_str(c, u, where, "token", &token);
	r = r ? r : get_str(c, u, where, "tokenFile", &file);
	if (r < 0)
		return r;
	/* client-go: tokenFile, when readable, wins and is re-read. */
	if (file && *file) {
		if (file[0] == '/' || !c->dir)
			out->token_file = strdup(file);
		else if (asprintf(&out->token_file, "%s/%s", c->dir, file) < 0)
			out->token_file = NULL;
		if (!out->token_file)
			return -ENOMEM;
		r = sync_read_token(out->token_file, &out->token);
		if (r < 0)
			return kerr(c, "%s: tokenFile %s: %s", where,
				    out->token_file, r == -EINVAL ?
				    "empty or not one line" : strerror(-r));
		return 0;
	}
	if (token && *token && !(out->token = strdup(token)))
		return -ENOMEM;
	return 0;
}

static int load_user(struct kc *c, const char *name, struct sync_creds *out)
{
	static const char *const unsupported[] = {
		"exec", "auth-provider", "username", "password", "as",
		"as-uid", "as-groups", "as-user-extra", NULL
	};
	json_object *u = NULL;
	char where[300];
	int r;

	r = find_named(c, "users", "user", name, &u);
	if (r == -ENOENT)
		return kerr(c, "user \"%s\" not found", name);
	snprintf(where, sizeof(where), "user \"%s\"", name);
	if (r < 0 || !u)
		return r;
	r = refuse(c, u, where, unsupported);
	r = r ? r : get_pem_or_file(c, u, where, "client-certificate",
				    &out->cert_pem, &out->cert_file);
	r = r ? r : get_pem_or_file(c, u, where, "client-key",
				    &out->key_pem, &out->key_file);
	r = r ? r : load_token(c, u, where, out);
	if (r < 0)
		return r;
	if (!(out->cert_pem || out->cert_file) != !(out->key_pem ||
						     out->key_file))
		return kerr(c, "%s: a client certificate needs its key and "
			    "the other way round", where);
	return 0;
}

static int pick_context(struct kc *c, const char *want, json_object **ctx,
			const char **name)
{
	int r;

	*name = want;
	if (!want || !*want) {
		r = get_str(c, c->root, "kubeconfig", "current-context", name);
		if (r < 0)
			return r;
		if (!*name || !**name)
			return kerr(c, "current-context is not set and no "
				    "context was given");
	}
	r = find_named(c, "contexts", "context", *name, ctx);
	if (r == -ENOENT)
		return kerr(c, "context \"%s\" not found", *name);
	if (r == 0 && !*ctx)
		return kerr(c, "context \"%s\" is empty", *name);
	return r;
}

/* The credentials of a context of a parsed kubeconfig. */
static int resolve(struct kc *c, const char *context, struct sync_creds *out)
{
	const char *name, *cluster, *user, *ns;
	json_object *ctx = NULL;
	char where[300];
	int r;

	if (!json_object_is_type(c->root, json_type_object))
		return kerr(c, "not a YAML mapping");
	r = pick_context(c, context, &ctx, &name);
	if (r < 0)
		return r;
	snprintf(where, sizeof(where), "context \"%s\"", name);
	r = get_str(c, ctx, where, "cluster", &cluster);
	r = r ? r : get_str(c, ctx, where, "user", &user);
	r = r ? r : get_str(c, ctx, where, "namespace", &ns);
	if (r == 0 && (!cluster || !*cluster))
		r = kerr(c, "%s has no cluster", where);
	r = r ? r : load_cluster(c, cluster, out);
	/* No user is allowed: anonymous access, as with kubectl. */
	if (r == 0 && user && *user)
		r = load_user(c, user, out);
	if (r == 0 && ns && *ns && !(out->ns = strdup(ns)))
		r = -ENOMEM;
	return r;
}

int sync_kubeconfig_resolve(json_object *root, const char *context,
			    struct sync_creds *out, char *err, size_t errlen)
{
	struct kc c = { .root = root, .err = err, .errlen = errlen };
	int r;

	memset(out, 0, sizeof(*out));
	r = resolve(&c, context, out);
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (r < 0)
		sync_creds_free(out);
	return r;
}

int sync_kubeconfig_parse(const char *text, size_t len, const char *dir,
			  const char *context, struct sync_creds *out,
			  char *err, size_t errlen)
{
	struct kc c = { .dir = dir, .err = err, .errlen = errlen };
	int r;

	memset(out, 0, sizeof(*out));
	r = core_yaml_parse(text, len, &c.root, err, errlen);
	if (r == 0)
		r = resolve(&c, context, out);
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	json_object_put(c.root);
	if (r < 0)
		sync_creds_free(out);
	return r;
}

/* ---- which file ---------------------------------------------------------- */

static bool is_file(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The given file, else the first existing file of $KUBECONFIG (a ':'
 * list), else ~/.kube/config.  kubectl merges the $KUBECONFIG files; we
 * take the first that exists (see sync.h). */
static int pick_file(const char *path, char **out, char *err, size_t errlen)
{
	const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
	struct passwd *pw;
	char *list, *save = NULL;

	*out = NULL;
	if (path && *path)
		return (*out = strdup(path)) ? 0 : -ENOMEM;
	if (env && *env) {
		if (!(list = strdup(env)))
			return -ENOMEM;
		for (char *t = strtok_r(list, ":", &save); t && !*out;
		     t = strtok_r(NULL, ":", &save))
			if (is_file(t) && !(*out = strdup(t)))
				break;
		free(list);
		if (*out)
			return 0;
		snprintf(err, errlen, "KUBECONFIG=%s: none of its files "
			 "exists", env);
		return -ENOENT;
	}
	if (!home || !*home) {
		pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : "/";
	}
	if (asprintf(out, "%s/.kube/config", home) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* KUBECONFIG=a:b: the files merged as kubectl merges them. */
static int load_merged(const char *list, const char *context,
		       struct sync_creds *out, char *err, size_t errlen)
{
	char e[CORE_ERR_MAX] = "";
	json_object *root = NULL;
	int r = sync_kubeconfig_merge(list, &root, err, errlen);

	if (r < 0)
		return r;
	r = sync_kubeconfig_resolve(root, context, out, e, sizeof(e));
	if (r < 0)
		snprintf(err, errlen, "KUBECONFIG=%s: %s", list, e);
	json_object_put(root);
	return r;
}

int sync_kubeconfig_load(const char *path, const char *context,
			 struct sync_creds *out, char *err, size_t errlen)
{
	char *file = NULL, *text = NULL, *dir = NULL, *slash;
	char e[CORE_ERR_MAX] = "";
	size_t len = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if ((!path || !*path) && getenv("KUBECONFIG") &&
	    strchr(getenv("KUBECONFIG"), ':'))
		return load_merged(getenv("KUBECONFIG"), context, out, err,
				   errlen);
	r = pick_file(path, &file, err, errlen);
	if (r < 0)
		goto out;
	r = sync_read_file(file, KUBECONFIG_MAX, &text, &len);
	if (r < 0) {
		snprintf(err, errlen, "kubeconfig %s: %s", file,
			 r == -EFBIG ? "too big" : strerror(-r));
		goto out;
	}
	if (!(dir = strdup(file))) {
		r = -ENOMEM;
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	r = sync_kubeconfig_parse(text, len, slash ? dir : ".", context, out,
				  e, sizeof(e));
	if (r < 0)
		snprintf(err, errlen, "kubeconfig %s: %s", file, e);
out:
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	free(file);
	free(text);
	free(dir);
	return r;
}

/* ---- in-cluster ---------------------------------------------------------- */

static int sa_path(const char *dir, const char *f, char **out)
{
	if (asprintf(out, "%s/%s", dir, f) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

int sync_incluster_load(struct sync_creds *out, char *err, size_t errlen)
{
	const char *dir = getenv("HYPERSDK_SA_DIR");
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char *nsfile = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if (!dir || !*dir)
		dir = SA_DIR;
	if (!host || !*host || !port || !*port) {
		snprintf(err, errlen, "not in a cluster: KUBERNETES_SERVICE_"
			 "HOST and KUBERNETES_SERVICE_PORT are not set");
		return -ENOENT;
	}
	/* An IPv6 service address needs brackets in a URL. */
	r = asprintf(&out->server, strchr(host, ':') ? "https://[%s]:%s" :
		     "https://%s:%s", host, port) < 0 ? -ENOMEM : 0;
	if (r < 0)
		out->server = NULL;
	r = r ? r : sa_path(dir, "token", &out->token_file);
	r = r ? r : sa_path(dir, "ca.crt", &out->ca_file);
	r = r ? r : sa_path(dir, "namespace", &nsfile);
	if (r < 0)
		goto out;
	r = sync_read_token(out->token_file, &out->token);
	if (r < 0) {
		snprintf(err, errlen, "service account token %s: %s",
			 out->token_file, r == -EINVAL ? "empty" :
			 strerror(-r));
		goto out;
	}
	if (access(out->ca_file, R_OK) < 0) {
		r = -errno;
		snprintf(err, errlen, "service account CA %s: %s",
			 out->ca_file, strerror(-r));
		goto out;
	}
	/* The namespace file is optional: the caller then picks one. */
	if (sync_read_token(nsfile, &out->ns) < 0)
		out->ns = NULL;
out:
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	free(nsfile);
	if (r < 0)
		sync_creds_free(out);
	return r;
}
