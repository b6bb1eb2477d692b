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

/* What the command line asks for. */
struct cli {
	struct dockeropts_opts o;
	const char *subnet_path, *env_path, *json_path;
	bool env_given, shape_given, write_env;
};

/* 0 to go on, else the exit status (help, version: 0; usage errors: 2). */
static int parse_args(int argc, char **argv, struct cli *a)
{
	enum { OPT_DAEMON_JSON = 0x100, OPT_VERSION, OPT_IPV6 };
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "daemon-json", required_argument, NULL, OPT_DAEMON_JSON },
		{ "ipv6", no_argument, NULL, OPT_IPV6 },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:f:d:icmk:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			a->subnet_path = optarg;
			break;
		case 'd':
			a->env_path = optarg;
			a->env_given = true;
			break;
		case 'i':
			a->o.individual = true;
			a->shape_given = true;
			break;
		case 'c':
			a->o.combined = true;
			a->shape_given = true;
			break;
		case 'm':
			a->o.ipmasq = false;
			break;
		case 'k':
			a->o.key = optarg;
			a->shape_given = true;
			break;
		case OPT_DAEMON_JSON:
			a->json_path = optarg;
			break;
		case OPT_IPV6:
			a->o.ipv6 = true;
			break;
		case 'h':
			usage(stdout);
			return -1;
		case OPT_VERSION:
			printf(PROG " %s\n", TWILL_VERSION);
			return -1;
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
	return 0;
}

/* The combinations parse_args() cannot see one flag at a time; 0 or 2. */
static int check_args(struct cli *a)
{
	if (!dockeropts_key_valid(a->o.key))
		return usage_error("-k: \"%s\" is not a valid variable name", a->o.key);
	if (!*a->subnet_path || !*a->env_path || (a->json_path && !*a->json_path))
		return usage_error("empty file name");
	if (a->json_path && !a->env_given && a->shape_given)
		return usage_error("-i, -c and -k shape the env file, which --daemon-json "
		                   "alone does not write: add -d FILE");
	if (!a->o.individual && !a->o.combined)
		a->o.individual = a->o.combined = true;
	a->write_env = !a->json_path || a->env_given;
	return 0;
}

/* The subnet file with a FLANNEL_SUBNET (and FLANNEL_IPV6_SUBNET with --ipv6); 0 or -1 after a message. */
static int read_subnet(const char *subnet_path, bool ipv6, struct subnetfile *sf)
{
	char err[512];
	int r = subnetfile_read(subnet_path, sf, err, sizeof(err));

	if (r == -ENOENT) {
		fprintf(stderr, PROG ": subnet file %s does not exist (is twilld running?)\n",
		        subnet_path);
		return -1;
	}
	if (r < 0) {
		/* The reader's message names the line, the key and the value; maybe the path. */
		size_t n = strlen(subnet_path);

		if (strncmp(err, subnet_path, n) == 0 && err[n] == ':')
			fprintf(stderr, PROG ": subnet file %s\n", err);
		else
			fprintf(stderr, PROG ": subnet file %s: %s\n", subnet_path,
			        r == -EINVAL ? err : strerror(-r));
		return -1;
	}
	if (!sf->has_subnet) {
		fprintf(stderr, PROG ": subnet file %s has no FLANNEL_SUBNET\n", subnet_path);
		return -1;
	}
	if (ipv6 && !sf->has_ipv6_subnet) {
		fprintf(stderr,
		        PROG ": --ipv6: subnet file %s has no FLANNEL_IPV6_SUBNET (twilld writes "
		             "it when the network config has \"EnableIPv6\": true)\n",
		        subnet_path);
		return -1;
	}
	return 0;
}

/* What will be written, all computed before anything is written. */
struct outputs {
	char *env_buf, *json_buf;
	size_t env_len, json_len;
};

/* Format the env file and merge daemon.json; 0 or -1 after a message. */
static int prepare(const struct cli *a, const struct subnetfile *sf, struct outputs *out)
{
	char err[512], *json_in = NULL;
	size_t json_in_len = 0;
	int r;

	if (a->write_env) {
		r = dockeropts_format_env(sf, &a->o, (const char *const *)environ, &out->env_buf,
		                          &out->env_len, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			return -1;
		}
	}
	if (!a->json_path)
		return 0;
	r = read_file(a->json_path, &json_in, &json_in_len);
	if (r < 0) {
		fprintf(stderr, PROG ": cannot read %s: %s\n", a->json_path, strerror(-r));
		return -1;
	}
	r = dockeropts_merge_daemon_json(json_in, json_in_len, sf, a->o.ipmasq, a->o.ipv6,
	                                 &out->json_buf, &out->json_len, err, sizeof(err));
	free(json_in);
	if (r < 0) {
		fprintf(stderr, PROG ": %s: %s; left untouched\n", a->json_path, err);
		return -1;
	}
	return 0;
}

/* Write the env file (or stdout) and daemon.json; 0 or -1 after a message. */
static int write_outputs(const struct cli *a, const struct outputs *out)
{
	char err[512];
	int r;

	if (a->write_env && strcmp(a->env_path, "-") == 0) {
		if (fwrite(out->env_buf, 1, out->env_len, stdout) != out->env_len ||
		    fflush(stdout) != 0) {
			fprintf(stderr, PROG ": write to stdout: %s\n", strerror(errno));
			return -1;
		}
	} else if (a->write_env) {
		r = dockeropts_write_atomic(a->env_path, out->env_buf, out->env_len, 0644, err,
		                            sizeof(err));
		if (r < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			return -1;
		}
	}
	if (a->json_path) {
		r = dockeropts_write_atomic(a->json_path, out->json_buf, out->json_len, 0644, err,
		                            sizeof(err));
		if (r < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct cli a = { .o = { .ipmasq = true, .key = DOCKEROPTS_DEFAULT_KEY },
		         .subnet_path = SUBNETFILE_DEFAULT_PATH,
		         .env_path = DOCKEROPTS_DEFAULT_ENV_PATH };
	struct outputs out = { 0 };
	struct subnetfile sf;
	int r, ret = 1;

	r = parse_args(argc, argv, &a);
	if (r)
		return r < 0 ? 0 : r;
	r = check_args(&a);
	if (r)
		return r;
	if (read_subnet(a.subnet_path, a.o.ipv6, &sf) == 0 && prepare(&a, &sf, &out) == 0 &&
	    write_outputs(&a, &out) == 0)
		ret = 0;
	free(out.env_buf);
	free(out.json_buf);
	return ret;
}
