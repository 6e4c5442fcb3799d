/* ctl messages: one write(2) is one message, "verb [arg] [opt] [key=val]".
 * The grammar is table driven so a new option is one line below. */
#include "core/core.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOK_MAX 16
#define VBIT(v) (1u << (v))

static const char e_args[] = "wrong #args in control message";

static const struct core_op ops[] = {
#define ROW(id, verb, op, flags, cli, from, to) \
	{ CORE_V_##id, #verb, op, flags, cli, from, to },
	CORE_OPS(ROW)
#undef ROW
};

#define NVERBS (sizeof(ops) / sizeof(ops[0]))

const struct core_op *core_op(enum core_verb v)
{
	return (unsigned)v < NVERBS ? &ops[v] : NULL;
}

const struct core_op *core_op_by_verb(const char *s)
{
	for (size_t i = 0; s && i < NVERBS; i++)
		if (!strcmp(ops[i].name, s))
			return &ops[i];
	return NULL;
}

const struct core_op *core_op_by_operation(const char *s)
{
	for (size_t i = 0; s && i < NVERBS; i++)
		if (ops[i].operation && !strcmp(ops[i].operation, s))
			return &ops[i];
	return NULL;
}

const struct core_op *core_op_by_cli(const char *s)
{
	for (size_t i = 0; s && i < NVERBS; i++)
		if (ops[i].cli && !strcmp(ops[i].cli, s))
			return &ops[i];
	return NULL;
}

enum okind { O_FLAG, O_CPUS, O_MEM, O_NAME, O_BOOL, O_RATE, O_DAYS, O_COUNT };

struct opt {
	const char *key;
	enum okind kind;
	unsigned verbs;         /* VBIT mask of the verbs that take it */
	size_t off;             /* field of struct core_ctl */
};

#define F(f) offsetof(struct core_ctl, f)
static const struct opt opts[] = {
	{ "cpus", O_CPUS, VBIT(CORE_V_CREATE) | VBIT(CORE_V_RESIZE), F(cpus) },
	{ "memory", O_MEM, VBIT(CORE_V_CREATE) | VBIT(CORE_V_RESIZE),
	  F(memory) },
	{ "disk", O_MEM, VBIT(CORE_V_CREATE), F(disk) },
	{ "template", O_NAME, VBIT(CORE_V_CREATE), F(template_name) },
	{ "running", O_BOOL, VBIT(CORE_V_CREATE), F(running) },
	{ "force", O_FLAG, VBIT(CORE_V_STOP) | VBIT(CORE_V_DELETE), F(force) },
	{ "now", O_FLAG, VBIT(CORE_V_START), F(now) },
	{ "linked", O_FLAG, VBIT(CORE_V_CLONE), F(linked) },
	{ "start", O_FLAG, VBIT(CORE_V_CLONE), F(start) },
	{ "offline", O_FLAG, VBIT(CORE_V_MIGRATE), F(offline) },
	{ "autoconverge", O_FLAG, VBIT(CORE_V_MIGRATE), F(autoconverge) },
	{ "postcopy", O_FLAG, VBIT(CORE_V_MIGRATE), F(postcopy) },
	{ "bandwidth", O_RATE, VBIT(CORE_V_MIGRATE), F(bandwidth) },
	{ "memory", O_FLAG, VBIT(CORE_V_SNAPSHOT), F(memory_state) },
	{ "quiesce", O_FLAG, VBIT(CORE_V_SNAPSHOT), F(quiesce) },
	{ "keep", O_DAYS, VBIT(CORE_V_SNAPSHOT), F(keep_days) },
	{ "count", O_COUNT, VBIT(CORE_V_SNAPSHOT), F(keep_count) },
};
#undef F

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

struct toks {
	char buf[CORE_MSG_MAX + 1];
	char *t[TOK_MAX];
	size_t n;               /* all tokens, even those beyond TOK_MAX */
};

bool core_op_allowed(const struct core_ctl *msg, int ph)
{
	const struct core_op *op = core_op(msg->verb);

	if (!op)
		return false;
	if (!op->from || ((op->flags & CORE_OPF_FORCE_ANY) && msg->force))
		return true;
	return ph >= 0 && ph < 32 && (op->from & (1u << ph));
}

const char *core_verb_name(enum core_verb v)
{
	return (unsigned)v < NVERBS ? ops[v].name : "unknown";
}

/* Strips the newline and checks the bytes; fills tk->buf. */
static int check_msg(const char *buf, size_t len, struct toks *tk, char *err,
		     size_t errlen)
{
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > CORE_MSG_MAX) {
		snprintf(err, errlen, "control message too long");
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == '\n') {
			snprintf(err, errlen,
				 "control message has embedded newline");
			return -EINVAL;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			snprintf(err, errlen,
				 "control message has control characters");
			return -EINVAL;
		}
	}
	memcpy(tk->buf, buf, len);
	tk->buf[len] = '\0';
	return 0;
}

