/* The run half of twill-cni: CNI_* environment, the delegate's execution, the saved configs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cni/cni.h"
#include "lib/errfmt.h"

struct call_ctx {
	const struct cni_call *call;
	const char *version; /* for error objects */
	const char *command, *container_id, *path;
};

static const char *env_get(char **envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* Write a CNI error object; returns the exit status 1. */
static int cni_fail(const struct call_ctx *x, int code, const char *msg, const char *details)
{
	char *j = cni_error_json(x->version, code, msg, details);

	if (!j) /* text that jansson refused (not UTF-8): say so without it */
		j = cni_error_json(x->version, code, "error message not representable", NULL);
	if (j)
		fprintf(x->call->out, "%s\n", j);
	if (x->call->errout)
		fprintf(x->call->errout, "twill-cni: %s%s%s\n", msg,
		        details && *details ? ": " : "", details ? details : "");
	free(j);
	return 1;
}

/* Read all of @in up to CNI_CONF_MAX bytes into a malloc'd, NUL-terminated buffer. */
static int read_all(FILE *in, char **ret, size_t *ret_len)
{
	size_t cap = 4096, len = 0, n;
	char *buf = malloc(cap + 1), *nb;

	if (!buf)
		return -ENOMEM;
	while ((n = fread(buf + len, 1, cap - len, in)) > 0) {
		len += n;
		if (len == cap) {
			if (cap > CNI_CONF_MAX) {
				free(buf);
				return -EFBIG;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
	}
	if (ferror(in)) {
		free(buf);
		return -EIO;
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* ---- Saved delegate configs: <dataDir>/<container ID>, as flannel's plugin keeps them ---- */

static int mkdir_p(const char *dir, mode_t mode)
{
	char *p = strdup(dir), *s;
	int r = 0;

	if (!p)
		return -ENOMEM;
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			r = -errno;
		*s = '/';
		if (r < 0)
			break;
	}
	if (r == 0 && mkdir(p, mode) < 0 && errno != EEXIST)
		r = -errno;
	free(p);
	return r;
}

static int scratch_save(const char *dir, const char *id, const char *text)
{
	char path[4096], tmp[4200];
	size_t len = strlen(text);
	int fd, r;

	if (snprintf(path, sizeof(path), "%s/%s", dir, id) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	r = mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = write(fd, text, len) == (ssize_t)len ? 0 : -EIO;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

static int scratch_load(const char *dir, const char *id, json_t **ret, char *err, size_t errlen)
{
	char path[4096];
	json_error_t je;

	if (snprintf(path, sizeof(path), "%s/%s", dir, id) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	*ret = json_load_file(path, 0, &je);
	if (*ret && json_is_object(*ret) && json_is_string(json_object_get(*ret, "type")))
		return 0;
	json_decref(*ret);
	*ret = NULL;
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return -ENOENT;
	errfmt(err, errlen, "saved delegate config %s is unreadable: %s", path, je.text);
	return -EINVAL;
}

static void scratch_remove(const char *dir, const char *id)
{
	char path[4096];

	if (snprintf(path, sizeof(path), "%s/%s", dir, id) < (int)sizeof(path))
		unlink(path);
}

/* ---- Executing the delegate ---- */

/* The executable @type in one of the ':'-separated directories of @cni_path. */
static int find_plugin(const char *cni_path, const char *type, char *ret, size_t len)
{
	const char *p = cni_path;

	while (p && *p) {
		const char *e = strchr(p, ':');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n > 0 && snprintf(ret, len, "%.*s/%s", (int)n, p, type) < (int)len &&
		    access(ret, X_OK) == 0)
			return 0;
		p = e ? e + 1 : NULL;
	}
	return -ENOENT;
}

/* @envp with CNI_COMMAND set to @command (a new array; the strings are shared but one). */
static char **env_with_command(char **envp, const char *command, char *slot, size_t slotlen)
{
	size_t n = 0, k = 0;
	char **e;

	while (envp && envp[n])
		n++;
	e = calloc(n + 2, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(slot, slotlen, "CNI_COMMAND=%s", command);
	e[k++] = slot;
	for (size_t i = 0; i < n; i++)
		if (strncmp(envp[i], "CNI_COMMAND=", 12) != 0)
			e[k++] = envp[i];
	return e;
}

/* Feed @in to the child's stdin and collect its stdout (capped) until EOF on both. */
static int pump(int wfd, int rfd, const char *in, char **ret_out, size_t *ret_len)
{
	size_t inlen = strlen(in), off = 0, len = 0, cap = 4096;
	char *out = malloc(cap + 1), *nb;
	int r = 0;

	if (!out)
		return -ENOMEM;
	while (rfd >= 0) {
		struct pollfd p[2] = { { .fd = rfd, .events = POLLIN },
			               { .fd = wfd, .events = POLLOUT } };
		ssize_t n;

		if (poll(p, wfd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (wfd >= 0 && p[1].revents) {
			n = write(wfd, in + off, inlen - off);
			if (n > 0)
				off += (size_t)n;
			if (n < 0 || off == inlen) {
				close(wfd);
				wfd = -1;
			}
		}
		if (!p[0].revents)
			continue;
		if (len == cap) {
			if (cap >= CNI_CONF_MAX) {
				r = -EFBIG;
				break;
			}
			cap *= 2;
			nb = realloc(out, cap + 1);
			if (!nb) {
				r = -ENOMEM;
				break;
			}
			out = nb;
		}
		n = read(rfd, out + len, cap - len);
		if (n > 0) {
			len += (size_t)n;
		} else if (n == 0 || errno != EINTR) {
			rfd = -1;
		}
	}
	if (wfd >= 0)
		close(wfd);
	if (r < 0) {
		free(out);
		return r;
	}
	out[len] = '\0';
	*ret_out = out;
	*ret_len = len;
	return 0;
}

/*
 * Run plugin @type with CNI_COMMAND @command and @conf on stdin; its stdout in *@ret_out.
 * Returns its exit status (>= 0) or -errno when it could not run (reason in @err).
 */
static int exec_delegate(const struct call_ctx *x, const char *command, const char *type,
                         const char *conf, char **ret_out, char *err, size_t errlen)
{
	char exe[4096], slot[64], **envp;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, status = 0, r;
	size_t len;
	pid_t pid;

	if (find_plugin(x->path, type, exe, sizeof(exe)) < 0) {
		errfmt(err, errlen, "plugin \"%s\" not found in CNI_PATH %s", type, x->path);
		return -ENOENT;
	}
	envp = env_with_command(x->call->envp, command, slot, sizeof(slot));
	if (!envp || pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		r = -errno;
		errfmt(err, errlen, "cannot start %s: %s", exe, strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		errfmt(err, errlen, "fork for %s: %s", exe, strerror(errno));
		goto out;
	}
	if (pid == 0) {
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			_exit(127);
		execve(exe, (char *[]){ exe, NULL }, envp);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	r = pump(in[1], out[0], conf, ret_out, &len);
	in[1] = -1; /* closed by pump */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r < 0) {
		errfmt(err, errlen, "talking to %s: %s", exe, strerror(-r));
		goto out;
	}
	r = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	free(envp);
	return r;
}

/*
 * Run the delegate and pass its answer on: its result (or nothing) on success, its own CNI
 * error object when it wrote one, else an error naming it. Returns the exit status.
 */
static int delegate(const struct call_ctx *x, const char *command, json_t *conf)
{
	const char *type = json_string_value(json_object_get(conf, "type"));
	char err[CNI_ERR_MAX] = "", *text = json_dumps(conf, JSON_COMPACT), *out = NULL;
	json_t *o = NULL;
	int st;

	if (!text)
		return cni_fail(x, CNI_ERR_TRY_LATER, "out of memory", NULL);
	st = exec_delegate(x, command, type, text, &out, err, sizeof(err));
	free(text);
	if (st < 0)
		return cni_fail(x, st == -ENOENT ? CNI_ERR_NETCONF : CNI_ERR_IO,
		                "cannot run the delegate plugin", err);
	o = out && *out ? json_loads(out, 0, NULL) : NULL;
	if (st == 0) {
		if (out && *out)
			fputs(out, x->call->out);
		st = 0;
	} else if (o && json_is_object(o) && json_is_integer(json_object_get(o, "code"))) {
		fputs(out, x->call->out);
		st = 1;
	} else {
		snprintf(err, sizeof(err), "delegate %s %s exited with status %d", type, command,
		         st);
		st = cni_fail(x, CNI_ERR_IO, err, out);
	}
	json_decref(o);
	free(out);
	return st;
}

/* ---- Commands ---- */

static int read_subnet(const struct call_ctx *x, const struct cni_conf *c, struct subnetfile *sf,
                       bool quiet)
{
	char err[CNI_ERR_MAX] = "", msg[CNI_ERR_MAX + 4200];
	int r = subnetfile_read(c->subnet_file, sf, err, sizeof(err));

	if (r == 0 && (r = cni_subnet_check(sf, err, sizeof(err))) == 0)
		return 0;
	if (quiet)
		return -1;
	if (r == -ENOENT) {
		snprintf(msg, sizeof(msg), "subnet file %s does not exist", c->subnet_file);
		cni_fail(
			x, CNI_ERR_TRY_LATER, msg,
			"twilld writes it once it holds a lease: is twilld running on this node, with --subnet-file set to this path?");
		return -1;
	}
	snprintf(msg, sizeof(msg), "subnet file %s: %s", c->subnet_file,
	         err[0] ? err : strerror(-r));
	cni_fail(x, r == -EINVAL ? CNI_ERR_DECODE : CNI_ERR_IO, msg, NULL);
	return -1;
}

static int cmd_add(const struct call_ctx *x, const struct cni_conf *c)
{
	struct subnetfile sf;
	char err[CNI_ERR_MAX] = "", *text;
	json_t *d;
	int r;

	if (read_subnet(x, c, &sf, false) < 0)
		return 1;
	d = cni_delegate_build(c, &sf, err, sizeof(err));
	if (!d)
		return cni_fail(x, CNI_ERR_NETCONF, "cannot build the delegate config", err);
	text = json_dumps(d, JSON_COMPACT);
	r = text ? scratch_save(c->data_dir, x->container_id, text) : -ENOMEM;
	free(text);
	if (r < 0) {
		json_decref(d);
		snprintf(err, sizeof(err), "%s/%s: %s", c->data_dir, x->container_id, strerror(-r));
		return cni_fail(x, CNI_ERR_IO, "cannot save the delegate config", err);
	}
	r = delegate(x, "ADD", d);
	json_decref(d);
	return r;
}

static int cmd_del(const struct call_ctx *x, const struct cni_conf *c)
{
	char err[CNI_ERR_MAX] = "";
	struct subnetfile sf;
	json_t *d = NULL;
	int r = scratch_load(c->data_dir, x->container_id, &d, err, sizeof(err));

	if (r == -ENOENT) {
		/*
		 * Nothing saved (DEL twice, or ADD never got that far): when the subnet file is
		 * there, DEL with a config rebuilt from it, so that host-local still releases the
		 * address; without it there is nothing we can name, and DEL succeeds.
		 */
		if (read_subnet(x, c, &sf, true) < 0 || !(d = cni_delegate_build(c, &sf, NULL, 0)))
			return 0;
	} else if (r < 0) {
		return cni_fail(x, CNI_ERR_IO, "cannot read the delegate config", err);
	}
	if (c->runtime_config)
		json_object_set(d, "runtimeConfig", c->runtime_config);
	r = delegate(x, "DEL", d);
	json_decref(d);
	if (r == 0)
		scratch_remove(c->data_dir, x->container_id);
	return r;
}

static int cmd_check(const struct call_ctx *x, const struct cni_conf *c)
{
	char err[CNI_ERR_MAX] = "";
	json_t *d = NULL;
	int r;

	if (strncmp(c->cni_version, "0.3.", 4) == 0)
		return cni_fail(x, CNI_ERR_VERSION, "CHECK needs cniVersion 0.4.0 or later",
		                c->cni_version);
	r = scratch_load(c->data_dir, x->container_id, &d, err, sizeof(err));
	if (r == -ENOENT)
		return cni_fail(x, CNI_ERR_UNKNOWN, "no network set up by ADD for this container",
		                x->container_id);
	if (r < 0)
		return cni_fail(x, CNI_ERR_IO, "cannot read the delegate config", err);
	if (c->prev_result)
		json_object_set(d, "prevResult", c->prev_result);
	if (c->runtime_config)
		json_object_set(d, "runtimeConfig", c->runtime_config);
	r = delegate(x, "CHECK", d);
	json_decref(d);
	return r;
}

static int cmd_version(const struct call_ctx *x, const char *in, size_t len)
{
	json_t *v = json_array(), *o, *root = len ? json_loadb(in, len, 0, NULL) : NULL;
	const char *want = json_string_value(json_object_get(root, "cniVersion"));
	char *s;

	for (size_t i = 0; v && i < cni_n_versions; i++)
		json_array_append_new(v, json_string(cni_versions[i]));
	o = json_pack("{s:s,s:o}", "cniVersion", cni_version_supported(want) ? want : "1.0.0",
	              "supportedVersions", v);
	json_decref(root);
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!s)
		return cni_fail(x, CNI_ERR_TRY_LATER, "out of memory", NULL);
	fprintf(x->call->out, "%s\n", s);
	free(s);
	return 0;
}

/* The CNI_* variables a command needs; 0 or an error already written (exit status). */
static int check_env(struct call_ctx *x)
{
	char **envp = x->call->envp;
	bool del = strcmp(x->command, "DEL") == 0;

	x->container_id = env_get(envp, "CNI_CONTAINERID");
	x->path = env_get(envp, "CNI_PATH");
	if (!x->container_id || !*x->container_id)
		return cni_fail(x, CNI_ERR_ENV, "CNI_CONTAINERID is not set", NULL);
	if (!cni_container_id_ok(x->container_id))
		return cni_fail(x, CNI_ERR_ENV,
		                "CNI_CONTAINERID must be alphanumerics, '_', '.' and '-' only",
		                x->container_id);
	if (!x->path || !*x->path)
		return cni_fail(x, CNI_ERR_ENV, "CNI_PATH is not set", NULL);
	if (!env_get(envp, "CNI_IFNAME") || !*env_get(envp, "CNI_IFNAME"))
		return cni_fail(x, CNI_ERR_ENV, "CNI_IFNAME is not set", NULL);
	if (!del && (!env_get(envp, "CNI_NETNS") || !*env_get(envp, "CNI_NETNS")))
		return cni_fail(x, CNI_ERR_ENV, "CNI_NETNS is not set", NULL);
	return 0;
}

int cni_run(const struct cni_call *call)
{
	struct call_ctx x = { .call = call, .version = "1.0.0" };
	struct cni_conf c = { 0 };
	char err[CNI_ERR_MAX] = "", *in = NULL;
	size_t len = 0;
	int code = 0, r;

	signal(SIGPIPE, SIG_IGN); /* a delegate that exits early must not kill us mid-write */
	x.command = env_get(call->envp, "CNI_COMMAND");
	r = read_all(call->in, &in, &len);
	if (r < 0) {
		r = cni_fail(&x, CNI_ERR_IO, "cannot read the network config from stdin",
		             strerror(-r));
		goto out;
	}
	if (!x.command || !*x.command) {
		r = cni_fail(
			&x, CNI_ERR_ENV, "CNI_COMMAND is not set",
			"this is a CNI plugin: a container runtime runs it (see twill-cni(8))");
		goto out;
	}
	if (strcmp(x.command, "VERSION") == 0) {
		r = cmd_version(&x, in, len);
		goto out;
	}
	if (strcmp(x.command, "ADD") && strcmp(x.command, "DEL") && strcmp(x.command, "CHECK")) {
		r = cni_fail(&x, CNI_ERR_ENV, "CNI_COMMAND must be ADD, DEL, CHECK or VERSION",
		             x.command);
		goto out;
	}
	if (cni_conf_parse(in, len, &c, &code, err, sizeof(err)) < 0) {
		r = cni_fail(&x, code, "invalid network config", err);
		goto out;
	}
	x.version = c.cni_version;
	r = check_env(&x);
	if (r)
		goto out;
	if (strcmp(x.command, "ADD") == 0)
		r = cmd_add(&x, &c);
	else if (strcmp(x.command, "DEL") == 0)
		r = cmd_del(&x, &c);
	else
		r = cmd_check(&x, &c);
out:
	fflush(call->out);
	cni_conf_clear(&c);
	free(in);
	return r;
}
