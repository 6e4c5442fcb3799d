/* libFuzzer: Electricity Maps' answers (carbon/parse.c).  The first byte
 * picks the parser: latest, forecast, or the RFC 3339 time parser on the
 * rest as a string. */
#include <errno.h>
#include <stdint.h>

#include "fuzz_carbon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[FUZZ_ERR_MAX] = "", *s;
	struct carbon_reading r;
	struct carbon_forecast fc;
	time_t t;
	int rc;

	if (size < 1)
		return 0;
	/* A copy of the exact size, so ASan sees any read past the end. */
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	switch (data[0] % 3) {
	case 0:
		rc = carbon_parse_emaps_latest(s, size - 1, &r, err, sizeof(err));
		if (rc == 0)
			check_reading(&r, true);
		break;
	case 1:
		rc = carbon_parse_emaps_forecast(s, size - 1, &fc, err,
						 sizeof(err));
		if (rc == 0)
			check_forecast(&fc);
		else if (fc.n)
			abort();
		break;
	default:
		s[size - 1] = '\0';
		rc = carbon_parse_time(s, &t);
		if (rc == 0 && t < -86400)
			abort();
		rc = 0;
	}
	if (rc < 0)
		check_err(rc, err);
	free(s);
	return 0;
}
