/*
 * twill-docker-opts library: golden env files (produced by flannel's
 * mk-docker-opts.sh from the same input, see fixtures/docker-opts/cases.txt),
 * the daemon.json merge and the atomic writer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "docker-opts/dockeropts.h"
#include "subnet/subnetfile.h"

#define FIX TWILL_FIXTURES "/docker-opts/"

static char *slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0;
	long n;

	cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	len = fread(buf, 1, (size_t)n, f);
	cr_assert_eq(len, (size_t)n, "short read of %s", path);
	buf[len] = '\0';
	fclose(f);
	if (ret_len)
		*ret_len = len;
	return buf;
}

static void load_subnet(const char *name, struct subnetfile *sf)
{
	char path[512], err[256] = "";
	int r;

	snprintf(path, sizeof(path), FIX "%s", name);
	r = subnetfile_read(path, sf, err, sizeof(err));
	cr_assert_eq(r, 0, "subnetfile_read %s: %d %s", name, r, err);
}

static struct subnetfile full_subnet(void)
{
	struct subnetfile sf;

	memset(&sf, 0, sizeof(sf));
	sf.has_subnet = true;
	cr_assert_eq(ipam_prefix_parse("10.1.74.1/24", &sf.subnet), 0);
	sf.has_mtu = true;
	sf.mtu = 1472;
	sf.has_ipmasq = true;
	sf.ipmasq = false;
	return sf;
}

/* Split @s on spaces into a NULL-terminated vector of pointers into @s. */
static size_t split_words(char *s, char **v, size_t max)
{
	size_t n = 0;

	for (char *tok = strtok(s, " "); tok && n + 1 < max; tok = strtok(NULL, " "))
		v[n++] = tok;
	v[n] = NULL;
	return n;
}

