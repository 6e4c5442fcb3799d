/* The pure parsers of web.h: listen addresses, action and create bodies,
 * request paths.  They see untrusted bytes (fuzz_webapi) and never touch
 * the model.  Every JSON body becomes a ctl message parsed by
 * core_ctl_parse, so the page and the tree share one grammar. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "web/web.h"

/* ---- listen addresses ----------------------------------------------- */

static int parse_port(const char *s, int *port)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	v = strtol(s, &end, 10);
	if (*end || v < 0 || v > 65535)
		return -EINVAL;
	*port = (int)v;
	return 0;
}

/* Split "HOST:PORT" or "[HOST]:PORT" into host and port. */
static int split_hostport(const char *s, char *host, size_t hlen, int *port)
{
	const char *colon, *h = s;
	size_t n;

	if (*s == '[') {
		colon = strchr(s, ']');
		if (!colon || colon[1] != ':')
			return -EINVAL;
		h = s + 1;
		n = (size_t)(colon - h);
		colon++;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= hlen)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	return parse_port(colon + 1, port);
}

int web_parse_listen(const char *s, struct sockaddr_storage *sa,
		     socklen_t *salen, bool *loopback, char *err,
		     size_t errlen)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
	char host[INET6_ADDRSTRLEN + 1];
	int port;

	memset(sa, 0, sizeof(*sa));
	if (!s || split_hostport(s, host, sizeof(host), &port) < 0)
		goto bad;
	if (!strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*salen = sizeof(*v4);
		*loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*salen = sizeof(*v6);
		*loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
		return 0;
	}
bad:
	snprintf(err, errlen, "--http: expected ADDR:PORT with a numeric "
		 "address (127.0.0.1:8080, [::1]:8080) or off");
	return -EINVAL;
}

/* The whole host of a Host header, not a prefix of it: a page of another
 * site rebinds a name like "localhost.attacker.example" to 127.0.0.1,
 * and its requests then carry that name. */
bool web_host_loopback(const char *h)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *end, *rest;
	struct in6_addr a6;
	struct in_addr a4;
	int port;
	size_t n;

	if (!h)
		return false;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end)
			return false;
		h++;
		rest = end + 1;
	} else {
		end = strchr(h, ':');
		rest = end ? end : h + strlen(h);
		end = rest;
	}
	n = (size_t)(end - h);
	if (n == 0 || n >= sizeof(host) || (*rest && (*rest != ':' ||
	    parse_port(rest + 1, &port) < 0)))
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	if (!strcasecmp(host, "localhost"))
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* ---- tokens ---------------------------------------------------------- */

int web_parse_token(const char *s, const char *what, char *buf, size_t len,
		    char *err, size_t errlen)
{
	size_t b = 0, e = s ? strlen(s) : 0;
	int rc;

	while (b < e && (s[b] == ' ' || s[b] == '\t'))
		b++;
	while (e > b && strchr(" \t\r\n", s[e - 1]))
		e--;
	rc = e - b >= 16 && e - b < WEB_TOKEN_MAX && e - b < len ? 0 : -EINVAL;
	for (size_t i = b; rc == 0 && i < e; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			rc = -EINVAL;
	if (rc == 0)
		snprintf(buf, len, "%.*s", (int)(e - b), s + b);
	else
		snprintf(err, errlen, "%s: expected one line of 16 to %d "
			 "printable characters", what, WEB_TOKEN_MAX - 1);
	return rc;
}

/* ---- JSON bodies ---------------------------------------------------- */

/* Exactly one JSON object and nothing after it but blanks. */
static int parse_object(const char *body, size_t len, json_object **out,
			char *err, size_t errlen)
{
	struct json_tokener *tok;
	json_object *o = NULL;
	size_t end;
	int rc = -EINVAL;

	if (len == 0 || len > WEB_BODY_MAX || len > INT32_MAX) {
		snprintf(err, errlen, len ? "body too long" : "empty body");
		return -EINVAL;
	}
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, body, (int)len);
	end = json_tokener_get_parse_end(tok);
	while (o && end < len && strchr(" \t\r\n", body[end]) && body[end])
		end++;
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    end != len)
		snprintf(err, errlen, "bad JSON: %s", o ? "trailing data" :
			 json_tokener_get_error(tok) == json_tokener_continue ?
			 "unexpected end of data" :
			 json_tokener_error_desc(json_tokener_get_error(tok)));
	else if (!json_object_is_type(o, json_type_object))
		snprintf(err, errlen, "bad JSON: expected an object");
	else
		rc = 0;
	json_tokener_free(tok);
	if (rc < 0)
		json_object_put(o);
	else
		*out = o;
	return rc;
}

