/* libFuzzer: a watch stream.  The input is fed in two pieces through the
 * line splitter (as curl hands it over), each line is decoded as a watch
 * event, and the JSON objects found are also merged as RFC 7386 patches
 * (for memory safety; the composition law is checked by the unit test).
 * Decoding must either give an object with what its type promises or fail
 * with a reason. */
#include "sync/priv.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_object *prev;

static void merge(json_object *o)
{
	json_object *c, *a;

	if (prev) {
		c = sync_merge_compose(prev, o);
		a = sync_merge_apply(prev, o);
		if (!c || !a)
			abort();
		json_object_put(c);
		json_object_put(a);
	}
	json_object_put(prev);
	prev = json_object_get(o);
}

static int on_line(void *arg, const char *line, size_t len)
{
	enum sync_event_type t;
	json_object *o = (json_object *)1;
	char err[256] = "";
	double when;

	if (memchr(line, '\n', len))
		abort();
	if (sync_event_decode(line, len, &t, &o, err, sizeof(err)) < 0) {
		if (o || !err[0])
			abort();
	} else {
		if (!o || (t != SYNC_EV_ERROR &&
			   !sync_meta_str(o, "resourceVersion")) ||
		    (t <= SYNC_EV_DELETED && !sync_meta_str(o, "name")))
			abort();
		sync_status_code(o);
		merge(o);
		json_object_put(o);
	}
	if (len < 64) {
		char s[64];

		memcpy(s, line, len);
		s[len] = '\0';
		sync_parse_time(s, &when);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sync_lines l = { .max = 256 * 1024 };
	size_t cut = size ? data[0] % (size + 1) : 0;

	if (size > 1024 * 1024)
		return 0;
	sync_lines_feed(&l, (const char *)data, cut, on_line, NULL);
	sync_lines_feed(&l, (const char *)data + cut, size - cut, on_line,
			NULL);
	sync_lines_free(&l);
	json_object_put(prev);
	prev = NULL;
	return 0;
}
