/* Kubeconfig and in-cluster credentials, read as kubectl reads them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sync/priv.h"

/* "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" */
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
#define CA_PEM "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
/* "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n" */
#define KEY_B64 "LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCk1IYwotLS0tLUVORCBFQyBQUklWQVRFIEtFWS0tLS0tCg=="

#define CORE_ERR_MAX_TEST 512

static char dir[64];

static void put(const char *name, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/hsdk-kc-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	put("ca.crt", CA_PEM);
	put("tok", "secret-token\n");
	return 0;
}

static int teardown(void **state)
{
	struct dirent *de;
	char p[512];
	DIR *d = opendir(dir);

	while (d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (unlink(p) < 0) {
			/* the .kube folder of the HOME test */
			snprintf(p, sizeof(p), "%s/%s/config", dir, de->d_name);
			unlink(p);
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			rmdir(p);
		}
	}
	if (d)
		closedir(d);
	rmdir(dir);
	return 0;
}

static const char admin[] =
	"apiVersion: v1\n"
	"kind: Config\n"
	"clusters:\n"
	"- name: test\n"
	"  cluster:\n"
	"    server: https://127.0.0.1:6443/\n"
	"    certificate-authority-data: " CA_B64 "\n"
	"- name: other\n"
	"  cluster:\n"
	"    server: http://10.0.0.1:8080\n"
	"    certificate-authority: ca.crt\n"
	"users:\n"
	"- name: admin\n"
	"  user:\n"
	"    client-certificate-data: " CA_B64 "\n"
	"    client-key-data: " KEY_B64 "\n"
	"- name: tokuser\n"
	"  user:\n"
	"    token: abc\n"
	"- name: fileuser\n"
	"  user:\n"
	"    token: ignored\n"
	"    tokenFile: tok\n"
	"contexts:\n"
	"- name: test\n"
	"  context:\n"
	"    cluster: test\n"
	"    user: admin\n"
	"    namespace: vms\n"
	"- name: tok\n"
	"  context:\n"
	"    cluster: other\n"
	"    user: tokuser\n"
	"- name: file\n"
	"  context:\n"
	"    cluster: other\n"
	"    user: fileuser\n"
	"- name: anon\n"
	"  context:\n"
	"    cluster: other\n"
	"current-context: test\n";

static int parse(const char *text, const char *ctx, struct sync_creds *c,
		 char *err)
{
	return sync_kubeconfig_parse(text, strlen(text), dir, ctx, c, err,
				     CORE_ERR_MAX_TEST);
}

static void test_current_context(void **state)
{
	char err[CORE_ERR_MAX_TEST] = "";
	struct sync_creds c;

	assert_int_equal(parse(admin, NULL, &c, err), 0);
	/* the trailing '/' goes: URLs are server + "/apis/..." */
	assert_string_equal(c.server, "https://127.0.0.1:6443");
	assert_string_equal(c.ca_pem, CA_PEM);
	assert_null(c.ca_file);
	assert_non_null(strstr(c.key_pem, "EC PRIVATE KEY"));
	assert_non_null(c.cert_pem);
	assert_null(c.token);
	assert_string_equal(c.ns, "vms");
	assert_false(c.insecure);
	sync_creds_free(&c);
}

static void test_named_context(void **state)
{
	char err[CORE_ERR_MAX_TEST] = "", want[300];
	struct sync_creds c;

	assert_int_equal(parse(admin, "tok", &c, err), 0);
	assert_string_equal(c.server, "http://10.0.0.1:8080");
	/* relative to the file's folder */
	snprintf(want, sizeof(want), "%s/ca.crt", dir);
	assert_string_equal(c.ca_file, want);
	assert_string_equal(c.token, "abc");
	assert_null(c.ns);
	assert_null(c.cert_pem);
	sync_creds_free(&c);

	assert_int_equal(parse(admin, "file", &c, err), 0);
	/* tokenFile wins over token, read and trimmed, kept for rotation */
	assert_string_equal(c.token, "secret-token");
	snprintf(want, sizeof(want), "%s/tok", dir);
	assert_string_equal(c.token_file, want);
	sync_creds_free(&c);

	/* no user: anonymous, as with kubectl */
	assert_int_equal(parse(admin, "anon", &c, err), 0);
	assert_null(c.token);
	assert_null(c.cert_pem);
	sync_creds_free(&c);
}

static void expect_err(const char *text, const char *ctx, int want_r,
		       const char *want)
{
	char err[CORE_ERR_MAX_TEST] = "";
	struct sync_creds c;
	int r = parse(text, ctx, &c, err);

	assert_int_equal(r, want_r);
	if (!strstr(err, want))
		fail_msg("err \"%s\" lacks \"%s\"", err, want);
	assert_null(c.server);
}

