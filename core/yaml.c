/* YAML <-> JSON: one document through libyaml's event API into json-c,
 * and json-c back out through libyaml's emitter.
 *
 * Plain scalars are typed by the YAML 1.2 core schema.  The emitter quotes
 * every string that some reader could take for another type, including
 * YAML 1.1 booleans such as "yes" that kubectl's parser still converts. */
#include "core/core.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Bounds json-c's recursive free/compare and our recursive emitter. */
#define DEPTH_MAX 100

#define TAG_PREFIX "tag:yaml.org,2002:"

struct frame {
	json_object *obj;       /* borrowed: the parent or root holds it */
	char *key;              /* pending key of a mapping, or NULL */
};

struct pctx {
	yaml_parser_t p;
	struct frame st[DEPTH_MAX];
	int depth;
	json_object *root;
	bool have_root;
	int ndocs;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4)))
static int perr(struct pctx *c, const yaml_event_t *ev, const char *fmt, ...)
{
	char msg[CORE_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "yaml: line %zu: %s",
		 (size_t)ev->start_mark.line + 1, msg);
	return -EINVAL;
}

/* ---- scalar typing (YAML 1.2 core schema) ----------------------- */

static bool one_of(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
static const char *const trues[] = { "true", "True", "TRUE", NULL };
static const char *const falses[] = { "false", "False", "FALSE", NULL };
static const char *const specials[] = {
	".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
	"-.INF", ".nan", ".NaN", ".NAN", NULL
};
/* YAML 1.1 spellings that other readers still turn into booleans. */
static const char *const yaml11[] = {
	"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On",
	"ON", "off", "Off", "OFF", "=", "<<", NULL
};

static bool all_of(const char *s, const char *set)
{
	return *s && strspn(s, set) == strlen(s);
}

/* [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ ; returns the base or 0. */
static int int_base(const char *s)
{
	if (s[0] == '0' && s[1] == 'o' && all_of(s + 2, "01234567"))
		return 8;
	if (s[0] == '0' && s[1] == 'x' && all_of(s + 2, "0123456789abcdefABCDEF"))
		return 16;
	if (*s == '+' || *s == '-')
		s++;
	return all_of(s, "0123456789") ? 10 : 0;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_float(const char *s)
{
	size_t nd = 0;

	if (*s == '+' || *s == '-')
		s++;
	for (; *s >= '0' && *s <= '9'; s++)
		nd++;
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++)
			nd++;
	}
	if (nd == 0)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		return all_of(s, "0123456789");
	}
	return *s == '\0';
}

static json_object *make_int(const char *s, int base)
{
	const char *digits = base == 10 ? s : s + 2;
	unsigned long long u;
	long long v;
	char *end;

	errno = 0;
	v = strtoll(digits, &end, base);
	if (errno == 0 && *end == '\0')
		return json_object_new_int64(v);
	errno = 0;
	u = strtoull(digits, &end, base);
	if (errno == 0 && *end == '\0' && *digits != '-')
		return json_object_new_uint64(u);
	/* Out of every integer range JSON readers share: keep the text. */
	return json_object_new_string(s);
}

/* A new JSON value for a plain scalar; *isnull for the null forms. */
static json_object *resolve_plain(const char *s, bool *isnull)
{
	int base;

	*isnull = false;
	if (one_of(s, nulls)) {
		*isnull = true;
		return NULL;
	}
	if (one_of(s, trues))
		return json_object_new_boolean(1);
	if (one_of(s, falses))
		return json_object_new_boolean(0);
	base = int_base(s);
	if (base)
		return make_int(s, base);
	/* JSON has no infinities or NaN, so ".inf" and "1e999" travel as
	 * text; a later reader still sees exactly what was written. */
	if (is_float(s) && isfinite(strtod(s, NULL)))
		return json_object_new_double(strtod(s, NULL));
	return json_object_new_string(s);
}

/* ---- parser ------------------------------------------------------- */

