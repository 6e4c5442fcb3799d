/* What the carbon fuzzers hold every parser's answer to: a reading in
 * range with a zone fit for a URL or a log line, forecast points in time
 * order with each ending after it starts, or one short err line. */
#ifndef FUZZ_CARBON_H
#define FUZZ_CARBON_H

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
	    strspn(r->zone, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789_-") != n)
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

#endif