static void test_not_found(void **state)
{
	expect_err(admin, "nope", -EINVAL, "context \"nope\" not found");
	expect_err("clusters: []\ncontexts:\n- name: a\n  context:\n"
		   "    cluster: c\ncurrent-context: a\n", NULL, -EINVAL,
		   "cluster \"c\" not found");
	expect_err("clusters:\n- name: c\n  cluster:\n    server: https://x\n"
		   "contexts:\n- name: a\n  context:\n    cluster: c\n"
		   "    user: u\ncurrent-context: a\n", NULL, -EINVAL,
		   "user \"u\" not found");
	expect_err("clusters:\n- name: c\n  cluster: {}\n"
		   "contexts:\n- name: a\n  context:\n    cluster: c\n"
		   "current-context: a\n", NULL, -EINVAL,
		   "cluster \"c\" has no server");
	expect_err("contexts:\n- name: a\n  context: {user: u}\n"
		   "current-context: a\n", NULL, -EINVAL,
		   "context \"a\" has no cluster");
	expect_err("apiVersion: v1\nkind: Config\n", NULL, -EINVAL,
		   "current-context is not set");
	expect_err("current-context: \"\"\nclusters: []\n", NULL, -EINVAL,
		   "current-context is not set");
	expect_err("- a\n- b\n", NULL, -EINVAL, "not a YAML mapping");
	expect_err("", NULL, -EINVAL, "yaml");
	expect_err("a: [\n", NULL, -EINVAL, "yaml");
}

static const char *one(const char *cluster, const char *user)
{
	static char buf[2048];

	snprintf(buf, sizeof(buf),
		 "clusters:\n- name: c\n  cluster:\n%s"
		 "users:\n- name: u\n  user:\n%s"
		 "contexts:\n- name: a\n  context:\n    cluster: c\n"
		 "    user: u\ncurrent-context: a\n", cluster, user);
	return buf;
}

static void test_bad_values(void **state)
{
	const char *srv = "    server: https://h\n";

	expect_err(one("    server: 123\n", "    token: t\n"), NULL, -EINVAL,
		   "cluster \"c\": server is not a string");
	expect_err(one("    server: ftp://h\n", "    token: t\n"), NULL,
		   -EINVAL, "is not an http(s) URL");
	/* found by fuzz_kubeconfig: a scheme alone has no host */
	expect_err(one("    server: http://\n", "    token: t\n"), NULL,
		   -EINVAL, "is not an http(s) URL with a host");
	expect_err(one("    server: https://h\n    certificate-authority-data:"
		       " '!!!'\n", "    token: t\n"), NULL, -EINVAL,
		   "certificate-authority-data is not valid base64");
	expect_err(one("    server: https://h\n    certificate-authority-data:"
		       " aGVsbG8=\n", "    token: t\n"), NULL, -EINVAL,
		   "certificate-authority-data is not PEM");
	expect_err(one("    server: https://h\n    certificate-authority:"
		       " missing.crt\n", "    token: t\n"), NULL, -EINVAL,
		   "missing.crt: No such file or directory");
	expect_err(one("    server: https://h\n    insecure-skip-tls-verify:"
		       " \"yes\"\n", "    token: t\n"), NULL, -EINVAL,
		   "insecure-skip-tls-verify is not true or false");
	expect_err(one(srv, "    client-certificate-data: " CA_B64 "\n"), NULL,
		   -EINVAL, "needs its key");
	expect_err(one(srv, "    exec:\n      command: aws\n"), NULL,
		   -EOPNOTSUPP, "user \"u\": exec is not supported");
	expect_err(one(srv, "    username: a\n    password: b\n"), NULL,
		   -EOPNOTSUPP, "username is not supported");
	expect_err(one("    server: https://h\n    proxy-url: http://p\n",
		       "    token: t\n"), NULL, -EOPNOTSUPP,
		   "proxy-url is not supported");
	expect_err(one(srv, "    tokenFile: nothere\n"), NULL, -EINVAL,
		   "tokenFile");
	expect_err("clusters: 5\ncontexts:\n- name: a\n  context:\n"
		   "    cluster: c\ncurrent-context: a\n", NULL, -EINVAL,
		   "clusters is not a list");
}

static void test_insecure_and_json(void **state)
{
	char err[CORE_ERR_MAX_TEST] = "";
	struct sync_creds c, d;
	const char *json =
		"{\"clusters\":[{\"name\":\"c\",\"cluster\":{\"server\":"
		"\"https://h:1\",\"insecure-skip-tls-verify\":true}}],"
		"\"contexts\":[{\"name\":\"a\",\"context\":{\"cluster\":\"c\","
		"\"namespace\":\"ns1\"}}],\"current-context\":\"a\"}";

	/* a kubeconfig in JSON is YAML too */
	assert_int_equal(parse(json, NULL, &c, err), 0);
	assert_true(c.insecure);
	assert_string_equal(c.ns, "ns1");
	assert_int_equal(sync_creds_copy(&c, &d), 0);
	assert_string_equal(d.server, "https://h:1");
	assert_true(d.insecure);
	sync_creds_free(&c);
	sync_creds_free(&d);
	assert_null(d.server);
}

