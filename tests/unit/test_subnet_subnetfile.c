#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "subnet/subnetfile.h"

#define FIX TWILL_FIXTURES "/subnetfile"

static char *slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	cr_assert_not_null(f, "cannot open %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (ret_len)
		*ret_len = (size_t)n;
	return buf;
}

static char *strip_nl(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '\n')
		s[--n] = '\0';
	return s;
}

static int for_each_env(const char *dir, void (*fn)(const char *dir, const char *name))
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int count = 0;

	cr_assert_not_null(d, "cannot open %s", dir);
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char name[256];

		if (n <= 4 || strcmp(de->d_name + n - 4, ".env"))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(n - 4), de->d_name);
		fn(dir, name);
		count++;
	}
	closedir(d);
	return count;
}

static char tmpdir[] = "/tmp/twill-subnetfile-XXXXXX";

static void make_tmpdir(void)
{
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tree(const char *path)
{
	char cmd[512];

	/* The path is ours (mkdtemp), so a shell rm is safe here. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	cr_expect_eq(system(cmd), 0);
}

static void remove_tmpdir(void)
{
	remove_tree(tmpdir);
}

/* Fields as text, one per line: what good/<name>.txt holds. */
static char *dump(const struct subnetfile *f)
{
	char p[IPAM_PREFIX_STRLEN];
	char *out = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&out, &n);

	cr_assert_not_null(m);
	if (f->has_network)
		fprintf(m, "network=%s\n", ipam_prefix_format(&f->network, p));
	if (f->has_subnet)
		fprintf(m, "subnet=%s\n", ipam_prefix_format(&f->subnet, p));
	if (f->has_ipv6_network)
		fprintf(m, "ipv6_network=%s\n", ipam_prefix_format(&f->ipv6_network, p));
	if (f->has_ipv6_subnet)
		fprintf(m, "ipv6_subnet=%s\n", ipam_prefix_format(&f->ipv6_subnet, p));
	if (f->has_mtu)
		fprintf(m, "mtu=%d\n", f->mtu);
	if (f->has_ipmasq)
		fprintf(m, "ipmasq=%s\n", f->ipmasq ? "true" : "false");
	fclose(m);
	return out;
}

/* A canonical file reads back and is written again byte for byte. */
static void check_canonical(const char *dir, const char *name)
{
	char path[512], out[512], err[256];
	struct subnetfile f;
	char *want, *got;

	snprintf(path, sizeof(path), "%s/%s.env", dir, name);
	cr_assert_eq(subnetfile_read(path, &f, err, sizeof(err)), 0, "%s: %s", name, err);
	snprintf(out, sizeof(out), "%s/canonical/%s.env", tmpdir, name);
	cr_assert_eq(subnetfile_write(out, &f), 0, "%s", name);
	want = slurp(path, NULL);
	got = slurp(out, NULL);
	cr_expect_str_eq(got, want, "%s: rewritten file differs:\n%s---\n%s", name, got, want);
	free(want);
	free(got);
}

static void check_good(const char *dir, const char *name)
{
	char path[512], err[256];
	struct subnetfile f;
	char *want, *got;

	snprintf(path, sizeof(path), "%s/%s.env", dir, name);
	cr_assert_eq(subnetfile_read(path, &f, err, sizeof(err)), 0, "%s: %s", name, err);
	got = dump(&f);
	snprintf(path, sizeof(path), "%s/%s.txt", dir, name);
	if (getenv("TWILL_UPDATE_GOLDEN")) {
		FILE *o = fopen(path, "w");

		cr_assert_not_null(o);
		fputs(got, o);
		fclose(o);
	}
	want = slurp(path, NULL);
	cr_expect_str_eq(got, want, "%s:\n--- got\n%s--- want\n%s", name, got, want);
	free(want);
	free(got);
}

static void check_bad(const char *dir, const char *name)
{
	char path[512], err[256];
	struct subnetfile f;
	char *want;

	snprintf(path, sizeof(path), "%s/%s.err", dir, name);
	want = strip_nl(slurp(path, NULL));
	snprintf(path, sizeof(path), "%s/%s.env", dir, name);
	memset(&f, 0x5a, sizeof(f));
	cr_expect_eq(subnetfile_read(path, &f, err, sizeof(err)), -EINVAL, "%s: accepted", name);
	cr_expect_not_null(strstr(err, want), "%s: message \"%s\" lacks \"%s\"", name, err, want);
	cr_expect_eq(((unsigned char *)&f)[0], 0x5a, "%s: *ret written on failure", name);
	free(want);
}

TestSuite(subnetfile, .init = make_tmpdir, .fini = remove_tmpdir);

Test(subnetfile, golden_canonical_roundtrip)
{
	cr_assert_geq(for_each_env(FIX "/canonical", check_canonical), 5);
}

Test(subnetfile, golden_good)
{
	cr_assert_geq(for_each_env(FIX "/good", check_good), 10);
}

Test(subnetfile, golden_bad)
{
	cr_assert_geq(for_each_env(FIX "/bad", check_bad), 20);
}

Test(subnetfile, write_exact_format_from_fields)
{
	struct subnetfile f = { 0 };
	char path[512];
	char *got, *want;

	f.has_network = true;
	cr_assert_eq(ipam_prefix_parse("10.5.0.0/16", &f.network), 0);
	f.has_subnet = true;
	cr_assert_eq(ipam_prefix_parse("10.5.87.1/24", &f.subnet), 0);
	f.has_ipv6_network = true;
	cr_assert_eq(ipam_prefix_parse("fc00:5::/48", &f.ipv6_network), 0);
	f.has_ipv6_subnet = true;
	cr_assert_eq(ipam_prefix_parse("fc00:5:0:57::1/64", &f.ipv6_subnet), 0);
	f.has_mtu = true;
	f.mtu = 1450;
	f.has_ipmasq = true;
	f.ipmasq = false;
	snprintf(path, sizeof(path), "%s/x/subnet.env", tmpdir);
	cr_assert_eq(subnetfile_write(path, &f), 0);
	got = slurp(path, NULL);
	want = slurp(FIX "/canonical/dual-stack.env", NULL);
	cr_expect_str_eq(got, want);
	free(got);
	free(want);

	f.has_ipv6_network = f.has_ipv6_subnet = false;
	cr_assert_eq(subnetfile_write(path, &f), 0);
	got = slurp(path, NULL);
	want = slurp(FIX "/canonical/ipv4-vxlan.env", NULL);
	cr_expect_str_eq(got, want);
	free(got);
	free(want);
}

static int count_entries(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

Test(subnetfile, write_modes_parents_no_temp_left)
{
	struct subnetfile f = { .has_mtu = true, .mtu = 1500 }, g;
	char path[640], dir[512], err[256];
	struct stat st;
	mode_t old = umask(077);

	snprintf(dir, sizeof(dir), "%s/a/b/c", tmpdir);
	snprintf(path, sizeof(path), "%s/subnet.env", dir);
	cr_assert_eq(subnetfile_write(path, &f), 0);
	umask(old);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0644, "file mode %o", st.st_mode & 07777);
	cr_assert_eq(stat(dir, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0755, "dir mode %o", st.st_mode & 07777);
	snprintf(dir, sizeof(dir), "%s/a", tmpdir);
	cr_assert_eq(stat(dir, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0755, "parent mode %o", st.st_mode & 07777);

	/* Overwrite: replaced atomically, a read-only old file does not matter, no temp left. */
	cr_assert_eq(chmod(path, 0400), 0);
	f.mtu = 1450;
	cr_assert_eq(subnetfile_write(path, &f), 0);
	cr_assert_eq(subnetfile_read(path, &g, err, sizeof(err)), 0, "%s", err);
	cr_expect(g.has_mtu);
	cr_expect_eq(g.mtu, 1450);
	cr_expect_not(g.has_subnet);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0644);
	snprintf(dir, sizeof(dir), "%s/a/b/c", tmpdir);
	cr_expect_eq(count_entries(dir), 1);
}

Test(subnetfile, write_errors)
{
	struct subnetfile f = { .has_mtu = true, .mtu = 1500 };
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/file", tmpdir);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/file/subnet.env", tmpdir);
	cr_expect_eq(subnetfile_write(path, &f), -ENOTDIR);
	snprintf(path, sizeof(path), "%s/dir/", tmpdir);
	cr_expect_eq(subnetfile_write(path, &f), -EISDIR);
	cr_expect_eq(subnetfile_write("", &f), -EINVAL);
	cr_expect_eq(subnetfile_write(NULL, &f), -EINVAL);
	cr_expect_eq(subnetfile_write(path, NULL), -EINVAL);
	/* A directory in the way of the final rename. */
	snprintf(path, sizeof(path), "%s/sub", tmpdir);
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_expect_lt(subnetfile_write(path, &f), 0);
	cr_expect_eq(count_entries(tmpdir), 2, "temp file left behind");
}

Test(subnetfile, read_errors_and_buffers)
{
	struct subnetfile f;
	char err[256], path[512];
	char *big;
	FILE *o;

	snprintf(path, sizeof(path), "%s/missing.env", tmpdir);
	cr_expect_eq(subnetfile_read(path, &f, err, sizeof(err)), -ENOENT);
	cr_expect_not_null(strstr(err, "cannot open"), "%s", err);
	cr_expect_eq(subnetfile_read(tmpdir, &f, err, sizeof(err)), -EISDIR);

	big = malloc(70000);
	cr_assert_not_null(big);
	memset(big, '#', 70000);
	snprintf(path, sizeof(path), "%s/big.env", tmpdir);
	o = fopen(path, "w");
	cr_assert_not_null(o);
	fwrite(big, 1, 70000, o);
	fclose(o);
	cr_expect_eq(subnetfile_read(path, &f, err, sizeof(err)), -EINVAL);
	cr_expect_not_null(strstr(err, "larger than"), "%s", err);
	free(big);

	/* Only @len bytes count. */
	cr_expect_eq(subnetfile_parse("FLANNEL_MTU=1450garbage", 16, &f, err, sizeof(err)), 0, "%s",
	             err);
	cr_expect_eq(f.mtu, 1450);
	cr_expect_eq(subnetfile_parse(NULL, 0, &f, NULL, 0), 0);
	cr_expect_not(f.has_mtu);
	cr_expect_eq(subnetfile_parse("FLANNEL_MTU=x", 13, &f, NULL, 0), -EINVAL);
	cr_expect_eq(subnetfile_parse("FLANNEL_MTU=x", 13, NULL, err, sizeof(err)), -EINVAL);
}
