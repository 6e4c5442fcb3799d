/* Spec validation and the typed view. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "seed_manifests.h"

static json_object *seed_spec(void)
{
	char err[CORE_ERR_MAX];
	json_object *o = NULL, *spec;

	assert_int_equal(core_yaml_parse(seed_vm_spec, strlen(seed_vm_spec),
					 &o, err, sizeof(err)),
			 0);
	assert_true(json_object_object_get_ex(o, "spec", &spec));
	json_object_get(spec);
	json_object_put(o);
	return spec;
}

static void test_seed(void **state)
{
	json_object *spec = seed_spec();
	char err[CORE_ERR_MAX] = "";
	struct core_spec s;

	assert_int_equal(core_spec_from_json(spec, &s, err, sizeof(err)), 0);
	assert_int_equal(s.cpus, 4);
	assert_true(s.memory == 8ull << 30);
	assert_true(s.running);
	assert_int_equal(s.ndisks, 1);
	assert_string_equal(s.disks[0].name, "root");
	assert_true(s.disks[0].size == 50ull << 30);
	assert_string_equal(s.disks[0].storage_class, "fast-ssd");
	assert_int_equal(s.disks[0].boot_order, 1);
	assert_int_equal(s.nnets, 1);
	assert_string_equal(s.nets[0].type, "pod-network");
	assert_string_equal(s.template_ref, "ubuntu-22-04");
	assert_string_equal(s.user_data, "#cloud-config\nhostname: my-vm\n");
	assert_true(s.carbon_aware);
	assert_int_equal(s.carbon_max_intensity, 200);
	assert_int_equal(s.carbon_max_delay_s, CORE_CARBON_DELAY_S);
	assert_true(s.ha_enabled);
	assert_string_equal(s.ha_restart_policy, "Always");
	assert_string_equal(s.ha_eviction, "LiveMigrate");
	assert_null(s.firmware);
	assert_int_equal(s.max_cpus, 0);
	core_spec_free(&s);
	assert_null(s.disks);
	json_object_put(spec);
}

static void test_default(void **state)
{
	json_object *spec = core_spec_default();
	char err[CORE_ERR_MAX];
	struct core_spec s;

	assert_int_equal(core_spec_from_json(spec, &s, err, sizeof(err)), 0);
	assert_int_equal(s.cpus, 1);
	assert_true(s.memory == 256ull << 20);
	assert_false(s.running);
	assert_int_equal(s.ndisks, 1);
	assert_string_equal(s.disks[0].name, "root");
	assert_true(s.disks[0].size == 1ull << 30);
	assert_int_equal(s.nnets, 1);
	assert_string_equal(s.nets[0].name, "default");
	assert_string_equal(s.nets[0].type, "pod-network");
	assert_string_equal(json_object_get_string(
				    json_object_object_get(spec, "memory")),
			    "256Mi");
	core_spec_free(&s);
	json_object_put(spec);
}

static void test_full(void **state)
{
	const char *j =
		"{\"cpus\": 2, \"memory\": 1073741824, \"maxCpus\": 8,"
		" \"maxMemory\": \"4Gi\", \"firmware\": \"uefi\","
		" \"machineType\": \"pc-q35-7.2\", \"guestAgent\": true,"
		" \"kernelBoot\": {\"kernel\": \"/boot/vmlinuz\","
		"   \"initrd\": \"/boot/initrd\", \"cmdline\": \"console=ttyS0\"},"
		" \"nodeSelector\": {\"zone\": \"a\", \"disk\": \"ssd\"},"
		" \"labels\": {\"app\": \"web\"},"
		" \"image\": {\"source\": \"http://x/img.qcow2\","
		"   \"checksum\": \"sha256:00\"},"
		" \"cloudInit\": {\"networkData\": \"n\", \"metaData\": \"m\"},"
		" \"networks\": [{\"name\": \"a\"}, {\"name\": \"b\","
		"   \"type\": \"bridge\"}],"
		" \"disks\": [{\"name\": \"root\"}, {\"name\": \"data\","
		"   \"size\": 10485760}],"
		" \"highAvailability\": {\"enabled\": true,"
		"   \"restartPolicy\": \"OnFailure\"},"
		" \"status\": \"ignored\", \"somethingNew\": {\"x\": 1}}";
	json_object *spec = json_tokener_parse(j);
	char err[CORE_ERR_MAX] = "";
	struct core_spec s;

	assert_non_null(spec);
	if (core_spec_from_json(spec, &s, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_true(s.memory == 1ull << 30);
	assert_int_equal(s.max_cpus, 8);
	assert_true(s.max_memory == 4ull << 30);
	assert_string_equal(s.firmware, "uefi");
	assert_string_equal(s.machine_type, "pc-q35-7.2");
	assert_true(s.guest_agent);
	assert_string_equal(s.kernel, "/boot/vmlinuz");
	assert_string_equal(s.initrd, "/boot/initrd");
	assert_string_equal(s.cmdline, "console=ttyS0");
	assert_int_equal(s.nnode_selector, 2);
	assert_string_equal(s.node_selector[0].key, "zone");
	assert_string_equal(s.node_selector[1].value, "ssd");
	assert_int_equal(s.nlabels, 1);
	assert_string_equal(s.labels[0].key, "app");
	assert_string_equal(s.image_source, "http://x/img.qcow2");
	assert_string_equal(s.image_checksum, "sha256:00");
	assert_string_equal(s.network_data, "n");
	assert_string_equal(s.meta_data, "m");
	assert_string_equal(s.nets[0].type, "pod-network");
	assert_string_equal(s.nets[1].type, "bridge");
	assert_true(s.disks[0].size == 0);
	assert_true(s.disks[1].size == 10485760);
	assert_string_equal(s.ha_restart_policy, "OnFailure");
	assert_string_equal(s.ha_eviction, "LiveMigrate");
	/* Unknown fields are not ours to drop. */
	assert_non_null(json_object_object_get(spec, "somethingNew"));
	core_spec_free(&s);
	json_object_put(spec);
}

