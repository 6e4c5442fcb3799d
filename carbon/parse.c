/* The pure parts of carbon.h: provider kinds, RFC 3339 times and the
 * providers' JSON answers.  They see untrusted bytes (the fuzzers) and do
 * no I/O.  A reason names the field, never quotes the answer: a server
 * may echo what it was sent, and err must never hold the token. */
#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "carbon/carbon.h"
#include "carbon/priv.h"
#include "core/core.h"

/* The deepest answer (a UK region's period's generation mix) nests seven
 * levels; json-c frees recursively, so hostile nesting stops here. */
#define JSON_DEPTH 16
#define UK_PERIOD 1800          /* the UK API's half hour */
#define EMAPS_STEP 3600         /* Electricity Maps' hourly forecast */
#define UK_REGION_MAX 18

static const char *const kinds[] = {
	[CARBON_NONE] = "none",
	[CARBON_EMAPS] = "electricitymaps",
	[CARBON_UKGRID] = "ukgrid",
	[CARBON_FILE] = "file",
};

int carbon_kind_parse(const char *name, enum carbon_kind *out)
{
	for (size_t i = 0; name && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(name, kinds[i])) {
			*out = (enum carbon_kind)i;
			return 0;
		}
	return -EINVAL;
}

const char *carbon_kind_name(enum carbon_kind k)
{
	return (unsigned)k < sizeof(kinds) / sizeof(kinds[0]) ? kinds[k] : "?";
}

bool carbon_zone_ok(const char *s)
{
	size_t n = 0;

	for (; s && s[n]; n++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789_-", s[n]) || n >= CARBON_ZONE_MAX - 1)
			return false;
	return n > 0;
}

/* ---- times ------------------------------------------------------------ */

static int digits(const char **s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*s)[i] < '0' || (*s)[i] > '9')
			return -EINVAL;
		v = v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	*out = v;
	return 0;
}

static int month_days(int y, int m)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : d[m - 1];
}

/* [:ss[.frac]] after hh:mm; the fraction is dropped (seconds suffice). */
static int seconds(const char **s, int *sec)
{
	*sec = 0;
	if (**s != ':')
		return 0;
	(*s)++;
	if (digits(s, 2, sec) < 0)
		return -EINVAL;
	if (**s != '.')
		return 0;
	(*s)++;
	if (**s < '0' || **s > '9')
		return -EINVAL;
	while (**s >= '0' && **s <= '9')
		(*s)++;
	return 0;
}

/* 'Z' or +hh:mm / -hh:mm, as seconds east of UTC. */
static int offset(const char **s, long *east)
{
	int sign = **s == '+' ? 1 : -1, h, m;

	*east = 0;
	if (**s == 'Z' || **s == 'z') {
		(*s)++;
		return 0;
	}
	if (**s != '+' && **s != '-')
		return -EINVAL;
	(*s)++;
	if (digits(s, 2, &h) < 0 || *(*s)++ != ':' || digits(s, 2, &m) < 0 ||
	    h > 23 || m > 59)
		return -EINVAL;
	*east = sign * (h * 3600L + m * 60L);
	return 0;
}

/* yyyy-mm-ddThh:mm */
static int date_time(const char **s, struct tm *tm)
{
	int y, mo, d, h, mi;

	if (digits(s, 4, &y) < 0 || *(*s)++ != '-' || digits(s, 2, &mo) < 0 ||
	    *(*s)++ != '-' || digits(s, 2, &d) < 0 ||
	    (**s != 'T' && **s != 't'))
		return -EINVAL;
	(*s)++;
	if (digits(s, 2, &h) < 0 || *(*s)++ != ':' || digits(s, 2, &mi) < 0)
		return -EINVAL;
	/* Before 1970 no provider has data, and time_t -1 is ambiguous. */
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) ||
	    h > 23 || mi > 59)
		return -EINVAL;
	tm->tm_year = y - 1900;
	tm->tm_mon = mo - 1;
	tm->tm_mday = d;
	tm->tm_hour = h;
	tm->tm_min = mi;
	return 0;
}

int carbon_parse_time(const char *s, time_t *out)
{
	struct tm tm = { 0 };
	long east;
	time_t t;

	if (!s || date_time(&s, &tm) < 0 || seconds(&s, &tm.tm_sec) < 0 ||
	    tm.tm_sec > 60 || offset(&s, &east) < 0 || *s)
		return -EINVAL;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*out = t - east;
	return 0;
}

/* ---- JSON ------------------------------------------------------------- */

