/* carbon: the providers' parsers on the fixtures written from their API
 * documentation and on bad answers, RFC 3339 times, the configuration
 * carbon_open refuses, and carbon_poll against a loopback HTTP server
 * run by this test (a thread answering scripted replies). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "carbon/carbon.h"

#define T0 1796630400   /* 2026-12-07T08:00:00Z, the fixtures' now */
#define TOKEN "Tok-3n_x.SECRET~42"

static char err[512];

/* ---- fixtures --------------------------------------------------------- */

static char *fixture(const char *name, size_t *len)
{
	char path[4096];
	FILE *f;
	char *buf = malloc(1 << 20);
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", CARBON_FIXTURES, name);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int latest(const char *s, struct carbon_reading *r)
{
	err[0] = '\0';
	return carbon_parse_emaps_latest(s, strlen(s), r, err, sizeof(err));
}

static int uk(const char *s, struct carbon_reading *r)
{
	err[0] = '\0';
	return carbon_parse_ukgrid(s, strlen(s), r, err, sizeof(err));
}

static void assert_err(int rc, const char *want)
{
	assert_int_equal(rc, -EINVAL);
	assert_true(err[0] != '\0');
	assert_null(strchr(err, '\n'));
	if (want && !strstr(err, want)) {
		print_error("err \"%s\" lacks \"%s\"\n", err, want);
		fail();
	}
}

/* ---- times ------------------------------------------------------------ */

static void test_time(void **state)
{
	static const struct { const char *s; time_t t; } good[] = {
		{ "2026-12-07T08:00:00.000Z", T0 },
		{ "2026-12-07T08:00Z", T0 },
		{ "2026-12-07T08:00:00Z", T0 },
		{ "2026-12-07T08:00:00.123456789Z", T0 },
		{ "2026-12-07T09:00:00+01:00", T0 },
		{ "2026-12-07T03:30-04:30", T0 },
		{ "2026-12-07t08:00:00z", T0 },
		{ "2026-12-07T08:00:59Z", T0 + 59 },
		{ "2024-02-29T00:00Z", 1709164800 },
		{ "1970-01-01T00:00:00Z", 0 },
	};
	static const char *const bad[] = {
		"", "2026", "2026-12-07", "2026-12-07T08", "2026-12-07T08:00",
		"2026-12-07 08:00Z", "2026-12-07T08:00Z ", " 2026-12-07T08:00Z",
		"2026-02-29T00:00Z", "2026-13-01T00:00Z", "2026-00-01T00:00Z",
		"2026-12-32T00:00Z", "2026-12-07T24:00Z", "2026-12-07T08:60Z",
		"2026-12-07T08:00:61Z", "2026-12-07T08:00:00.Z",
		"2026-12-07T08:00+0100", "2026-12-07T08:00+01",
		"2026-12-07T08:00+24:00", "2026-12-07T08:0Z", "26-12-07T08:00Z",
		"1969-12-31T23:59Z", "+2026-12-07T08:00Z", "2026-12-07T08:00:0Z",
		"2026-1a-07T08:00Z", "2026-12-07T08:00ZZ",
	};
	time_t t;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		t = 1;
		assert_int_equal(carbon_parse_time(good[i].s, &t), 0);
		assert_int_equal(t, good[i].t);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (carbon_parse_time(bad[i], &t) != -EINVAL) {
			print_error("accepted \"%s\"\n", bad[i]);
			fail();
		}
	assert_int_equal(carbon_parse_time(NULL, &t), -EINVAL);
}

static void test_kind(void **state)
{
	enum carbon_kind k;

	assert_int_equal(carbon_kind_parse("electricitymaps", &k), 0);
	assert_int_equal(k, CARBON_EMAPS);
	assert_int_equal(carbon_kind_parse("ukgrid", &k), 0);
	assert_int_equal(k, CARBON_UKGRID);
	assert_int_equal(carbon_kind_parse("file", &k), 0);
	assert_int_equal(k, CARBON_FILE);
	assert_int_equal(carbon_kind_parse("none", &k), 0);
	assert_int_equal(k, CARBON_NONE);
	assert_int_equal(carbon_kind_parse("electricitymap", &k), -EINVAL);
	assert_int_equal(carbon_kind_parse("", &k), -EINVAL);
	assert_int_equal(carbon_kind_parse(NULL, &k), -EINVAL);
	for (k = CARBON_NONE; k <= CARBON_FILE; k++) {
		enum carbon_kind back;

		assert_int_equal(carbon_kind_parse(carbon_kind_name(k), &back), 0);
		assert_int_equal(back, k);
	}
}

/* ---- Electricity Maps ------------------------------------------------- */

static void test_emaps_latest(void **state)
{
	struct carbon_reading r;
	size_t n;
	char *s = fixture("emaps-latest.json", &n);

	assert_int_equal(carbon_parse_emaps_latest(s, n, &r, err, sizeof(err)), 0);
	assert_int_equal(r.intensity, 302);
	assert_int_equal(r.at, T0);
	assert_true(r.estimated);
	assert_string_equal(r.zone, "DE");
	free(s);
	assert_int_equal(latest("{\"zone\":\"US-CAL-CISO\",\"carbonIntensity\":"
				"302.5,\"datetime\":\"2026-12-07T08:00:00Z\"}",
				&r), 0);
	assert_int_equal(r.intensity, 303);
	assert_false(r.estimated);
	assert_string_equal(r.zone, "US-CAL-CISO");
	assert_int_equal(latest("{\"zone\":\"DE\",\"carbonIntensity\":0,"
				"\"datetime\":\"2026-12-07T08:00Z\","
				"\"isEstimated\":null,\"updatedAt\":null}", &r), 0);
	assert_int_equal(r.intensity, 0);
	assert_int_equal(latest("{\"zone\":\"DE\",\"carbonIntensity\":100000,"
				"\"datetime\":\"2026-12-07T08:00Z\"}", &r), 0);
	assert_int_equal(r.intensity, CARBON_INTENSITY_MAX);
}

#define OK_TAIL ",\"datetime\":\"2026-12-07T08:00Z\"}"

static void test_emaps_latest_bad(void **state)
{
	static const struct { const char *body, *err; } bad[] = {
		{ "", "empty answer" },
		{ "garbage", "bad JSON" },
		{ "{\"zone\":\"DE\"", "bad JSON: unexpected end of data" },
		{ "[302]", "bad JSON: expected an object" },
		{ "302", "bad JSON" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":302" OK_TAIL " x",
		  "bad JSON" },
		/* json-c may take these as numbers: the range refuses them. */
		{ "{\"zone\":\"DE\",\"carbonIntensity\":NaN" OK_TAIL, NULL },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":Infinity" OK_TAIL,
		  NULL },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":-Infinity" OK_TAIL,
		  NULL },
		{ "{'zone':'DE'}", "bad JSON" },
		{ "{\"carbonIntensity\":302" OK_TAIL, "zone: missing" },
		{ "{\"zone\":\"D E\",\"carbonIntensity\":302" OK_TAIL,
		  "zone: expected" },
		{ "{\"zone\":7,\"carbonIntensity\":302" OK_TAIL, "zone: expected" },
		{ "{\"zone\":\"\",\"carbonIntensity\":302" OK_TAIL,
		  "zone: expected" },
		{ "{\"zone\":\"DE\"" OK_TAIL, "carbonIntensity: missing" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":null" OK_TAIL,
		  "carbonIntensity: missing" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":\"302\"" OK_TAIL,
		  "carbonIntensity: expected a number" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":true" OK_TAIL,
		  "carbonIntensity: expected a number" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":[302]" OK_TAIL,
		  "carbonIntensity: expected a number" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":-1" OK_TAIL,
		  "carbonIntensity: out of range" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":-0.6" OK_TAIL,
		  "carbonIntensity: out of range" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":100000.1" OK_TAIL,
		  "carbonIntensity: out of range" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":9223372036854775807"
		  OK_TAIL, "carbonIntensity: out of range" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":-9223372036854775808"
		  OK_TAIL, "carbonIntensity: out of range" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":"
		  "99999999999999999999999999" OK_TAIL, NULL },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":1e400" OK_TAIL, NULL },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":1e300" OK_TAIL,
		  "carbonIntensity: out of range" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":302}",
		  "datetime: missing" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":302,\"datetime\":7}",
		  "datetime: expected an RFC 3339 time" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":302,\"datetime\":"
		  "\"yesterday\"}", "datetime: expected an RFC 3339 time" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":302,\"datetime\":"
		  "\"2026-12-07T08:00Z\",\"updatedAt\":\"now\"}",
		  "updatedAt: expected an RFC 3339 time" },
		{ "{\"zone\":\"DE\",\"carbonIntensity\":302,\"datetime\":"
		  "\"2026-12-07T08:00Z\",\"isEstimated\":\"yes\"}",
		  "isEstimated: expected true or false" },
	};
	struct carbon_reading r;
	size_t n;
	char *s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = latest(bad[i].body, &r);

		if (rc != -EINVAL)
			print_error("accepted %s\n", bad[i].body);
		assert_err(rc, bad[i].err);
	}
	s = fixture("bad-emaps-null.json", &n);
	assert_err(carbon_parse_emaps_latest(s, n, &r, err, sizeof(err)),
		   "carbonIntensity: missing");
	free(s);
	/* A NUL inside the length. */
	assert_err(carbon_parse_emaps_latest("{\"zone\":\"DE\"}\0{}", 15, &r,
					     err, sizeof(err)), "NUL");
}