/* A field that is one token of a ctl message: a non-empty string with
 * no blanks, so no value can smuggle in another argument. */
static int token_field(json_object *v, const char *key, const char **out,
		       char *err, size_t errlen)
{
	const char *s;
	size_t n;

	if (!json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "%s: expected a string", key);
		return -EINVAL;
	}
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (n == 0 || n > CORE_NAME_MAX || strlen(s) != n ||
	    strpbrk(s, " \t\r\n=")) {
		snprintf(err, errlen, "%s: expected one word of at most %d "
			 "characters", key, CORE_NAME_MAX);
		return -EINVAL;
	}
	*out = s;
	return 0;
}

static int ctl_field(json_object *v, bool on_dir, struct core_ctl *out,
		     char *err, size_t errlen)
{
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "ctl: expected a string");
		return -EINVAL;
	}
	return core_ctl_parse(json_object_get_string(v),
			      (size_t)json_object_get_string_len(v), on_dir,
			      out, err, errlen);
}

static int bad(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return -EINVAL;
}

static int unknown_field(const char *key, char *err, size_t errlen)
{
	char q[80];

	core_quote(q, sizeof(q), key, strlen(key));
	snprintf(err, errlen, "unknown field %s", q);
	return -EINVAL;
}

/* Append " word" to msg; -EINVAL when it would not fit. */
static int append(char *msg, size_t len, const char *fmt, const char *word)
{
	size_t n = strlen(msg);
	int w = snprintf(msg + n, len - n, fmt, word);

	return w < 0 || (size_t)w >= len - n ? -EINVAL : 0;
}

static int action_msg(json_object *o, char *msg, size_t len, char *err,
		      size_t errlen)
{
	const char *verb = NULL;
	bool force = false;
	int rc = 0;

	json_object_object_foreach(o, key, v) {
		if (!strcmp(key, "action"))
			rc = token_field(v, key, &verb, err, errlen);
		else if (!strcmp(key, "force") &&
			 json_object_is_type(v, json_type_boolean))
			force = json_object_get_boolean(v);
		else if (!strcmp(key, "force"))
			rc = bad(err, errlen, "force: expected true or false");
		else
			rc = unknown_field(key, err, errlen);
		if (rc < 0)
			return rc;
	}
	if (!verb)
		return bad(err, errlen, "expected \"action\" or \"ctl\"");
	msg[0] = '\0';
	rc = append(msg, len, "%s", verb);
	if (rc == 0 && force)
		rc = append(msg, len, " %s", "force");
	return rc;
}

int web_parse_action(const char *body, size_t len, struct core_ctl *out,
		     char *err, size_t errlen)
{
	char msg[CORE_MSG_MAX];
	json_object *o = NULL, *ctl;
	int rc = parse_object(body, len, &o, err, errlen);

	if (rc < 0)
		return rc;
	if (json_object_object_get_ex(o, "ctl", &ctl)) {
		rc = json_object_object_length(o) == 1 ?
			     ctl_field(ctl, false, out, err, errlen) :
			     unknown_field(json_object_object_get_ex(o, "action",
				     NULL) ? "action (with ctl)" : "beside ctl",
				     err, errlen);
		goto out;
	}
	rc = action_msg(o, msg, sizeof(msg), err, errlen);
	if (rc == 0)
		rc = core_ctl_parse(msg, strlen(msg), false, out, err, errlen);
out:
	json_object_put(o);
	return rc;
}

