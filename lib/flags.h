/*
 * Command-line flags with flanneld's semantics (Go's flag package as used by
 * flanneld): "-name", "--name", "-name=value", "--name value"; booleans take no
 * value or "=VALUE" with VALUE one of strconv.ParseBool's (1 t T TRUE true True,
 * 0 f F FALSE false False), never the next argument; repeatable flags collect
 * every occurrence. Each flag may also come from the environment as
 * <env_prefix><NAME> (upper case, '-' as '_') exactly like flannel's
 * flagutil.SetFlagsFromEnv: an empty variable is ignored, a flag given on the
 * command line ignores its variable (a repeatable flag given on the command
 * line does not merge with it), and a repeatable flag takes the variable's
 * whole value as ONE item (FLANNELD_IFACE=eth0,eth1 is one interface name
 * "eth0,eth1", as in flannel). Variables that name no flag are ignored.
 */
#ifndef TWILL_LIB_FLAGS_H
#define TWILL_LIB_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum flag_type {
	FLAG_STRING,      /* target: char ** (see ownership below) */
	FLAG_STRING_LIST, /* target: struct flag_list * (repeatable; must start empty) */
	FLAG_BOOL,        /* target: bool * */
	FLAG_INT,         /* target: int64_t *; Go's strconv.ParseInt base 0 (decimal, 0x, 0o,
			   * 0b, leading-0 octal); range checked against min/max */
};

struct flag_list {
	char **v; /* malloc'd strings */
	size_t n;
};

struct flag_def {
	const char *name; /* long name without dashes, e.g. "etcd-endpoints" */
	enum flag_type type;
	void *target;
	const char *help; /* one line for --help */
	int64_t min, max; /* FLAG_INT only; min == max == 0 means unbounded */
	bool no_env;      /* not read from the environment (e.g. "help", "version") */
};

/*
 * Apply argv[1..] and the environment (@env_prefix, e.g. "FLANNELD_"; NULL = no
 * environment) to the targets: the command line wins. Stops at the first
 * non-flag argument ("-" counts as one) or after "--"; *ret_argind is the index
 * of the first argument left. 0, or -EINVAL with a message in @err naming the
 * flag ("unknown flag -foo", "flag -iface needs a value", "invalid value \"x\"
 * for flag -healthz-port: ...", "invalid value \"x\" for FLANNELD_IPTABLES_RESYNC: ...").
 * Ownership: a FLAG_STRING target may hold a default on entry that the caller
 * keeps owning (a static array; flags_parse never frees or writes it).
 * flags_parse first replaces each such default by a malloc'd copy, so after it
 * returns (success or failure) every FLAG_STRING target is malloc'd or NULL and
 * flags_free() releases them. Call it once per set of targets (or flags_free()
 * in between). Does not log.
 */
int flags_parse(const struct flag_def *defs, size_t ndefs, int argc, char **argv,
                const char *env_prefix, int *ret_argind, char *err, size_t errlen);
/*
 * As flags_parse(), but flags may come anywhere among the positional arguments
 * (twillctl leases --json): every argument that is not a flag or a flag's value
 * is stored, in order, in @ret_pos (room for @argc entries, borrowed from @argv)
 * and counted in *@ret_npos. "-" is positional; after "--" every argument is.
 */
int flags_parse_interspersed(const struct flag_def *defs, size_t ndefs, int argc, char **argv,
                             const char *env_prefix, char **ret_pos, int *ret_npos, char *err,
                             size_t errlen);
/* Print the flag list (Go's PrintDefaults layout) with defaults and variable names to @file (FILE *). */
void flags_usage(const struct flag_def *defs, size_t ndefs, const char *env_prefix, void *file);
/*
 * Free the strings in the FLAG_STRING and FLAG_STRING_LIST targets of @defs and
 * reset them (NULL, empty list). Only after flags_parse() (defaults may be literals before).
 */
void flags_free(const struct flag_def *defs, size_t ndefs);
/* strconv.ParseBool: 0 with *ret set, or -EINVAL. */
int flags_parse_bool(const char *s, bool *ret);
/* strconv.ParseInt(s, 0, 64): 0 with *ret set, -EINVAL (syntax) or -ERANGE. */
int flags_parse_int(const char *s, int64_t *ret);

#endif