static int add_value(struct pctx *c, const yaml_event_t *ev, json_object *v)
{
	struct frame *f;

	if (c->depth == 0) {
		c->root = v;
		c->have_root = true;
		return 0;
	}
	f = &c->st[c->depth - 1];
	if (json_object_is_type(f->obj, json_type_array)) {
		json_object_array_add(f->obj, v);
		return 0;
	}
	if (!f->key) {
		json_object_put(v);
		return perr(c, ev, "mapping keys must be scalars");
	}
	json_object_object_add(f->obj, f->key, v);
	free(f->key);
	f->key = NULL;
	return 0;
}

static int set_key(struct pctx *c, const yaml_event_t *ev, const char *s,
		   size_t n)
{
	struct frame *f = &c->st[c->depth - 1];
	char q[80];

	core_quote(q, sizeof(q), s, n);
	if (strlen(s) != n)
		return perr(c, ev, "NUL byte in key %s", q);
	if (json_object_object_get_ex(f->obj, s, NULL))
		return perr(c, ev, "duplicate key %s", q);
	f->key = strdup(s);
	return f->key ? 0 : -ENOMEM;
}

static int check_tag(struct pctx *c, const yaml_event_t *ev,
		     const yaml_char_t *tag, const char *want)
{
	const char *t = (const char *)tag;

	char q[80];

	if (!t || strcmp(t, "!") == 0)
		return 0;
	if (strncmp(t, TAG_PREFIX, strlen(TAG_PREFIX)) == 0 &&
	    strcmp(t + strlen(TAG_PREFIX), want) == 0)
		return 0;
	/* libyaml decodes %-escapes in tags: quote before echoing. */
	core_quote(q, sizeof(q), t, strlen(t));
	return perr(c, ev, "unsupported tag %s", q);
}

static int on_scalar(struct pctx *c, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	json_object *v = NULL;
	bool isnull = false;

	if (ev->data.scalar.anchor)
		return perr(c, ev, "anchors are not supported");
	if (c->depth > 0 && json_object_is_type(c->st[c->depth - 1].obj,
						json_type_object) &&
	    !c->st[c->depth - 1].key)
		return set_key(c, ev, s, n);
	if (check_tag(c, ev, ev->data.scalar.tag, "str") < 0)
		return -EINVAL;
	if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag &&
	    strlen(s) == n) {
		v = resolve_plain(s, &isnull);
		if (!v && !isnull)
			return -ENOMEM;
	} else {
		v = json_object_new_string_len(s, (int)n);
		if (!v)
			return -ENOMEM;
	}
	return add_value(c, ev, v);
}

static int on_start(struct pctx *c, const yaml_event_t *ev, bool map)
{
	const yaml_char_t *anchor = map ? ev->data.mapping_start.anchor :
					  ev->data.sequence_start.anchor;
	const yaml_char_t *tag = map ? ev->data.mapping_start.tag :
				       ev->data.sequence_start.tag;
	json_object *o;
	int r;

	if (anchor)
		return perr(c, ev, "anchors are not supported");
	r = check_tag(c, ev, tag, map ? "map" : "seq");
	if (r < 0)
		return r;
	if (c->depth >= DEPTH_MAX)
		return perr(c, ev, "nesting too deep");
	o = map ? json_object_new_object() : json_object_new_array();
	if (!o)
		return -ENOMEM;
	r = add_value(c, ev, o);
	if (r < 0)
		return r;
	c->st[c->depth].obj = o;
	c->st[c->depth].key = NULL;
	c->depth++;
	return 0;
}

static int on_event(struct pctx *c, const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++c->ndocs > 1)
			return perr(c, ev, "multiple documents are not "
				    "supported");
		return 0;
	case YAML_ALIAS_EVENT:
		return perr(c, ev, "aliases are not supported");
	case YAML_SCALAR_EVENT:
		return on_scalar(c, ev);
	case YAML_MAPPING_START_EVENT:
		return on_start(c, ev, true);
	case YAML_SEQUENCE_START_EVENT:
		return on_start(c, ev, false);
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT:
		c->depth--;
		free(c->st[c->depth].key);
		c->st[c->depth].key = NULL;
		return 0;
	default:
		return 0;
	}
}