/* Nesting deeper than any answer is refused before json-c recurses. */
static void test_deep(void **state)
{
	struct carbon_reading r;
	struct carbon_forecast fc;
	static char s[2 * 100000 + 64];
	size_t depth = 100000, n = 0;

	n += (size_t)sprintf(s, "{\"zone\":\"DE\",\"x\":");
	memset(s + n, '[', depth);
	n += depth;
	memset(s + n, ']', depth);
	n += depth;
	s[n++] = '}';
	err[0] = '\0';
	assert_err(carbon_parse_emaps_latest(s, n, &r, err, sizeof(err)),
		   "too deep");
	assert_err(carbon_parse_ukgrid_forecast(s, n, &fc, err, sizeof(err)),
		   "too deep");
	assert_err(carbon_parse_file(s, n, &r, &fc, err, sizeof(err)),
		   "too deep");
	/* Seven levels, as a UK region's generation mix nests, are fine. */
	assert_int_equal(latest("{\"zone\":\"DE\",\"carbonIntensity\":1,"
				"\"datetime\":\"2026-12-07T08:00Z\",\"x\":"
				"[[[[[[{}]]]]]]}", &r), 0);
}

static void test_emaps_forecast(void **state)
{
	struct carbon_forecast fc;
	size_t n;
	char *s = fixture("emaps-forecast.json", &n);

	assert_int_equal(carbon_parse_emaps_forecast(s, n, &fc, err,
						     sizeof(err)), 0);
	free(s);
	assert_int_equal(fc.n, 24);
	assert_int_equal(fc.v[0].from, T0);
	assert_int_equal(fc.v[0].to, T0 + 3600);
	assert_int_equal(fc.v[0].intensity, 331);
	for (size_t i = 1; i < fc.n; i++) {
		assert_int_equal(fc.v[i].from, fc.v[i - 1].to);
		assert_true(fc.v[i].to > fc.v[i].from);
	}
	assert_int_equal(fc.v[23].from, T0 + 23 * 3600);
	assert_int_equal(fc.v[23].to, T0 + 24 * 3600);
	assert_int_equal(fc.v[23].intensity, 271);
}

static int emaps_fc(const char *s, struct carbon_forecast *fc)
{
	err[0] = '\0';
	fc->n = 7;
	return carbon_parse_emaps_forecast(s, strlen(s), fc, err, sizeof(err));
}

#define PT(ci, t) "{\"carbonIntensity\":" #ci ",\"datetime\":\"" t "\"}"

