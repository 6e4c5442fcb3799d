/* The nodes/ directory: this node, and in a cluster every node holding a
 * lease.  A node is a name and a rendered status; slots give fs stable
 * inode numbers, as VM slots do. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/model_priv.h"

static int free_slot(struct core_model *m)
{
	size_t old = m->nnodes, n = old ? old * 2 : 8;
	struct core_node **v;

	for (size_t i = 0; i < old; i++)
		if (!m->nodes[i])
			return (int)i;
	v = realloc(m->nodes, n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(v + old, 0, (n - old) * sizeof(*v));
	m->nodes = v;
	m->nnodes = n;
	return (int)old;
}

struct core_node *core_model_node(struct core_model *m, const char *name)
{
	for (size_t i = 0; i < m->nnodes; i++)
		if (m->nodes[i] && !strcmp(m->nodes[i]->name, name))
			return m->nodes[i];
	return NULL;
}

struct core_node *core_model_node_slot(struct core_model *m, int slot)
{
	return slot >= 0 && (size_t)slot < m->nnodes ? m->nodes[slot] : NULL;
}

int core_model_each_node(struct core_model *m,
			 int (*fn)(struct core_node *n, void *arg), void *arg)
{
	int r = 0;

	for (size_t i = 0; i < m->nnodes && !r; i++)
		if (m->nodes[i])
			r = fn(m->nodes[i], arg);
	return r;
}

static int add_node(struct core_model *m, const char *name,
		    struct core_node **out)
{
	struct core_node *n;
	int slot = free_slot(m);

	if (slot < 0)
		return slot;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	memcpy(n->name, name, strlen(name) + 1);
	n->slot = slot;
	n->grid.intensity = -1;
	m->nodes[slot] = n;
	*out = n;
	return 0;
}

int core_model_set_node(struct core_model *m, const char *name,
			const char *txt, size_t len)
{
	struct core_node *n = core_model_node(m, name);
	char *copy;
	int r;

	if (strlen(name) > CORE_NAME_MAX)
		return -EINVAL;
	if (n && n->len == len && !memcmp(n->txt, txt, len))
		return 0;
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, txt, len);
	copy[len] = '\0';
	if (!n && (r = add_node(m, name, &n)) < 0) {
		free(copy);
		return r;
	}
	free(n->txt);
	n->txt = copy;
	n->len = len;
	core_model_notify_tree(m, CORE_CHG_NODES);
	return 0;
}

void core_model_remove_node(struct core_model *m, const char *name)
{
	struct core_node *n = core_model_node(m, name);

	if (!n)
		return;
	m->nodes[n->slot] = NULL;
	free(n->txt);
	free(n);
	core_model_notify_tree(m, CORE_CHG_NODES);
}

void core_nodes_free(struct core_model *m)
{
	for (size_t i = 0; i < m->nnodes; i++) {
		if (m->nodes[i])
			free(m->nodes[i]->txt);
		free(m->nodes[i]);
	}
	free(m->nodes);
}

int core_model_set_node_grid(struct core_model *m, const char *name,
			     const struct core_grid_reading *g)
{
	struct core_node *n = core_model_node(m, name);

	if (!n)
		return -ENOENT;
	n->grid = *g;
	return 0;
}
