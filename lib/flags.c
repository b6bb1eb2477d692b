#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/flags.h"

int flags_parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	return 99;
}

int flags_parse_int(const char *s, int64_t *ret)
{
	bool neg = false;
	unsigned base = 10;
	uint64_t v = 0, limit;

	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (*s == '\0')
		return -EINVAL;
	if (s[0] == '0' && s[1] != '\0') {
		switch (s[1]) {
		case 'x':
		case 'X':
			base = 16;
			s += 2;
			break;
		case 'o':
		case 'O':
			base = 8;
			s += 2;
			break;
		case 'b':
		case 'B':
			base = 2;
			s += 2;
			break;
		default:
			base = 8;
			s += 1;
			break;
		}
		if (*s == '\0')
			return -EINVAL;
	}
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *s; s++) {
		unsigned d = (unsigned)digit_value(*s);

		if (d >= base)
			return -EINVAL;
		if (v > (limit - d) / base) {
			/* keep scanning so that a later syntax error wins, as in Go */
			for (s++; *s; s++)
				if ((unsigned)digit_value(*s) >= base)
					return -EINVAL;
			return -ERANGE;
		}
		v = v * base + d;
	}
	if (neg)
		*ret = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		*ret = (int64_t)v;
	return 0;
}

static const struct flag_def *find_def(const struct flag_def *defs, size_t ndefs, const char *name,
                                       size_t len)
{
	for (size_t i = 0; i < ndefs; i++)
		if (strlen(defs[i].name) == len && strncmp(defs[i].name, name, len) == 0)
			return &defs[i];
	return NULL;
}

/* @src: "flag -name" or "FLANNELD_NAME", for messages. */
static int set_value(const struct flag_def *d, const char *value, const char *src, char *err,
                     size_t errlen)
{
	switch (d->type) {
	case FLAG_STRING: {
		char **t = d->target;
		char *copy = strdup(value);

		if (!copy)
			return -ENOMEM;
		free(*t);
		*t = copy;
		return 0;
	}
	case FLAG_STRING_LIST: {
		struct flag_list *l = d->target;
		char *copy = strdup(value);
		char **nv;

		if (!copy)
			return -ENOMEM;
		nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
		if (!nv) {
			free(copy);
			return -ENOMEM;
		}
		nv[l->n++] = copy;
		l->v = nv;
		return 0;
	}
	case FLAG_BOOL:
		if (flags_parse_bool(value, d->target) < 0) {
			snprintf(err, errlen,
			         "invalid boolean value \"%s\" for %s: want true/false, 1/0, t/f",
			         value, src);
			return -EINVAL;
		}
		return 0;
	case FLAG_INT: {
		int64_t v;
		int r = flags_parse_int(value, &v);

		if (r == -ERANGE) {
			snprintf(err, errlen, "invalid value \"%s\" for %s: value out of range",
			         value, src);
			return -EINVAL;
		}
		if (r < 0) {
			snprintf(err, errlen, "invalid value \"%s\" for %s: not an integer", value,
			         src);
			return -EINVAL;
		}
		if ((d->min != 0 || d->max != 0) && (v < d->min || v > d->max)) {
			snprintf(err, errlen,
			         "invalid value \"%s\" for %s: out of range %" PRId64 "..%" PRId64,
			         value, src, d->min, d->max);
			return -EINVAL;
		}
		*(int64_t *)d->target = v;
		return 0;
	}
	}
	snprintf(err, errlen, "%s: unsupported flag type", src);
	return -EINVAL;
}

static void env_name(const char *prefix, const char *name, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "%s%s", prefix, name);

	for (size_t i = strlen(prefix); i < n && i < len; i++)
		buf[i] = buf[i] == '-' ? '_' : (char)toupper((unsigned char)buf[i]);
}

static int dup_defaults(const struct flag_def *defs, size_t ndefs)
{
	for (size_t i = 0; i < ndefs; i++) {
		char **t;
		char *copy;

		if (defs[i].type != FLAG_STRING)
			continue;
		t = defs[i].target;
		if (!*t)
			continue;
		copy = strdup(*t);
		if (!copy) {
			/* leave the remaining defaults unowned: NULL them so flags_free is safe */
			for (size_t j = i; j < ndefs; j++)
				if (defs[j].type == FLAG_STRING)
					*(char **)defs[j].target = NULL;
			return -ENOMEM;
		}
		*t = copy;
	}
	return 0;
}

/*
 * Apply the flag at argv[*i] (which starts with '-' and is not "-" or "--"),
 * consuming its value argument if it takes one: 0 or -EINVAL/-ENOMEM with @err.
 */
static int parse_one(const struct flag_def *defs, size_t ndefs, int argc, char **argv, int *i,
                     bool *seen, char *err, size_t errlen)
{
	const char *arg = argv[*i], *name, *eq, *value = NULL;
	const struct flag_def *d;
	char src[160];
	size_t len;

	name = arg + (arg[1] == '-' ? 2 : 1);
	if (name[0] == '\0' || name[0] == '-' || name[0] == '=') {
		snprintf(err, errlen, "bad flag syntax: %s", arg);
		return -EINVAL;
	}
	eq = strchr(name, '=');
	len = eq ? (size_t)(eq - name) : strlen(name);
	if (eq)
		value = eq + 1;
	d = find_def(defs, ndefs, name, len);
	if (!d) {
		snprintf(err, errlen, "unknown flag -%.*s", (int)len, name);
		return -EINVAL;
	}
	seen[d - defs] = true;
	if (d->type == FLAG_BOOL && !value) {
		*(bool *)d->target = true;
		return 0;
	}
	if (!value) {
		if (*i + 1 >= argc) {
			snprintf(err, errlen, "flag -%s needs a value", d->name);
			return -EINVAL;
		}
		value = argv[++*i];
	}
	snprintf(src, sizeof(src), "flag -%s", d->name);
	return set_value(d, value, src, err, errlen);
}

