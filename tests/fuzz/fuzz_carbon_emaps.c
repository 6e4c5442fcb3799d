/* libFuzzer: Electricity Maps' answers (carbon/parse.c).  The first byte
 * picks the parser: latest, forecast, or the RFC 3339 time parser on the
 * rest as a string. */
#include <errno.h>
#include <stdint.h>

#include "fuzz_carbon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[FUZZ_ERR_MAX] = "", *s = body_of(data, size);
	struct carbon_reading r;
	struct carbon_forecast fc;
	time_t t;
	int rc;

	if (!s)
		return 0;
	switch (data[0] % 3) {
	case 0:
		rc = carbon_parse_emaps_latest(s, size - 1, &r, err, sizeof(err));
		if (rc == 0)
			check_reading(&r, true);
		else
			check_err(rc, err);
		break;
	case 1:
		rc = carbon_parse_emaps_forecast(s, size - 1, &fc, err,
						 sizeof(err));
		check_forecast_rc(rc, &fc, err);
		break;
	default:
		s[size - 1] = '\0';
		if (carbon_parse_time(s, &t) == 0 && t < -86400)
			abort();
	}
	free(s);
	return 0;
}
