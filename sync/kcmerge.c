/* KUBECONFIG lists, merged as kubectl merges them (client-go's loading
 * rules): for each named cluster, user and context the first file that
 * has it wins; current-context is the first one set; a relative path in
 * a file is relative to that file's folder, so it is made absolute before
 * the files meet. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "sync/priv.h"

#define KUBECONFIG_MAX (16 * 1024 * 1024)

static const struct {
	const char *list, *body;
	const char *paths[4];
} sections[] = {
	{ "clusters", "cluster", { "certificate-authority", NULL } },
	{ "users", "user", { "client-certificate", "client-key", "tokenFile",
			     NULL } },
	{ "contexts", "context", { NULL } },
};

static void absolutize(json_object *body, const char *const *keys,
		       const char *dir)
{
	json_object *v;
	char *abs;

	for (int i = 0; keys[i]; i++) {
		if (!json_object_object_get_ex(body, keys[i], &v) ||
		    !json_object_is_type(v, json_type_string))
			continue;
		const char *p = json_object_get_string(v);

		if (!*p || p[0] == '/' || asprintf(&abs, "%s/%s", dir, p) < 0)
			continue;
		json_object_object_add(body, keys[i], json_object_new_string(abs));
		free(abs);
	}
}

static bool has_name(json_object *arr, const char *name)
{
	json_object *n;

	for (size_t i = 0; i < json_object_array_length(arr); i++)
		if (json_object_object_get_ex(json_object_array_get_idx(arr, i),
					      "name", &n) &&
		    !strcmp(json_object_get_string(n), name))
			return true;
	return false;
}

/* Add one file's entries to the merged document. */
static void merge_one(json_object *into, json_object *doc, const char *dir)
{
	json_object *src, *dst, *e, *n, *body, *cur;

	for (size_t s = 0; s < sizeof(sections) / sizeof(sections[0]); s++) {
		if (!json_object_object_get_ex(doc, sections[s].list, &src) ||
		    !json_object_is_type(src, json_type_array))
			continue;
		json_object_object_get_ex(into, sections[s].list, &dst);
		for (size_t i = 0; i < json_object_array_length(src); i++) {
			e = json_object_array_get_idx(src, i);
			if (!json_object_object_get_ex(e, "name", &n) ||
			    !json_object_is_type(n, json_type_string) ||
			    has_name(dst, json_object_get_string(n)))
				continue;
			if (json_object_object_get_ex(e, sections[s].body, &body) &&
			    json_object_is_type(body, json_type_object))
				absolutize(body, sections[s].paths, dir);
			json_object_array_add(dst, json_object_get(e));
		}
	}
	if (!json_object_object_get_ex(into, "current-context", NULL) &&
	    json_object_object_get_ex(doc, "current-context", &cur) &&
	    json_object_is_type(cur, json_type_string) &&
	    *json_object_get_string(cur))
		json_object_object_add(into, "current-context",
				       json_object_get(cur));
}

static int read_one(const char *file, json_object **doc, char *err,
		    size_t errlen)
{
	char e[CORE_ERR_MAX] = "", *text = NULL;
	size_t len = 0;
	int r = sync_read_file(file, KUBECONFIG_MAX, &text, &len);

	if (r < 0) {
		snprintf(err, errlen, "kubeconfig %s: %s", file,
			 r == -EFBIG ? "too big" : strerror(-r));
		return r;
	}
	r = core_yaml_parse(text, len, doc, e, sizeof(e));
	free(text);
	if (r == 0 && !json_object_is_type(*doc, json_type_object)) {
		json_object_put(*doc);
		snprintf(e, sizeof(e), "not a YAML mapping");
		r = -EINVAL;
	}
	if (r < 0)
		snprintf(err, errlen, "kubeconfig %s: %s", file, e);
	return r;
}

int sync_kubeconfig_merge(const char *list, json_object **root, char *err,
			  size_t errlen)
{
	json_object *into = json_object_new_object(), *doc;
	char *copy = strdup(list), *save = NULL, *dirbuf;
	struct stat st;
	int r = copy && into ? 0 : -ENOMEM, files = 0;

	for (size_t s = 0; r == 0 && s < sizeof(sections) / sizeof(sections[0]); s++)
		json_object_object_add(into, sections[s].list,
				       json_object_new_array());
	for (char *f = copy ? strtok_r(copy, ":", &save) : NULL; r == 0 && f;
	     f = strtok_r(NULL, ":", &save)) {
		if (stat(f, &st) < 0 || !S_ISREG(st.st_mode))
			continue;       /* kubectl skips missing files */
		r = read_one(f, &doc, err, errlen);
		if (r < 0 || !(dirbuf = strdup(f))) {
			r = r < 0 ? r : -ENOMEM;
			break;
		}
		merge_one(into, doc, dirname(dirbuf));
		free(dirbuf);
		json_object_put(doc);
		files++;
	}
	if (r == 0 && !files) {
		snprintf(err, errlen, "KUBECONFIG=%s: none of its files exists",
			 list);
		r = -ENOENT;
	}
	free(copy);
	if (r < 0)
		json_object_put(into);
	else
		*root = into;
	return r;
}