static void test_emaps_forecast_bad(void **state)
{
	static const struct { const char *body, *err; } bad[] = {
		{ "{}", "forecast: missing" },
		{ "{\"forecast\":{}}", "forecast: expected an array" },
		{ "{\"forecast\":[7]}", "forecast[0]: expected an object" },
		{ "{\"forecast\":[" PT(1, "2026-12-07T08:00Z") ","
		  PT(2, "2026-12-07T08:00Z") "]}",
		  "forecast[1]: not after the point before" },
		{ "{\"forecast\":[" PT(1, "2026-12-07T09:00Z") ","
		  PT(2, "2026-12-07T08:00Z") "]}",
		  "forecast[1]: not after the point before" },
		{ "{\"forecast\":[" PT(1, "2026-12-07T08:00Z") ","
		  PT(-3, "2026-12-07T09:00Z") "]}",
		  "forecast[1].carbonIntensity: out of range" },
		{ "{\"forecast\":[{\"carbonIntensity\":1}]}",
		  "forecast[0].datetime: missing" },
		{ "{\"forecast\":[{\"datetime\":\"2026-12-07T08:00Z\"}]}",
		  "forecast[0].carbonIntensity: missing" },
		{ "{\"zone\":[],\"forecast\":[]}", "zone: expected" },
		{ "{\"updatedAt\":\"x\",\"forecast\":[]}", "updatedAt" },
	};
	struct carbon_forecast fc;
	char *s;
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_err(emaps_fc(bad[i].body, &fc), bad[i].err);
		assert_int_equal(fc.n, 0);
	}
	assert_int_equal(emaps_fc("{\"zone\":\"DE\",\"forecast\":[]}", &fc), 0);
	assert_int_equal(fc.n, 0);
	/* More points than kept: the first CARBON_FORECAST_MAX. */
	s = malloc(200 * 80);
	assert_non_null(s);
	n = (size_t)sprintf(s, "{\"forecast\":[");
	for (int i = 0; i < 200; i++) {
		time_t t = T0 + i * 3600;
		char ts[32];

		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
		n += (size_t)sprintf(s + n, "%s{\"carbonIntensity\":%d,"
				     "\"datetime\":\"%s\"}", i ? "," : "",
				     100 + i, ts);
	}
	sprintf(s + n, "]}");
	assert_int_equal(emaps_fc(s, &fc), 0);
	assert_int_equal(fc.n, CARBON_FORECAST_MAX);
	assert_int_equal(fc.v[CARBON_FORECAST_MAX - 1].intensity,
			 100 + CARBON_FORECAST_MAX - 1);
	assert_int_equal(fc.v[CARBON_FORECAST_MAX - 1].to,
			 T0 + CARBON_FORECAST_MAX * 3600);
	free(s);
}

/* ---- the UK API ------------------------------------------------------- */

static void test_ukgrid(void **state)
{
	struct carbon_reading r;
	size_t n;
	char *s = fixture("ukgrid-intensity.json", &n);

	assert_int_equal(carbon_parse_ukgrid(s, n, &r, err, sizeof(err)), 0);
	free(s);
	assert_int_equal(r.intensity, 263);
	assert_false(r.estimated);
	assert_int_equal(r.at, T0);
	assert_string_equal(r.zone, "GB");

	s = fixture("ukgrid-regional.json", &n);
	assert_int_equal(carbon_parse_ukgrid(s, n, &r, err, sizeof(err)), 0);
	free(s);
	assert_int_equal(r.intensity, 219);
	assert_true(r.estimated);
	assert_int_equal(r.at, T0);
	assert_string_equal(r.zone, "GB-13");

	/* actual is null until the half hour is over. */
	assert_int_equal(uk("{\"data\":[{\"from\":\"2026-12-07T08:00Z\",\"to\":"
			    "\"2026-12-07T08:30Z\",\"intensity\":{\"forecast\":"
			    "266,\"actual\":null,\"index\":\"moderate\"}}]}",
			    &r), 0);
	assert_int_equal(r.intensity, 266);
	assert_true(r.estimated);
	/* The regional fw24h shape (data an object) reads the same. */
	assert_int_equal(uk("{\"data\":{\"regionid\":1,\"data\":[{\"from\":"
			    "\"2026-12-07T08:00Z\",\"intensity\":{\"forecast\":"
			    "40}}]}}", &r), 0);
	assert_string_equal(r.zone, "GB-1");
	assert_int_equal(r.intensity, 40);
}

#define UKP(in) "{\"data\":[{\"from\":\"2026-12-07T08:00Z\",\"to\":" \
	"\"2026-12-07T08:30Z\",\"intensity\":" in "}]}"

static void test_ukgrid_bad(void **state)
{
	static const struct { const char *body, *err; } bad[] = {
		{ "{}", "data: missing" },
		{ "{\"data\":null}", "data: missing" },
		{ "{\"data\":\"x\"}", "data: expected an array or an object" },
		{ "{\"data\":[]}", "data: no period" },
		{ "{\"data\":[7]}", "data[0]: expected an object" },
		{ "{\"data\":[{\"to\":\"2026-12-07T08:30Z\",\"intensity\":"
		  "{\"forecast\":1}}]}", "data[0].from: missing" },
		{ "{\"data\":[{\"from\":\"2026-12-07T08:00Z\"}]}",
		  "data[0].intensity: missing" },
		{ UKP("7"), "data[0].intensity: expected an object" },
		{ UKP("{}"), "data[0].intensity.forecast: missing" },
		{ UKP("{\"forecast\":null,\"actual\":null}"),
		  "data[0].intensity.forecast: missing" },
		{ UKP("{\"forecast\":1,\"actual\":\"2\"}"),
		  "data[0].intensity.actual: expected a number" },
		{ UKP("{\"forecast\":-5,\"actual\":2}"),
		  "data[0].intensity.forecast: out of range" },
		{ UKP("{\"forecast\":1e9}"),
		  "data[0].intensity.forecast: out of range" },
		{ "{\"data\":[{\"from\":\"2026-12-07T08:30Z\",\"to\":"
		  "\"2026-12-07T08:00Z\",\"intensity\":{\"forecast\":1}}]}",
		  NULL },
		{ "{\"data\":[{\"regionid\":99,\"data\":[]}]}", "regionid" },
		{ "{\"data\":[{\"regionid\":\"13\",\"data\":[]}]}", "regionid" },
		{ "{\"data\":[{\"regionid\":13}]}", "data: missing" },
		{ "{\"data\":[{\"regionid\":13,\"data\":[]}]}", "data: no period" },
	};
	struct carbon_reading r;
	size_t n;
	char *s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = uk(bad[i].body, &r);

		/* A period that ends before it starts is the forecast's
		 * business; the reading keeps only from. */
		if (!bad[i].err) {
			assert_int_equal(rc, 0);
			continue;
		}
		if (rc != -EINVAL)
			print_error("accepted %s\n", bad[i].body);
		assert_err(rc, bad[i].err);
	}
	s = fixture("bad-ukgrid-string.json", &n);
	assert_err(carbon_parse_ukgrid(s, n, &r, err, sizeof(err)),
		   "data[0].intensity.forecast: expected a number");
	free(s);
}