/* Exactly one JSON object and nothing after it but blanks. */
static int load(const char *buf, size_t len, json_object **out, char *err,
		size_t errlen)
{
	struct json_tokener *tok;
	enum json_tokener_error e;
	json_object *o;
	size_t end;

	*out = NULL;
	if (len == 0)
		return core_errf(err, errlen, -EINVAL, "empty answer");
	if (len > CARBON_BODY_MAX)
		return core_errf(err, errlen, -EINVAL, "answer over 1 MiB");
	/* json-c would stop at a NUL and take the rest for trailing data
	 * or, inside a string, cut it short. */
	if (memchr(buf, '\0', len))
		return core_errf(err, errlen, -EINVAL, "bad JSON: a NUL byte");
	tok = json_tokener_new_ex(JSON_DEPTH);
	if (!tok)
		return -ENOMEM;
	/* Strict: no single quotes or leading zeros.  json-c still takes
	 * NaN and Infinity, which the range check of number() refuses. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, buf, (int)len);
	e = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	while (o && end < len && strchr(" \t\r\n", buf[end]))
		end++;
	if (!o || e != json_tokener_success || end != len) {
		json_object_put(o);
		return core_errf(err, errlen, -EINVAL, "bad JSON: %s",
				   o ? "trailing data" :
				   e == json_tokener_continue ?
				   "unexpected end of data" :
				   json_tokener_error_desc(e));
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return core_errf(err, errlen, -EINVAL,
				   "bad JSON: expected an object");
	}
	*out = o;
	return 0;
}

/* A field's value, NULL when absent or null: the providers write null
 * for what they do not know. */
static json_object *field(json_object *o, const char *key)
{
	json_object *v = NULL;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* "forecast[3]." before a field of an array's member, "" at the top. */
static const char *dot(const char *pre)
{
	return *pre ? "." : "";
}

static int number(json_object *o, const char *pre, const char *key, int *out,
		  char *err, size_t errlen)
{
	json_object *v = field(o, key);
	double d;

	if (!v)
		return core_errf(err, errlen, -EINVAL, "%s%s%s: missing", pre,
				   dot(pre), key);
	if (json_object_is_type(v, json_type_int))
		d = (double)json_object_get_int64(v);
	else if (json_object_is_type(v, json_type_double))
		d = json_object_get_double(v);
	else
		return core_errf(err, errlen, -EINVAL,
				   "%s%s%s: expected a number", pre, dot(pre),
				   key);
	/* Written so that NaN fails too. */
	if (!(d >= 0 && d <= CARBON_INTENSITY_MAX))
		return core_errf(err, errlen, -EINVAL,
				   "%s%s%s: out of range 0-%d", pre, dot(pre),
				   key, CARBON_INTENSITY_MAX);
	*out = (int)(d + 0.5);  /* d >= 0: rounds half up */
	return 0;
}

/* A time; when absent, 0 for an optional one. */
static int when(json_object *o, const char *pre, const char *key, bool need,
		time_t *out, char *err, size_t errlen)
{
	json_object *v = field(o, key);

	*out = 0;
	if (!v && !need)
		return 0;
	if (!v)
		return core_errf(err, errlen, -EINVAL, "%s%s%s: missing", pre,
				   dot(pre), key);
	if (!json_object_is_type(v, json_type_string) ||
	    carbon_parse_time(json_object_get_string(v), out) < 0)
		return core_errf(err, errlen, -EINVAL,
				   "%s%s%s: expected an RFC 3339 time", pre,
				   dot(pre), key);
	return 0;
}

static int flag(json_object *o, const char *key, bool *out, char *err,
		size_t errlen)
{
	json_object *v = field(o, key);

	*out = false;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return core_errf(err, errlen, -EINVAL,
				   "%s: expected true or false", key);
	*out = json_object_get_boolean(v);
	return 0;
}

static int zone(json_object *o, bool need, char *out, char *err,
		size_t errlen)
{
	json_object *v = field(o, "zone");

	out[0] = '\0';
	if (!v && !need)
		return 0;
	if (!v)
		return core_errf(err, errlen, -EINVAL, "zone: missing");
	if (!json_object_is_type(v, json_type_string) ||
	    !carbon_zone_ok(json_object_get_string(v)))
		return core_errf(err, errlen, -EINVAL, "zone: expected 1 to "
				   "%d letters, digits, '-' or '_'",
				   CARBON_ZONE_MAX - 1);
	snprintf(out, CARBON_ZONE_MAX, "%s", json_object_get_string(v));
	return 0;
}

static int array(json_object *o, const char *key, json_object **out,
		 char *err, size_t errlen)
{
	*out = field(o, key);
	if (!*out)
		return core_errf(err, errlen, -EINVAL, "%s: missing", key);
	if (!json_object_is_type(*out, json_type_array))
		return core_errf(err, errlen, -EINVAL, "%s: expected an array",
				   key);
	return 0;
}

/* Append a point: times must rise, and the point before ends where this
 * one starts when it said no end or a later one (the newer word wins,
 * and the daemon can take the points as a timeline). */
static int add_point(struct carbon_forecast *fc, const char *pre, time_t from,
		     time_t to, int intensity, char *err, size_t errlen)
{
	struct carbon_point *prev = fc->n ? &fc->v[fc->n - 1] : NULL;

	if (prev && from <= prev->from)
		return core_errf(err, errlen, -EINVAL,
				   "%s: not after the point before", pre);
	if (to && to <= from)
		return core_errf(err, errlen, -EINVAL,
				   "%s: ends before it starts", pre);
	if (prev && (prev->to == 0 || prev->to > from))
		prev->to = from;
	fc->v[fc->n++] = (struct carbon_point){ from, to, intensity };
	return 0;
}

/* The last point's end when the answer gave none. */
static void close_last(struct carbon_forecast *fc, time_t step)
{
	if (fc->n && fc->v[fc->n - 1].to == 0)
		fc->v[fc->n - 1].to = fc->v[fc->n - 1].from + step;
}

/* ---- Electricity Maps and the file ------------------------------------ */

static int emaps_reading(json_object *o, bool need_zone,
			 struct carbon_reading *out, char *err, size_t errlen)
{
	time_t updated;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = zone(o, need_zone, out->zone, err, errlen);
	rc = rc ? rc : number(o, "", "carbonIntensity", &out->intensity, err,
			      errlen);
	rc = rc ? rc : when(o, "", "datetime", true, &out->at, err, errlen);
	rc = rc ? rc : when(o, "", "updatedAt", false, &updated, err, errlen);
	rc = rc ? rc : flag(o, "isEstimated", &out->estimated, err, errlen);
	return rc;
}

/* Hourly points of {carbonIntensity, datetime}: each ends where the next
 * starts, the last an hour on.  Only the first CARBON_FORECAST_MAX are
 * read: the answer runs forward from now. */
static int emaps_points(json_object *arr, struct carbon_forecast *fc,
			char *err, size_t errlen)
{
	size_t n = json_object_array_length(arr);
	char pre[48];
	time_t from;
	int ci, rc = 0;

	fc->n = 0;
	for (size_t i = 0; rc == 0 && i < n && fc->n < CARBON_FORECAST_MAX; i++) {
		json_object *p = json_object_array_get_idx(arr, i);

		snprintf(pre, sizeof(pre), "forecast[%zu]", i);
		if (!json_object_is_type(p, json_type_object))
			return core_errf(err, errlen, -EINVAL,
					   "%s: expected an object", pre);
		rc = number(p, pre, "carbonIntensity", &ci, err, errlen);
		rc = rc ? rc : when(p, pre, "datetime", true, &from, err,
				    errlen);
		rc = rc ? rc : add_point(fc, pre, from, 0, ci, err, errlen);
	}
	close_last(fc, EMAPS_STEP);
	return rc;
}

int carbon_parse_emaps_latest(const char *buf, size_t len,
			      struct carbon_reading *out, char *err,
			      size_t errlen)
{
	json_object *o;
	int rc = load(buf, len, &o, err, errlen);

	if (rc == 0)
		rc = emaps_reading(o, true, out, err, errlen);
	json_object_put(o);
	return rc;
}

int carbon_parse_emaps_forecast(const char *buf, size_t len,
				struct carbon_forecast *out, char *err,
				size_t errlen)
{
	char z[CARBON_ZONE_MAX];
	json_object *o, *arr;
	time_t updated;
	int rc = load(buf, len, &o, err, errlen);

	out->n = 0;
	rc = rc ? rc : zone(o, false, z, err, errlen);
	rc = rc ? rc : when(o, "", "updatedAt", false, &updated, err, errlen);
	rc = rc ? rc : array(o, "forecast", &arr, err, errlen);
	rc = rc ? rc : emaps_points(arr, out, err, errlen);
	if (rc < 0)
		out->n = 0;
	json_object_put(o);
	return rc;
}

int carbon_parse_file(const char *buf, size_t len, struct carbon_reading *out,
		      struct carbon_forecast *fc, char *err, size_t errlen)
{
	struct carbon_forecast scratch;
	json_object *o, *arr = NULL;
	int rc = load(buf, len, &o, err, errlen);

	if (!fc)
		fc = &scratch;
	fc->n = 0;
	rc = rc ? rc : emaps_reading(o, false, out, err, errlen);
	if (rc == 0 && field(o, "forecast"))
		rc = array(o, "forecast", &arr, err, errlen);
	if (rc == 0 && arr)
		rc = emaps_points(arr, fc, err, errlen);
	if (rc < 0)
		fc->n = 0;
	json_object_put(o);
	return rc;
}

/* ---- the UK's Carbon Intensity API ------------------------------------ */

/* The periods of an answer.  National: data is the periods.  Regional:
 * data is one region, an array of it (/regional/regionid/N) or the
 * object itself (.../fw24h/regionid/N), and its data holds them. */
static int uk_periods(json_object *root, json_object **periods, int *region,
		      char *err, size_t errlen)
{
	json_object *d = field(root, "data"), *r = NULL, *id;
	int64_t v;

	*region = 0;
	if (!d)
		return core_errf(err, errlen, -EINVAL, "data: missing");
	if (json_object_is_type(d, json_type_object))
		r = d;
	else if (!json_object_is_type(d, json_type_array))
		return core_errf(err, errlen, -EINVAL,
				   "data: expected an array or an object");
	else if (json_object_array_length(d) > 0 &&
		 field(json_object_array_get_idx(d, 0), "regionid"))
		r = json_object_array_get_idx(d, 0);
	if (!r) {
		*periods = d;
		return 0;
	}
	id = field(r, "regionid");
	v = json_object_is_type(id, json_type_int) ? json_object_get_int64(id) : 0;
	if (v < 1 || v > UK_REGION_MAX)
		return core_errf(err, errlen, -EINVAL, "regionid: expected "
				   "a whole number from 1 to %d", UK_REGION_MAX);
	*region = (int)v;
	return array(r, "data", periods, err, errlen);
}

/* The measured value when the API has it, else its forecast. */
static int uk_intensity(json_object *p, const char *pre, int *out,
			bool *estimated, char *err, size_t errlen)
{
	json_object *in = field(p, "intensity");
	char sub[64];
	int rc = 0;

	snprintf(sub, sizeof(sub), "%s%sintensity", pre, dot(pre));
	if (!in || !json_object_is_type(in, json_type_object))
		return core_errf(err, errlen, -EINVAL, "%s: %s", sub,
				   in ? "expected an object" : "missing");
	*estimated = !field(in, "actual");
	if (!*estimated)
		rc = number(in, sub, "actual", out, err, errlen);
	if (rc == 0 && (*estimated || field(in, "forecast")))
		rc = number(in, sub, "forecast", *estimated ? out : &(int){ 0 },
			    err, errlen);
	return rc;
}

static int uk_period(json_object *periods, size_t i, time_t *from, time_t *to,
		     int *intensity, bool *estimated, char *err, size_t errlen)
{
	json_object *p = json_object_array_get_idx(periods, i);
	char pre[32];
	int rc;

	snprintf(pre, sizeof(pre), "data[%zu]", i);
	if (!json_object_is_type(p, json_type_object))
		return core_errf(err, errlen, -EINVAL, "%s: expected an object",
				   pre);
	rc = when(p, pre, "from", true, from, err, errlen);
	rc = rc ? rc : when(p, pre, "to", false, to, err, errlen);
	rc = rc ? rc : uk_intensity(p, pre, intensity, estimated, err, errlen);
	return rc;
}

int carbon_parse_ukgrid(const char *buf, size_t len,
			struct carbon_reading *out, char *err, size_t errlen)
{
	json_object *o, *periods;
	int region, rc = load(buf, len, &o, err, errlen);
	time_t to;

	memset(out, 0, sizeof(*out));
	rc = rc ? rc : uk_periods(o, &periods, &region, err, errlen);
	if (rc == 0 && json_object_array_length(periods) == 0)
		rc = core_errf(err, errlen, -EINVAL, "data: no period");
	/* The API answers the half hour that holds now, alone. */
	rc = rc ? rc : uk_period(periods, 0, &out->at, &to, &out->intensity,
				 &out->estimated, err, errlen);
	if (rc == 0 && region)
		snprintf(out->zone, sizeof(out->zone), "GB-%d", region);
	else if (rc == 0)
		snprintf(out->zone, sizeof(out->zone), "GB");
	json_object_put(o);
	return rc;
}

int carbon_parse_ukgrid_forecast(const char *buf, size_t len,
				 struct carbon_forecast *out, char *err,
				 size_t errlen)
{
	json_object *o, *periods = NULL;
	int region, ci, rc = load(buf, len, &o, err, errlen);
	char pre[32];
	time_t from, to;
	bool est;

	out->n = 0;
	rc = rc ? rc : uk_periods(o, &periods, &region, err, errlen);
	for (size_t i = 0; rc == 0 && i < json_object_array_length(periods) &&
	     out->n < CARBON_FORECAST_MAX; i++) {
		snprintf(pre, sizeof(pre), "data[%zu]", i);
		rc = uk_period(periods, i, &from, &to, &ci, &est, err, errlen);
		rc = rc ? rc : add_point(out, pre, from, to, ci, err, errlen);
	}
	close_last(out, UK_PERIOD);
	if (rc < 0)
		out->n = 0;
	json_object_put(o);
	return rc;
}
