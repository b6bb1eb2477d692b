#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "subnet/store_flags.h"

void store_flags_init(struct store_flags *sf)
{
	/* flags_parse() copies these and never writes them (lib/flags.h) */
	static char def_endpoints[] = STORE_FLAGS_DEFAULT_ENDPOINTS;
	static char def_prefix[] = STORE_FLAGS_DEFAULT_PREFIX;

	memset(sf, 0, sizeof(*sf));
	sf->endpoints = def_endpoints;
	sf->prefix = def_prefix;
}

int store_flags_add_defs(struct store_flags *sf, struct flag_def *defs, size_t *n, size_t cap)
{
	const struct flag_def add[STORE_FLAGS_NDEFS] = {
		{ .name = "etcd-endpoints",
		  .type = FLAG_STRING,
		  .target = &sf->endpoints,
		  .help = "a comma-delimited list of etcd endpoints, or file:///path for a local store" },
		{ .name = "etcd-prefix",
		  .type = FLAG_STRING,
		  .target = &sf->prefix,
		  .help = "etcd prefix" },
		{ .name = "etcd-keyfile",
		  .type = FLAG_STRING,
		  .target = &sf->keyfile,
		  .help = "SSL key file used to secure etcd communication" },
		{ .name = "etcd-certfile",
		  .type = FLAG_STRING,
		  .target = &sf->certfile,
		  .help = "SSL certification file used to secure etcd communication" },
		{ .name = "etcd-cafile",
		  .type = FLAG_STRING,
		  .target = &sf->cafile,
		  .help = "SSL Certificate Authority file used to secure etcd communication" },
		{ .name = "etcd-username",
		  .type = FLAG_STRING,
		  .target = &sf->username,
		  .help = "username for BasicAuth to etcd" },
		{ .name = "etcd-password",
		  .type = FLAG_STRING,
		  .target = &sf->password,
		  .help = "password for BasicAuth to etcd" },
	};

	if (*n > cap || cap - *n < STORE_FLAGS_NDEFS)
		return -ENOSPC;
	memcpy(&defs[*n], add, sizeof(add));
	*n += STORE_FLAGS_NDEFS;
	return 0;
}

const char *store_flags_prefix(const struct store_flags *sf, char *buf, size_t len)
{
	const char *p = sf->prefix ? sf->prefix : STORE_FLAGS_DEFAULT_PREFIX;
	size_t l = strlen(p);

	while (l > 1 && p[l - 1] == '/')
		l--;
	if (l == 0 || l >= len) {
		errno = EINVAL;
		return NULL;
	}
	memcpy(buf, p, l);
	buf[l] = '\0';
	return buf;
}

static void free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static int has_scheme(const char *s, const char *scheme)
{
	return strncmp(s, scheme, strlen(scheme)) == 0;
}

/* Split @list on ',' into a NULL-terminated malloc'd vector of trimmed, non-empty items. */
static char **split_endpoints(const char *list, char *err, size_t errlen)
{
	size_t cap = 1, n = 0;
	char **v;
	const char *p = list;

	for (const char *c = list; *c; c++)
		cap += *c == ',';
	v = calloc(cap + 1, sizeof(*v));
	if (!v)
		goto nomem;
	for (;;) {
		const char *end = strchr(p, ',');
		const char *e = end ? end : p + strlen(p);
		const char *b = p;

		while (b < e && isspace((unsigned char)*b))
			b++;
		while (e > b && isspace((unsigned char)e[-1]))
			e--;
		if (e > b) {
			int l = (int)(e - b);
			char *item;

			/* etcd's client accepts host:port; it means plain http */
			if (asprintf(&item, "%.*s", l, b) < 0)
				goto nomem;
			if (!strstr(item, "://")) {
				char *full;

				if (asprintf(&full, "http://%s", item) < 0) {
					free(item);
					goto nomem;
				}
				free(item);
				item = full;
			}
			v[n++] = item;
			if (!has_scheme(item, "http://") && !has_scheme(item, "https://") &&
			    !has_scheme(item, "file://")) {
				snprintf(
					err, errlen,
					"etcd endpoint \"%s\": unsupported scheme (want http://, https:// or file:///path)",
					item);
				free_strv(v);
				errno = EINVAL;
				return NULL;
			}
		}
		if (!end)
			break;
		p = end + 1;
	}
	if (n == 0) {
		snprintf(err, errlen, "no etcd endpoint given in \"%s\"", list);
		free_strv(v);
		errno = EINVAL;
		return NULL;
	}
	return v;
nomem:
	snprintf(err, errlen, "out of memory");
	free_strv(v);
	errno = ENOMEM;
	return NULL;
}

struct store *store_flags_open(struct ev_loop *loop, const struct store_flags *sf, char *err,
                               size_t errlen)
{
	struct store_opts opts = { 0 };
	struct store *s = NULL;
	char **eps;
	size_t n = 0, nfile = 0;
	int saved;

	if (errlen)
		err[0] = '\0';
	eps = split_endpoints(sf->endpoints ? sf->endpoints : STORE_FLAGS_DEFAULT_ENDPOINTS, err,
	                      errlen);
	if (!eps)
		return NULL;
	for (; eps[n]; n++)
		nfile += has_scheme(eps[n], "file://");
	if (nfile > 0) {
		const char *path = eps[0] + strlen("file://");

		if (n != 1) {
			snprintf(
				err, errlen,
				"etcd endpoints \"%s\": a file:// store cannot be combined with other endpoints",
				sf->endpoints);
			errno = EINVAL;
			goto out;
		}
		if (path[0] != '/') {
			snprintf(err, errlen, "etcd endpoint \"%s\": want file:///absolute/path",
			         eps[0]);
			errno = EINVAL;
			goto out;
		}
		s = store_local_new(loop, path);
		if (!s)
			snprintf(err, errlen, "local store %s: %s", path, strerror(errno));
		goto out;
	}
	opts.endpoints = eps;
	opts.cafile = sf->cafile && *sf->cafile ? sf->cafile : NULL;
	opts.certfile = sf->certfile && *sf->certfile ? sf->certfile : NULL;
	opts.keyfile = sf->keyfile && *sf->keyfile ? sf->keyfile : NULL;
	opts.username = sf->username && *sf->username ? sf->username : NULL;
	opts.password = sf->password && *sf->password ? sf->password : NULL;
	opts.request_timeout_ms = 5000;
	/*
	 * A watch silent for 2 s gets a liveness probe (a count_only range, only during silence):
	 * a frozen member (SIGSTOP: connections accepted, nothing answered) is then left within
	 * 2 s + the request timeout instead of 10 s + it, and a store that went backwards (wiped
	 * or restored: a quiet watch would wait for its old revision) is noticed as quickly.
	 */
	opts.watch_probe_ms = 2000;
	s = store_etcd_new(loop, &opts);
	if (!s)
		snprintf(err, errlen, "etcd store %s: %s", sf->endpoints, strerror(errno));
out:
	saved = errno;
	free_strv(eps);
	errno = saved;
	return s;
}