static void test_ukgrid_forecast(void **state)
{
	static const char *const names[] = { "ukgrid-fw24h.json",
					     "ukgrid-regional-fw24h.json" };
	struct carbon_forecast fc;
	size_t n;
	char *s;

	for (int k = 0; k < 2; k++) {
		s = fixture(names[k], &n);
		assert_int_equal(carbon_parse_ukgrid_forecast(s, n, &fc, err,
							      sizeof(err)), 0);
		free(s);
		assert_int_equal(fc.n, 48);
		assert_int_equal(fc.v[0].from, T0);
		for (size_t i = 0; i < fc.n; i++) {
			assert_int_equal(fc.v[i].to, fc.v[i].from + 1800);
			assert_int_equal(fc.v[i].from, T0 + (time_t)i * 1800);
		}
	}
	assert_int_equal(fc.v[0].intensity, 175);
	/* The regional current answer is a forecast of one period. */
	s = fixture("ukgrid-regional.json", &n);
	assert_int_equal(carbon_parse_ukgrid_forecast(s, n, &fc, err,
						      sizeof(err)), 0);
	free(s);
	assert_int_equal(fc.n, 1);
	/* Without to: the next from, the last a half hour on. */
	s = "{\"data\":[{\"from\":\"2026-12-07T08:00Z\",\"intensity\":"
	    "{\"forecast\":1}},{\"from\":\"2026-12-07T09:00Z\",\"intensity\":"
	    "{\"forecast\":2}}]}";
	assert_int_equal(carbon_parse_ukgrid_forecast(s, strlen(s), &fc, err,
						      sizeof(err)), 0);
	assert_int_equal(fc.n, 2);
	assert_int_equal(fc.v[0].to, T0 + 3600);
	assert_int_equal(fc.v[1].to, T0 + 3600 + 1800);
	/* Overlapping periods: the earlier one ends where the later starts. */
	s = "{\"data\":[{\"from\":\"2026-12-07T08:00Z\",\"to\":"
	    "\"2026-12-07T10:00Z\",\"intensity\":{\"forecast\":1}},"
	    "{\"from\":\"2026-12-07T08:30Z\",\"intensity\":{\"forecast\":2}}]}";
	assert_int_equal(carbon_parse_ukgrid_forecast(s, strlen(s), &fc, err,
						      sizeof(err)), 0);
	assert_int_equal(fc.n, 2);
	assert_int_equal(fc.v[0].to, T0 + 1800);
	assert_int_equal(fc.v[1].to, T0 + 3600);
	s = "{\"data\":[{\"from\":\"2026-12-07T08:30Z\",\"to\":"
	    "\"2026-12-07T08:00Z\",\"intensity\":{\"forecast\":1}}]}";
	assert_err(carbon_parse_ukgrid_forecast(s, strlen(s), &fc, err,
						sizeof(err)),
		   "data[0]: ends before it starts");
	assert_int_equal(fc.n, 0);
	s = "{\"data\":[{\"from\":\"2026-12-07T08:30Z\",\"intensity\":"
	    "{\"forecast\":1}},{\"from\":\"2026-12-07T08:00Z\",\"intensity\":"
	    "{\"forecast\":1}}]}";
	assert_err(carbon_parse_ukgrid_forecast(s, strlen(s), &fc, err,
						sizeof(err)),
		   "data[1]: not after the point before");
}

/* ---- the file --------------------------------------------------------- */

static void test_file(void **state)
{
	struct carbon_reading r;
	struct carbon_forecast fc;
	size_t n;
	char *s = fixture("file.json", &n);
	const char *t;

	assert_int_equal(carbon_parse_file(s, n, &r, &fc, err, sizeof(err)), 0);
	assert_int_equal(r.intensity, 121);
	assert_string_equal(r.zone, "lab-1");
	assert_int_equal(r.at, T0);
	assert_false(r.estimated);
	assert_int_equal(fc.n, 3);
	assert_int_equal(fc.v[0].from, T0 + 3600);
	assert_int_equal(fc.v[0].to, T0 + 7200);
	assert_int_equal(fc.v[1].intensity, 95);
	assert_int_equal(fc.v[2].from, T0 + 3 * 3600);
	assert_int_equal(fc.v[2].to, T0 + 4 * 3600);
	assert_int_equal(carbon_parse_file(s, n, &r, NULL, err, sizeof(err)), 0);
	free(s);

	t = "{\"carbonIntensity\":55,\"datetime\":\"2026-12-07T08:00Z\"}\n";
	fc.n = 3;
	assert_int_equal(carbon_parse_file(t, strlen(t), &r, &fc, err,
					   sizeof(err)), 0);
	assert_string_equal(r.zone, "");
	assert_int_equal(r.intensity, 55);
	assert_int_equal(fc.n, 0);
	t = "{\"carbonIntensity\":55,\"datetime\":\"2026-12-07T08:00Z\","
	    "\"forecast\":null}";
	assert_int_equal(carbon_parse_file(t, strlen(t), &r, &fc, err,
					   sizeof(err)), 0);
	t = "{\"carbonIntensity\":55,\"datetime\":\"2026-12-07T08:00Z\","
	    "\"forecast\":5}";
	assert_err(carbon_parse_file(t, strlen(t), &r, &fc, err, sizeof(err)),
		   "forecast: expected an array");
	t = "{\"carbonIntensity\":55,\"datetime\":\"2026-12-07T08:00Z\","
	    "\"forecast\":[{\"carbonIntensity\":1}]}";
	assert_err(carbon_parse_file(t, strlen(t), &r, &fc, err, sizeof(err)),
		   "forecast[0].datetime: missing");
	assert_int_equal(fc.n, 0);
	t = "{\"zone\":\"a/b\",\"carbonIntensity\":55,\"datetime\":"
	    "\"2026-12-07T08:00Z\"}";
	assert_err(carbon_parse_file(t, strlen(t), &r, &fc, err, sizeof(err)),
		   "zone: expected");
	t = "{\"carbonIntensity\":100001,\"datetime\":\"2026-12-07T08:00Z\"}";
	assert_err(carbon_parse_file(t, strlen(t), &r, &fc, err, sizeof(err)),
		   "carbonIntensity: out of range");
	assert_err(carbon_parse_file("not json", 8, &r, &fc, err, sizeof(err)),
		   "bad JSON");
}