Test(dockeropts, golden_env_cases)
{
	char *cases = slurp(FIX "cases.txt", NULL);
	char *save = NULL;
	int ncases = 0;

	for (char *line = strtok_r(cases, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *name, *sub, *args, *env, *argv[16], *envp[16], *got = NULL, *want;
		struct dockeropts_opts o = { .ipmasq = true, .key = DOCKEROPTS_DEFAULT_KEY };
		char path[512], err[256] = "";
		struct subnetfile sf;
		size_t got_len = 0, want_len;
		int r;

		if (line[0] == '#')
			continue;
		name = strsep(&line, "|");
		sub = strsep(&line, "|");
		args = strsep(&line, "|");
		env = line;
		cr_assert(name && sub && args && env, "bad case line");

		split_words(args, argv, 16);
		for (char **a = argv; *a; a++) {
			if (strcmp(*a, "-i") == 0)
				o.individual = true;
			else if (strcmp(*a, "-c") == 0)
				o.combined = true;
			else if (strcmp(*a, "-m") == 0)
				o.ipmasq = false;
			else if (strcmp(*a, "-k") == 0)
				o.key = *++a;
			else if (strcmp(*a, "--ipv6") == 0)
				o.ipv6 = true;
			else
				cr_assert_fail("case %s: unknown argument %s", name, *a);
		}
		if (!o.individual && !o.combined)
			o.individual = o.combined = true;
		split_words(env, envp, 16);

		load_subnet(sub, &sf);
		r = dockeropts_format_env(&sf, &o, (const char *const *)envp, &got, &got_len, err,
		                          sizeof(err));
		cr_assert_eq(r, 0, "case %s: %d %s", name, r, err);
		snprintf(path, sizeof(path), FIX "env-%s.out", name);
		want = slurp(path, &want_len);
		cr_expect_eq(got_len, want_len, "case %s: length %zu, want %zu", name, got_len,
		             want_len);
		cr_expect_str_eq(got, want, "case %s:\n--- got\n%s--- want\n%s", name, got, want);
		free(got);
		free(want);
		ncases++;
	}
	cr_expect_geq(ncases, 25, "only %d cases read", ncases);
	free(cases);
}

Test(dockeropts, compat_example_and_null_env)
{
	struct dockeropts_opts o = { .individual = true, .combined = true, .ipmasq = true };
	struct subnetfile sf = full_subnet();
	char *got = NULL, err[256];
	size_t len;

	cr_assert_eq(dockeropts_format_env(&sf, &o, NULL, &got, &len, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_str_eq(got, "DOCKER_OPT_BIP=\"--bip=10.1.74.1/24\"\n"
	                      "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
	                      "DOCKER_OPT_MTU=\"--mtu=1472\"\n"
	                      "DOCKER_OPTS=\" --bip=10.1.74.1/24 --ip-masq=true --mtu=1472\"\n");
	cr_assert_eq(len, strlen(got));
	free(got);
}

Test(dockeropts, env_names_matched_like_the_script)
{
	/* `set | grep DOCKER_OPT_` matches the name anywhere; names that are not shell
	 * variables never reach `set`; DOCKER_OPTS itself does not match. */
	const char *envp[] = { "MY_DOCKER_OPT_Z=--z",
		               "DOCKER_OPT_-X=--bad",
		               "DOCKER_OPTS=--p",
		               "docker_opt_low=--low",
		               "NOEQUALS",
		               "DOCKER_OPT_A=--first",
		               "DOCKER_OPT_A=--last",
		               NULL };
	struct dockeropts_opts o = { .combined = true, .ipmasq = true, .key = "DOCKER_OPTS" };
	struct subnetfile sf = full_subnet();
	char *got = NULL, err[256];
	size_t len;

	cr_assert_eq(dockeropts_format_env(&sf, &o, envp, &got, &len, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_str_eq(got, "DOCKER_OPTS=\"--p  --last --bip=10.1.74.1/24 --ip-masq=true "
	                      "--mtu=1472 --z\"\n");
	free(got);
}

Test(dockeropts, errors)
{
	struct dockeropts_opts o = { .individual = true, .combined = true, .ipmasq = true };
	struct subnetfile sf = full_subnet();
	char *got = NULL, err[256];
	size_t len;
	const char *quote[] = { "DOCKER_OPTS=--label \"a=b\"", NULL };
	const char *dollar[] = { "DOCKER_OPT_X=$(reboot)", NULL };
	const char *newline[] = { "DOCKER_OPT_X=a\nb", NULL };

	o.key = "1BAD";
	cr_assert_eq(dockeropts_format_env(&sf, &o, NULL, &got, &len, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "1BAD"), "%s", err);
	o.key = "";
	cr_assert_eq(dockeropts_format_env(&sf, &o, NULL, &got, &len, err, sizeof(err)), -EINVAL);
	o.key = "DOCKER-OPTS";
	cr_assert_eq(dockeropts_format_env(&sf, &o, NULL, &got, &len, err, sizeof(err)), -EINVAL);
	o.key = NULL; /* default */

	cr_assert_eq(dockeropts_format_env(&sf, &o, quote, &got, &len, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "DOCKER_OPTS"), "%s", err);
	cr_assert_eq(dockeropts_format_env(&sf, &o, dollar, &got, &len, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "DOCKER_OPT_X"), "%s", err);
	cr_assert_eq(dockeropts_format_env(&sf, &o, newline, &got, &len, err, sizeof(err)),
	             -EINVAL);
	/* Only the key in use matters: a bad DOCKER_OPTS is irrelevant with -k FOO. */
	o.key = "FOO";
	cr_assert_eq(dockeropts_format_env(&sf, &o, quote, &got, &len, err, sizeof(err)), 0);
	free(got);
	got = NULL;

	sf.has_subnet = false;
	cr_assert_eq(dockeropts_format_env(&sf, &o, NULL, &got, &len, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "FLANNEL_SUBNET"), "%s", err);
	cr_assert_eq(dockeropts_merge_daemon_json(NULL, 0, &sf, true, false, &got, &len, err,
	                                          sizeof(err)),
	             -EINVAL);
	cr_assert_null(got);
}

Test(dockeropts, ipv6_needs_ipv6_subnet)
{
	struct dockeropts_opts o = {
		.individual = true, .combined = true, .ipmasq = true, .ipv6 = true
	};
	struct subnetfile sf = full_subnet();
	char *got = NULL, err[256] = "";
	size_t len;

	cr_assert_eq(dockeropts_format_env(&sf, &o, NULL, &got, &len, err, sizeof(err)), -EINVAL);
	cr_assert_null(got);
	cr_assert(strstr(err, "FLANNEL_IPV6_SUBNET") && strstr(err, "EnableIPv6"), "%s", err);
	err[0] = '\0';
	cr_assert_eq(dockeropts_merge_daemon_json("{}", 2, &sf, true, true, &got, &len, err,
	                                          sizeof(err)),
	             -EINVAL);
	cr_assert_null(got);
	cr_assert(strstr(err, "FLANNEL_IPV6_SUBNET"), "%s", err);
}

Test(dockeropts, ipv6_fixed_cidr_is_the_network)
{
	/* The subnet file holds the ::1 host form; Docker gets the network address.
	 * A prefix that is not /64 keeps its length. */
	struct dockeropts_opts o = { .individual = true, .ipmasq = false, .ipv6 = true };
	struct subnetfile sf = full_subnet();
	char *got = NULL, err[256];
	size_t len;

	sf.has_ipv6_subnet = true;
	cr_assert_eq(ipam_prefix_parse("2001:db8:100:ab80::1/57", &sf.ipv6_subnet), 0);
	cr_assert_eq(dockeropts_format_env(&sf, &o, NULL, &got, &len, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_str_eq(got,
	                 "DOCKER_OPT_BIP=\"--bip=10.1.74.1/24\"\n"
	                 "DOCKER_OPT_FIXED_CIDR_V6=\"--fixed-cidr-v6=2001:db8:100:ab80::/57\"\n"
	                 "DOCKER_OPT_IPV6=\"--ipv6\"\n"
	                 "DOCKER_OPT_MTU=\"--mtu=1472\"\n");
	free(got);
	got = NULL;
	cr_assert_eq(dockeropts_merge_daemon_json(NULL, 0, &sf, false, true, &got, &len, err,
	                                          sizeof(err)),
	             0, "%s", err);
	cr_assert_str_eq(got,
	                 "{\n  \"bip\": \"10.1.74.1/24\",\n  \"mtu\": 1472,\n"
	                 "  \"ipv6\": true,\n  \"fixed-cidr-v6\": \"2001:db8:100:ab80::/57\"\n}\n");
	free(got);
}

Test(dockeropts, key_valid)
{
	cr_assert(dockeropts_key_valid("DOCKER_OPTS"));
	cr_assert(dockeropts_key_valid("_x9"));
	cr_assert_not(dockeropts_key_valid("9x"));
	cr_assert_not(dockeropts_key_valid(""));
	cr_assert_not(dockeropts_key_valid(NULL));
	cr_assert_not(dockeropts_key_valid("A B"));
	cr_assert_not(dockeropts_key_valid("A=B"));
}

static void merge_golden(const char *in_name, const char *subnet, bool ipmasq, bool ipv6,
                         const char *want_name)
{
	char path[512], err[256] = "", *in = NULL, *got = NULL, *want;
	size_t in_len = 0, got_len = 0, want_len;
	struct subnetfile sf;
	int r;

	load_subnet(subnet, &sf);
	if (in_name) {
		snprintf(path, sizeof(path), FIX "%s", in_name);
		in = slurp(path, &in_len);
	}
	r = dockeropts_merge_daemon_json(in, in_len, &sf, ipmasq, ipv6, &got, &got_len, err,
	                                 sizeof(err));
	cr_assert_eq(r, 0, "%s: %d %s", in_name ? in_name : "(absent)", r, err);
	snprintf(path, sizeof(path), FIX "%s", want_name);
	want = slurp(path, &want_len);
	cr_expect_eq(got_len, want_len);
	cr_expect_str_eq(got, want, "%s:\n--- got\n%s--- want\n%s", want_name, got, want);
	free(in);
	free(got);
	free(want);
}

Test(dockeropts, daemon_json_merge_existing)
{
	merge_golden("daemon-existing.json", "subnet-full.env", true, false, "daemon-existing.out");
}

Test(dockeropts, daemon_json_merge_nomasq_keeps_theirs)
{
	merge_golden("daemon-with-masq.json", "subnet-full.env", false, false,
	             "daemon-with-masq-nomasq.out");
}

Test(dockeropts, daemon_json_merge_no_mtu_keeps_theirs)
{
	merge_golden("daemon-with-masq.json", "subnet-no-mtu.env", true, false,
	             "daemon-with-masq-no-mtu.out");
}

Test(dockeropts, daemon_json_new)
{
	merge_golden(NULL, "subnet-full.env", true, false, "daemon-new.out");
	merge_golden("daemon-blank.json", "subnet-full.env", true, false, "daemon-new.out");
	merge_golden(NULL, "subnet-ipmasq-true.env", false, false, "daemon-new-nomasq.out");
}

Test(dockeropts, daemon_json_ipv6)
{
	/* New keys go after ip-masq; keys already there keep their place and get our value. */
	merge_golden(NULL, "subnet-dual.env", true, true, "daemon-v6-new.out");
	merge_golden("daemon-v6-existing.json", "subnet-dual.env", true, true,
	             "daemon-v6-existing.out");
	/* Without the option a dual-stack subnet file gives the IPv4-only merge. */
	merge_golden(NULL, "subnet-dual.env", true, false, "daemon-dual-no-ipv6.out");
}

Test(dockeropts, daemon_json_refused)
{
	static const struct {
		const char *file, *msg;
	} bad[] = {
		{ "daemon-malformed.json", "line 4 column 1" },
		{ "daemon-array.json", "an array" },
		{ "daemon-duplicate.json", "duplicate" },
		{ "daemon-trailing.json", "line" },
	};
	struct subnetfile sf = full_subnet();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char path[512], err[256] = "", *in, *got = NULL;
		size_t len, got_len;

		snprintf(path, sizeof(path), FIX "%s", bad[i].file);
		in = slurp(path, &len);
		cr_expect_eq(dockeropts_merge_daemon_json(in, len, &sf, true, false, &got, &got_len,
		                                          err, sizeof(err)),
		             -EINVAL, "%s accepted", bad[i].file);
		cr_expect_null(got);
		cr_expect(strstr(err, bad[i].msg), "%s: error \"%s\" lacks \"%s\"", bad[i].file,
		          err, bad[i].msg);
		free(in);
	}
	/* Not NUL-terminated input and an embedded NUL are handled by length. */
	{
		const char nul[] = { '{', '"', 'a', '"', ':', '1', '}', '\0', 'x' };
		char err[256], *got = NULL;
		size_t got_len;

		cr_expect_eq(dockeropts_merge_daemon_json(nul, sizeof(nul), &sf, true, false, &got,
		                                          &got_len, err, sizeof(err)),
		             -EINVAL);
		cr_expect_eq(dockeropts_merge_daemon_json(nul, 7, &sf, true, false, &got, &got_len,
		                                          err, sizeof(err)),
		             0, "%s", err);
		cr_expect_str_eq(got,
		                 "{\n  \"a\": 1,\n  \"bip\": \"10.1.74.1/24\",\n  \"mtu\": 1472,\n"
		                 "  \"ip-masq\": true\n}\n");
		free(got);
	}
}

static char *make_tmpdir(void)
{
	char *d = strdup("/tmp/twill-dockeropts-XXXXXX");

	cr_assert_not_null(d);
	cr_assert_not_null(mkdtemp(d));
	return d;
}

static void rm_rf(const char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_expect_eq(system(cmd), 0);
}

static int count_entries(const char *dir)
{
	char cmd[600];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_eq(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

Test(dockeropts, write_atomic)
{
	char *dir = make_tmpdir(), path[512], link[512], err[256] = "", *got;
	struct stat st;

	/* New file, parent directories created. */
	snprintf(path, sizeof(path), "%s/a/b/out.env", dir);
	cr_assert_eq(dockeropts_write_atomic(path, "one\n", 4, 0644, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0644);
	got = slurp(path, NULL);
	cr_expect_str_eq(got, "one\n");
	free(got);

	/* Replacement keeps the old mode; no temp file is left behind. */
	cr_assert_eq(chmod(path, 0600), 0);
	cr_assert_eq(dockeropts_write_atomic(path, "two\n", 4, 0644, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600);
	got = slurp(path, NULL);
	cr_expect_str_eq(got, "two\n");
	free(got);
	snprintf(link, sizeof(link), "%s/a/b", dir);
	cr_expect_eq(count_entries(link), 1);

	/* A symlink is followed: the target changes, the link stays. */
	snprintf(link, sizeof(link), "%s/link.env", dir);
	cr_assert_eq(symlink(path, link), 0);
	cr_assert_eq(dockeropts_write_atomic(link, "three\n", 6, 0644, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_eq(lstat(link, &st), 0);
	cr_expect(S_ISLNK(st.st_mode));
	got = slurp(path, NULL);
	cr_expect_str_eq(got, "three\n");
	free(got);

	/* A directory in the way is an error naming it. */
	snprintf(path, sizeof(path), "%s/a", dir);
	cr_expect_lt(dockeropts_write_atomic(path, "x", 1, 0644, err, sizeof(err)), 0);
	cr_expect(strstr(err, path), "%s", err);
	cr_expect_lt(dockeropts_write_atomic("", "x", 1, 0644, err, sizeof(err)), 0);
	rm_rf(dir);
	free(dir);
}