static const struct {
	const char *json;
	const char *err;
} bad[] = {
	{ "[]", "spec: must be a mapping" },
	{ "{\"memory\": \"1Gi\"}", "spec.cpus: required" },
	{ "{\"cpus\": 1}", "spec.memory: required" },
	{ "{\"cpus\": 1, \"memory\": null}", "spec.memory: required" },
	{ "{\"cpus\": 0, \"memory\": \"1Gi\"}", "spec.cpus: must be >= 1" },
	{ "{\"cpus\": -3, \"memory\": \"1Gi\"}", "spec.cpus: must be >= 1" },
	{ "{\"cpus\": 513, \"memory\": \"1Gi\"}", "spec.cpus: must be <= 512" },
	{ "{\"cpus\": \"4\", \"memory\": \"1Gi\"}",
	  "spec.cpus: must be an integer" },
	{ "{\"cpus\": 1.5, \"memory\": \"1Gi\"}",
	  "spec.cpus: must be an integer" },
	{ "{\"cpus\": 1, \"memory\": \"x\"}", "spec.memory: bad quantity \"x\"" },
	{ "{\"cpus\": 1, \"memory\": 1000}", "spec.memory: must be at least 1Mi" },
	{ "{\"cpus\": 1, \"memory\": -1}", "spec.memory: must not be negative" },
	{ "{\"cpus\": 1, \"memory\": 1.5}",
	  "spec.memory: must be a whole number of bytes" },
	{ "{\"cpus\": 1, \"memory\": true}", "spec.memory: must be a quantity" },
	{ "{\"cpus\": 1, \"memory\": \"99999999999Ei\"}",
	  "spec.memory: bad quantity \"99999999999Ei\": out of range" },
	{ "{\"cpus\": 2, \"memory\": \"1Gi\", \"maxCpus\": 1}",
	  "spec.maxCpus: must be >= spec.cpus (2)" },
	{ "{\"cpus\": 2, \"memory\": \"1Gi\", \"maxMemory\": \"512Mi\"}",
	  "spec.maxMemory: must be >= spec.memory (1Gi)" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"running\": \"yes\"}",
	  "spec.running: must be true or false" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"disks\": {}}",
	  "spec.disks: must be a list" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"disks\": [\"root\"]}",
	  "spec.disks[0]: must be a mapping" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"disks\": [{\"size\": \"1Gi\"}]}",
	  "spec.disks[0].name: required" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"disks\": [{\"name\": \"a\"},"
	  " {\"name\": \"b\", \"size\": \"x\"}]}",
	  "spec.disks[1].size: bad quantity \"x\"" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"disks\": [{\"name\": \"a\"},"
	  " {\"name\": \"a\"}]}",
	  "spec.disks[1].name: duplicate disk name \"a\"" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"disks\": [{\"name\": \"Root\"}]}",
	  "spec.disks[0].name: bad name \"Root\"" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"disks\": [{\"name\": \"a\","
	  " \"bootOrder\": 0}]}",
	  "spec.disks[0].bootOrder: must be >= 1" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"disks\": [{\"name\": \"a\","
	  " \"storageClass\": 3}]}",
	  "spec.disks[0].storageClass: must be a string" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"networks\": [{\"name\": \"n\"},"
	  " {\"name\": \"n\"}]}",
	  "spec.networks[1].name: duplicate network name \"n\"" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"networks\": [{\"name\": \"n\","
	  " \"type\": \"\"}]}",
	  "spec.networks[0].type: must not be empty" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"networks\": 1}",
	  "spec.networks: must be a list" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"image\": []}",
	  "spec.image: must be a mapping" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"image\": {\"templateRef\": {}}}",
	  "spec.image.templateRef.name: required" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"image\": {\"templateRef\":"
	  " {\"name\": \"bad_name\"}}}",
	  "spec.image.templateRef.name: bad name \"bad_name\"" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"cloudInit\": {\"userData\": 5}}",
	  "spec.cloudInit.userData: must be a string" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"cloudInit\":"
	  " {\"metaData\": \"a\\u0000b\"}}",
	  "spec.cloudInit.metaData: must not contain NUL bytes" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"carbonAware\":"
	  " {\"enabled\": \"yes\"}}",
	  "spec.carbonAware.enabled: must be true or false" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"carbonAware\":"
	  " {\"maxIntensity\": -1}}",
	  "spec.carbonAware.maxIntensity: must be >= 0" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"carbonAware\":"
	  " {\"maxDelay\": \"soon\"}}",
	  "spec.carbonAware.maxDelay: bad duration \"soon\": want e.g. 6h, "
	  "90m or 1h30m" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"carbonAware\":"
	  " {\"maxDelay\": \"200h\"}}",
	  "spec.carbonAware.maxDelay: duration \"200h\": more than 604800s" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"highAvailability\":"
	  " {\"restartPolicy\": \"Sometimes\"}}",
	  "spec.highAvailability.restartPolicy: bad value \"Sometimes\": "
	  "want Always, OnFailure or Never" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"highAvailability\":"
	  " {\"evictionStrategy\": \"Drop\"}}",
	  "spec.highAvailability.evictionStrategy: bad value \"Drop\": "
	  "want LiveMigrate, Shutdown or None" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"firmware\": \"efi\"}",
	  "spec.firmware: bad value \"efi\": want bios or uefi" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"machineType\": \"q35 x\"}",
	  "spec.machineType: bad machine type" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"guestAgent\": 1}",
	  "spec.guestAgent: must be true or false" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"kernelBoot\":"
	  " {\"kernel\": \"vmlinuz\"}}",
	  "spec.kernelBoot.kernel: must be an absolute path" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"kernelBoot\":"
	  " {\"kernel\": \"/k\", \"initrd\": \"i\"}}",
	  "spec.kernelBoot.initrd: must be an absolute path" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"kernelBoot\": {}}",
	  "spec.kernelBoot.kernel: required" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"disks\":"
	  " [{\"name\": \"r\", \"size\": \"65Ti\"}]}",
	  "spec.disks[0].size: must be <= 64Ti" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"disks\": [{\"name\": \"d0\"},{\"name\": \"d1\"},{\"name\": \"d2\"},{\"name\": \"d3\"},{\"name\": \"d4\"},{\"name\": \"d5\"},{\"name\": \"d6\"},{\"name\": \"d7\"},{\"name\": \"d8\"},{\"name\": \"d9\"},{\"name\": \"d10\"},{\"name\": \"d11\"},{\"name\": \"d12\"},{\"name\": \"d13\"},{\"name\": \"d14\"},{\"name\": \"d15\"},{\"name\": \"d16\"},{\"name\": \"d17\"},{\"name\": \"d18\"},{\"name\": \"d19\"},{\"name\": \"d20\"},{\"name\": \"d21\"},{\"name\": \"d22\"},{\"name\": \"d23\"},{\"name\": \"d24\"},{\"name\": \"d25\"},{\"name\": \"d26\"},{\"name\": \"d27\"},{\"name\": \"d28\"},{\"name\": \"d29\"},{\"name\": \"d30\"},{\"name\": \"d31\"},{\"name\": \"d32\"}]}", "spec.disks: at most 32 disks" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"networks\": [{\"name\": \"n0\"},{\"name\": \"n1\"},{\"name\": \"n2\"},{\"name\": \"n3\"},{\"name\": \"n4\"},{\"name\": \"n5\"},{\"name\": \"n6\"},{\"name\": \"n7\"},{\"name\": \"n8\"},{\"name\": \"n9\"},{\"name\": \"n10\"},{\"name\": \"n11\"},{\"name\": \"n12\"},{\"name\": \"n13\"},{\"name\": \"n14\"},{\"name\": \"n15\"},{\"name\": \"n16\"}]}", "spec.networks: at most 16 networks" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"nodeSelector\": {\"zone\": 1}}",
	  "spec.nodeSelector.zone: must be a string" },
	{ "{\"cpus\": 1, \"memory\": \"1Gi\", \"labels\": [\"a\"]}",
	  "spec.labels: must be a mapping" },
};