/* A quantity may be given as "64Mi" or as a number of bytes. */
static int qty_field(json_object *v, const char *key, char *buf, size_t len,
		     char *err, size_t errlen)
{
	const char *s;
	int rc;

	if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0) {
		snprintf(buf, len, "%lld", (long long)json_object_get_int64(v));
		return 0;
	}
	rc = token_field(v, key, &s, err, errlen);
	if (rc == 0)
		snprintf(buf, len, "%s", s);
	return rc;
}

/* One create field as " key=value" on msg. */
static int create_field(const char *key, json_object *v, char *msg,
			size_t len, char *err, size_t errlen)
{
	char val[CORE_NAME_MAX + 32], kv[CORE_NAME_MAX + 48];
	const char *s;
	int rc = 0;

	if (!strcmp(key, "name")) {
		rc = token_field(v, key, &s, err, errlen);
		snprintf(kv, sizeof(kv), " %s", rc == 0 ? s : "");
	} else if (!strcmp(key, "cpus")) {
		if (!json_object_is_type(v, json_type_int))
			return bad(err, errlen, "cpus: expected an integer");
		snprintf(kv, sizeof(kv), " cpus=%lld",
			 (long long)json_object_get_int64(v));
	} else if (!strcmp(key, "memory") || !strcmp(key, "disk")) {
		rc = qty_field(v, key, val, sizeof(val), err, errlen);
		snprintf(kv, sizeof(kv), " %s=%s", key, val);
	} else if (!strcmp(key, "template")) {
		rc = token_field(v, key, &s, err, errlen);
		snprintf(kv, sizeof(kv), " template=%s", rc == 0 ? s : "");
	} else if (!strcmp(key, "running")) {
		if (!json_object_is_type(v, json_type_boolean))
			return bad(err, errlen, "running: expected true or false");
		snprintf(kv, sizeof(kv), " running=%s",
			 json_object_get_boolean(v) ? "true" : "false");
	} else {
		return unknown_field(key, err, errlen);
	}
	if (rc == 0 && append(msg, len, "%s", kv) < 0)
		rc = bad(err, errlen, "request too long");
	return rc;
}

int web_parse_create(const char *body, size_t len, struct core_ctl *out,
		     char *err, size_t errlen)
{
	char msg[CORE_MSG_MAX] = "create";
	json_object *o = NULL, *ctl, *name;
	int rc = parse_object(body, len, &o, err, errlen);

	if (rc < 0)
		return rc;
	if (json_object_object_get_ex(o, "ctl", &ctl)) {
		rc = json_object_object_length(o) == 1 ?
			     ctl_field(ctl, true, out, err, errlen) :
			     bad(err, errlen, "ctl: no other field may go with it");
		goto out;
	}
	/* The name first: it is the positional argument. */
	if (!json_object_object_get_ex(o, "name", &name)) {
		rc = bad(err, errlen, "name: missing");
		goto out;
	}
	rc = create_field("name", name, msg, sizeof(msg), err, errlen);
	json_object_object_foreach(o, key, v) {
		if (rc == 0 && strcmp(key, "name") != 0)
			rc = create_field(key, v, msg, sizeof(msg), err, errlen);
	}
	if (rc == 0)
		rc = core_ctl_parse(msg, strlen(msg), true, out, err, errlen);
out:
	json_object_put(o);
	return rc;
}

/* ---- routes ----------------------------------------------------------- */

/* Take the next path segment of at most max bytes; *p moves past it. */
static int segment(const char **p, char *buf, size_t max)
{
	const char *s = *p, *e = strchr(s, '/');
	size_t n = e ? (size_t)(e - s) : strlen(s);

	if (n == 0 || n >= max)
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*p = e ? e + 1 : s + n;
	return e ? 1 : 0;       /* 1: more follows */
}

