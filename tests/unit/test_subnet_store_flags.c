#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/ev.h"
#include "lib/flags.h"
#include "subnet/store_flags.h"

static int parse(struct store_flags *sf, struct flag_def *defs, size_t *n, int argc, char **argv,
                 char *err)
{
	int ai;

	store_flags_init(sf);
	*n = 0;
	cr_assert_eq(store_flags_add_defs(sf, defs, n, 16), 0);
	cr_assert_eq(*n, STORE_FLAGS_NDEFS);
	return flags_parse(defs, *n, argc, argv, "FLANNELD_", &ai, err, 256);
}

Test(store_flags, defaults)
{
	struct store_flags sf;
	struct flag_def defs[16];
	char prog[] = "t", err[256], buf[128];
	char *argv[] = { prog, NULL };
	size_t n;

	unsetenv("FLANNELD_ETCD_ENDPOINTS");
	unsetenv("FLANNELD_ETCD_PREFIX");
	cr_assert_eq(parse(&sf, defs, &n, 1, argv, err), 0, "%s", err);
	cr_expect_str_eq(sf.endpoints, "http://127.0.0.1:2379");
	cr_expect_str_eq(sf.prefix, "/coreos.com/network");
	cr_expect_null(sf.keyfile);
	cr_expect_null(sf.certfile);
	cr_expect_null(sf.cafile);
	cr_expect_null(sf.username);
	cr_expect_null(sf.password);
	cr_expect_str_eq(store_flags_prefix(&sf, buf, sizeof(buf)), "/coreos.com/network");
	flags_free(defs, n);
	cr_expect_null(sf.endpoints);
}

Test(store_flags, flags_and_env)
{
	struct store_flags sf;
	struct flag_def defs[16];
	char prog[] = "t", a1[] = "--etcd-endpoints=http://192.0.2.1:2379,http://192.0.2.2:2379",
	     a2[] = "-etcd-cafile", a3[] = "/ca.pem", a4[] = "--etcd-prefix=/x/y//", err[256],
	     buf[128];
	char *argv[] = { prog, a1, a2, a3, a4, NULL };
	size_t n;

	setenv("FLANNELD_ETCD_ENDPOINTS", "http://env:1", 1);
	setenv("FLANNELD_ETCD_USERNAME", "root", 1);
	setenv("FLANNELD_ETCD_PASSWORD", "secret", 1);
	setenv("FLANNELD_ETCD_KEYFILE", "/key.pem", 1);
	setenv("FLANNELD_ETCD_CERTFILE", "/cert.pem", 1);
	cr_assert_eq(parse(&sf, defs, &n, 5, argv, err), 0, "%s", err);
	cr_expect_str_eq(sf.endpoints, "http://192.0.2.1:2379,http://192.0.2.2:2379");
	cr_expect_str_eq(sf.cafile, "/ca.pem");
	cr_expect_str_eq(sf.username, "root");
	cr_expect_str_eq(sf.password, "secret");
	cr_expect_str_eq(sf.keyfile, "/key.pem");
	cr_expect_str_eq(sf.certfile, "/cert.pem");
	cr_expect_str_eq(store_flags_prefix(&sf, buf, sizeof(buf)), "/x/y");
	flags_free(defs, n);
}

Test(store_flags, add_defs_needs_room)
{
	struct store_flags sf;
	struct flag_def defs[8];
	size_t n = 2;

	store_flags_init(&sf);
	cr_expect_eq(store_flags_add_defs(&sf, defs, &n, 8), -ENOSPC);
	cr_expect_eq(n, 2);
	n = 1;
	cr_expect_eq(store_flags_add_defs(&sf, defs, &n, 8), 0);
	cr_expect_eq(n, 8);
}

Test(store_flags, prefix_edge_cases)
{
	struct store_flags sf;
	char buf[8], one[] = "/", empty[] = "", longp[] = "/a/very/long/prefix";

	store_flags_init(&sf);
	sf.prefix = one;
	cr_expect_str_eq(store_flags_prefix(&sf, buf, sizeof(buf)), "/");
	sf.prefix = empty;
	cr_expect_null(store_flags_prefix(&sf, buf, sizeof(buf)));
	sf.prefix = longp;
	cr_expect_null(store_flags_prefix(&sf, buf, sizeof(buf)));
	sf.prefix = NULL;
	cr_expect_null(store_flags_prefix(&sf, buf, sizeof(buf))); /* default does not fit 8 */
}

struct bad_ep {
	char endpoints[96];
	char msg[96];
};

Test(store_flags, open_rejects_bad_endpoint_lists)
{
	static const struct bad_ep cases[] = {
		{ "", "no etcd endpoint given" },
		{ " , ,", "no etcd endpoint given" },
		{ "unix:///run/etcd.sock", "unsupported scheme" },
		{ "file:///tmp/x,http://127.0.0.1:2379", "cannot be combined" },
		{ "file://relative/path", "want file:///absolute/path" },
	};
	struct ev_loop *loop = ev_loop_new();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct store_flags sf;
		char ep[96], err[256];

		store_flags_init(&sf);
		strcpy(ep, cases[i].endpoints);
		sf.endpoints = ep;
		errno = 0;
		cr_expect_null(store_flags_open(loop, &sf, err, sizeof(err)), "%s", ep);
		cr_expect_eq(errno, EINVAL, "%s", ep);
		cr_expect(strstr(err, cases[i].msg) != NULL, "\"%s\": got \"%s\"", ep, err);
	}
	ev_loop_free(loop);
}

Test(store_flags, open_file_store)
{
	struct ev_loop *loop = ev_loop_new();
	struct store_flags sf;
	char dir[] = "/tmp/twill-sf-XXXXXX", ep[128], path[96], err[256];
	struct store *s;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.json", dir);
	snprintf(ep, sizeof(ep), "file://%s", path);
	store_flags_init(&sf);
	sf.endpoints = ep;
	s = store_flags_open(loop, &sf, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	cr_expect_str_eq(s->ops->name, "local");
	store_free(s);
	unlink(path);
	rmdir(dir);
	ev_loop_free(loop);
}

Test(store_flags, open_etcd_store)
{
	struct ev_loop *loop = ev_loop_new();
	struct store_flags sf;
	char ep[] = " http://127.0.0.1:1 , 127.0.0.1:2 ", err[256];
	struct store *s;

	store_flags_init(&sf);
	sf.endpoints = ep;
	s = store_flags_open(loop, &sf, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	cr_expect_str_neq(s->ops->name, "local");
	store_free(s);
	ev_loop_free(loop);
}