static void test_errors(void **state)
{
	char err[CORE_ERR_MAX];
	struct core_spec s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_object *spec = json_tokener_parse(bad[i].json);

		if (!spec)
			fail_msg("test JSON %zu does not parse", i);
		memset(&s, 0x5a, sizeof(s));
		err[0] = '\0';
		assert_int_equal(core_spec_from_json(spec, &s, err,
						     sizeof(err)),
				 -EINVAL);
		if (strncmp(err, bad[i].err, strlen(bad[i].err)) != 0)
			fail_msg("%s:\n got  %s\n want %s", bad[i].json, err,
				 bad[i].err);
		/* A failed parse leaves nothing to free. */
		assert_null(s.disks);
		assert_null(s.ha_restart_policy);
		json_object_put(spec);
	}
}

static void test_set(void **state)
{
	json_object *spec = core_spec_default();
	char err[CORE_ERR_MAX];
	struct core_spec s;

	core_spec_set_int(spec, "cpus", 4);
	core_spec_set_bool(spec, "running", true);
	core_spec_set_string(spec, "memory", "2Gi");
	core_spec_set_string(spec, "firmware", "bios");
	assert_int_equal(core_spec_from_json(spec, &s, err, sizeof(err)), 0);
	assert_int_equal(s.cpus, 4);
	assert_true(s.running);
	assert_true(s.memory == 2ull << 30);
	assert_string_equal(s.firmware, "bios");
	core_spec_free(&s);
	core_spec_free(&s);
	core_spec_free(NULL);
	json_object_put(spec);
}