/* NS/NAME[/VERB] below /api/k8s/vms/ or /api/k8s/snapshots/: whole is
 * the route of NS/NAME (WEB_R_NONE: none), sub that of NS/NAME/VERB. */
static int obj_route(const char *p, struct web_route *r,
		     enum web_route_kind whole, const char *verb,
		     enum web_route_kind sub, char *err, size_t errlen)
{
	char action[16];
	int more;

	more = segment(&p, r->ns, sizeof(r->ns));
	if (more < 0 || core_name_check(r->ns, err, errlen) < 0)
		return bad(err, errlen, "bad namespace in the path");
	if (more == 0)
		return 0;       /* /vms/NS: not a route */
	more = segment(&p, r->name, sizeof(r->name));
	if (more < 0 || core_name_check(r->name, err, errlen) < 0)
		return bad(err, errlen, whole == WEB_R_VM ?
			   "bad vm name in the path" :
			   "bad snapshot name in the path");
	r->kind = whole;
	if (more == 0)
		return 0;
	r->kind = WEB_R_NONE;
	if (segment(&p, action, sizeof(action)) == 0 && !strcmp(action, verb))
		r->kind = sub;
	return 0;
}

int web_route(const char *path, struct web_route *r, char *err,
	      size_t errlen)
{
	static const struct { const char *path; enum web_route_kind k; } fixed[] = {
		{ "/", WEB_R_ROOT }, { "/k8s/vms", WEB_R_PAGE },
		{ "/k8s/vms/", WEB_R_PAGE }, { "/metrics", WEB_R_METRICS },
		{ "/healthz", WEB_R_HEALTH }, { "/api/k8s/config", WEB_R_CONFIG },
		{ "/api/k8s/vms", WEB_R_VMS },
		{ "/api/k8s/templates", WEB_R_TEMPLATES },
		{ "/api/k8s/snapshots", WEB_R_SNAPSHOTS },
		{ "/api/k8s/vm-metrics", WEB_R_VM_METRICS },
		{ "/api/k8s/operations", WEB_R_OPERATIONS },
		{ "/api/k8s/events", WEB_R_EVENTS },
		{ "/api/k8s/nodes", WEB_R_NODES },
	};
	const char *p;

	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (!strcmp(path, fixed[i].path)) {
			r->kind = fixed[i].k;
			return 0;
		}
	if (!strncmp(path, "/assets/", 8)) {
		p = path + 8;
		if (segment(&p, r->asset, sizeof(r->asset)) == 0 &&
		    r->asset[0] != '.')
			r->kind = WEB_R_ASSET;
		return 0;
	}
	if (!strncmp(path, "/api/k8s/vms/", 13))
		return obj_route(path + 13, r, WEB_R_VM, "actions",
				 WEB_R_VM_ACTIONS, err, errlen);
	if (!strncmp(path, "/api/k8s/snapshots/", 19))
		return obj_route(path + 19, r, WEB_R_NONE, "delete",
				 WEB_R_SNAPSHOT_DELETE, err, errlen);
	return 0;
}

bool web_method_ok(enum web_route_kind k, const char *method)
{
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");

	if (k == WEB_R_VM_ACTIONS || k == WEB_R_SNAPSHOT_DELETE)
		return !strcmp(method, "POST");
	if (k == WEB_R_VMS)
		return get || !strcmp(method, "POST");
	return get;
}

unsigned web_http_status(int rc)
{
	switch (rc) {
	case 0: return 200;
	case -EINVAL: return 400;
	case -EACCES: case -EPERM: return 403;
	case -ENOENT: return 404;
	case -EBUSY: case -EEXIST: return 409;
	case -EOPNOTSUPP: return 501;
	default: return 500;
	}
}
