/* lib/fileio: whole-file reads, atomic replacement, mkdir -p. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fileio.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/twill-fileio-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(fileio, .init = setup, .fini = teardown, .timeout = 20);

/* Entries of @d other than "." and ".." (a leftover temporary file would count). */
static int entries(const char *d)
{
	DIR *h = opendir(d);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(h);
	while ((e = readdir(h)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(h);
	return n;
}

static const char *content(const char *path)
{
	static char *buf;
	size_t len;

	free(buf);
	buf = NULL;
	cr_assert_eq(file_read_all(path, FILE_READ_MAX, &buf, &len), 0, "%s", path);
	cr_assert_eq(strlen(buf), len);
	return buf;
}

Test(fileio, write_replace_mode_and_parents)
{
	char path[PATH_MAX], err[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/a/b/f", dir);
	cr_assert_eq(file_write_atomic(path, "x", 1, 0644, 0, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "temporary file"), "%s", err);
	cr_assert_eq(file_write_atomic(path, "one\n", 4, 0640, FILE_ATOMIC_MKDIR, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_str_eq(content(path), "one\n");
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640);
	cr_assert_eq(chmod(path, 0600), 0);
	cr_assert_eq(file_write_atomic(path, "two\n", 4, 0644, FILE_ATOMIC_KEEP_MODE, err,
	                               sizeof(err)),
	             0, "%s", err);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600, "KEEP_MODE keeps the old mode");
	cr_assert_eq(file_write_atomic(path, "3", 1, 0644, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0644, "without KEEP_MODE the mode given");
	cr_assert_str_eq(content(path), "3");
	snprintf(path, sizeof(path), "%s/a/b", dir);
	cr_assert_eq(entries(path), 1, "no temporary file left");
}

Test(fileio, follow_symlink_and_refuse_non_regular)
{
	char path[PATH_MAX], link[PATH_MAX], err[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/real", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	cr_assert_eq(file_write_atomic(path, "old", 3, 0644, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(symlink(path, link), 0);
	cr_assert_eq(file_write_atomic(link, "t", 1, 0644, FILE_ATOMIC_FOLLOW, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_eq(lstat(link, &st), 0);
	cr_assert(S_ISLNK(st.st_mode), "the link stays a link");
	cr_assert_str_eq(content(path), "t");
	snprintf(path, sizeof(path), "%s/sub", dir);
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_assert_eq(file_write_atomic(path, "t", 1, 0644, FILE_ATOMIC_REGULAR, err, sizeof(err)),
	             -EEXIST);
	cr_assert(strstr(err, "not a regular file"), "%s", err);
	cr_assert_eq(entries(dir), 3, "no temporary file left after a failure");
	cr_assert_lt(file_write_atomic("", "t", 1, 0644, 0, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/", dir);
	cr_assert_eq(file_write_atomic(path, "t", 1, 0644, 0, NULL, 0), -EISDIR);
}

Test(fileio, read_limits)
{
	char path[PATH_MAX], *buf = (char *)1;
	size_t len = 7;

	snprintf(path, sizeof(path), "%s/missing", dir);
	cr_assert_eq(file_read_all(path, 10, &buf, &len), -ENOENT);
	cr_assert_eq(buf, (char *)1, "out-parameters untouched on failure");
	cr_assert_eq(len, 7);
	snprintf(path, sizeof(path), "%s/ten", dir);
	cr_assert_eq(file_write_atomic(path, "0123456789", 10, 0644, 0, NULL, 0), 0);
	cr_assert_eq(file_read_all(path, 9, &buf, &len), -EFBIG);
	cr_assert_eq(file_read_all(path, 10, &buf, &len), 0);
	cr_assert_eq(len, 10);
	cr_assert_str_eq(buf, "0123456789");
	free(buf);
	cr_assert_eq(file_read_all(dir, 10, &buf, &len), -EISDIR);
}

Test(fileio, mkdir_p)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/x/y/z", dir);
	cr_assert_eq(file_mkdir_p(path, 0750), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0750);
	cr_assert_eq(file_mkdir_p(path, 0750), 0, "an existing directory is fine");
	snprintf(path, sizeof(path), "%s/file", dir);
	cr_assert_eq(file_write_atomic(path, "", 0, 0644, 0, NULL, 0), 0);
	cr_assert_eq(file_mkdir_p(path, 0755), -ENOTDIR);
	snprintf(path, sizeof(path), "%s/file/below", dir);
	cr_assert_eq(file_mkdir_p(path, 0755), -ENOTDIR);
}