static void test_unexpected_stop(void **state)
{
	struct core_spec s = { .cpus = 1 };

	assert_int_equal(core_on_unexpected_stop(&s, true), CORE_ACT_NONE);
	assert_int_equal(core_on_unexpected_stop(NULL, true), CORE_ACT_NONE);
	s.ha_enabled = true;
	s.ha_restart_policy = "Always";
	assert_int_equal(core_on_unexpected_stop(&s, false), CORE_ACT_START);
	assert_int_equal(core_on_unexpected_stop(&s, true), CORE_ACT_START);
	s.ha_restart_policy = "OnFailure";
	assert_int_equal(core_on_unexpected_stop(&s, false), CORE_ACT_NONE);
	assert_int_equal(core_on_unexpected_stop(&s, true), CORE_ACT_START);
	s.ha_restart_policy = "Never";
	assert_int_equal(core_on_unexpected_stop(&s, true), CORE_ACT_NONE);
	s.ha_enabled = false;
	s.ha_restart_policy = "Always";
	assert_int_equal(core_on_unexpected_stop(&s, true), CORE_ACT_NONE);
}

/* 10 s doubling to 5 min; a run of 10 min or more starts the count
 * again (as the kubelet spaces a crashing container's restarts). */
static void test_restart_delay(void **state)
{
	static const unsigned want[] = { 10, 20, 40, 80, 160, 300, 300, 300 };
	unsigned failures = 0;
	time_t t = 1000000;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(core_restart_delay(&failures, t - 5, t, 10), want[i]);
	assert_int_equal(failures, 8);
	/* Unknown start: no reset. */
	assert_int_equal(core_restart_delay(&failures, 0, t, 10), 300);
	/* Just under 10 min of running is still a failure in the row. */
	assert_int_equal(core_restart_delay(&failures, t - 599, t, 10), 300);
	assert_int_equal(core_restart_delay(&failures, t - 600, t, 10), 10);
	assert_int_equal(failures, 1);
	assert_int_equal(core_restart_delay(&failures, t - 1, t, 10), 20);
	/* A first wait of 1 s: 1, 2, 4 ... 30; reset after 60 s. */
	failures = 0;
	assert_int_equal(core_restart_delay(&failures, t - 1, t, 1), 1);
	assert_int_equal(core_restart_delay(&failures, t - 1, t, 1), 2);
	failures = 9;
	assert_int_equal(core_restart_delay(&failures, t - 59, t, 1), 30);
	assert_int_equal(core_restart_delay(&failures, t - 60, t, 1), 1);
}

