/* A fresh inode for every lookup of a ctl file, as Plan 9's clone files
 * give a fresh channel.  Linux holds a file's inode lock through a write
 * and through the truncate of `echo x > ctl`, and a ctl write lasts as
 * long as its action: with one inode per ctl, `echo cancel > ctl` from
 * a second shell would wait for the very migration it is meant to stop.
 * Each lookup answers a new inode number (entry timeout 0, so the next
 * path walk looks up again) that maps to the ctl file it stands for,
 * until the kernel forgets it. */
#include <stdlib.h>

#include "fs/internal.h"

#define BUCKETS 1024

struct dyn {
	struct dyn *next;
	fuse_ino_t ino, real;
	uint64_t nlookup;
};

static struct dyn *table[BUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static fuse_ino_t next_ino = INO_FIRST_DYN;

static struct dyn **slot_of(fuse_ino_t ino)
{
	struct dyn **p = &table[ino % BUCKETS];

	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

fuse_ino_t fs_ctl_clone(fuse_ino_t real)
{
	struct dyn *d = malloc(sizeof(*d));
	fuse_ino_t ino = 0;

	if (!d)
		return 0;
	pthread_mutex_lock(&lock);
	ino = next_ino++;
	d->ino = ino;
	d->real = real;
	d->nlookup = 1;
	d->next = table[ino % BUCKETS];
	table[ino % BUCKETS] = d;
	pthread_mutex_unlock(&lock);
	return ino;
}

fuse_ino_t fs_ctl_real(fuse_ino_t ino)
{
	struct dyn *d;
	fuse_ino_t real = 0;

	if (ino < INO_FIRST_DYN)
		return ino;
	pthread_mutex_lock(&lock);
	d = *slot_of(ino);
	if (d)
		real = d->real;
	pthread_mutex_unlock(&lock);
	return real;    /* 0: forgotten, no such inode */
}

void fs_ctl_forget(fuse_ino_t ino, uint64_t n)
{
	struct dyn **p, *d;

	if (ino < INO_FIRST_DYN)
		return;
	pthread_mutex_lock(&lock);
	p = slot_of(ino);
	d = *p;
	if (d && (d->nlookup <= n)) {
		*p = d->next;
		free(d);
	} else if (d) {
		d->nlookup -= n;
	}
	pthread_mutex_unlock(&lock);
}


/* At unmount the kernel forgets nothing more: free what is left. */
void fs_ctl_free_all(void)
{
	pthread_mutex_lock(&lock);
	for (int i = 0; i < BUCKETS; i++)
		while (table[i]) {
			struct dyn *d = table[i];

			table[i] = d->next;
			free(d);
		}
	pthread_mutex_unlock(&lock);
}
