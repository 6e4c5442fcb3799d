/* Request counters for /metrics.  fs_ll_timed_ops wraps each handler of
 * fs_ll_ops; the counters are plain arrays updated with relaxed atomic
 * adds, so no request ever waits on another for them. */
#include <time.h>

#include "fs/internal.h"

const double fs_stats_le[FS_STATS_BUCKETS] = {
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.01, 0.05, 0.25, 1.0,
};

/* The same bounds in ns, so the hot path compares integers. */
static const uint64_t le_ns[FS_STATS_BUCKETS] = {
	10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 10000000, 50000000, 250000000, 1000000000,
};

static struct fs_op_stats counters[FS_OP_COUNT];

const char *fs_op_name(enum fs_op op)
{
	static const char *const names[FS_OP_COUNT] = {
		"lookup", "getattr", "setattr", "readdir", "open", "read",
		"write", "release", "mkdir", "rmdir", "statfs",
	};

	return (unsigned)op < FS_OP_COUNT ? names[op] : "unknown";
}

void fs_stats(struct fs_op_stats out[FS_OP_COUNT])
{
	for (int i = 0; i < FS_OP_COUNT; i++) {
		out[i].count = __atomic_load_n(&counters[i].count, __ATOMIC_RELAXED);
		out[i].sum_ns = __atomic_load_n(&counters[i].sum_ns, __ATOMIC_RELAXED);
		for (int b = 0; b < FS_STATS_BUCKETS; b++)
			out[i].bucket[b] = __atomic_load_n(&counters[i].bucket[b],
							   __ATOMIC_RELAXED);
	}
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void count(enum fs_op op, uint64_t t0)
{
	struct fs_op_stats *c = &counters[op];
	uint64_t d = now_ns() - t0;
	int b = 0;

	while (b < FS_STATS_BUCKETS && d > le_ns[b])
		b++;
	__atomic_fetch_add(&c->count, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&c->sum_ns, d, __ATOMIC_RELAXED);
	if (b < FS_STATS_BUCKETS)
		__atomic_fetch_add(&c->bucket[b], 1, __ATOMIC_RELAXED);
}

/* One wrapper per handler: NAME, OP, then the handler's parameters after
 * req, as (type, name) pairs flattened by the caller. */
#define TIMED(fn, op, params, args)                  \
	static void timed_##fn params                \
	{                                            \
		uint64_t t0 = now_ns();              \
		fs_ll_ops.fn args;                   \
		count(op, t0);                       \
	}

TIMED(lookup, FS_OP_LOOKUP,
      (fuse_req_t req, fuse_ino_t p, const char *name), (req, p, name))
TIMED(getattr, FS_OP_GETATTR,
      (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
      (req, ino, fi))
TIMED(setattr, FS_OP_SETATTR,
      (fuse_req_t req, fuse_ino_t ino, struct stat *a, int set,
       struct fuse_file_info *fi), (req, ino, a, set, fi))
TIMED(opendir, FS_OP_OPEN,
      (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
      (req, ino, fi))
TIMED(readdir, FS_OP_READDIR,
      (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
       struct fuse_file_info *fi), (req, ino, size, off, fi))
TIMED(readdirplus, FS_OP_READDIR,
      (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
       struct fuse_file_info *fi), (req, ino, size, off, fi))
TIMED(open, FS_OP_OPEN,
      (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
      (req, ino, fi))
TIMED(read, FS_OP_READ,
      (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
       struct fuse_file_info *fi), (req, ino, size, off, fi))
TIMED(write, FS_OP_WRITE,
      (fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
       off_t off, struct fuse_file_info *fi), (req, ino, buf, size, off, fi))
TIMED(release, FS_OP_RELEASE,
      (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
      (req, ino, fi))
TIMED(flush, FS_OP_RELEASE,
      (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
      (req, ino, fi))
TIMED(rename, FS_OP_SETATTR,
      (fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np,
       const char *nn, unsigned int fl), (req, p, n, np, nn, fl))
TIMED(mkdir, FS_OP_MKDIR,
      (fuse_req_t req, fuse_ino_t p, const char *name, mode_t mode),
      (req, p, name, mode))
TIMED(rmdir, FS_OP_RMDIR,
      (fuse_req_t req, fuse_ino_t p, const char *name), (req, p, name))
TIMED(statfs, FS_OP_STATFS, (fuse_req_t req, fuse_ino_t ino), (req, ino))

/* init is not a request: passed through untimed. */
static void timed_init(void *userdata, struct fuse_conn_info *conn)
{
	fs_ll_ops.init(userdata, conn);
}

/* Forgets have no reply: nothing to time. */
static void untimed_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n)
{
	fs_ll_ops.forget(req, ino, n);
}

static void untimed_forget_multi(fuse_req_t req, size_t count,
				 struct fuse_forget_data *f)
{
	fs_ll_ops.forget_multi(req, count, f);
}

const struct fuse_lowlevel_ops fs_ll_timed_ops = {
	.init = timed_init,
	.lookup = timed_lookup,
	.forget = untimed_forget,
	.forget_multi = untimed_forget_multi,
	.getattr = timed_getattr,
	.setattr = timed_setattr,
	.opendir = timed_opendir,
	.readdir = timed_readdir,
	.readdirplus = timed_readdirplus,
	.open = timed_open,
	.read = timed_read,
	.write = timed_write,
	.release = timed_release,
	.flush = timed_flush,
	.rename = timed_rename,
	.mkdir = timed_mkdir,
	.rmdir = timed_rmdir,
	.statfs = timed_statfs,
};
