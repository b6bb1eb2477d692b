/*
 * The local store's file and lock layer (see local_file.c): one JSON file per
 * store, "<path>.lock" for the flock() every access holds, and what is known
 * of the file as last read or written. Does not log.
 */
#ifndef TWILL_SUBNET_LOCAL_FILE_H
#define TWILL_SUBNET_LOCAL_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "subnet/local_map.h"

struct local_file {
	char *path, *lockpath, *dir;
	int lockfd;
	/* identity of the file as last read or written */
	bool have_id;
	dev_t f_dev;
	ino_t f_ino;
	struct timespec f_mtime;
	off_t f_size;
};

/* CLOCK_REALTIME in ms: lease deadlines are wall-clock so that processes agree. */
int64_t lfile_now_ms(void);
/* Names for @path, its directory (created), the lock file (created); 0 or -errno. */
int lfile_open(struct local_file *f, const char *path);
/* NULL-safe on a zeroed @f; closes the lock file. */
void lfile_close(struct local_file *f);
/* First read: the file into @m (absent: @m is written out), expiries applied; 0 or -errno. */
int lfile_load(struct local_file *f, struct local_map *m);
/* Whether the file is not the one last read or written (someone replaced it). */
bool lfile_changed(struct local_file *f);
/* Start of every access: lock, catch up with the file (changes become events), expire leases. */
void lfile_txn_begin(struct local_file *f, struct local_map *m);
/* End of it: write the file when the map changed, unlock. 0 or -errno of the write. */
int lfile_txn_end(struct local_file *f, struct local_map *m);

#endif
