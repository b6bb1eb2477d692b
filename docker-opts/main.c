/*
 * twill-docker-opts: flannel's mk-docker-opts.sh, in C. Parses argv, reads the
 * subnet file, writes the env file and/or merges Docker's daemon.json.
 * Exit status: 0 done, 1 error (nothing written), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "docker-opts/dockeropts.h"
#include "lib/fileio.h"
#include "subnet/subnetfile.h"

#define PROG "twill-docker-opts"

extern char **environ;

static void usage(FILE *out)
{
	fprintf(out,
	        "Usage: " PROG " [-f SUBNET-FILE] [-d DOCKER-ENV-FILE] [-i] [-c] [-m] [-k KEY]\n"
	        "                         [--ipv6] [--daemon-json PATH]\n"
	        "\n"
	        "Generate Docker daemon options from the flannel/twill subnet file.\n"
	        "\n"
	        "  -f FILE      subnet file to read (default " SUBNETFILE_DEFAULT_PATH ")\n"
	        "  -d FILE      Docker env file to write (default " DOCKEROPTS_DEFAULT_ENV_PATH
	        "; - for stdout)\n"
	        "  -i           write each option as its own variable, e.g. DOCKER_OPT_MTU=\"--mtu=1450\"\n"
	        "  -c           write all options combined into one variable (KEY)\n"
	        "               (neither -i nor -c: both)\n"
	        "  -k KEY       name of the combined variable (default " DOCKEROPTS_DEFAULT_KEY
	        "); its value\n"
	        "               in the environment, if any, is kept in front\n"
	        "  -m           leave out --ip-masq (also \"ip-masq\" in daemon.json)\n"
	        "  --ipv6       also give Docker the node's IPv6 subnet (FLANNEL_IPV6_SUBNET):\n"
	        "               --ipv6 --fixed-cidr-v6=NET/LEN (DOCKER_OPT_IPV6,\n"
	        "               DOCKER_OPT_FIXED_CIDR_V6), in daemon.json \"ipv6\": true and\n"
	        "               \"fixed-cidr-v6\"; an error when the subnet file has none\n"
	        "  --daemon-json PATH\n"
	        "               merge \"bip\", \"mtu\" and \"ip-masq\" into Docker's daemon.json,\n"
	        "               keeping every other key; then the env file is written only\n"
	        "               when -d is given too\n"
	        "  -h, --help   show this help\n"
	        "  --version    show the version\n"
	        "\n"
	        "Exit status: 0 written, 1 error (nothing written), 2 usage error.\n");
}

static int __attribute__((format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry '" PROG " --help' for more information.\n", stderr);
	return 2;
}

/* Read a whole file; *ret_buf NULL when it does not exist. 0 or -errno. */
static int read_file(const char *path, char **ret_buf, size_t *ret_len)
{
	int r = file_read_all(path, FILE_READ_MAX, ret_buf, ret_len);

	if (r == -ENOENT) {
		*ret_buf = NULL;
		*ret_len = 0;
		return 0;
	}
	return r;
}

struct args {
	struct dockeropts_opts o;
	const char *subnet_path, *env_path, *json_path;
	bool write_env;
};

/* Parse argv into @a. -1 to go on, else the exit status (0 after --help/--version, 2). */
static int parse_args(int argc, char **argv, struct args *a)
{
	enum { OPT_DAEMON_JSON = 0x100, OPT_VERSION, OPT_IPV6 };
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "daemon-json", required_argument, NULL, OPT_DAEMON_JSON },
		{ "ipv6", no_argument, NULL, OPT_IPV6 },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct dockeropts_opts *o = &a->o;
	bool env_given = false, shape_given = false;
	int c;

	*a = (struct args){ .o = { .ipmasq = true, .key = DOCKEROPTS_DEFAULT_KEY },
		            .subnet_path = SUBNETFILE_DEFAULT_PATH,
		            .env_path = DOCKEROPTS_DEFAULT_ENV_PATH };
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:f:d:icmk:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			a->subnet_path = optarg;
			break;
		case 'd':
			a->env_path = optarg;
			env_given = true;
			break;
		case 'i':
			o->individual = true;
			shape_given = true;
			break;
		case 'c':
			o->combined = true;
			shape_given = true;
			break;
		case 'm':
			o->ipmasq = false;
			break;
		case 'k':
			o->key = optarg;
			shape_given = true;
			break;
		case OPT_DAEMON_JSON:
			a->json_path = optarg;
			break;
		case OPT_IPV6:
			o->ipv6 = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf(PROG " %s\n", TWILL_VERSION);
			return 0;
		case ':':
			if (optopt == OPT_DAEMON_JSON)
				return usage_error("option --daemon-json needs a value");
			return usage_error("option -%c needs a value", optopt);
		default:
			if (optopt > 0 && optopt < 0x100)
				return usage_error("unknown option -%c", optopt);
			return usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);
	if (!dockeropts_key_valid(o->key))
		return usage_error("-k: \"%s\" is not a valid variable name", o->key);
	if (!*a->subnet_path || !*a->env_path || (a->json_path && !*a->json_path))
		return usage_error("empty file name");
	if (a->json_path && !env_given && shape_given)
		return usage_error("-i, -c and -k shape the env file, which --daemon-json "
		                   "alone does not write: add -d FILE");
	if (!o->individual && !o->combined)
		o->individual = o->combined = true;
	a->write_env = !a->json_path || env_given;
	return -1;
}