static void tokenize(struct toks *tk)
{
	char *p = tk->buf;

	tk->n = 0;
	for (;;) {
		p += strspn(p, " \t");
		if (!*p)
			break;
		if (tk->n < TOK_MAX)
			tk->t[tk->n] = p;
		tk->n++;
		p += strcspn(p, " \t");
		if (*p)
			*p++ = '\0';
	}
}

__attribute__((format(printf, 4, 5)))
static int bad_arg(char *err, size_t errlen, const char *tok,
		   const char *fmt, ...)
{
	char q[80], msg[CORE_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	core_quote(q, sizeof(q), tok, strlen(tok));
	snprintf(err, errlen, "bad argument %s: %s", q, msg);
	return -EINVAL;
}

/* Digits only: no sign, no spaces, no base prefixes. */
static int parse_uint(const char *s, long max, long *out)
{
	long v = 0;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	for (; *s; s++) {
		v = v * 10 + (*s - '0');
		if (v > max)
			return -ERANGE;
	}
	*out = v;
	return 0;
}

static int set_number(const char *tok, const char *val, long min, long max,
		      int *out, char *err, size_t errlen)
{
	long v;
	int r = parse_uint(val, max, &v);

	if (r == -EINVAL)
		return bad_arg(err, errlen, tok, "not a number");
	if (r < 0 || v < min)
		return bad_arg(err, errlen, tok, "must be %ld to %ld", min, max);
	*out = (int)v;
	return 0;
}

static int set_days(const char *tok, const char *val, int *out, char *err,
		    size_t errlen)
{
	char num[16];
	size_t n = strlen(val);

	if (n < 2 || n >= sizeof(num) || val[n - 1] != 'd')
		return bad_arg(err, errlen, tok, "want a number of days, "
			       "e.g. keep=30d");
	memcpy(num, val, n - 1);
	num[n - 1] = '\0';
	/* keep=0d: expires at the next retention pass. */
	return set_number(tok, num, 0, 36500, out, err, errlen);
}

static int set_value(const struct opt *o, const char *tok, const char *val,
		     struct core_ctl *out, char *err, size_t errlen)
{
	char *field = (char *)out + o->off;
	char qerr[CORE_ERR_MAX];
	uint64_t q;

	switch (o->kind) {
	case O_CPUS:
		return set_number(tok, val, 1, 512, (int *)field, err, errlen);
	case O_COUNT:
		return set_number(tok, val, 1, 10000, (int *)field, err, errlen);
	case O_DAYS:
		return set_days(tok, val, (int *)field, err, errlen);
	case O_MEM:
		if (core_qty_parse(val, &q, qerr, sizeof(qerr)) < 0)
			return bad_arg(err, errlen, tok, "%s", qerr);
		if (q < 1024 * 1024)
			return bad_arg(err, errlen, tok, "must be at least 1Mi");
		memcpy(field, &q, sizeof(q));
		return 0;
	case O_RATE:
		if (core_rate_parse(val, &q, qerr, sizeof(qerr)) < 0)
			return bad_arg(err, errlen, tok, "%s", qerr);
		memcpy(field, &q, sizeof(q));
		return 0;
	case O_NAME:
		if (core_name_check(val, qerr, sizeof(qerr)) < 0)
			return bad_arg(err, errlen, tok, "%s", qerr);
		snprintf(field, CORE_NAME_MAX + 1, "%s", val);
		return 0;
	case O_BOOL:
		if (strcmp(val, "true") && strcmp(val, "false"))
			return bad_arg(err, errlen, tok,
				       "must be true or false");
		*(int *)field = strcmp(val, "true") == 0;
		return 0;
	case O_FLAG:
		break;
	}
	return -EINVAL;
}

static int parse_opt(enum core_verb v, char *tok, unsigned *seen,
		     struct core_ctl *out, char *err, size_t errlen)
{
	char *eq = strchr(tok, '=');
	size_t klen = eq ? (size_t)(eq - tok) : strlen(tok);
	size_t i;

	for (i = 0; i < NOPTS; i++) {
		if ((opts[i].verbs & VBIT(v)) && strlen(opts[i].key) == klen &&
		    strncmp(opts[i].key, tok, klen) == 0 &&
		    (opts[i].kind == O_FLAG) == !eq)
			break;
	}
	if (i == NOPTS)
		return bad_arg(err, errlen, tok, "unknown option for %s",
			       core_verb_name(v));
	if (*seen & (1u << i))
		return bad_arg(err, errlen, tok, "given twice");
	*seen |= 1u << i;
	if (opts[i].kind == O_FLAG) {
		*(bool *)((char *)out + opts[i].off) = true;
		return 0;
	}
	return set_value(&opts[i], tok, eq + 1, out, err, errlen);
}

/* Node names are DNS subdomains ("node-1.example.com"). */
static int check_node(const char *s, char *err, size_t errlen)
{
	char label[CORE_NAME_MAX + 1], q[80];
	const char *p = s;
	size_t n;

	if (strlen(s) > CORE_NAME_MAX)
		return core_name_check(s, err, errlen);
	do {
		n = strcspn(p, ".");
		memcpy(label, p, n);
		label[n] = '\0';
		if (core_name_check(label, err, errlen) < 0) {
			core_quote(q, sizeof(q), s, strlen(s));
			snprintf(err, errlen, "bad node name %s", q);
			return -EINVAL;
		}
		p += n;
	} while (*p++ == '.');
	return 0;
}

static int parse_arg(const struct core_op *vb, const char *tok,
		     struct core_ctl *out, char *err, size_t errlen)
{
	int r;

	if (!tok || strchr(tok, '=')) {
		snprintf(err, errlen, "%s", e_args);
		return -EINVAL;
	}
	if (vb->verb == CORE_V_MIGRATE)
		r = check_node(tok, err, errlen);
	else
		r = core_name_check(tok, err, errlen);
	if (r == 0)
		snprintf(out->arg, sizeof(out->arg), "%s", tok);
	return r;
}

static int check_combination(const struct core_ctl *c, char *err,
			     size_t errlen)
{
	if (c->verb == CORE_V_RESIZE && !c->cpus && !c->memory) {
		snprintf(err, errlen, "%s", e_args);
		return -EINVAL;
	}
	if (c->verb == CORE_V_MIGRATE && c->offline && c->postcopy)
		return bad_arg(err, errlen, "postcopy",
			       "needs a live migration, not offline");
	if (c->verb == CORE_V_MIGRATE && c->offline && c->autoconverge)
		return bad_arg(err, errlen, "autoconverge",
			       "needs a live migration, not offline");
	return 0;
}

static bool takes_options(enum core_verb v)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].verbs & VBIT(v))
			return true;
	return false;
}

