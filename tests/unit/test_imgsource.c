/* The import policy's pure parts: which addresses a download may
 * connect to, which URLs it may fetch, credentials out of messages, and
 * the image format probe on headers of every kind. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend/priv.h"

static const char *cls(const char *addr)
{
	struct sockaddr_storage ss = { 0 };
	char text[64];

	if (strchr(addr, ':')) {
		struct sockaddr_in6 *a = (void *)&ss;

		a->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, addr, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (void *)&ss;

		a->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, addr, &a->sin_addr), 1);
	}
	return be_addr_refused((struct sockaddr *)&ss, text, sizeof(text));
}

static void addresses(void **state)
{
	static const char *const refused[][2] = {
		{ "127.0.0.1", "loopback" }, { "127.9.9.9", "loopback" },
		{ "169.254.169.254", "link-local" }, { "10.255.255.1", "private" },
		{ "172.16.0.1", "private" }, { "172.31.255.255", "private" },
		{ "192.168.1.1", "private" }, { "100.64.0.1", "private" },
		{ "0.0.0.0", "unspecified" }, { "224.0.0.1", "multicast or reserved" },
		{ "255.255.255.255", "multicast or reserved" },
		{ "::1", "loopback" }, { "::", "unspecified" },
		{ "fe80::1", "link-local" }, { "fd00::1", "private" },
		{ "fc00::1", "private" }, { "ff02::1", "multicast" },
		{ "::ffff:127.0.0.1", "loopback" },
		{ "::ffff:169.254.169.254", "link-local" },
	};
	static const char *const allowed[] = { "8.8.8.8", "172.32.0.1",
		"172.15.255.255", "192.169.0.1", "100.128.0.1", "203.0.113.9",
		"2001:db8::1", "::ffff:8.8.8.8" };

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		const char *c = cls(refused[i][0]);

		assert_non_null(c);
		assert_string_equal(c, refused[i][1]);
	}
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		assert_null(cls(allowed[i]));
}

static void redact(void **state)
{
	char out[256];

	be_url_redact("https://u:p@h.example/x@y", out, sizeof(out));
	assert_string_equal(out, "https://h.example/x@y");
	be_url_redact("http://a@b@h.example:8/i", out, sizeof(out));
	assert_string_equal(out, "http://h.example:8/i");
	be_url_redact("https://h.example/p?q=a@b", out, sizeof(out));
	assert_string_equal(out, "https://h.example/p?q=a@b");
	be_url_redact("/var/lib/x.raw", out, sizeof(out));
	assert_string_equal(out, "/var/lib/x.raw");
}

static int check(struct be_conn *c, const char *url, bool *named)
{
	char err[CORE_ERR_MAX] = "";
	int rc = be_src_check_url(c, url, named, err, sizeof(err));

	if (rc < 0)
		assert_non_null(strstr(err, "refused") ? err : strstr(err, "URL"));
	assert_null(strstr(err, "secret"));
	return rc;
}

static void urls(void **state)
{
	const char *allow[] = { "http://127.0.0.1:8000/", "https://m.example/img/" };
	struct be_import_policy p = { .allow = allow, .nallow = 2,
				      .max_bytes = 1, .timeout_s = 1 };
	struct be_conn *c = calloc(1, sizeof(*c));
	bool named;

	assert_int_equal(check(c, "https://x.example/a.img", &named), 0);
	assert_false(named);
	assert_int_equal(check(c, "http://x.example/a.img", &named), -EACCES);
	assert_int_equal(check(c, "ftp://x.example/a.img", &named), -EACCES);
	assert_int_equal(check(c, "http://127.0.0.1:8000/a", &named), -EACCES);
	assert_int_equal(be_import_set(c, &p), 0);
	assert_int_equal(check(c, "http://127.0.0.1:8000/a", &named), 0);
	assert_true(named);
	assert_int_equal(check(c, "http://u:secret@127.0.0.1:8000/a", &named), 0);
	assert_int_equal(check(c, "http://127.0.0.1:80001/a", &named), -EINVAL);
	assert_int_equal(check(c, "http://127.0.0.1:8001/a", &named), -EACCES);
	assert_int_equal(check(c, "http://127.0.0.1:8000@10.0.0.1/a", &named),
			 -EACCES);
	assert_int_equal(check(c, "https://m.example/img/a", &named), 0);
	assert_true(named);
	assert_int_equal(check(c, "https://m.example/other", &named), 0);
	assert_false(named);
	be_import_free(c->imp);
	free(c);
}

static enum be_imgfmt probe(const void *head, size_t len, const char **why)
{
	return be_imgprobe(head, len, NULL, 0, why);
}

static void formats(void **state)
{
	unsigned char q[512] = "QFI\xfb\0\0\0\3", v[512] = { 0 }, t[1024] = { 0 };
	const char *why;

	assert_int_equal(probe(q, sizeof(q), &why), BE_IMG_QCOW2);
	assert_null(why);
	q[79] = 4;                      /* incompatible: external data file */
	assert_int_equal(probe(q, sizeof(q), &why), BE_IMG_REFUSED);
	assert_non_null(strstr(why, "data file"));
	q[79] = 0;
	q[15] = 0x80;                   /* a backing file offset */
	assert_int_equal(probe(q, sizeof(q), &why), BE_IMG_REFUSED);
	assert_non_null(strstr(why, "backing file"));
	q[7] = 1;
	assert_int_equal(probe(q, sizeof(q), &why), BE_IMG_REFUSED);
	assert_int_equal(probe("QFI\xfb\0\0\0\3", 8, &why), BE_IMG_REFUSED);
	assert_int_equal(probe("KDMV", 4, &why), BE_IMG_REFUSED);
	assert_string_equal(why, "vmdk");
	assert_int_equal(probe("conectix", 8, &why), BE_IMG_REFUSED);
	assert_int_equal(probe("vhdxfile", 8, &why), BE_IMG_REFUSED);
	assert_int_equal(probe("QED", 4, &why), BE_IMG_REFUSED);
	assert_int_equal(probe("WithoutFreeSpace", 16, &why), BE_IMG_REFUSED);
	assert_int_equal(probe("LUKS\xba\xbe", 6, &why), BE_IMG_REFUSED);
	memcpy(v + 0x40, "\x7f\x10\xda\xbe", 4);
	assert_int_equal(probe(v, sizeof(v), &why), BE_IMG_REFUSED);
	assert_string_equal(why, "vdi");
	assert_int_equal(probe("# hi\nversion=1\nRW 64 FLAT \"/etc/shadow\" 0\n",
			       40, &why), BE_IMG_REFUSED);
	assert_int_equal(probe("hello, a raw disk\n", 18, &why), BE_IMG_RAW);
	assert_int_equal(probe(v + 100, 100, &why), BE_IMG_RAW);
	assert_int_equal(probe("", 0, &why), BE_IMG_RAW);
	memcpy(t + 512, "koly", 4);
	assert_int_equal(be_imgprobe(t, 16, t, sizeof(t), &why), BE_IMG_REFUSED);
	assert_string_equal(why, "dmg");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(addresses),
		cmocka_unit_test(redact),
		cmocka_unit_test(urls),
		cmocka_unit_test(formats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