static int parse_events(struct pctx *c)
{
	yaml_event_t ev;
	yaml_event_type_t type;
	int r;

	do {
		if (!yaml_parser_parse(&c->p, &ev)) {
			snprintf(c->err, c->errlen, "yaml: line %zu: %s",
				 (size_t)c->p.problem_mark.line + 1,
				 c->p.problem ? c->p.problem : "syntax error");
			return c->p.error == YAML_MEMORY_ERROR ? -ENOMEM :
								 -EINVAL;
		}
		r = on_event(c, &ev);
		type = ev.type;
		yaml_event_delete(&ev);
	} while (r == 0 && type != YAML_STREAM_END_EVENT);
	return r;
}

int core_yaml_parse(const char *buf, size_t len, json_object **out, char *err,
		    size_t errlen)
{
	struct pctx c = { .err = err, .errlen = errlen };
	int r;

	*out = NULL;
	if (!yaml_parser_initialize(&c.p))
		return -ENOMEM;
	yaml_parser_set_input_string(&c.p, (const unsigned char *)buf, len);
	/* Kubernetes YAML is UTF-8; a stray BOM must not switch to UTF-16. */
	yaml_parser_set_encoding(&c.p, YAML_UTF8_ENCODING);
	r = parse_events(&c);
	if (r == 0 && c.ndocs == 0) {
		snprintf(err, errlen, "yaml: empty document");
		r = -EINVAL;
	}
	if (r == -ENOMEM)
		snprintf(err, errlen, "yaml: out of memory");
	for (int i = 0; i < c.depth; i++)
		free(c.st[i].key);
	yaml_parser_delete(&c.p);
	if (r < 0) {
		json_object_put(c.root);
		return r;
	}
	*out = c.root;
	return 0;
}

/* ---- emitter ------------------------------------------------------ */

struct obuf {
	char *p;
	size_t len, cap;
};

static int write_out(void *data, unsigned char *buf, size_t size)
{
	struct obuf *b = data;

	if (b->len + size + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + size + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, buf, size);
	b->len += size;
	b->p[b->len] = '\0';
	return 1;
}

/* Would this text read back as something other than a string? */
static bool ambiguous(const char *s)
{
	if (one_of(s, nulls) || one_of(s, trues) || one_of(s, falses) ||
	    one_of(s, specials) || one_of(s, yaml11))
		return true;
	if (int_base(s) || is_float(s))
		return true;
	/* YAML 1.1 also reads "1_000", "0b101" and "1:30" as numbers. */
	if (!strchr("0123456789+-.", *s))
		return false;
	return all_of(s, "0123456789abcdefxABCDEFXo_:.+-");
}

static int scalar(yaml_emitter_t *e, const char *s, size_t n,
		  yaml_scalar_style_t style)
{
	yaml_event_t ev;

	if (!yaml_scalar_event_initialize(&ev, NULL, NULL,
					  (yaml_char_t *)s, (int)n, 1, 1,
					  style))
		return -ENOMEM;
	return yaml_emitter_emit(e, &ev) ? 0 : -EINVAL;
}

static int emit_string(yaml_emitter_t *e, const char *s, size_t n)
{
	yaml_scalar_style_t st = YAML_PLAIN_SCALAR_STYLE;

	/* libyaml falls back to quoting when a style cannot hold the text. */
	if (memchr(s, '\n', n))
		st = YAML_LITERAL_SCALAR_STYLE;
	else if (strlen(s) != n || ambiguous(s))
		st = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
	return scalar(e, s, n, st);
}

static int emit_double(yaml_emitter_t *e, double d)
{
	char b[40];

	if (isnan(d))
		snprintf(b, sizeof(b), ".nan");
	else if (isinf(d))
		snprintf(b, sizeof(b), d < 0 ? "-.inf" : ".inf");
	else {
		/* The shortest text that reads back as the same double. */
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(b, sizeof(b), "%.*g", prec, d);
			if (strtod(b, NULL) == d)
				break;
		}
		if (!strpbrk(b, ".e"))
			strcat(b, ".0");
	}
	return scalar(e, b, strlen(b), YAML_PLAIN_SCALAR_STYLE);
}

