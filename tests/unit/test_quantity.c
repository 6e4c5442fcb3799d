/* Quantities and bit rates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "core/core.h"

static void test_parse_ok(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
		{ "64Mi", 64ull << 20 },
		{ "8Gi", 8ull << 30 },
		{ "1.5G", 1500000000ull },
		{ "512", 512 },
		{ "0", 0 },
		{ "0Gi", 0 },
		{ "1e3", 1000 },
		{ "1E3", 1000 },
		{ "2.5e3", 2500 },
		{ "1e0", 1 },
		{ "1E", 1000000000000000000ull },
		{ "1Ei", 1ull << 60 },
		{ "15Ei", 15ull << 60 },
		{ "1.5Ki", 1536 },
		{ "0.5Ki", 512 },
		{ ".5Ki", 512 },
		{ "1.", 1 },
		{ "+5", 5 },
		{ "1000m", 1 },
		{ "100k", 100000 },
		{ "0.001k", 1 },
		{ "007", 7 },
		{ "1000000000000000000000e-5", 10000000000000000ull },
		{ "18446744073709551615", UINT64_MAX },
		{ "0.000000000000000000000000000000000000000000000000", 0 },
	};
	char err[CORE_ERR_MAX];
	uint64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 12345;
		assert_int_equal(core_qty_parse(ok[i].s, &v, err, sizeof(err)),
				 0);
		assert_true(v == ok[i].v);
	}
	assert_int_equal(core_qty_parse("1.50", &v, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(core_qty_parse("1.50k", &v, err, sizeof(err)), 0);
	assert_true(v == 1500);
}

static void test_parse_invalid(void **state)
{
	static const char *const bad[] = {
		"", "-1", "-1Gi", "abc", "1.5", "1.5.5", "1 Gi", " 1", "1Gi ",
		"1gi", "1KiB", "Gi", ".", "+", "1e", "1e+", "0x10", "1m",
		"1.0000001", "1e-1", "1K", "--1", "1,5", "1\n", "\t1",
		"1.0000000000000000000000000000000000000000000000001",
	};
	char err[CORE_ERR_MAX];
	uint64_t v = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(core_qty_parse(bad[i], &v, err, sizeof(err)),
				 -EINVAL);
		assert_non_null(strstr(err, "quantity"));
	}
	assert_true(v == 7);
	core_qty_parse(NULL, &v, err, sizeof(err));
	assert_string_equal(err, "empty quantity");
	core_qty_parse("x", &v, err, sizeof(err));
	assert_string_equal(err, "bad quantity \"x\"");
	core_qty_parse("-5Gi", &v, err, sizeof(err));
	assert_string_equal(err, "bad quantity \"-5Gi\": negative");
	core_qty_parse("1.5", &v, err, sizeof(err));
	assert_string_equal(err,
			    "bad quantity \"1.5\": not a whole number of bytes");
}

static void test_parse_range(void **state)
{
	static const char *const big[] = {
		"99999999999Ei", "16Ei", "18446744073709551616", "1e20",
		"1e10000", "20E", "17179869184Gi",
		"100000000000000000000000000000000000000000000",
		"99999999999999999999999999999999999999999999.5",
	};
	char err[CORE_ERR_MAX];
	uint64_t v = 7;

	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		assert_int_equal(core_qty_parse(big[i], &v, err, sizeof(err)),
				 -ERANGE);
		assert_non_null(strstr(err, "out of range"));
	}
	assert_true(v == 7);
	assert_int_equal(core_qty_parse("16383Pi", &v, err, sizeof(err)), 0);
	assert_int_equal(core_qty_parse("16384Pi", &v, err, sizeof(err)),
			 -ERANGE);
}

static void test_format(void **state)
{
	static const struct {
		uint64_t v;
		const char *s;
	} f[] = {
		{ 1073741824ull, "1Gi" }, { 1500000000ull, "1500M" },
		{ 0, "0" },               { 512, "512" },
		{ 1024, "1Ki" },          { 1000, "1k" },
		{ 1536, "1536" },         { 64ull << 20, "64Mi" },
		{ 256ull << 20, "256Mi" }, { 50ull << 30, "50Gi" },
		{ 2048000, "2048k" },     { 1ull << 60, "1Ei" },
		{ UINT64_MAX, "18446744073709551615" },
	};
	char b[32];

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		core_qty_format(f[i].v, b, sizeof(b));
		assert_string_equal(b, f[i].s);
	}
	core_qty_format(1ull << 30, b, 3);
	assert_string_equal(b, "1G");
}

static void test_format_round_trip(void **state)
{
	char b[32], err[CORE_ERR_MAX];
	uint64_t v = 1, back;

	/* Every power of two, its neighbours and some decimal values. */
	for (int i = 0; i < 64; i++, v <<= 1) {
		const uint64_t c[] = { v, v - 1, v + 1, v * 3, v / 10 * 10 };

		for (size_t j = 0; j < sizeof(c) / sizeof(c[0]); j++) {
			core_qty_format(c[j], b, sizeof(b));
			assert_int_equal(core_qty_parse(b, &back, err,
							sizeof(err)),
					 0);
			assert_true(back == c[j]);
		}
	}
}

static void test_duration(void **state)
{
	static const struct {
		const char *s;
		unsigned v;
	} ok[] = {
		{ "6h", 21600 }, { "90m", 5400 }, { "1h30m", 5400 },
		{ "45s", 45 }, { "0s", 0 }, { "1h2m3s", 3723 }, { "168h", 604800 },
	};
	static const char *const bad[] = {
		"", "6", "h", "30m1h", "1h1h", "1d", "-1h", "1.5h", " 1h",
		"1h ", "1H", "9999999999h",
	};
	char err[CORE_ERR_MAX];
	unsigned v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(core_duration_parse(ok[i].s, 604800, &v, err,
						     sizeof(err)), 0);
		assert_int_equal(v, ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(core_duration_parse(bad[i], 604800, &v, err,
						     sizeof(err)), -EINVAL);
	assert_int_equal(core_duration_parse("169h", 604800, &v, err,
					     sizeof(err)), -ERANGE);
	assert_non_null(strstr(err, "more than 604800s"));
}

static void test_rate(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
		{ "100Mbps", 100000000ull }, { "1Gbps", 1000000000ull },
		{ "500kbps", 500000ull },    { "500Kbps", 500000ull },
		{ "10MiBps", 10ull * 1048576 * 8 }, { "1.5Mbps", 1500000ull },
		{ "0bps", 0 },               { "8bps", 8 },
		{ "1MBps", 8000000ull },
	};
	static const char *const bad[] = {
		"100", "Mbps", "-1Mbps", "100MBPS", "100 Mbps", "", "bps",
		"1.5bps0", "xMbps", "1Mibps ",
	};
	char err[CORE_ERR_MAX];
	uint64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(core_rate_parse(ok[i].s, &v, err, sizeof(err)),
				 0);
		assert_true(v == ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(core_rate_parse(bad[i], &v, err, sizeof(err)),
				 -EINVAL);
		assert_non_null(strstr(err, "bad rate"));
	}
	assert_int_equal(core_rate_parse("3EiBps", &v, err, sizeof(err)),
			 -ERANGE);
	assert_int_equal(core_rate_parse(NULL, &v, err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_parse_range),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
