/*
 * Files as a whole: read one into memory, replace one atomically and durably,
 * create a directory with its parents. One implementation for every writer
 * (subnet file, Docker options, local store, iptables state, udp stats).
 * Nothing here logs.
 */
#ifndef TWILL_LIB_FILEIO_H
#define TWILL_LIB_FILEIO_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* The largest file file_read_all() reads unless told otherwise: 16 MiB. */
#define FILE_READ_MAX ((size_t)16 << 20)

/*
 * Read @path completely into *@ret_buf (malloc'd, NUL-terminated; the caller
 * frees) and its length into *@ret_len. 0, -EFBIG when it holds more than @max
 * bytes, or -errno (-ENOENT when it does not exist). Out-parameters are written
 * only on success.
 */
int file_read_all(const char *path, size_t max, char **ret_buf, size_t *ret_len);
/* As file_read_all() for an open stream (e.g. stdin), read to its end; @f stays open. */
int file_read_stream(FILE *f, size_t max, char **ret_buf, size_t *ret_len);

/*
 * mkdir -p: create @dir and each missing parent with exactly @mode (chmod'd, so
 * the umask does not narrow it). 0 when it exists or was made, -ENOTDIR when a
 * component is a file, or -errno.
 */
int file_mkdir_p(const char *dir, mode_t mode);

enum file_atomic_flags {
	FILE_ATOMIC_MKDIR = 1u << 0, /* create missing parent directories (0755) */
	FILE_ATOMIC_KEEP_MODE = 1u
	                        << 1, /* an existing target keeps its mode (and, as root, owner) */
	FILE_ATOMIC_FOLLOW = 1u << 2, /* when @path is a symlink, replace the file it names */
	FILE_ATOMIC_REGULAR =
		1u << 3, /* refuse (-EEXIST) when the target exists and is not a regular file */
};

/*
 * Replace @path with the @len bytes at @buf so that a reader sees the old file or
 * the new one, never a mix, and the new one survives a crash once this returns:
 * a uniquely named temporary file in the same directory, mode @mode, written,
 * fsync'd, renamed over @path, then the directory fsync'd. 0, or -errno with the
 * step that failed and why in @err (e.g. "write /run/x/.f.Ab12Cd: No space left
 * on device"); the temporary file never survives a failure. @err may be NULL.
 */
int file_write_atomic(const char *path, const void *buf, size_t len, mode_t mode, unsigned flags,
                      char *err, size_t errlen);

#endif
