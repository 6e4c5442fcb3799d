/* libFuzzer: the UK Carbon Intensity API's answers (carbon/parse.c),
 * national and regional.  The first byte picks the current reading or
 * the 24 h forecast. */
#include <errno.h>
#include <stdint.h>

#include "fuzz_carbon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[FUZZ_ERR_MAX] = "", *s = body_of(data, size);
	struct carbon_reading r;
	struct carbon_forecast fc;
	int rc;

	if (!s)
		return 0;
	if (data[0] & 1) {
		rc = carbon_parse_ukgrid_forecast(s, size - 1, &fc, err,
						  sizeof(err));
		check_forecast_rc(rc, &fc, err);
	} else {
		rc = carbon_parse_ukgrid(s, size - 1, &r, err, sizeof(err));
		if (rc < 0)
			check_err(rc, err);
		/* "GB" or "GB-N" */
		else if (check_reading(&r, true), strncmp(r.zone, "GB", 2))
			abort();
	}
	free(s);
	return 0;
}
