/* delete [force]: the domain, its disks and snapshots, the object. */
#include <errno.h>

#include "mountd/priv.h"

int md_run_delete(struct mountd *md, const struct md_job *j, char *err,
		  size_t errlen)
{
	const char *name = j->vm;
	int rc;

	/* md_verb_check refused a running guest without force.  In a
	 * cluster the object goes first: if the API server refuses, the
	 * domain and its disks are still there. */
	rc = md_cluster_delete(md, name, err, errlen);
	if (rc < 0)
		return rc;
	if ((1u << j->phase) & MD_ACTIVE)
		rc = be_destroy(md->be, name, err, errlen);
	if (rc == 0 || rc == -EBUSY)
		rc = be_undefine(md->be, name, err, errlen);
	if (rc == -ENOENT)
		rc = 0;
	if (rc < 0) {
		md_refresh(md, name);
		return rc;
	}
	md_forget(md, name);
	md_ops_vm_gone(md, name);
	md_log(LOG_INFO_, "deleted vm %s", name);
	return 0;
}