static const struct core_op *find_verb(const char *name, bool on_dir)
{
	const struct core_op *op = core_op_by_verb(name);

	return op && !!(op->flags & CORE_OPF_DIR) == on_dir ? op : NULL;
}

static void init_ctl(struct core_ctl *out, enum core_verb v)
{
	memset(out, 0, sizeof(*out));
	out->verb = v;
	out->running = -1;
	out->keep_days = -1;
	out->keep_count = -1;
}

static int unknown(const char *buf, size_t len, char *err, size_t errlen)
{
	char q[80];

	while (len > 0 && strchr(" \t\n", buf[len - 1]))
		len--;
	while (len > 0 && (*buf == ' ' || *buf == '\t')) {
		buf++;
		len--;
	}
	core_quote(q, sizeof(q), buf, len);
	snprintf(err, errlen, "unknown control message %s", q);
	return -EINVAL;
}

/* A message checked and cut into words (at least one) in *out, which the
 * caller frees. */
static int words(const char *buf, size_t len, struct toks **out, char *err,
		 size_t errlen)
{
	struct toks *tk = malloc(sizeof(*tk));
	int r;

	*out = NULL;
	if (!tk)
		return -ENOMEM;
	r = check_msg(buf, len, tk, err, errlen);
	if (r == 0) {
		tokenize(tk);
		if (tk->n == 0) {
			snprintf(err, errlen, "empty control message");
			r = -EINVAL;
		}
	}
	if (r < 0)
		free(tk);
	else
		*out = tk;
	return r;
}