static void test_load_files(void **state)
{
	char err[CORE_ERR_MAX_TEST] = "", path[256], env[600], home[256];
	const char *old_home = getenv("HOME");
	struct sync_creds c;

	put("config", admin);
	snprintf(path, sizeof(path), "%s/config", dir);
	assert_int_equal(sync_kubeconfig_load(path, "tok", &c, err,
					      sizeof(err)), 0);
	assert_string_equal(c.token, "abc");
	sync_creds_free(&c);

	/* the file's name leads the error */
	assert_int_equal(sync_kubeconfig_load(path, "x", &c, err, sizeof(err)),
			 -EINVAL);
	snprintf(env, sizeof(env), "kubeconfig %s: context \"x\" not found",
		 path);
	assert_string_equal(err, env);
	assert_int_equal(sync_kubeconfig_load("/nonexistent/kc", NULL, &c, err,
					      sizeof(err)), -ENOENT);
	assert_string_equal(err, "kubeconfig /nonexistent/kc: No such file "
			    "or directory");

	/* $KUBECONFIG: the first file that exists */
	snprintf(env, sizeof(env), "%s/missing::%s", dir, path);
	setenv("KUBECONFIG", env, 1);
	assert_int_equal(sync_kubeconfig_load(NULL, NULL, &c, err,
					      sizeof(err)), 0);
	assert_string_equal(c.server, "https://127.0.0.1:6443");
	sync_creds_free(&c);
	setenv("KUBECONFIG", "/nonexistent/a:/nonexistent/b", 1);
	assert_int_equal(sync_kubeconfig_load(NULL, NULL, &c, err,
					      sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "none of its files exists"));

	/* $KUBECONFIG with several files: merged as kubectl does.  The
	 * first file names the context, the second has the cluster and a
	 * user with a relative token file (against its own folder), and a
	 * second "c" that must not replace the first file's. */
	assert_int_equal(mkdir(strcat(strcpy(home, dir), "/two"), 0700), 0);
	put("one", "current-context: m\n"
		   "contexts:\n- name: m\n  context: {cluster: c, user: u2}\n"
		   "clusters:\n- name: c\n  cluster: {server: 'https://first:1'}\n");
	put("two/kc", "current-context: other\n"
		      "clusters:\n- name: c\n  cluster: {server: 'https://second:2'}\n"
		      "users:\n- name: u2\n  user: {tokenFile: tok}\n");
	put("two/tok", "merged-token\n");
	snprintf(env, sizeof(env), "%s/one:%s/missing:%s/two/kc", dir, dir, dir);
	setenv("KUBECONFIG", env, 1);
	assert_int_equal(sync_kubeconfig_load(NULL, NULL, &c, err,
					      sizeof(err)), 0);
	assert_string_equal(c.server, "https://first:1");
	assert_string_equal(c.token, "merged-token");
	snprintf(env, sizeof(env), "%s/two/tok", dir);
	assert_string_equal(c.token_file, env);
	sync_creds_free(&c);
	/* a broken file in the list is an error that names it */
	put("bad", "clusters: [\n");
	snprintf(env, sizeof(env), "%s/one:%s/bad", dir, dir);
	setenv("KUBECONFIG", env, 1);
	assert_int_equal(sync_kubeconfig_load(NULL, NULL, &c, err,
					      sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "/bad:"));

	/* then ~/.kube/config */
	unsetenv("KUBECONFIG");
	snprintf(home, sizeof(home), "%s/.kube", dir);
	assert_int_equal(mkdir(home, 0700), 0);
	snprintf(home, sizeof(home), "%s/.kube/config", dir);
	assert_int_equal(rename(path, home), 0);
	setenv("HOME", dir, 1);
	assert_int_equal(sync_kubeconfig_load(NULL, NULL, &c, err,
					      sizeof(err)), 0);
	assert_string_equal(c.ns, "vms");
	sync_creds_free(&c);
	if (old_home)
		setenv("HOME", old_home, 1);
}

static void test_incluster(void **state)
{
	char err[CORE_ERR_MAX_TEST] = "", want[300];
	struct sync_creds c;

	unsetenv("KUBERNETES_SERVICE_HOST");
	setenv("HYPERSDK_SA_DIR", dir, 1);
	assert_int_equal(sync_incluster_load(&c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));

	setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(sync_incluster_load(&c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "service account token"));

	put("token", "eyJhbGc.sa.token\n");
	put("namespace", "hypersdk-system");
	assert_int_equal(sync_incluster_load(&c, err, sizeof(err)), 0);
	assert_string_equal(c.server, "https://10.0.0.1:443");
	assert_string_equal(c.token, "eyJhbGc.sa.token");
	assert_string_equal(c.ns, "hypersdk-system");
	snprintf(want, sizeof(want), "%s/ca.crt", dir);
	assert_string_equal(c.ca_file, want);
	snprintf(want, sizeof(want), "%s/token", dir);
	assert_string_equal(c.token_file, want);
	sync_creds_free(&c);

	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	assert_int_equal(sync_incluster_load(&c, err, sizeof(err)), 0);
	assert_string_equal(c.server, "https://[fd00::1]:443");
	sync_creds_free(&c);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("HYPERSDK_SA_DIR");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_current_context),
		cmocka_unit_test(test_named_context),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_insecure_and_json),
		cmocka_unit_test(test_load_files),
		cmocka_unit_test(test_incluster),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