/* ---- configuration ---------------------------------------------------- */

static char tmp[64];

static void put(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static char *at(const char *name)
{
	static char bufs[4][256];
	static int i;
	char *p = bufs[i++ % 4];

	snprintf(p, 256, "%s/%s", tmp, name);
	return p;
}

static int setup_dir(void **state)
{
	snprintf(tmp, sizeof(tmp), "/tmp/test_carbon.XXXXXX");
	assert_non_null(mkdtemp(tmp));
	chmod(tmp, 0755);
	put(at("token"), TOKEN "\n", 0600);
	put(at("file.json"), "{\"carbonIntensity\":42,\"datetime\":"
	    "\"2026-12-07T08:00Z\",\"forecast\":[{\"carbonIntensity\":40,"
	    "\"datetime\":\"2026-12-07T09:00Z\"}]}", 0644);
	assert_int_equal(mkdir(at("dir"), 0755), 0);
	assert_int_equal(mkdir(at("open"), 0755), 0);
	assert_int_equal(chmod(at("open"), 0777), 0);
	put(at("open/token"), TOKEN "\n", 0600);
	put(at("open/file.json"), "{}", 0644);
	return 0;
}

static int teardown_dir(void **state)
{
	static const char *const names[] = {
		"open/token", "open/file.json", "open", "token", "file.json",
		"badtoken", "token666", "bigtoken", "emptytoken", "dir",
	};

	/* remove(3) takes the empty folders too. */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		remove(at(names[i]));
	rmdir(tmp);
	return 0;
}

static void assert_no_token(void)
{
	if (strstr(err, TOKEN) || strstr(err, "SECRET")) {
		print_error("err holds the token: %s\n", err);
		fail();
	}
}

static int open_cfg(const struct carbon_cfg *cfg, struct carbon **c)
{
	err[0] = '\0';
	*c = NULL;
	return carbon_open(cfg, c, err, sizeof(err));
}

static void refused(const struct carbon_cfg *cfg, int want, const char *msg)
{
	struct carbon *c;
	int rc = open_cfg(cfg, &c);

	if (rc != want)
		print_error("rc %d, err \"%s\"\n", rc, err);
	assert_int_equal(rc, want);
	assert_null(c);
	assert_true(err[0] != '\0');
	assert_no_token();
	if (msg && !strstr(err, msg)) {
		print_error("err \"%s\" lacks \"%s\"\n", err, msg);
		fail();
	}
}

static void test_open(void **state)
{
	struct carbon_cfg em = { .kind = CARBON_EMAPS, .zone = "DE",
				 .token_file = at("token") };
	struct carbon_cfg ukc = { .kind = CARBON_UKGRID };
	struct carbon_cfg fc = { .kind = CARBON_FILE, .file = at("file.json") };
	struct carbon *c;

	assert_int_equal(open_cfg(&em, &c), 0);
	assert_int_equal(carbon_kind_of(c), CARBON_EMAPS);
	assert_string_equal(carbon_zone(c), "DE");
	carbon_close(c);
	em.url = "http://127.0.0.1:8080/";
	assert_int_equal(open_cfg(&em, &c), 0);
	carbon_close(c);
	em.url = "https://[::1]:8443";
	assert_int_equal(open_cfg(&em, &c), 0);
	carbon_close(c);
	assert_int_equal(open_cfg(&ukc, &c), 0);
	assert_string_equal(carbon_zone(c), "GB");
	carbon_close(c);
	ukc.zone = "GB-17";
	assert_int_equal(open_cfg(&ukc, &c), 0);
	assert_string_equal(carbon_zone(c), "GB-17");
	carbon_close(c);
	assert_int_equal(open_cfg(&fc, &c), 0);
	assert_string_equal(carbon_zone(c), "file");
	assert_int_equal(carbon_kind_of(c), CARBON_FILE);
	carbon_close(c);
	fc.zone = "rack-7";
	assert_int_equal(open_cfg(&fc, &c), 0);
	assert_string_equal(carbon_zone(c), "rack-7");
	carbon_close(c);
}

static void test_open_refused(void **state)
{
	static const char *const zones[] = {
		NULL, "", "D E", "DE/x", "DE?x=1", "DE&a=b",
		"0123456789012345678901234567890123456789012345678901234567890123",
	};
	static const char *const ukzones[] = {
		"GB-0", "GB-18", "GB-013", "GB-x", "GB-", "FR", "gb", "GB-1x",
		"GB-99999999999999999999",
	};
	static const char *const urls[] = {
		"http://127.0.0.1:1/v3", "http://127.0.0.1:1/?x=1",
		"http://127.0.0.1:1?x=1", "http://u:p@127.0.0.1:1",
		"http://u@127.0.0.1", "ftp://127.0.0.1", "file:///etc/passwd",
		"http://127.0.0.1/#frag", "not a url", "127.0.0.1:8080",
		"gopher://127.0.0.1", "http://", "http://h/x?y#z",
	};
	struct carbon_cfg em = { .kind = CARBON_EMAPS, .zone = "DE",
				 .token_file = at("token") };
	struct carbon_cfg ukc = { .kind = CARBON_UKGRID };
	struct carbon_cfg fc = { .kind = CARBON_FILE };
	char big[600];

	refused(NULL, -EINVAL, "no carbon provider");
	refused(&(struct carbon_cfg){ .kind = CARBON_NONE }, -EINVAL, NULL);
	refused(&(struct carbon_cfg){ .kind = 42 }, -EINVAL, NULL);
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		em.zone = zones[i];
		refused(&em, -EINVAL, "zone");
	}
	em.zone = "DE";
	for (size_t i = 0; i < sizeof(ukzones) / sizeof(ukzones[0]); i++) {
		ukc.zone = ukzones[i];
		refused(&ukc, -EINVAL, "zone: expected GB or GB-N");
	}
	ukc.zone = NULL;
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		em.url = ukc.url = urls[i];
		refused(&em, -EINVAL, "url");
		refused(&ukc, -EINVAL, "url");
	}
	em.url = NULL;
	em.timeout_s = 601;
	refused(&em, -EINVAL, "timeout");
	em.timeout_s = 0;

	em.token_file = NULL;
	refused(&em, -EINVAL, "token file");
	em.token_file = at("missing");
	refused(&em, -ENOENT, "token file");
	em.token_file = at("open/token");
	refused(&em, -EPERM, "everyone");
	put(at("token666"), TOKEN, 0666);
	em.token_file = at("token666");
	refused(&em, -EPERM, NULL);
	put(at("badtoken"), "SECRET with blank\n", 0600);
	em.token_file = at("badtoken");
	refused(&em, -EINVAL, "printable");
	put(at("badtoken"), "SECRET\nX-Other: header\n", 0600);
	refused(&em, -EINVAL, "printable");
	put(at("badtoken"), "SECRET\001\n", 0600);
	refused(&em, -EINVAL, "printable");
	put(at("emptytoken"), "\n", 0600);
	em.token_file = at("emptytoken");
	refused(&em, -EINVAL, "printable");
	memset(big, 'S', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put(at("bigtoken"), big, 0600);
	em.token_file = at("bigtoken");
	refused(&em, -EINVAL, NULL);
	em.token_file = at("dir");
	refused(&em, -EINVAL, "not a regular file");

	refused(&fc, -EINVAL, "file");
	fc.file = at("missing.json");
	refused(&fc, -ENOENT, "file");
	fc.file = at("open/file.json");
	refused(&fc, -EPERM, "everyone");
	fc.file = at("file.json");
	fc.zone = "a b";
	refused(&fc, -EINVAL, "zone");
}

