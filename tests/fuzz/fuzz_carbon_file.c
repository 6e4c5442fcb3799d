/* libFuzzer: the file provider's file (carbon/parse.c): a reading in
 * Electricity Maps' shape and an optional forecast. */
#include <errno.h>
#include <stdint.h>

#include "fuzz_carbon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[FUZZ_ERR_MAX] = "", *s = malloc(size ? size : 1);
	struct carbon_reading r;
	struct carbon_forecast fc;
	int rc;

	if (!s)
		return 0;
	memcpy(s, data, size);
	rc = carbon_parse_file(s, size, &r, &fc, err, sizeof(err));
	if (rc == 0)
		check_reading(&r, false);
	check_forecast_rc(rc, &fc, err);
	free(s);
	return 0;
}
