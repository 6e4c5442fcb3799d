/* Kubernetes quantities for bytes and bit rates.
 *
 * A quantity is parsed exactly: the digits become an integer N and the
 * rest a power of two and a power of five (10^d = 2^d * 5^d), so "1.5Ki"
 * and "0.5e3" need no floating point and overflow is detected, not
 * rounded away. */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* 38 decimal digits always fit in an unsigned __int128. */
#define SIG_MAX 38
/* Far beyond any uint64 value; bounds the loops below. */
#define EXP_MAX 10000

typedef unsigned __int128 u128;

struct num {
	char sig[SIG_MAX + 1];  /* significant digits, no leading/trailing 0 */
	size_t nsig;
	bool too_many;          /* more than SIG_MAX significant digits */
	long order;             /* decimal position of the leading digit */
	long d;                 /* value = sig * 10^d * 2^a */
	long a;
};

static const struct {
	const char *s;
	int dec;                /* power of ten */
	int bin;                /* power of two */
} suffixes[] = {
	{ "Ki", 0, 10 }, { "Mi", 0, 20 }, { "Gi", 0, 30 },
	{ "Ti", 0, 40 }, { "Pi", 0, 50 }, { "Ei", 0, 60 },
	{ "m", -3, 0 }, { "k", 3, 0 }, { "M", 6, 0 }, { "G", 9, 0 },
	{ "T", 12, 0 }, { "P", 15, 0 }, { "E", 18, 0 }, { "", 0, 0 },
};

static void add_digit(struct num *n, char c, long *zeros)
{
	if (c == '0' && n->nsig == 0)
		return;
	if (c == '0') {
		/* Trailing zeros are kept aside until a non-zero follows. */
		(*zeros)++;
		return;
	}
	while (*zeros > 0 && n->nsig < SIG_MAX) {
		n->sig[n->nsig++] = '0';
		(*zeros)--;
	}
	if (*zeros > 0 || n->nsig >= SIG_MAX) {
		n->too_many = true;
		return;
	}
	n->sig[n->nsig++] = c;
}

/* Reads [0-9]*(.[0-9]*)? into n; returns the number of digits seen. */
static size_t scan_mantissa(const char **pp, struct num *n)
{
	const char *p = *pp;
	long zeros = 0, intdig = 0, fracdig = 0, lead = 0;
	size_t ndig = 0;

	for (; *p >= '0' && *p <= '9'; p++, ndig++) {
		add_digit(n, *p, &zeros);
		if (n->nsig > 0 || zeros > 0 || n->too_many)
			intdig++;
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, ndig++) {
			if (n->nsig == 0 && *p == '0')
				lead++;
			add_digit(n, *p, &zeros);
			fracdig++;
		}
	}
	/* The zeros set aside were trailing: they only move the point. */
	n->d = zeros - fracdig;
	n->order = intdig > 0 ? intdig - 1 : -lead - 1;
	*pp = p;
	return ndig;
}

static int scan_exponent(const char **pp, long *e)
{
	const char *p = *pp + 1;
	bool neg = false;
	long v = 0;

	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++)
		if (v < EXP_MAX)
			v = v * 10 + (*p - '0');
	*e = neg ? -v : v;
	*pp = p;
	return 0;
}

static int scan_suffix(const char *p, struct num *n)
{
	long e;

	if ((*p == 'e' || *p == 'E') &&
	    ((p[1] >= '0' && p[1] <= '9') ||
	     ((p[1] == '+' || p[1] == '-') && p[2] >= '0' && p[2] <= '9'))) {
		if (scan_exponent(&p, &e) < 0 || *p)
			return -EINVAL;
		n->d += e;
		n->order += e;
		return 0;
	}
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strcmp(p, suffixes[i].s) == 0) {
			n->d += suffixes[i].dec;
			n->order += suffixes[i].dec;
			n->a = suffixes[i].bin;
			return 0;
		}
	}
	return -EINVAL;
}

/* value = sig * 5^d * 2^(a+d); 0, -EINVAL (not whole) or -ERANGE. */
static int evaluate(const struct num *n, uint64_t *out)
{
	u128 v = 0;
	long f = n->d, t = n->a + n->d;

	for (size_t i = 0; i < n->nsig; i++)
		v = v * 10 + (u128)(n->sig[i] - '0');
	if (v == 0)
		goto zero;
	for (; f < 0; f++) {
		if (v % 5)
			return -EINVAL;
		v /= 5;
	}
	if (t < 0) {
		if (t <= -128 || (v & (((u128)1 << -t) - 1)))
			return -EINVAL;
		v >>= -t;
	}
	for (; f > 0; f--) {
		if (v > UINT64_MAX)
			return -ERANGE;
		v *= 5;
	}
	if (v > UINT64_MAX || (t > 0 && (t >= 64 || v > (UINT64_MAX >> t))))
		return -ERANGE;
	if (t > 0)
		v <<= t;
zero:
	*out = (uint64_t)v;
	return 0;
}