/* ---- a loopback HTTP server ------------------------------------------- */

enum mode { M_REPLY, M_HANG, M_BIG_LENGTH, M_BIG_STREAM };

struct reply {
	enum mode mode;
	int status;
	const char *headers;    /* extra lines, each ending \r\n */
	const char *body;
};

static struct {
	int fd, port;
	pthread_t thread;
	pthread_mutex_t lock;
	volatile bool stop;
	struct reply now, fc;   /* by path: a forecast's or the reading's */
	char req[4][4096];      /* the requests seen, their heads */
	int nreq;
} srv = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void send_big(int fd, bool length)
{
	char head[256], chunk[65536];
	size_t total = 3u << 20;

	snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: "
		 "application/json\r\n%s\r\n", length ?
		 "Content-Length: 3145728\r\n" : "Connection: close\r\n");
	send_all(fd, head, strlen(head));
	memset(chunk, ' ', sizeof(chunk));
	for (size_t sent = 0; sent < total; sent += sizeof(chunk))
		if (send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL) <= 0)
			return;
}

static void answer(int fd, const struct reply *r)
{
	char head[1024];
	char buf[256];

	if (r->mode == M_HANG) {
		/* Until the client gives up. */
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		return;
	}
	if (r->mode != M_REPLY) {
		send_big(fd, r->mode == M_BIG_LENGTH);
		return;
	}
	snprintf(head, sizeof(head), "HTTP/1.1 %d Scripted\r\nContent-Type: "
		 "application/json\r\nContent-Length: %zu\r\n%sConnection: "
		 "close\r\n\r\n", r->status, strlen(r->body),
		 r->headers ? r->headers : "");
	send_all(fd, head, strlen(head));
	send_all(fd, r->body, strlen(r->body));
}

static void serve_one(int fd)
{
	char req[4096];
	size_t n = 0;
	ssize_t r;
	struct reply rep;

	while (n < sizeof(req) - 1 &&
	       (r = read(fd, req + n, sizeof(req) - 1 - n)) > 0) {
		n += (size_t)r;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	req[n] = '\0';
	pthread_mutex_lock(&srv.lock);
	if (srv.nreq < 4)
		snprintf(srv.req[srv.nreq], sizeof(srv.req[0]), "%s", req);
	srv.nreq++;
	rep = strstr(req, "forecast") || strstr(req, "fw24h") ? srv.fc : srv.now;
	pthread_mutex_unlock(&srv.lock);
	answer(fd, &rep);
}

static void *server(void *arg)
{
	struct pollfd p = { .fd = srv.fd, .events = POLLIN };

	while (!srv.stop) {
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(srv.fd, NULL, NULL);
		if (fd < 0)
			continue;
		serve_one(fd);
		close(fd);
	}
	return NULL;
}

static int setup_server(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);

	setup_dir(state);
	/* A proxy from the environment would be asked instead. */
	setenv("NO_PROXY", "*", 1);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(srv.fd >= 0);
	assert_int_equal(bind(srv.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(srv.fd, 16), 0);
	assert_int_equal(getsockname(srv.fd, (struct sockaddr *)&sa, &len), 0);
	srv.port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&srv.thread, NULL, server, NULL), 0);
	return 0;
}

static int teardown_server(void **state)
{
	srv.stop = true;
	pthread_join(srv.thread, NULL);
	close(srv.fd);
	return teardown_dir(state);
}

static void script(struct reply now, struct reply fc)
{
	pthread_mutex_lock(&srv.lock);
	srv.now = now;
	srv.fc = fc;
	srv.nreq = 0;
	memset(srv.req, 0, sizeof(srv.req));
	pthread_mutex_unlock(&srv.lock);
}