int core_ctl_parse(const char *buf, size_t len, bool on_dir,
		   struct core_ctl *out, char *err, size_t errlen)
{
	struct toks *tk;
	const struct core_op *vb;
	unsigned seen = 0;
	size_t i = 1;
	int r = words(buf, len, &tk, err, errlen);

	if (r < 0)
		return r;
	vb = find_verb(tk->t[0], on_dir);
	if (!vb) {
		r = unknown(buf, len, err, errlen);
		goto out;
	}
	init_ctl(out, vb->verb);
	if (tk->n > TOK_MAX ||
	    (!takes_options(vb->verb) && tk->n > 1u + !!(vb->flags & CORE_OPF_ARG))) {
		snprintf(err, errlen, "%s", e_args);
		r = -EINVAL;
		goto out;
	}
	if (vb->flags & CORE_OPF_ARG)
		r = parse_arg(vb, tk->n > 1 ? tk->t[i++] : NULL, out, err,
			      errlen);
	for (; r == 0 && i < tk->n; i++)
		r = parse_opt(vb->verb, tk->t[i], &seen, out, err, errlen);
	if (r == 0)
		r = check_combination(out, err, errlen);
out:
	free(tk);
	return r;
}

/* ---- nodes/NODE/ctl ------------------------------------------------- */

static const char *const node_verbs[CORE_NV_COUNT] = {
	[CORE_NV_CORDON] = "cordon",
	[CORE_NV_UNCORDON] = "uncordon",
	[CORE_NV_DRAIN] = "drain",
};

const char *core_node_verb_name(enum core_node_verb v)
{
	return (unsigned)v < CORE_NV_COUNT ? node_verbs[v] : "unknown";
}

int core_node_ctl_parse(const char *buf, size_t len, enum core_node_verb *out,
			char *err, size_t errlen)
{
	struct toks *tk;
	int r = words(buf, len, &tk, err, errlen);

	if (r < 0)
		return r;
	r = -EINVAL;
	for (int v = 0; v < CORE_NV_COUNT && r < 0; v++)
		if (!strcmp(tk->t[0], node_verbs[v])) {
			*out = (enum core_node_verb)v;
			r = 0;
		}
	if (r < 0)
		unknown(buf, len, err, errlen);
	else if (tk->n > 1) {
		snprintf(err, errlen, "%s", e_args);
		r = -EINVAL;
	}
	free(tk);
	return r;
}
