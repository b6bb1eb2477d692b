/* Whole-file read, atomic replace and mkdir -p (see fileio.h). */
#define _GNU_SOURCE /* mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fileio.h"

int file_read_stream(FILE *f, size_t max, char **ret_buf, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;

	for (;;) {
		size_t got;

		if (cap - len < 4096) {
			char *nb;

			if (cap > max) {
				free(buf);
				return -EFBIG;
			}
			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		int r = errno ? -errno : -EIO;

		free(buf);
		return r;
	}
	if (len > max) {
		free(buf);
		return -EFBIG;
	}
	buf[len] = '\0';
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

int file_read_all(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
	FILE *f = fopen(path, "re");
	int r;

	if (!f)
		return -errno;
	r = file_read_stream(f, max, ret_buf, ret_len);
	fclose(f);
	return r;
}

int file_mkdir_p(const char *dir, mode_t mode)
{
	char path[PATH_MAX];
	size_t n = strlen(dir);
	struct stat st;

	if (n == 0)
		return 0;
	if (n >= sizeof(path))
		return -ENAMETOOLONG;
	if (stat(dir, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, mode) == 0) {
			if (chmod(path, mode) < 0)
				return -errno;
		} else if (errno != EEXIST) {
			return -errno;
		} else if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
			return -ENOTDIR;
		}
		path[i] = i == n ? '\0' : '/';
	}
	return 0;
}

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Record "<what>: strerror(-r)" in @err; returns @r. */
static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || !errlen)
		return r;
	va_start(ap, fmt);
	n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < errlen)
		snprintf(err + n, errlen - (size_t)n, ": %s", strerror(-r));
	return r;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* The paths one replacement works on. */
struct target {
	char path[PATH_MAX]; /* the file replaced (a symlink's target with FILE_ATOMIC_FOLLOW) */
	char dir[PATH_MAX];
	char tmp[PATH_MAX];
};

static int target_init(struct target *t, const char *path, unsigned flags, char *err, size_t errlen)
{
	const char *slash, *base;
	struct stat st;
	int n;

	n = snprintf(t->path, sizeof(t->path), "%s", path);
	/* A dangling link is itself replaced by the new file. */
	if (flags & FILE_ATOMIC_FOLLOW && lstat(path, &st) == 0 && S_ISLNK(st.st_mode) &&
	    !realpath(path, t->path))
		n = snprintf(t->path, sizeof(t->path), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(t->path))
		return fail(err, errlen, -ENAMETOOLONG, "%s", path);
	slash = strrchr(t->path, '/');
	base = slash ? slash + 1 : t->path;
	if (!*base)
		return fail(err, errlen, -EISDIR, "%s: not a file name", path);
	if (!slash)
		snprintf(t->dir, sizeof(t->dir), ".");
	else
		snprintf(t->dir, sizeof(t->dir), "%.*s",
		         slash == t->path ? 1 : (int)(slash - t->path), t->path);
	n = snprintf(t->tmp, sizeof(t->tmp), "%s/.%s.XXXXXX", t->dir, base);
	if (n < 0 || (size_t)n >= sizeof(t->tmp))
		return fail(err, errlen, -ENAMETOOLONG, "%s", path);
	return 0;
}

/* The mode (and, as root, the owner) the new file takes from an existing one. */
static int prepare_fd(int fd, const struct target *t, mode_t mode, unsigned flags, char *err,
                      size_t errlen)
{
	struct stat st;
	bool have_old = stat(t->path, &st) == 0;

	if (have_old && flags & FILE_ATOMIC_REGULAR && !S_ISREG(st.st_mode))
		return fail(err, errlen, -EEXIST, "%s exists and is not a regular file", t->path);
	if (have_old && flags & FILE_ATOMIC_KEEP_MODE)
		mode = st.st_mode & 07777;
	if (fchmod(fd, mode) < 0)
		return fail(err, errlen, -errno, "chmod %s", t->tmp);
	/* Keep the owner of the file replaced; only root can, and only root needs to. */
	if (have_old && flags & FILE_ATOMIC_KEEP_MODE && geteuid() == 0 &&
	    fchown(fd, st.st_uid, st.st_gid) < 0)
		return fail(err, errlen, -errno, "chown %s", t->tmp);
	return 0;
}

static int fsync_dir(const char *dir, char *err, size_t errlen)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

	if (dfd < 0)
		return fail(err, errlen, -errno, "open directory %s", dir);
	if (fsync(dfd) < 0)
		r = fail(err, errlen, -errno, "fsync directory %s", dir);
	close(dfd);
	return r;
}

int file_write_atomic(const char *path, const void *buf, size_t len, mode_t mode, unsigned flags,
                      char *err, size_t errlen)
{
	struct target *t = NULL;
	int fd = -1, r;

	if (err && errlen)
		err[0] = '\0';
	if (!path || !*path)
		return fail(err, errlen, -EINVAL, "empty path");
	t = calloc(1, sizeof(*t));
	if (!t)
		return fail(err, errlen, -ENOMEM, "%s", path);
	r = target_init(t, path, flags, err, errlen);
	if (r < 0)
		goto out;
	if (flags & FILE_ATOMIC_MKDIR) {
		r = file_mkdir_p(t->dir, 0755);
		if (r < 0) {
			fail(err, errlen, r, "cannot create directory %s", t->dir);
			goto out;
		}
	}
	fd = mkostemp(t->tmp, O_CLOEXEC);
	if (fd < 0) {
		r = fail(err, errlen, -errno, "cannot create a temporary file in %s", t->dir);
		goto out;
	}
	r = prepare_fd(fd, t, mode, flags, err, errlen);
	if (r < 0)
		goto out_unlink;
	r = write_all(fd, buf, len);
	if (r < 0) {
		fail(err, errlen, r, "write %s", t->tmp);
		goto out_unlink;
	}
	if (fsync(fd) < 0) {
		r = fail(err, errlen, -errno, "fsync %s", t->tmp);
		goto out_unlink;
	}
	r = close(fd);
	fd = -1;
	if (r < 0) {
		r = fail(err, errlen, -errno, "close %s", t->tmp);
		goto out_unlink;
	}
	if (rename(t->tmp, t->path) < 0) {
		r = fail(err, errlen, -errno, "rename %s to %s", t->tmp, t->path);
		goto out_unlink;
	}
	r = fsync_dir(t->dir, err, errlen);
	goto out;
out_unlink:
	if (fd >= 0)
		close(fd);
	fd = -1;
	unlink(t->tmp);
out:
	free(t);
	return r;
}
