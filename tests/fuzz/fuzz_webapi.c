/* libFuzzer: the dashboard's request parsers (web/parse.c).  The first
 * byte picks one: an action body, a create body, a request path or a
 * listen address (also read as a Host header).  Whatever they accept
 * must be a valid ctl message (the same checks as fuzz_ctl); whatever
 * they refuse, one err line. */
#include <stdlib.h>
#include <string.h>

#include "web/web.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const char *err)
{
	if (!err[0] || strlen(err) >= CORE_ERR_MAX)
		abort();
	for (const char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20)
			abort();
}

static void check_ctl(const struct core_ctl *c, bool on_dir)
{
	if ((on_dir != (c->verb == CORE_V_CREATE)) ||
	    strlen(c->arg) > CORE_NAME_MAX ||
	    strlen(c->template_name) > CORE_NAME_MAX ||
	    (c->cpus && (c->cpus < 1 || c->cpus > 512)))
		abort();
	if (on_dir && core_name_check(c->arg, (char[CORE_ERR_MAX]){ 0 },
				      CORE_ERR_MAX) < 0)
		abort();
}

static void route(const char *s)
{
	char err[CORE_ERR_MAX] = "";
	struct web_route r;
	int rc = web_route(s, &r, err, sizeof(err));

	if (rc < 0) {
		check_err(err);
		return;
	}
	if ((r.kind == WEB_R_VM || r.kind == WEB_R_VM_ACTIONS) &&
	    (core_name_check(r.ns, err, sizeof(err)) < 0 ||
	     core_name_check(r.name, err, sizeof(err)) < 0))
		abort();
	if (r.kind == WEB_R_ASSET && (strchr(r.asset, '/') || r.asset[0] == '.'))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CORE_ERR_MAX] = "", *s;
	struct sockaddr_storage sa;
	struct core_ctl c;
	socklen_t salen;
	bool lo;
	int rc = 0;

	if (size < 1)
		return 0;
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';     /* paths and addresses are C strings */
	switch (data[0] & 3) {
	case 0:
		rc = web_parse_action((const char *)data + 1, size - 1, &c, err,
				      sizeof(err));
		if (rc == 0)
			check_ctl(&c, false);
		break;
	case 1:
		rc = web_parse_create((const char *)data + 1, size - 1, &c, err,
				      sizeof(err));
		if (rc == 0)
			check_ctl(&c, true);
		break;
	case 2:
		route(s);
		break;
	default:
		rc = web_parse_listen(s, &sa, &salen, &lo, err, sizeof(err));
		if (rc == 0 && salen > sizeof(sa))
			abort();
		/* A Host it accepts names no other site. */
		if (web_host_loopback(s) && strpbrk(s, "/@ _"))
			abort();
	}
	if (rc < 0)
		check_err(err);
	free(s);
	return 0;
}
