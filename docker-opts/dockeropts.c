/*
 * Docker options from the subnet file: the env file of flannel's
 * mk-docker-opts.sh, byte for byte, and a merge into Docker's daemon.json.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "docker-opts/dockeropts.h"
#include "lib/errfmt.h"
#include "lib/fileio.h"
#include "lib/jsonutil.h"

#define OPT_MARK "DOCKER_OPT_"

struct opt {
	char *name;
	char *value;
};

struct optlist {
	struct opt *v;
	size_t n, cap;
};

bool dockeropts_key_valid(const char *key)
{
	if (!key || !*key)
		return false;
	if (!((*key >= 'A' && *key <= 'Z') || (*key >= 'a' && *key <= 'z') || *key == '_'))
		return false;
	for (const char *p = key + 1; *p; p++) {
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	}
	return true;
}

/* The name part of an environment entry "NAME=VALUE", if it is a shell variable name. */
static bool env_name(const char *entry, char *buf, size_t buflen)
{
	const char *eq = strchr(entry, '=');
	size_t n;

	if (!eq)
		return false;
	n = (size_t)(eq - entry);
	if (n == 0 || n >= buflen)
		return false;
	memcpy(buf, entry, n);
	buf[n] = '\0';
	return dockeropts_key_valid(buf);
}

/* The value of the last definition of @name in @envp (the shell imports them in order). */
static const char *env_get(const char *const *envp, const char *name)
{
	const char *found = NULL;
	size_t n = strlen(name);

	for (const char *const *e = envp; e && *e; e++) {
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			found = *e + n + 1;
	}
	return found;
}

/*
 * A value goes between double quotes in a file read by sh and by systemd's
 * EnvironmentFile=: refuse what would end or change the quoting there.
 */