int core_qty_parse(const char *s, uint64_t *bytes, char *err, size_t errlen)
{
	struct num n = { .nsig = 0 };
	const char *p = s;
	char q[80];
	int r;

	core_quote(q, sizeof(q), s, s ? strlen(s) : 0);
	if (!s || !*s) {
		snprintf(err, errlen, "empty quantity");
		return -EINVAL;
	}
	if (*p == '-') {
		snprintf(err, errlen, "bad quantity %s: negative", q);
		return -EINVAL;
	}
	if (*p == '+')
		p++;
	if (scan_mantissa(&p, &n) == 0 || scan_suffix(p, &n) < 0) {
		snprintf(err, errlen, "bad quantity %s", q);
		return -EINVAL;
	}
	/* 10^20 > 2^64: anything of that order overflows whatever the
	 * digits; this also covers inputs with too many digits to hold. */
	if (n.nsig > 0 && n.order + (n.a * 3) / 10 >= 20)
		r = -ERANGE;
	else if (n.too_many)
		r = -EINVAL;
	else
		r = evaluate(&n, bytes);
	if (r == -ERANGE)
		snprintf(err, errlen, "bad quantity %s: out of range", q);
	else if (r < 0)
		snprintf(err, errlen, "bad quantity %s: not a whole number of "
			 "bytes", q);
	return r;
}

static int fmt_with(uint64_t v, uint64_t unit, const char *sfx, char *buf,
		    size_t len)
{
	if (v == 0 || v % unit)
		return -1;
	return snprintf(buf, len, "%llu%s", (unsigned long long)(v / unit),
			sfx);
}

void core_qty_format(uint64_t bytes, char *buf, size_t len)
{
	static const char *bin[] = { "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
	static const char *dec[] = { "k", "M", "G", "T", "P", "E" };
	char best[32], cand[32];
	uint64_t ub = 1, ud = 1;
	int n, bestn;

	bestn = snprintf(best, sizeof(best), "%llu",
			 (unsigned long long)bytes);
	/* Binary first: on a tie memory sizes read better as "Gi". */
	for (int i = 0; i < 6; i++) {
		ub <<= 10;
		ud *= 1000;
		n = fmt_with(bytes, ub, bin[i], cand, sizeof(cand));
		if (n > 0 && n < bestn) {
			memcpy(best, cand, (size_t)n + 1);
			bestn = n;
		}
		n = fmt_with(bytes, ud, dec[i], cand, sizeof(cand));
		if (n > 0 && n < bestn) {
			memcpy(best, cand, (size_t)n + 1);
			bestn = n;
		}
	}
	if (len > 0)
		snprintf(buf, len, "%s", best);
}

int core_rate_parse(const char *s, uint64_t *bits_per_sec, char *err,
		    size_t errlen)
{
	char num[64], q[80], qerr[CORE_ERR_MAX];
	uint64_t v, mul;
	size_t n;

	n = s ? strlen(s) : 0;
	core_quote(q, sizeof(q), s, n);
	if (n > 3 && strcmp(s + n - 3, "bps") == 0)
		mul = 1;
	else if (n > 3 && strcmp(s + n - 3, "Bps") == 0)
		mul = 8;
	else
		goto bad;
	n -= 3;
	if (n >= sizeof(num))
		goto bad;
	memcpy(num, s, n);
	num[n] = '\0';
	/* "500Kbps" is common usage for kilo, which quantities spell "k". */
	if (num[n - 1] == 'K')
		num[n - 1] = 'k';
	if (core_qty_parse(num, &v, qerr, sizeof(qerr)) < 0)
		goto bad;
	if (v > UINT64_MAX / mul) {
		snprintf(err, errlen, "bad rate %s: out of range", q);
		return -ERANGE;
	}
	*bits_per_sec = v * mul;
	return 0;
bad:
	snprintf(err, errlen, "bad rate %s: want e.g. 100Mbps or 10MiBps", q);
	return -EINVAL;
}

/* One "<digits><unit>" step; units must come in the order h, m, s. */
static int duration_step(const char **p, int *last, uint64_t *total)
{
	static const char units[] = "hms";
	static const unsigned mul[] = { 3600, 60, 1 };
	uint64_t n = 0;
	const char *u;
	int digits = 0;

	while (**p >= '0' && **p <= '9' && digits < 9) {
		n = n * 10 + (uint64_t)(**p - '0');
		(*p)++;
		digits++;
	}
	u = **p ? strchr(units, **p) : NULL;
	if (!digits || !u || (int)(u - units) <= *last)
		return -EINVAL;
	*last = (int)(u - units);
	*total += n * mul[*last];
	(*p)++;
	return 0;
}

int core_duration_parse(const char *s, unsigned max_s, unsigned *secs,
			char *err, size_t errlen)
{
	const char *p = s ? s : "";
	uint64_t total = 0;
	int last = -1;
	char q[80];

	core_quote(q, sizeof(q), p, strlen(p));
	if (!*p)
		goto bad;
	while (*p)
		if (duration_step(&p, &last, &total) < 0)
			goto bad;
	if (total > max_s) {
		snprintf(err, errlen, "duration %s: more than %us", q, max_s);
		return -ERANGE;
	}
	*secs = (unsigned)total;
	return 0;
bad:
	snprintf(err, errlen, "bad duration %s: " CORE_DURATION_ERR, q);
	return -EINVAL;
}
