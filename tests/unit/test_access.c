/* Who may do what (core_may) and the owner's annotation in stored
 * objects: the rule set fs and the dashboard share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "core/core.h"

static const struct core_acl acl = { .has_group = true, .gid = 500 };

static struct core_cred cred(uid_t uid, gid_t gid, gid_t extra)
{
	struct core_cred c = { .uid = uid, .gid = gid };

	if (extra)
		c.groups[c.ngroups++] = extra;
	return c;
}

static void test_root(void **state)
{
	struct core_cred c = cred(0, 0, 0);
	const struct core_acl none = { 0 };

	for (int r = CORE_R_SEE; r <= CORE_R_ADMIN; r++) {
		assert_int_equal(core_may(&acl, &c, 1000, r), 0);
		assert_int_equal(core_may(&none, &c, 1000, r), 0);
	}
}

static void test_member(void **state)
{
	struct core_cred primary = cred(1000, 500, 0);
	struct core_cred extra = cred(1000, 1000, 500);

	/* In the group by its primary gid or a supplementary one. */
	assert_true(core_cred_in_group(&primary, 500));
	assert_true(core_cred_in_group(&extra, 500));
	assert_int_equal(core_may(&acl, &extra, 0, CORE_R_SEE), 0);
	assert_int_equal(core_may(&acl, &extra, 0, CORE_R_CREATE), 0);
	assert_int_equal(core_may(&acl, &extra, 1000, CORE_R_READ), 0);
	assert_int_equal(core_may(&acl, &extra, 1000, CORE_R_CONTROL), 0);
	assert_int_equal(core_may(&acl, &extra, 1001, CORE_R_READ), -EACCES);
	assert_int_equal(core_may(&acl, &extra, 1001, CORE_R_CONTROL), -EACCES);
	assert_int_equal(core_may(&acl, &extra, 0, CORE_R_CONTROL), -EACCES);
	assert_int_equal(core_may(&acl, &primary, 1000, CORE_R_ADMIN), -EACCES);
}

static void test_stranger(void **state)
{
	struct core_cred c = cred(1000, 1000, 0);
	const struct core_acl none = { 0 };
	struct core_cred m = cred(1000, 500, 0);

	/* Not even its own VMs once out of the group. */
	for (int r = CORE_R_SEE; r <= CORE_R_ADMIN; r++) {
		assert_int_equal(core_may(&acl, &c, 1000, r), -EACCES);
		/* No group on the machine: only root. */
		assert_int_equal(core_may(&none, &m, 1000, r), -EACCES);
	}
}

static void test_annotation(void **state)
{
	json_object *o = json_object_new_object();
	json_object *md = json_object_new_object();
	json_object *ann;

	json_object_object_add(o, "metadata", md);
	assert_int_equal(core_owner_from_object(o), 0);
	core_owner_to_object(o, 40123);
	assert_int_equal(core_owner_from_object(o), 40123);
	ann = core_json_path(o, "metadata.annotations");
	json_object_object_add(ann, CORE_OWNER_UID_KEY,
			       json_object_new_string("12x"));
	assert_int_equal(core_owner_from_object(o), 0);
	json_object_object_add(ann, CORE_OWNER_UID_KEY,
			       json_object_new_string("-5"));
	assert_int_equal(core_owner_from_object(o), 0);
	json_object_object_add(ann, CORE_OWNER_UID_KEY,
			       json_object_new_int(7));
	assert_int_equal(core_owner_from_object(o), 7);
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root),
		cmocka_unit_test(test_member),
		cmocka_unit_test(test_stranger),
		cmocka_unit_test(test_annotation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