int main(int argc, char **argv)
{
	struct args a;
	char *env_buf = NULL, *json_in = NULL, *json_buf = NULL;
	size_t env_len = 0, json_in_len = 0, json_len = 0;
	const char *subnet_path, *env_path, *json_path;
	struct subnetfile sf;
	char err[512];
	int r, ret = 1;

	r = parse_args(argc, argv, &a);
	if (r >= 0)
		return r;
	subnet_path = a.subnet_path;
	env_path = a.env_path;
	json_path = a.json_path;

	r = subnetfile_read(subnet_path, &sf, err, sizeof(err));
	if (r == -ENOENT) {
		fprintf(stderr, PROG ": subnet file %s does not exist (is twilld running?)\n",
		        subnet_path);
		goto out;
	}
	if (r < 0) {
		/* The reader's message names the line, the key and the value; maybe the path. */
		size_t n = strlen(subnet_path);

		if (strncmp(err, subnet_path, n) == 0 && err[n] == ':')
			fprintf(stderr, PROG ": subnet file %s\n", err);
		else
			fprintf(stderr, PROG ": subnet file %s: %s\n", subnet_path,
			        r == -EINVAL ? err : strerror(-r));
		goto out;
	}
	if (!sf.has_subnet) {
		fprintf(stderr, PROG ": subnet file %s has no FLANNEL_SUBNET\n", subnet_path);
		goto out;
	}
	if (a.o.ipv6 && !sf.has_ipv6_subnet) {
		fprintf(stderr,
		        PROG ": --ipv6: subnet file %s has no FLANNEL_IPV6_SUBNET (twilld writes "
		             "it when the network config has \"EnableIPv6\": true)\n",
		        subnet_path);
		goto out;
	}

	/* Compute everything before writing anything: bad input leaves both files as they were. */
	if (a.write_env) {
		r = dockeropts_format_env(&sf, &a.o, (const char *const *)environ, &env_buf,
		                          &env_len, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			goto out;
		}
	}
	if (json_path) {
		r = read_file(json_path, &json_in, &json_in_len);
		if (r < 0) {
			fprintf(stderr, PROG ": cannot read %s: %s\n", json_path, strerror(-r));
			goto out;
		}
		r = dockeropts_merge_daemon_json(json_in, json_in_len, &sf, a.o.ipmasq, a.o.ipv6,
		                                 &json_buf, &json_len, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, PROG ": %s: %s; left untouched\n", json_path, err);
			goto out;
		}
	}

	if (a.write_env) {
		if (strcmp(env_path, "-") == 0) {
			if (fwrite(env_buf, 1, env_len, stdout) != env_len || fflush(stdout) != 0) {
				fprintf(stderr, PROG ": write to stdout: %s\n", strerror(errno));
				goto out;
			}
		} else {
			r = dockeropts_write_atomic(env_path, env_buf, env_len, 0644, err,
			                            sizeof(err));
			if (r < 0) {
				fprintf(stderr, PROG ": %s\n", err);
				goto out;
			}
		}
	}
	if (json_path) {
		r = dockeropts_write_atomic(json_path, json_buf, json_len, 0644, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			goto out;
		}
	}
	ret = 0;
out:
	free(env_buf);
	free(json_in);
	free(json_buf);
	return ret;
}