static int apply_env(const struct flag_def *defs, size_t ndefs, const char *env_prefix,
                     const bool *seen, char *err, size_t errlen)
{
	char src[160];

	for (size_t k = 0; k < ndefs; k++) {
		const char *v;
		int r;

		if (seen[k] || defs[k].no_env)
			continue;
		env_name(env_prefix, defs[k].name, src, sizeof(src));
		v = getenv(src);
		if (!v || !*v)
			continue;
		r = set_value(&defs[k], v, src, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * The common body: with @ret_pos NULL, stop at the first positional argument;
 * otherwise collect positional arguments into @ret_pos and go on.
 */
static int parse_args(const struct flag_def *defs, size_t ndefs, int argc, char **argv,
                      const char *env_prefix, int *ret_argind, char **ret_pos, int *ret_npos,
                      char *err, size_t errlen)
{
	bool *seen = NULL;
	int i = 1, npos = 0, r;

	if (errlen)
		err[0] = '\0';
	r = dup_defaults(defs, ndefs);
	if (r < 0)
		goto out;
	seen = calloc(ndefs + 1, sizeof(*seen));
	if (!seen) {
		r = -ENOMEM;
		goto out;
	}
	for (; i < argc; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		if (arg[0] != '-' || arg[1] == '\0') {
			if (!ret_pos)
				break;
			ret_pos[npos++] = argv[i];
			continue;
		}
		r = parse_one(defs, ndefs, argc, argv, &i, seen, err, errlen);
		if (r < 0)
			goto out;
	}
	if (ret_pos)
		while (i < argc)
			ret_pos[npos++] = argv[i++];
	r = env_prefix ? apply_env(defs, ndefs, env_prefix, seen, err, errlen) : 0;
	if (r < 0)
		goto out;
	if (ret_argind)
		*ret_argind = i;
	if (ret_npos)
		*ret_npos = npos;
out:
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	free(seen);
	return r;
}

int flags_parse(const struct flag_def *defs, size_t ndefs, int argc, char **argv,
                const char *env_prefix, int *ret_argind, char *err, size_t errlen)
{
	return parse_args(defs, ndefs, argc, argv, env_prefix, ret_argind, NULL, NULL, err, errlen);
}

int flags_parse_interspersed(const struct flag_def *defs, size_t ndefs, int argc, char **argv,
                             const char *env_prefix, char **ret_pos, int *ret_npos, char *err,
                             size_t errlen)
{
	return parse_args(defs, ndefs, argc, argv, env_prefix, NULL, ret_pos, ret_npos, err,
	                  errlen);
}

static void print_default(const struct flag_def *d, FILE *f)
{
	switch (d->type) {
	case FLAG_STRING: {
		const char *s = *(char *const *)d->target;

		if (s && *s)
			fprintf(f, " (default \"%s\")", s);
		break;
	}
	case FLAG_BOOL:
		/* --help/--version are true only because they asked for this usage */
		if (*(bool *)d->target && strcmp(d->name, "help") != 0 &&
		    strcmp(d->name, "h") != 0 && strcmp(d->name, "version") != 0)
			fprintf(f, " (default true)");
		break;
	case FLAG_INT: {
		int64_t v = *(int64_t *)d->target;

		if (v)
			fprintf(f, " (default %" PRId64 ")", v);
		break;
	}
	case FLAG_STRING_LIST:
		fprintf(f, " (repeatable)");
		break;
	}
}

void flags_usage(const struct flag_def *defs, size_t ndefs, const char *env_prefix, void *file)
{
	FILE *f = file;
	char env[160];

	for (size_t i = 0; i < ndefs; i++) {
		const struct flag_def *d = &defs[i];

		fprintf(f, "  --%s%s\n    \t%s", d->name,
		        d->type == FLAG_BOOL  ? ""
		        : d->type == FLAG_INT ? " int"
		                              : " string",
		        d->help ? d->help : "");
		print_default(d, f);
		if (env_prefix && !d->no_env) {
			env_name(env_prefix, d->name, env, sizeof(env));
			fprintf(f, " [$%s]", env);
		}
		fputc('\n', f);
	}
}

void flags_free(const struct flag_def *defs, size_t ndefs)
{
	for (size_t i = 0; i < ndefs; i++) {
		if (defs[i].type == FLAG_STRING) {
			char **t = defs[i].target;

			free(*t);
			*t = NULL;
		} else if (defs[i].type == FLAG_STRING_LIST) {
			struct flag_list *l = defs[i].target;

			for (size_t k = 0; k < l->n; k++)
				free(l->v[k]);
			free(l->v);
			l->v = NULL;
			l->n = 0;
		}
	}
}