static void test_names(void **state)
{
	static const char *const good[] = { "a", "web", "my-vm-2", "0",
					    "a1-b2" };
	static const char *const badn[] = { "", "-a", "a-", "A", "a_b", "a.b",
					    "a b", "é" };
	char err[CORE_ERR_MAX], longname[80];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(core_name_check(good[i], err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(badn) / sizeof(badn[0]); i++)
		assert_int_equal(core_name_check(badn[i], err, sizeof(err)),
				 -EINVAL);
	assert_int_equal(core_name_check(NULL, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "empty name");
	memset(longname, 'a', 63);
	longname[63] = '\0';
	assert_int_equal(core_name_check(longname, err, sizeof(err)), 0);
	strcat(longname, "a");
	assert_int_equal(core_name_check(longname, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "longer than 63"));
	core_name_check("Web", err, sizeof(err));
	assert_string_equal(err, "bad name \"Web\": only lower case letters, "
				 "digits and '-' are allowed");
}

static void test_util(void **state)
{
	char b[40], u1[40], u2[40], q[16];

	core_rfc3339(1795705445, b, sizeof(b));
	assert_string_equal(b, "2026-11-26T15:04:05Z");
	core_uuid(u1);
	core_uuid(u2);
	assert_int_equal(strlen(u1), 36);
	assert_string_not_equal(u1, u2);
	assert_int_equal(u1[14], '4');
	assert_non_null(strchr("89ab", u1[19]));
	core_quote(q, sizeof(q), "a\nb", 3);
	assert_string_equal(q, "\"a?b\"");
	core_quote(q, sizeof(q), "0123456789abcdef", 16);
	assert_int_equal(strlen(q), sizeof(q) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seed),
		cmocka_unit_test(test_default),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_unexpected_stop),
		cmocka_unit_test(test_restart_delay),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_util),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
