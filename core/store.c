/* The local store: one JSON file per object, <dir>/<kind>/<name>.json.
 *
 * A put writes ".<name>.json.tmp-<pid>-<n>", fsyncs it, renames it over
 * the object and fsyncs the directory, so after a crash at any point the
 * object is either the old one or the new one, never a mix.  Leftover
 * temporary files are invisible to get and list and removed by open. */
#include "core/core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bigger than any object we write; bounds what a bad file can cost. */
#define OBJ_MAX (64 * 1024 * 1024)
#define STORE_NAME_MAX 253
#define JSON_DEPTH 64

struct core_store {
	char *dir;
	int fd;
	unsigned long tmpseq;
};

static const char *const kinds[] = {
	"vms", "operations", "templates", "snapshots", NULL
};

static bool kind_ok(const char *k)
{
	size_t n = k ? strlen(k) : 0;

	return n > 0 && n <= 64 &&
	       strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789") == n;
}

/* Names become file names: no '/', no leading '.' (temp files). */
static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n > 0 && n <= STORE_NAME_MAX && s[0] != '.' &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789._-") == n;
}

static bool is_temp(const char *fname)
{
	return fname[0] == '.' && strstr(fname, ".tmp-") != NULL;
}


static int kind_fd(struct core_store *s, const char *kind, bool create)
{
	int fd = openat(s->fd, kind, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(s->fd, kind, 0700) < 0 && errno != EEXIST)
			return -errno;
		fd = openat(s->fd, kind, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	return fd < 0 ? -errno : fd;
}

/* A crash between create and rename leaves these behind. */
static void remove_temps(int kfd)
{
	int dfd = dup(kfd);
	struct dirent *de;
	DIR *d;

	if (dfd < 0)
		return;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)))
		if (is_temp(de->d_name))
			unlinkat(kfd, de->d_name, 0);
	closedir(d);
}

int core_store_open(const char *dir, struct core_store **out, char *err,
		    size_t errlen)
{
	struct core_store *s = calloc(1, sizeof(*s));
	int r = -ENOMEM, kfd;

	*out = NULL;
	if (!s || !(s->dir = strdup(dir)))
		goto out;
	s->fd = -1;
	r = core_mkdir_p(dir, 0700);
	if (r == 0) {
		s->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = s->fd < 0 ? -errno : 0;
	}
	for (int i = 0; r == 0 && kinds[i]; i++) {
		kfd = kind_fd(s, kinds[i], true);
		if (kfd < 0) {
			r = kfd;
			break;
		}
		remove_temps(kfd);
		close(kfd);
	}
out:
	if (r < 0) {
		snprintf(err, errlen, "store %s: %s", dir, strerror(-r));
		core_store_close(s);
		return r;
	}
	*out = s;
	return 0;
}

void core_store_close(struct core_store *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->dir);
	free(s);
}

static int put_text(int kfd, const char *final, const char *tmp,
		    const char *txt)
{
	size_t n = strlen(txt);
	char *buf = malloc(n + 2);
	int r;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, txt, n);
	buf[n] = '\n';
	r = core_write_atomic(kfd, final, tmp, buf, n + 1);
	free(buf);
	return r;
}

int core_store_put(struct core_store *s, const char *kind, const char *name,
		   json_object *obj)
{
	char tmp[STORE_NAME_MAX + 64], final[STORE_NAME_MAX + 8];
	const char *txt;
	int kfd, r;

	if (!kind_ok(kind) || !name_ok(name) || !obj)
		return -EINVAL;
	kfd = kind_fd(s, kind, true);
	if (kfd < 0)
		return kfd;
	txt = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
						  JSON_C_TO_STRING_NOSLASHESCAPE);
	snprintf(final, sizeof(final), "%s.json", name);
	snprintf(tmp, sizeof(tmp), ".%s.json.tmp-%d-%lu", name, (int)getpid(),
		 __atomic_add_fetch(&s->tmpseq, 1, __ATOMIC_RELAXED));
	/* The trailing newline is for people who cat the file. */
	r = txt ? put_text(kfd, final, tmp, txt) : -ENOMEM;
	close(kfd);
	return r;
}

