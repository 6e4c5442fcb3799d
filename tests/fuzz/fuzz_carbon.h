/* What the carbon fuzzers hold every parser's answer to: a reading in
 * range with a zone fit for a URL or a log line, forecast points in time
 * order with each ending after it starts, or one short err line. */
#ifndef FUZZ_CARBON_H
#define FUZZ_CARBON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "carbon/carbon.h"

#define FUZZ_ERR_MAX 512

static void check_err(int rc, const char *err)
{
	if (rc != -EINVAL && rc != -ENOMEM)
		abort();
	if (rc == -EINVAL && (!err[0] || strlen(err) >= FUZZ_ERR_MAX - 1))
		abort();
	for (const char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			abort();
}

static void check_reading(const struct carbon_reading *r, bool need_zone)
{
	size_t n = strnlen(r->zone, CARBON_ZONE_MAX);

	if (r->intensity < 0 || r->intensity > CARBON_INTENSITY_MAX ||
	    n >= CARBON_ZONE_MAX || (need_zone && n == 0) ||
	    (n && !carbon_zone_ok(r->zone)))
		abort();
}

static void check_forecast(const struct carbon_forecast *fc)
{
	if (fc->n > CARBON_FORECAST_MAX)
		abort();
	for (size_t i = 0; i < fc->n; i++) {
		const struct carbon_point *p = &fc->v[i];

		if (p->to <= p->from || p->intensity < 0 ||
		    p->intensity > CARBON_INTENSITY_MAX ||
		    (i > 0 && (p->from <= fc->v[i - 1].from ||
			       fc->v[i - 1].to > p->from)))
			abort();
	}
}

/* A forecast parser's answer: points in order, or none and a reason. */
static void check_forecast_rc(int rc, const struct carbon_forecast *fc,
			      const char *err)
{
	if (rc == 0)
		check_forecast(fc);
	else if (fc->n)
		abort();
	else
		check_err(rc, err);
}

/* The input after its first byte (which picks the parser), in a buffer of
 * that exact size plus one, so ASan sees any read past the end and a
 * string parser can have its NUL. */
static inline char *body_of(const uint8_t *data, size_t size)
{
	char *s = size ? malloc(size) : NULL;

	if (s)
		memcpy(s, data + 1, size - 1);
	return s;
}

#endif