static struct carbon *open_local(enum carbon_kind kind, const char *zone,
				 unsigned timeout_s)
{
	char url[64];
	struct carbon_cfg cfg = { .kind = kind, .zone = zone, .url = url,
				  .token_file = at("token"),
				  .timeout_s = timeout_s };
	struct carbon *c;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
	assert_int_equal(open_cfg(&cfg, &c), 0);
	return c;
}

static int poll_once(struct carbon *c, bool fc, struct carbon_poll *out)
{
	int rc;

	memset(err, 'x', sizeof(err) - 1);
	err[sizeof(err) - 1] = '\0';
	rc = carbon_poll(c, fc, out, err, sizeof(err));
	assert_no_token();
	return rc;
}

static void assert_request(int i, const char *line, bool token)
{
	pthread_mutex_lock(&srv.lock);
	if (strncmp(srv.req[i], line, strlen(line))) {
		print_error("request %d: %.200s\n", i, srv.req[i]);
		fail();
	}
	assert_true(!!strstr(srv.req[i], "\r\nauth-token: " TOKEN "\r\n") ==
		    token);
	assert_non_null(strstr(srv.req[i], "\r\nAccept: application/json\r\n"));
	pthread_mutex_unlock(&srv.lock);
}

static const char *body_of(const char *name)
{
	static char *bodies[8];
	static const char *names[8];
	size_t n;

	for (int i = 0; i < 8; i++) {
		if (names[i] && !strcmp(names[i], name))
			return bodies[i];
		if (!names[i]) {
			names[i] = name;
			bodies[i] = fixture(name, &n);
			return bodies[i];
		}
	}
	fail();
	return NULL;
}

#define OK(name) ((struct reply){ M_REPLY, 200, NULL, body_of(name) })
#define STATUS(code, hdr) ((struct reply){ M_REPLY, code, hdr, "{}" })

static void test_poll_emaps(void **state)
{
	struct carbon *c = open_local(CARBON_EMAPS, "DE", 0);
	struct carbon_poll p;

	script(OK("emaps-latest.json"), OK("emaps-forecast.json"));
	assert_int_equal(poll_once(c, false, &p), 0);
	assert_string_equal(err, "");
	assert_int_equal(p.now.intensity, 302);
	assert_string_equal(p.now.zone, "DE");
	assert_int_equal(p.http_status, 200);
	assert_int_equal(p.fc.n, 0);
	assert_int_equal(srv.nreq, 1);
	assert_request(0, "GET /v3/carbon-intensity/latest?zone=DE HTTP/1.1\r\n",
		       true);

	script(OK("emaps-latest.json"), OK("emaps-forecast.json"));
	assert_int_equal(poll_once(c, true, &p), 0);
	assert_string_equal(err, "");
	assert_int_equal(p.fc.n, 24);
	assert_int_equal(srv.nreq, 2);
	assert_request(1, "GET /v3/carbon-intensity/forecast?zone=DE HTTP/1.1"
		       "\r\n", true);

	/* A forecast that fails leaves fc empty and says why. */
	script(OK("emaps-latest.json"), STATUS(403, NULL));
	assert_int_equal(poll_once(c, true, &p), 0);
	assert_int_equal(p.now.intensity, 302);
	assert_int_equal(p.fc.n, 0);
	assert_int_equal(p.http_status, 403);
	assert_non_null(strstr(err, "/v3/carbon-intensity/forecast"));
	script(OK("emaps-latest.json"), OK("ukgrid-intensity.json"));
	assert_int_equal(poll_once(c, true, &p), 0);
	assert_int_equal(p.fc.n, 0);
	assert_non_null(strstr(err, "forecast: missing"));

	/* The token is read again each round. */
	put(at("token"), "ROTATED\n", 0600);
	script(OK("emaps-latest.json"), OK("emaps-forecast.json"));
	assert_int_equal(poll_once(c, false, &p), 0);
	assert_non_null(strstr(srv.req[0], "\r\nauth-token: ROTATED\r\n"));
	put(at("token"), "bad token\n", 0600);
	script(OK("emaps-latest.json"), OK("emaps-forecast.json"));
	assert_int_equal(poll_once(c, false, &p), -EINVAL);
	assert_int_equal(srv.nreq, 0);
	put(at("token"), TOKEN "\n", 0600);
	carbon_close(c);
}

static void test_poll_status(void **state)
{
	static const struct {
		struct reply r;
		int rc;
		const char *err;
	} cases[] = {
		{ STATUS(401, NULL), -EACCES, "HTTP 401" },
		{ STATUS(403, NULL), -EACCES, "HTTP 403" },
		{ STATUS(429, "Retry-After: 7\r\n"), -EAGAIN, "HTTP 429" },
		{ STATUS(500, NULL), -EIO, "HTTP 500" },
		{ STATUS(503, "Retry-After: 7\r\n"), -EIO, "HTTP 503" },
		{ STATUS(404, NULL), -EIO, "HTTP 404" },
		{ STATUS(204, NULL), -EIO, "HTTP 204" },
		{ STATUS(302, "Location: http://127.0.0.1:1/v3/carbon-intensity/"
			 "latest?zone=DE\r\n"), -EIO, "redirects are not followed" },
		{ { M_REPLY, 200, NULL, "<html>garbage</html>" }, -EINVAL,
		  "bad JSON" },
		{ { M_REPLY, 200, NULL, "{\"zone\":\"DE\",\"carbonIntensity\":\""
		    TOKEN "\"}" }, -EINVAL, "carbonIntensity: expected a number" },
		{ { M_BIG_LENGTH, 200, NULL, NULL }, -EIO, "over 1 MiB" },
		{ { M_BIG_STREAM, 200, NULL, NULL }, -EIO, "over 1 MiB" },
	};
	struct carbon *c = open_local(CARBON_EMAPS, "DE", 5);
	struct carbon_poll p;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		script(cases[i].r, OK("emaps-forecast.json"));
		rc = poll_once(c, true, &p);
		if (rc != cases[i].rc || !strstr(err, cases[i].err)) {
			print_error("case %zu: rc %d err \"%s\"\n", i, rc, err);
			fail();
		}
		/* Nothing more after a failed reading: no forecast, and a
		 * redirect's Location is not asked. */
		assert_int_equal(srv.nreq, 1);
		assert_int_equal(p.fc.n, 0);
		if (cases[i].r.mode == M_REPLY)
			assert_int_equal(p.http_status, cases[i].r.status);
		assert_int_equal(p.retry_after_s, cases[i].r.status == 429 ? 7 : 0);
	}
	carbon_close(c);
}

