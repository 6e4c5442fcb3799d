/* The cluster's nodes, as their Leases tell them: alive or not, and what
 * each publishes (where its libvirt takes migrations).  The stats thread
 * refreshes the table every --stats-interval; placement, migration and
 * nodes/ read copies of it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mountd/priv.h"

/* More nodes than this are left out, with a warning: the lease list is
 * bounded by sync too. */
#define MD_MEMBERS_MAX 1024

struct fill {
	struct md_member *v;
	size_t n;
	bool cut;
};

static const char *ann(json_object *a, const char *key)
{
	json_object *v;

	if (!a || !json_object_object_get_ex(a, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

/* hypersdk.io/carbon-*: a number in range and a time, or nothing. */
static void grid_of(json_object *a, struct core_grid_reading *g)
{
	const char *n = ann(a, MD_ANN_CARBON_INTENSITY);
	char *end;
	long v;

	g->intensity = -1;
	snprintf(g->zone, sizeof(g->zone), "%s", ann(a, MD_ANN_CARBON_ZONE));
	if (!carbon_zone_ok(g->zone))
		g->zone[0] = '\0';
	errno = 0;
	v = strtol(n, &end, 10);
	if (!*n || *end || errno || v < 0 || v > CARBON_INTENSITY_MAX ||
	    core_rfc3339_parse(ann(a, MD_ANN_CARBON_UPDATED), &g->at) < 0)
		return;
	g->intensity = (int)v;
}

static void got(void *arg, const struct sync_node *n)
{
	struct fill *f = arg;
	struct md_member *m;

	if (f->n >= MD_MEMBERS_MAX) {
		f->cut = true;
		return;
	}
	m = &f->v[f->n++];
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", n->name);
	m->renew = n->renew;
	m->duration_s = n->duration_s;
	m->alive = n->alive;
	snprintf(m->uri, sizeof(m->uri), "%s",
		 ann(n->annotations, MD_ANN_MIGRATION_URI));
	m->cordoned = !strcmp(ann(n->annotations, MD_ANN_CORDON), "true");
	snprintf(m->classes, sizeof(m->classes), "%s",
		 ann(n->annotations, MD_ANN_CLASSES));
	snprintf(m->dirs, sizeof(m->dirs), "%s",
		 ann(n->annotations, MD_ANN_DIRS));
	snprintf(m->drain, sizeof(m->drain), "%s",
		 ann(n->annotations, CORE_API_GROUP "/drain"));
	snprintf(m->drain_done, sizeof(m->drain_done), "%s",
		 ann(n->annotations, CORE_API_GROUP "/drain-done"));
	snprintf(m->drain_done_node, sizeof(m->drain_done_node), "%s",
		 ann(n->annotations, CORE_API_GROUP "/drain-done-node"));
	snprintf(m->drain_result, sizeof(m->drain_result), "%s",
		 ann(n->annotations, CORE_API_GROUP "/drain-result"));
	grid_of(n->annotations, &m->grid);
}

int md_members_refresh(struct mountd *md)
{
	struct fill f = { .v = calloc(MD_MEMBERS_MAX, sizeof(*f.v)) };
	char err[CORE_ERR_MAX];
	static bool warned;
	int rc;

	if (!f.v)
		return -ENOMEM;
	rc = sync_nodes(md->sync, got, &f, err, sizeof(err));
	if (rc < 0) {
		free(f.v);
		return rc;
	}
	if (f.cut && !warned) {
		warned = true;
		md_log(LOG_WARN_, "more than %d nodes hold a lease: %d of them "
		       "are known here", MD_MEMBERS_MAX, MD_MEMBERS_MAX);
	}
	pthread_mutex_lock(&md->members_lock);
	free(md->members);
	md->members = f.v;
	md->nmembers = f.n;
	pthread_mutex_unlock(&md->members_lock);
	return 0;
}

int md_member_get(struct mountd *md, const char *name, struct md_member *out)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&md->members_lock);
	for (size_t i = 0; i < md->nmembers && rc; i++)
		if (!strcmp(md->members[i].name, name)) {
			*out = md->members[i];
			rc = 0;
		}
	pthread_mutex_unlock(&md->members_lock);
	return rc;
}

int md_members_copy(struct mountd *md, struct md_member **out, size_t *n)
{
	int rc = 0;

	pthread_mutex_lock(&md->members_lock);
	*n = md->nmembers;
	*out = calloc(*n + 1, sizeof(**out));
	if (*out)
		memcpy(*out, md->members, *n * sizeof(**out));
	else
		rc = -ENOMEM;
	pthread_mutex_unlock(&md->members_lock);
	return rc;
}

int md_members_publish(struct mountd *md)
{
	const char *uri = md->cfg.migration_uri;
	char classes[512], dirs[2048];
	int rc = 0;

	if (uri && *uri)
		rc = sync_lease_set(md->sync, MD_ANN_MIGRATION_URI, uri);
	md_classes_published(md, classes, sizeof(classes));
	if (rc == 0 && classes[0])
		rc = sync_lease_set(md->sync, MD_ANN_CLASSES, classes);
	if (rc == 0 && md_classes_dirs_published(md, dirs, sizeof(dirs)) == 0)
		rc = sync_lease_set(md->sync, MD_ANN_DIRS, dirs);
	return rc;
}
