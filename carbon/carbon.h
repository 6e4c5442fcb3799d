/* carbon: the grid's carbon intensity, from a provider.
 *
 * Three providers speak their documented APIs: Electricity Maps v3
 * (latest and forecast, token in the auth-token header), the UK
 * National Grid Carbon Intensity API (national or regional, no key) and
 * a local file that an operator or a cron job writes.  The parsers are
 * pure (fuzzed); carbon_poll does one bounded round of HTTP (or one read
 * of the file) and parses it.  The daemon owns the schedule, the cache
 * and the back-off; this module keeps no state between polls but the
 * configuration. */
#ifndef HYPERSDK_CARBON_H
#define HYPERSDK_CARBON_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum carbon_kind {
	CARBON_NONE,
	CARBON_EMAPS,           /* "electricitymaps" */
	CARBON_UKGRID,          /* "ukgrid" */
	CARBON_FILE,            /* "file" */
};

/* A zone as a label: 1 to CARBON_ZONE_MAX - 1 of [A-Za-z0-9_-], so it
 * goes into a URL's query, a log line, a metric's label or a Lease as it
 * is. */
bool carbon_zone_ok(const char *s);

/* "electricitymaps", "ukgrid", "file", "none" <-> the kind; -EINVAL. */
int carbon_kind_parse(const char *name, enum carbon_kind *out);
const char *carbon_kind_name(enum carbon_kind k);

#define CARBON_ZONE_MAX 64
#define CARBON_FORECAST_MAX 96  /* 24 h of half-hour periods, 48 h hourly */
#define CARBON_INTENSITY_MAX 100000     /* gCO2eq/kWh; more is garbage */

/* One reading: gCO2eq/kWh at a time. */
struct carbon_reading {
	int intensity;
	time_t at;              /* when the grid had it: Electricity Maps'
				 * datetime, the UK period's from */
	bool estimated;         /* isEstimated, or UK actual missing */
	char zone[CARBON_ZONE_MAX];     /* as the provider names it */
};

/* Forecast points in time order, the past left out by the caller. */
struct carbon_forecast {
	struct carbon_point {
		time_t from, to;        /* to = from + step when not given */
		int intensity;
	} v[CARBON_FORECAST_MAX];
	size_t n;
};

/* ---- parsers: pure, bounded; -EINVAL with the reason in err --------- */

/* GET /v3/carbon-intensity/latest: zone, carbonIntensity, datetime,
 * updatedAt, isEstimated. */
int carbon_parse_emaps_latest(const char *buf, size_t len,
			      struct carbon_reading *out, char *err,
			      size_t errlen);
/* GET /v3/carbon-intensity/forecast: {zone, forecast: [{carbonIntensity,
 * datetime}], updatedAt}. */
int carbon_parse_emaps_forecast(const char *buf, size_t len,
				struct carbon_forecast *out, char *err,
				size_t errlen);
/* GET /intensity (national) and GET /regional/regionid/N: the current
 * half hour; actual when the API has it, else forecast. */
int carbon_parse_ukgrid(const char *buf, size_t len,
			struct carbon_reading *out, char *err, size_t errlen);
/* GET /intensity/{from}/fw24h and
 * GET /regional/intensity/{from}/fw24h/regionid/N. */
int carbon_parse_ukgrid_forecast(const char *buf, size_t len,
				 struct carbon_forecast *out, char *err,
				 size_t errlen);
/* The file provider's file: the shape of Electricity Maps' latest
 * (zone, carbonIntensity, datetime), so `curl ... > file` or one printf
 * writes it; an optional "forecast" array as in Electricity Maps'
 * forecast (fc may be NULL).  zone is optional: "" when absent. */
int carbon_parse_file(const char *buf, size_t len, struct carbon_reading *out,
		      struct carbon_forecast *fc, char *err, size_t errlen);

/* RFC 3339 as the providers write it ("2026-12-07T08:00:00.000Z",
 * "2026-12-07T08:00Z", "+01:00" offsets) to UTC seconds; -EINVAL. */
int carbon_parse_time(const char *s, time_t *out);

/* ---- a provider ------------------------------------------------------ */

struct carbon_cfg {
	enum carbon_kind kind;
	const char *zone;       /* electricitymaps: "DE", "US-CAL-CISO";
				 * ukgrid: "GB" (national, the default) or
				 * "GB-N", N a region id 1-17; file: a label */
	const char *url;        /* replaces scheme://host[:port] of the
				 * documented base; NULL: the documented one */
	const char *token_file; /* electricitymaps: the auth-token */
	const char *file;       /* file: the path */
	unsigned timeout_s;     /* of one request; 0: 10 s */
};

struct carbon;

/* Checks the configuration (zone syntax, URL: http or https and nothing
 * but scheme, host and port; the token file and the file provider's
 * file: regular, in folders only root can change, at most 64 KiB), and
 * reads nothing over the network.  -EINVAL, -EPERM, -ENOENT with the
 * reason in err, which never holds the token. */
int carbon_open(const struct carbon_cfg *cfg, struct carbon **out, char *err,
		size_t errlen);
void carbon_close(struct carbon *c);
enum carbon_kind carbon_kind_of(const struct carbon *c);
/* The zone readings are asked for ("DE", "GB", "GB-13"). */
const char *carbon_zone(const struct carbon *c);

struct carbon_poll {
	struct carbon_reading now;
	struct carbon_forecast fc;      /* n = 0 when none */
	unsigned retry_after_s;         /* 429's Retry-After, bounded */
	int http_status;                /* of the latest request, 0 when none */
};

/* One round: the latest reading, then (want_forecast) the forecast; a
 * forecast that fails leaves fc.n = 0 and does not fail the round.
 * Bodies are bounded (1 MiB), redirects refused, the token re-read from
 * its file each round and sent only as the auth-token header.
 *   -ETIMEDOUT  no answer within timeout_s
 *   -EACCES     401 or 403
 *   -EAGAIN     429 (retry_after_s from Retry-After, seconds or a date)
 *   -EIO        5xx, another status, a transport error
 *   -EINVAL     a body that does not parse (the reason in err)
 * Before a request: the token file's -EINVAL, -EPERM, -ENOENT as for
 * carbon_open; the file provider: -EIO when the file cannot be read.
 * On success err is empty, or says why the forecast is missing.
 * err never holds the token. */
int carbon_poll(struct carbon *c, bool want_forecast, struct carbon_poll *out,
		char *err, size_t errlen);

#endif