static int read_all(int fd, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = NULL, *nb;
	ssize_t got;

	for (;;) {
		if (n + 1 >= cap || !b) {
			cap = b ? cap * 2 : cap;
			if (cap > OBJ_MAX || !(nb = realloc(b, cap))) {
				free(b);
				return cap > OBJ_MAX ? -EFBIG : -ENOMEM;
			}
			b = nb;
		}
		got = read(fd, b + n, cap - n - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			free(b);
			return -errno;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	b[n] = '\0';
	*out = b;
	*len = n;
	return 0;
}

/* One JSON object and nothing after it but white space. */
static int parse_object(const char *buf, size_t len, json_object **out)
{
	struct json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
	json_object *o;
	size_t end;

	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, buf, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(o, json_type_object) ||
	    strspn(buf + end, " \t\r\n") != len - end) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	*out = o;
	return o ? 0 : -EINVAL;
}

static int read_object(int kfd, const char *fname, json_object **out)
{
	size_t len = 0;
	char *buf = NULL;
	int fd, r;

	fd = openat(kfd, fname, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = read_all(fd, &buf, &len);
	close(fd);
	if (r == 0)
		r = parse_object(buf, len, out);
	free(buf);
	return r;
}

int core_store_get(struct core_store *s, const char *kind, const char *name,
		   json_object **out)
{
	char fname[STORE_NAME_MAX + 8];
	int kfd, r;

	*out = NULL;
	if (!kind_ok(kind) || !name_ok(name))
		return -EINVAL;
	kfd = kind_fd(s, kind, false);
	if (kfd < 0)
		return kfd;
	snprintf(fname, sizeof(fname), "%s.json", name);
	r = read_object(kfd, fname, out);
	close(kfd);
	return r;
}

int core_store_del(struct core_store *s, const char *kind, const char *name)
{
	char fname[STORE_NAME_MAX + 8];
	int kfd, r = 0;

	if (!kind_ok(kind) || !name_ok(name))
		return -EINVAL;
	kfd = kind_fd(s, kind, false);
	if (kfd < 0)
		return kfd;
	snprintf(fname, sizeof(fname), "%s.json", name);
	if (unlinkat(kfd, fname, 0) < 0)
		r = -errno;
	if (r == 0 && fsync(kfd) < 0)
		r = -errno;
	close(kfd);
	return r;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The object names of a kind directory, sorted, temp files left out. */
static int list_names(int kfd, char ***out, size_t *n)
{
	size_t cap = 0, len;
	char **v = NULL, **nv;
	struct dirent *de;
	int dfd = dup(kfd), r = 0;
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);

	if (!d) {
		r = -errno;
		if (dfd >= 0)
			close(dfd);
		return r;
	}
	while (r == 0 && (de = readdir(d))) {
		len = strlen(de->d_name);
		if (len <= 5 || strcmp(de->d_name + len - 5, ".json") ||
		    is_temp(de->d_name))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 32;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[*n] = strndup(de->d_name, len - 5);
		r = v[*n] ? 0 : -ENOMEM;
		*n += v[*n] != NULL;
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof(*v), cmp_str);
	*out = v;
	return r;
}

int core_store_list(struct core_store *s, const char *kind,
		    int (*fn)(const char *name, json_object *obj, void *arg),
		    void *arg)
{
	char fname[STORE_NAME_MAX + 8];
	char **names = NULL;
	size_t n = 0, i;
	json_object *obj;
	int kfd, r;

	if (!kind_ok(kind))
		return -EINVAL;
	kfd = kind_fd(s, kind, false);
	if (kfd < 0)
		return kfd == -ENOENT ? 0 : kfd;
	r = list_names(kfd, &names, &n);
	for (i = 0; r == 0 && i < n; i++) {
		if (!name_ok(names[i]))
			continue;
		snprintf(fname, sizeof(fname), "%s.json", names[i]);
		r = read_object(kfd, fname, &obj);
		if (r == -ENOENT || r == -EINVAL || r == -EFBIG) {
			/* One bad file must not keep every other VM down. */
			if (r != -ENOENT)
				fprintf(stderr, "hypersdk: store: skipping "
					"%s/%s/%s: %s\n", s->dir, kind, fname,
					r == -EFBIG ? "too big" :
						      "not a JSON object");
			r = 0;
			continue;
		}
		if (r == 0)
			r = fn(names[i], obj, arg);
		json_object_put(obj);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	close(kfd);
	return r;
}

json_object *core_vm_to_object(const struct core_vm *vm)
{
	json_object *o = json_object_new_object();
	json_object *md = json_object_new_object();
	json_object *spec = NULL;

	json_object_object_add(o, "apiVersion",
			       json_object_new_string(CORE_API_VERSION));
	json_object_object_add(o, "kind",
			       json_object_new_string("VirtualMachine"));
	json_object_object_add(md, "name", json_object_new_string(vm->name));
	json_object_object_add(md, "namespace", json_object_new_string(vm->ns));
	json_object_object_add(md, "uid", json_object_new_string(vm->uid));
	json_object_object_add(md, "creationTimestamp",
			       json_object_new_string(vm->created));
	json_object_object_add(o, "metadata", md);
	core_owner_to_object(o, vm->owner);
	/* A copy: the model goes on editing its own after we return. */
	if (!vm->spec_json ||
	    json_object_deep_copy(vm->spec_json, &spec, NULL) < 0)
		spec = json_object_new_object();
	json_object_object_add(o, "spec", spec);
	json_object_object_add(o, "status", core_status_to_json(&vm->st));
	return o;
}