static int emit_node(yaml_emitter_t *e, json_object *o, int depth);

static int emit_object(yaml_emitter_t *e, json_object *o, int depth)
{
	yaml_event_t ev;
	int r;

	if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
						 YAML_BLOCK_MAPPING_STYLE))
		return -ENOMEM;
	if (!yaml_emitter_emit(e, &ev))
		return -EINVAL;
	json_object_object_foreach(o, key, val) {
		r = emit_string(e, key, strlen(key));
		if (r == 0)
			r = emit_node(e, val, depth + 1);
		if (r < 0)
			return r;
	}
	yaml_mapping_end_event_initialize(&ev);
	return yaml_emitter_emit(e, &ev) ? 0 : -EINVAL;
}

static int emit_array(yaml_emitter_t *e, json_object *o, int depth)
{
	yaml_event_t ev;
	size_t n = json_object_array_length(o);
	int r;

	if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
						  YAML_BLOCK_SEQUENCE_STYLE))
		return -ENOMEM;
	if (!yaml_emitter_emit(e, &ev))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		r = emit_node(e, json_object_array_get_idx(o, i), depth + 1);
		if (r < 0)
			return r;
	}
	yaml_sequence_end_event_initialize(&ev);
	return yaml_emitter_emit(e, &ev) ? 0 : -EINVAL;
}

static int emit_node(yaml_emitter_t *e, json_object *o, int depth)
{
	const char *s;

	if (depth > DEPTH_MAX)
		return -EINVAL;
	switch (json_object_get_type(o)) {
	case json_type_null:
		return scalar(e, "null", 4, YAML_PLAIN_SCALAR_STYLE);
	case json_type_boolean:
		s = json_object_get_boolean(o) ? "true" : "false";
		return scalar(e, s, strlen(s), YAML_PLAIN_SCALAR_STYLE);
	case json_type_int:
		s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		return scalar(e, s, strlen(s), YAML_PLAIN_SCALAR_STYLE);
	case json_type_double:
		return emit_double(e, json_object_get_double(o));
	case json_type_string:
		return emit_string(e, json_object_get_string(o),
				   (size_t)json_object_get_string_len(o));
	case json_type_object:
		return emit_object(e, o, depth);
	case json_type_array:
		return emit_array(e, o, depth);
	}
	return -EINVAL;
}

static int emit_doc(yaml_emitter_t *e, json_object *obj)
{
	yaml_event_t ev;
	int r;

	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	if (!yaml_emitter_emit(e, &ev))
		return -EINVAL;
	if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ||
	    !yaml_emitter_emit(e, &ev))
		return -EINVAL;
	r = emit_node(e, obj, 0);
	if (r < 0)
		return r;
	yaml_document_end_event_initialize(&ev, 1);
	if (!yaml_emitter_emit(e, &ev))
		return -EINVAL;
	yaml_stream_end_event_initialize(&ev);
	if (!yaml_emitter_emit(e, &ev) || !yaml_emitter_flush(e))
		return -EINVAL;
	return 0;
}

int core_yaml_emit(json_object *obj, char **out, size_t *outlen)
{
	struct obuf b = { 0 };
	yaml_emitter_t e;
	int r;

	*out = NULL;
	if (outlen)
		*outlen = 0;
	if (!yaml_emitter_initialize(&e))
		return -ENOMEM;
	yaml_emitter_set_output(&e, write_out, &b);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_indent(&e, 2);
	yaml_emitter_set_width(&e, -1);
	r = emit_doc(&e, obj);
	if (r == 0 && e.error == YAML_MEMORY_ERROR)
		r = -ENOMEM;
	if (r == 0 && !b.p)
		r = write_out(&b, (unsigned char *)"", 0) ? 0 : -ENOMEM;
	yaml_emitter_delete(&e);
	if (r < 0) {
		free(b.p);
		return r;
	}
	*out = b.p;
	if (outlen)
		*outlen = b.len;
	return 0;
}