static void test_poll_retry_after(void **state)
{
	static const struct { const char *hdr; unsigned want; } cases[] = {
		{ "Retry-After: 0\r\n", 0 },
		{ "Retry-After: 99999\r\n", 3600 },
		{ "Retry-After: Fri, 31 Dec 2100 23:59:59 GMT\r\n", 3600 },
		{ "Retry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\n", 0 },
		{ "Retry-After: soon\r\n", 0 },
		{ "", 0 },
	};
	struct carbon *c = open_local(CARBON_EMAPS, "DE", 5);
	struct carbon_poll p;
	char date[128], hdr[160];
	time_t t = time(NULL) + 120;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		script(STATUS(429, cases[i].hdr), STATUS(500, NULL));
		assert_int_equal(poll_once(c, false, &p), -EAGAIN);
		assert_int_equal(p.retry_after_s, cases[i].want);
	}
	/* A date two minutes on. */
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime(&t));
	snprintf(hdr, sizeof(hdr), "Retry-After: %s\r\n", date);
	script(STATUS(429, hdr), STATUS(500, NULL));
	assert_int_equal(poll_once(c, false, &p), -EAGAIN);
	assert_in_range(p.retry_after_s, 100, 120);
	carbon_close(c);
}

static void test_poll_timeout(void **state)
{
	struct carbon *c = open_local(CARBON_EMAPS, "DE", 1);
	struct carbon_poll p;
	time_t t0 = time(NULL);

	script((struct reply){ M_HANG, 0, NULL, NULL }, STATUS(500, NULL));
	assert_int_equal(poll_once(c, true, &p), -ETIMEDOUT);
	assert_non_null(strstr(err, "no answer within 1s"));
	assert_true(time(NULL) - t0 <= 4);
	carbon_close(c);
}

static void test_poll_ukgrid(void **state)
{
	struct carbon *c = open_local(CARBON_UKGRID, NULL, 0);
	struct carbon_poll p;
	char from[64], line[160];
	time_t t = time(NULL);

	script(OK("ukgrid-intensity.json"), OK("ukgrid-fw24h.json"));
	assert_int_equal(poll_once(c, true, &p), 0);
	assert_string_equal(err, "");
	assert_int_equal(p.now.intensity, 263);
	assert_string_equal(p.now.zone, "GB");
	assert_int_equal(p.fc.n, 48);
	assert_int_equal(srv.nreq, 2);
	assert_request(0, "GET /intensity HTTP/1.1\r\n", false);
	assert_null(strstr(srv.req[0], "auth-token"));
	t -= t % 1800;
	strftime(from, sizeof(from), "%Y-%m-%dT%H:%MZ", gmtime(&t));
	snprintf(line, sizeof(line), "GET /intensity/%s/fw24h HTTP/1.1\r\n",
		 from);
	assert_request(1, line, false);
	carbon_close(c);

	c = open_local(CARBON_UKGRID, "GB-13", 0);
	script(OK("ukgrid-regional.json"), OK("ukgrid-regional-fw24h.json"));
	assert_int_equal(poll_once(c, true, &p), 0);
	assert_int_equal(p.now.intensity, 219);
	assert_true(p.now.estimated);
	assert_string_equal(p.now.zone, "GB-13");
	assert_int_equal(p.fc.n, 48);
	assert_request(0, "GET /regional/regionid/13 HTTP/1.1\r\n", false);
	snprintf(line, sizeof(line), "GET /regional/intensity/%s/fw24h/"
		 "regionid/13 HTTP/1.1\r\n", from);
	assert_request(1, line, false);
	script(STATUS(500, NULL), STATUS(500, NULL));
	assert_int_equal(poll_once(c, true, &p), -EIO);
	carbon_close(c);
}

static void test_poll_file(void **state)
{
	struct carbon_cfg cfg = { .kind = CARBON_FILE, .file = at("file.json"),
				  .zone = "rack-7" };
	struct carbon *c;
	struct carbon_poll p;

	assert_int_equal(open_cfg(&cfg, &c), 0);
	assert_int_equal(poll_once(c, true, &p), 0);
	assert_int_equal(p.now.intensity, 42);
	assert_string_equal(p.now.zone, "rack-7");
	assert_int_equal(p.fc.n, 1);
	assert_int_equal(p.http_status, 0);
	assert_int_equal(poll_once(c, false, &p), 0);
	assert_int_equal(p.fc.n, 0);
	put(at("file.json"), "{\"carbonIntensity\":-1}", 0644);
	assert_int_equal(poll_once(c, true, &p), -EINVAL);
	assert_non_null(strstr(err, "out of range"));
	put(at("file.json"), "{}", 0666);
	assert_int_equal(poll_once(c, true, &p), -EIO);
	remove(at("file.json"));
	assert_int_equal(poll_once(c, true, &p), -EIO);
	carbon_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_kind),
		cmocka_unit_test(test_emaps_latest),
		cmocka_unit_test(test_emaps_latest_bad),
		cmocka_unit_test(test_deep),
		cmocka_unit_test(test_emaps_forecast),
		cmocka_unit_test(test_emaps_forecast_bad),
		cmocka_unit_test(test_ukgrid),
		cmocka_unit_test(test_ukgrid_bad),
		cmocka_unit_test(test_ukgrid_forecast),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_open_refused),
		cmocka_unit_test(test_poll_emaps),
		cmocka_unit_test(test_poll_status),
		cmocka_unit_test(test_poll_retry_after),
		cmocka_unit_test(test_poll_timeout),
		cmocka_unit_test(test_poll_ukgrid),
		cmocka_unit_test(test_poll_file),
	};

	/* One group: a TAP run has one plan.  Its set-up makes the folder
	 * of files and starts the server. */
	return cmocka_run_group_tests(tests, setup_server, teardown_server);
}