static const char *value_problem(const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\' || *p == '$' || *p == '`')
			return "contains a quote, backslash, $ or backquote";
		if (*p < 0x20 && *p != '\t')
			return "contains a control character";
		if (*p == 0x7f)
			return "contains a control character";
	}
	return NULL;
}

static void optlist_free(struct optlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* Set @name to @value, replacing an earlier definition. 0 or -ENOMEM. */
static int optlist_set(struct optlist *l, const char *name, const char *value)
{
	char *nv = strdup(value);

	if (!nv)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->v[i].name, name) == 0) {
			free(l->v[i].value);
			l->v[i].value = nv;
			return 0;
		}
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		struct opt *v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			free(nv);
			return -ENOMEM;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].name = strdup(name);
	if (!l->v[l->n].name) {
		free(nv);
		return -ENOMEM;
	}
	l->v[l->n].value = nv;
	l->n++;
	return 0;
}

#define NO_V6_SUBNET                                                                               \
	"no FLANNEL_IPV6_SUBNET (--ipv6 needs a network config with \"EnableIPv6\": true)"

/*
 * Docker's fixed-cidr-v6 for the node: the network address of the IPv6 lease
 * with its length (the subnet file holds the ::1 host form, like FLANNEL_SUBNET;
 * the network form is the one Docker documents). Returns @buf.
 */
static char *v6_cidr(const struct subnetfile *sf, char *buf)
{
	struct ipam_prefix net = ipam_prefix_network(&sf->ipv6_subnet);

	return ipam_prefix_format(&net, buf);
}

/* --ipv6 and --fixed-cidr-v6 (dockerd refuses --ipv6 on the default bridge without it). */
static int add_ipv6_opts(struct optlist *l, const struct subnetfile *sf)
{
	char val[IPAM_PREFIX_STRLEN + 32], pfx[IPAM_PREFIX_STRLEN];
	int r = optlist_set(l, OPT_MARK "IPV6", "--ipv6");

	if (r < 0)
		return r;
	snprintf(val, sizeof(val), "--fixed-cidr-v6=%s", v6_cidr(sf, pfx));
	return optlist_set(l, OPT_MARK "FIXED_CIDR_V6", val);
}

static int opt_cmp(const void *a, const void *b)
{
	return strcmp(((const struct opt *)a)->name, ((const struct opt *)b)->name);
}

/* Every value the env file will quote must be safe to quote (value_problem); 0 or -EINVAL. */
static int check_values(const struct optlist *l, const char *key, const char *preset, char *err,
                        size_t errlen)
{
	const char *why;

	for (size_t i = 0; i < l->n; i++) {
		why = value_problem(l->v[i].value);
		if (why) {
			errfmt(err, errlen, "environment variable %s %s", l->v[i].name, why);
			return -EINVAL;
		}
	}
	why = preset ? value_problem(preset) : NULL;
	if (why) {
		errfmt(err, errlen, "environment variable %s %s", key, why);
		return -EINVAL;
	}
	return 0;
}

int dockeropts_format_env(const struct subnetfile *sf, const struct dockeropts_opts *o,
                          const char *const *envp, char **ret_buf, size_t *ret_len, char *err,
                          size_t errlen)
{
	struct optlist l = { 0 };
	char name[256], val[IPAM_PREFIX_STRLEN + 16], pfx[IPAM_PREFIX_STRLEN];
	const char *key = o->key ? o->key : DOCKEROPTS_DEFAULT_KEY;
	const char *preset;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = NULL;
	int r;

	if (!dockeropts_key_valid(key)) {
		errfmt(err, errlen, "invalid variable name \"%s\"", key);
		return -EINVAL;
	}
	if (!sf->has_subnet) {
		errfmt(err, errlen, "no FLANNEL_SUBNET");
		return -EINVAL;
	}
	if (o->ipv6 && !sf->has_ipv6_subnet) {
		errfmt(err, errlen, "%s", NO_V6_SUBNET);
		return -EINVAL;
	}

	/* The script collects every shell variable whose `set` line matches DOCKER_OPT_. */
	for (const char *const *e = envp; e && *e; e++) {
		if (!env_name(*e, name, sizeof(name)) || !strstr(name, OPT_MARK))
			continue;
		r = optlist_set(&l, name, *e + strlen(name) + 1);
		if (r < 0)
			goto nomem;
	}

	snprintf(val, sizeof(val), "--bip=%s", ipam_prefix_format(&sf->subnet, pfx));
	r = optlist_set(&l, OPT_MARK "BIP", val);
	if (r < 0)
		goto nomem;
	if (sf->has_mtu) {
		snprintf(val, sizeof(val), "--mtu=%d", sf->mtu);
		r = optlist_set(&l, OPT_MARK "MTU", val);
		if (r < 0)
			goto nomem;
	}
	/* Docker masquerades exactly when twilld does not. */
	if (sf->has_ipmasq && o->ipmasq) {
		r = optlist_set(&l, OPT_MARK "IPMASQ",
		                sf->ipmasq ? "--ip-masq=false" : "--ip-masq=true");
		if (r < 0)
			goto nomem;
	}
	if (o->ipv6 && add_ipv6_opts(&l, sf) < 0)
		goto nomem;

	preset = env_get(envp, key);
	r = check_values(&l, key, preset, err, errlen);
	if (r < 0)
		goto out;
	qsort(l.v, l.n, sizeof(*l.v), opt_cmp);

	f = open_memstream(&buf, &len);
	if (!f)
		goto nomem;
	if (o->individual) {
		for (size_t i = 0; i < l.n; i++)
			fprintf(f, "%s=\"%s\"\n", l.v[i].name, l.v[i].value);
	}
	if (o->combined) {
		/* docker_opts="$KEY"; non-empty gets a space; each option adds " $value". */
		fprintf(f, "%s=\"", key);
		if (preset && *preset)
			fprintf(f, "%s ", preset);
		for (size_t i = 0; i < l.n; i++)
			fprintf(f, " %s", l.v[i].value);
		fputs("\"\n", f);
	}
	if (ferror(f) || fclose(f) != 0) {
		f = NULL;
		goto nomem;
	}
	f = NULL;
	*ret_buf = buf;
	*ret_len = len;
	buf = NULL;
	r = 0;
	goto out;

nomem:
	errfmt(err, errlen, "out of memory");
	r = -ENOMEM;
out:
	if (f)
		fclose(f);
	free(buf);
	optlist_free(&l);
	return r;
}

static bool blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	}
	return true;
}

int dockeropts_merge_daemon_json(const char *in, size_t len, const struct subnetfile *sf,
                                 bool ipmasq, bool ipv6, char **ret_buf, size_t *ret_len,
                                 char *err, size_t errlen)
{
	char pfx[IPAM_PREFIX_STRLEN];
	json_error_t jerr;
	json_t *root = NULL;
	char *text = NULL, *out;
	size_t n;
	int r;

	if (!sf->has_subnet) {
		errfmt(err, errlen, "no FLANNEL_SUBNET");
		return -EINVAL;
	}
	if (ipv6 && !sf->has_ipv6_subnet) {
		errfmt(err, errlen, "%s", NO_V6_SUBNET);
		return -EINVAL;
	}
	if (!in || blank(in, len)) {
		root = json_object();
	} else {
		root = json_loadb(in, len, JSON_REJECT_DUPLICATES, &jerr);
		if (!root) {
			errfmt(err, errlen, "line %d column %d: %s", jerr.line, jerr.column,
			       jerr.text);
			return -EINVAL;
		}
		if (!json_is_object(root)) {
			errfmt(err, errlen, "top level is %s, not an object", json_type_desc(root));
			r = -EINVAL;
			goto out;
		}
	}
	if (!root)
		goto nomem;

	if (json_object_set_new(root, "bip", json_string(ipam_prefix_format(&sf->subnet, pfx))) < 0)
		goto nomem;
	if (sf->has_mtu && json_object_set_new(root, "mtu", json_integer(sf->mtu)) < 0)
		goto nomem;
	if (sf->has_ipmasq && ipmasq &&
	    json_object_set_new(root, "ip-masq", json_boolean(!sf->ipmasq)) < 0)
		goto nomem;
	if (ipv6 && (json_object_set_new(root, "ipv6", json_true()) < 0 ||
	             json_object_set_new(root, "fixed-cidr-v6", json_string(v6_cidr(sf, pfx))) < 0))
		goto nomem;

	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		goto nomem;
	n = strlen(text);
	out = malloc(n + 2);
	if (!out)
		goto nomem;
	memcpy(out, text, n);
	out[n] = '\n';
	out[n + 1] = '\0';
	*ret_buf = out;
	*ret_len = n + 1;
	r = 0;
	goto out;

nomem:
	errfmt(err, errlen, "out of memory");
	r = -ENOMEM;
out:
	free(text);
	json_decref(root);
	return r;
}

int dockeropts_write_atomic(const char *path, const char *buf, size_t len, mode_t mode, char *err,
                            size_t errlen)
{
	return file_write_atomic(path, buf, len, mode,
	                         FILE_ATOMIC_MKDIR | FILE_ATOMIC_KEEP_MODE | FILE_ATOMIC_FOLLOW |
	                                 FILE_ATOMIC_REGULAR,
	                         err, errlen);
}
