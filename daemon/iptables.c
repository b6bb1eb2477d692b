#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/iptables.h"
#include "lib/ev.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/proc.h"
#include "lib/strbuf.h"

/* argv strings: proc_start (posix_spawn) takes char *const[] */
static char arg_t[] = "-t", arg_w[] = "-w", arg_5[] = "5", arg_noflush[] = "--noflush",
	    arg_version[] = "--version", arg_filter[] = "filter", arg_nat[] = "nat";

#define LINE_MAX_LEN    256
#define WANT_MAX        8
#define OUT_MAX         (64u << 20) /* iptables-save output cap */
#define DEFAULT_PATH    "/usr/sbin:/sbin:/usr/local/sbin:/usr/bin:/bin"
#define KUBE_PROXY_MARK "0x4000/0x4000"

enum { T_FILTER, T_NAT, T_COUNT };

struct table_spec {
	const char *table;
	const char *parent;
	const char *chain;
};

static const struct table_spec specs[T_COUNT] = {
	[T_FILTER] = { "filter", "FORWARD", IPT_FWD_CHAIN },
	[T_NAT] = { "nat", "POSTROUTING", IPT_MASQ_CHAIN },
};

struct table_state {
	bool read; /* iptables-save ran for this table in this sync */
	bool chain_exists;
	char **jumps; /* "-A PARENT ... -j CHAIN" lines */
	size_t njumps;
	char **rules; /* "-A CHAIN ..." lines */
	size_t nrules;
};

enum step {
	STEP_IDLE,
	STEP_VERSION,
	STEP_SAVE,
	STEP_RESTORE,
};

struct ipt {
	struct ev_loop *loop;
	struct ipt_opts o;
	const char *tool; /* "iptables" or "ip6tables": binaries and messages */
	char *state_file;
	char save_bin[PATH_MAX];
	char restore_bin[PATH_MAX];
	bool have_bins;

	bool had[T_COUNT]; /* the state file says twilld installed this table's chain */
	bool has_lease;
	struct ipam_prefix network, subnet;
	bool rf; /* --random-fully in use */
	bool rf_probed;
	bool rf_retried;    /* the kernel refused it once: not again */
	bool first_pending; /* the next successful sync is the first after set_lease */

	struct ev_timer *resync;
	enum step step;
	int table;   /* STEP_SAVE: the table being read */
	bool queued; /* another sync was asked for while this one ran */
	struct table_state ts[T_COUNT];
	struct proc *job; /* the iptables child running, if any */
	unsigned repaired, removed;
	bool restore_has_rf;
	char errmsg[IPT_ERR_MAX];
};

/* ---- Small helpers ---- */

static void strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int strv_add(char ***v, size_t *n, const char *s, size_t len)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strndup(s, len);
	if (!nv[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static void table_state_clear(struct table_state *t)
{
	strv_free(t->jumps, t->njumps);
	strv_free(t->rules, t->nrules);
	memset(t, 0, sizeof(*t));
}

static bool find_bin(const char *path, const char *name, char *out, size_t outlen)
{
	char *copy, *dir, *save = NULL;
	bool found = false;

	copy = strdup(path);
	if (!copy)
		return false;
	for (dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		int n = snprintf(out, outlen, "%s/%s", *dir ? dir : ".", name);

		if (n > 0 && (size_t)n < outlen && access(out, X_OK) == 0) {
			found = true;
			break;
		}
	}
	free(copy);
	return found;
}

/* ---- Wanted rules ---- */

/* flannel's rules (network/iptables.go), as iptables-save prints them; line 0 is the jump. */
static int build_wanted(int t, const struct ipam_prefix *network, const struct ipam_prefix *subnet,
                        bool rf, char lines[WANT_MAX][LINE_MAX_LEN])
{
	struct ipam_prefix n4 = ipam_prefix_network(network), s4 = ipam_prefix_network(subnet);
	char n[IPAM_PREFIX_STRLEN], sn[IPAM_PREFIX_STRLEN];
	const char *r = rf ? " --random-fully" : "";
	/* flannel's "not multicast" for each family */
	const char *mcast = network->addr.family == AF_INET6 ? "ff00::/8" : "224.0.0.0/4";
	const char *c;
	int k = 0;

	ipam_prefix_format(&n4, n);
	ipam_prefix_format(&s4, sn);
	if (t == T_FILTER) {
		c = "-m comment --comment \"" IPT_FWD_COMMENT "\"";
		snprintf(lines[k++], LINE_MAX_LEN, "-A FORWARD %s -j %s", c, IPT_FWD_CHAIN);
		snprintf(lines[k++], LINE_MAX_LEN, "-A %s -s %s %s -j ACCEPT", IPT_FWD_CHAIN, n, c);
		snprintf(lines[k++], LINE_MAX_LEN, "-A %s -d %s %s -j ACCEPT", IPT_FWD_CHAIN, n, c);
		return k;
	}
	c = "-m comment --comment \"" IPT_MASQ_COMMENT "\"";
	snprintf(lines[k++], LINE_MAX_LEN, "-A POSTROUTING %s -j %s", c, IPT_MASQ_CHAIN);
	snprintf(lines[k++], LINE_MAX_LEN, "-A %s -m mark --mark %s %s -j RETURN", IPT_MASQ_CHAIN,
	         KUBE_PROXY_MARK, c);
	snprintf(lines[k++], LINE_MAX_LEN, "-A %s -s %s -d %s %s -j RETURN", IPT_MASQ_CHAIN, n, n,
	         c);
	snprintf(lines[k++], LINE_MAX_LEN, "-A %s -s %s ! -d %s %s -j MASQUERADE%s", IPT_MASQ_CHAIN,
	         n, mcast, c, r);
	snprintf(lines[k++], LINE_MAX_LEN, "-A %s ! -s %s -d %s %s -j RETURN", IPT_MASQ_CHAIN, n,
	         sn, c);
	snprintf(lines[k++], LINE_MAX_LEN, "-A %s ! -s %s -d %s %s -j MASQUERADE%s", IPT_MASQ_CHAIN,
	         n, n, c, r);
	return k;
}

int ipt_render_rules(const char *table, const struct ipam_prefix *network,
                     const struct ipam_prefix *subnet, bool random_fully, char *buf, size_t len)
{
	char lines[WANT_MAX][LINE_MAX_LEN];
	size_t off = 0, l;
	int t, n, i;

	if (!table || !network || !subnet || !buf ||
	    (network->addr.family != AF_INET && network->addr.family != AF_INET6) ||
	    subnet->addr.family != network->addr.family)
		return -EINVAL;
	if (strcmp(table, "filter") == 0)
		t = T_FILTER;
	else if (strcmp(table, "nat") == 0)
		t = T_NAT;
	else
		return -EINVAL;
	n = build_wanted(t, network, subnet, random_fully, lines);
	if (len)
		buf[0] = '\0';
	for (i = 0; i < n; i++) {
		l = strlen(lines[i]);
		if (off + l + 2 > len)
			return -ENOSPC;
		memcpy(buf + off, lines[i], l);
		off += l;
		buf[off++] = '\n';
		buf[off] = '\0';
	}
	return n;
}

static int state_path(const char *subnet_file, const char *name, char *buf, size_t len)
{
	const char *slash = subnet_file ? strrchr(subnet_file, '/') : NULL;
	int n;

	if (!slash)
		n = snprintf(buf, len, "%s", name);
	else
		n = snprintf(buf, len, "%.*s/%s", (int)(slash - subnet_file), subnet_file, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int ipt_state_path(const char *subnet_file, char *buf, size_t len)
{
	return state_path(subnet_file, IPT_STATE_NAME, buf, len);
}

int ipt6_state_path(const char *subnet_file, char *buf, size_t len)
{
	return state_path(subnet_file, IPT6_STATE_NAME, buf, len);
}

/* ---- iptables-save parsing ---- */

static bool starts_with_word(const char *line, size_t n, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	return n > la + lb && memcmp(line, a, la) == 0 && memcmp(line + la, b, lb) == 0 &&
	       (line[la + lb] == ' ' || line[la + lb] == '\t');
}

static bool ends_with_jump(const char *line, size_t n, const char *chain)
{
	char tail[64];
	size_t lt;

	snprintf(tail, sizeof(tail), " -j %s", chain);
	lt = strlen(tail);
	return n >= lt && memcmp(line + n - lt, tail, lt) == 0;
}

static int parse_save(int t, const char *text, size_t len, struct table_state *ts)
{
	const struct table_spec *sp = &specs[t];
	const char *p = text, *end = text + len;
	int e;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		while (n && (p[n - 1] == '\r' || p[n - 1] == ' '))
			n--;
		if (starts_with_word(p, n, ":", sp->chain)) {
			ts->chain_exists = true;
		} else if (starts_with_word(p, n, "-A ", sp->chain)) {
			e = strv_add(&ts->rules, &ts->nrules, p, n);
			if (e < 0)
				return e;
		} else if (starts_with_word(p, n, "-A ", sp->parent) &&
		           ends_with_jump(p, n, sp->chain)) {
			e = strv_add(&ts->jumps, &ts->njumps, p, n);
			if (e < 0)
				return e;
		}
		p += n;
		while (p < end && *p != '\n')
			p++;
		p++;
	}
	ts->read = true;
	return 0;
}

/* ---- State file ---- */

static void state_read(struct ipt *ipt)
{
	char line[512];
	FILE *f;

	if (!ipt->state_file)
		return;
	f = fopen(ipt->state_file, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "filter " IPT_FWD_CHAIN, strlen("filter " IPT_FWD_CHAIN)) == 0)
			ipt->had[T_FILTER] = true;
		else if (strncmp(line, "nat " IPT_MASQ_CHAIN, strlen("nat " IPT_MASQ_CHAIN)) == 0)
			ipt->had[T_NAT] = true;
	}
	fclose(f);
}

static int state_write(struct ipt *ipt)
{
	char buf[512], n[IPAM_PREFIX_STRLEN], sn[IPAM_PREFIX_STRLEN];
	struct ipam_prefix n4 = ipam_prefix_network(&ipt->network);
	struct ipam_prefix s4 = ipam_prefix_network(&ipt->subnet);
	int len = 0;

	if (!ipt->state_file)
		return 0;
	if (!ipt->had[T_FILTER] && !ipt->had[T_NAT]) {
		if (unlink(ipt->state_file) < 0 && errno != ENOENT)
			return -errno;
		return 0;
	}
	ipam_prefix_format(&n4, n);
	ipam_prefix_format(&s4, sn);
	len += snprintf(buf + len, sizeof(buf) - (size_t)len,
	                "# chains twilld installed (network subnet); read at start-up\n");
	if (ipt->had[T_FILTER])
		len += snprintf(buf + len, sizeof(buf) - (size_t)len, "filter %s %s\n",
		                IPT_FWD_CHAIN, n);
	if (ipt->had[T_NAT])
		len += snprintf(buf + len, sizeof(buf) - (size_t)len, "nat %s %s %s\n",
		                IPT_MASQ_CHAIN, n, sn);
	return file_write_atomic(ipt->state_file, buf, (size_t)len, 0644, 0, NULL, 0);
}

/* ---- Children ---- */

static void step_done(struct ipt *ipt, const struct proc_result *r);

static void on_job_done(void *ctx, const struct proc_result *r)
{
	step_done(ctx, r);
}

static void job_reset(struct ipt *ipt)
{
	proc_free(ipt->job);
	ipt->job = NULL;
}

/* Start @argv with @input (may be NULL) on stdin; stdout and stderr are collected. */
static int job_start(struct ipt *ipt, char *const argv[], const char *input)
{
	job_reset(ipt);
	ipt->job =
		proc_start(ipt->loop, argv, input, IPT_CHILD_TIMEOUT_MS, OUT_MAX, on_job_done, ipt);
	return ipt->job ? 0 : -errno;
}

/* The child's failure as text: "iptables-restore: exit status 1: <stderr>". */
static int job_failure(struct ipt *ipt, const struct proc_result *r, const char *what)
{
	return proc_describe(r, what, ipt->errmsg, sizeof(ipt->errmsg));
}

/* ---- The sync state machine ---- */

static bool table_wanted(const struct ipt *ipt, int t)
{
	return t == T_FILTER ? ipt->o.forward_rules : ipt->o.masq;
}

static bool table_involved(const struct ipt *ipt, int t)
{
	return table_wanted(ipt, t) || ipt->had[t];
}

static void finish(struct ipt *ipt, int err)
{
	struct ipt_result res = { 0 };
	bool again;
	int t;

	job_reset(ipt);
	for (t = 0; t < T_COUNT; t++)
		table_state_clear(&ipt->ts[t]);
	ipt->step = STEP_IDLE;
	res.err = err;
	res.msg = err ? ipt->errmsg : "";
	res.repaired = err ? 0 : ipt->repaired;
	res.removed = err ? 0 : ipt->removed;
	if (!err && ipt->first_pending) {
		res.first = true;
		ipt->first_pending = false;
	}
	again = ipt->queued;
	ipt->queued = false;
	if (ipt->o.done)
		ipt->o.done(ipt->o.ctx, &res);
	/* the callback may not free @ipt (documented); a queued sync starts now */
	if (again)
		ipt_sync(ipt);
}

static int start_save(struct ipt *ipt)
{
	char *argv[] = { ipt->save_bin, arg_t, NULL, NULL };
	int e;

	while (ipt->table < T_COUNT && !table_involved(ipt, ipt->table))
		ipt->table++;
	if (ipt->table >= T_COUNT)
		return 1;
	argv[2] = ipt->table == T_FILTER ? arg_filter : arg_nat;
	ipt->step = STEP_SAVE;
	e = job_start(ipt, argv, NULL);
	if (e < 0)
		snprintf(ipt->errmsg, sizeof(ipt->errmsg), "%.300s: cannot run it: %s",
		         ipt->save_bin, strerror(-e));
	return e;
}

/* Lines for one table into @b; counts repairs/removals. Nothing added when all is in place. */
static int plan_table(struct ipt *ipt, int t, bool rf, struct strbuf *b, unsigned *repaired,
                      unsigned *removed)
{
	const struct table_spec *sp = &specs[t];
	struct table_state *ts = &ipt->ts[t];
	char want[WANT_MAX][LINE_MAX_LEN];
	unsigned missing = 0;
	bool ok, jump_ok;
	size_t i, k;
	int n, e = 0;

	if (!ts->read)
		return 0;
	if (!table_wanted(ipt, t)) {
		if (!ts->chain_exists && ts->njumps == 0)
			return 0;
		e |= strbuf_str(b, "*");
		e |= strbuf_str(b, sp->table);
		e |= strbuf_str(b, "\n");
		if (ts->chain_exists) {
			e |= strbuf_str(b, ":");
			e |= strbuf_str(b, sp->chain);
			e |= strbuf_str(b, " - [0:0]\n");
		}
		for (i = 0; i < ts->njumps; i++) {
			e |= strbuf_str(b, "-D ");
			e |= strbuf_str(b, ts->jumps[i] + 3);
			e |= strbuf_str(b, "\n");
		}
		if (ts->chain_exists) {
			e |= strbuf_str(b, "-X ");
			e |= strbuf_str(b, sp->chain);
			e |= strbuf_str(b, "\n");
		}
		e |= strbuf_str(b, "COMMIT\n");
		(*removed)++;
		return e ? -ENOMEM : 0;
	}
	n = build_wanted(t, &ipt->network, &ipt->subnet, rf, want);
	jump_ok = ts->njumps == 1 && strcmp(ts->jumps[0], want[0]) == 0;
	ok = jump_ok && ts->chain_exists && ts->nrules == (size_t)(n - 1);
	for (k = 1; ok && k < (size_t)n; k++)
		ok = strcmp(ts->rules[k - 1], want[k]) == 0;
	if (ok)
		return 0;
	for (k = 0; k < (size_t)n; k++) {
		bool found = false;

		for (i = 0; !found && i < ts->njumps; i++)
			found = strcmp(ts->jumps[i], want[k]) == 0;
		for (i = 0; !found && i < ts->nrules; i++)
			found = strcmp(ts->rules[i], want[k]) == 0;
		if (!found)
			missing++;
	}
	*repaired += missing ? missing : 1;
	e |= strbuf_str(b, "*");
	e |= strbuf_str(b, sp->table);
	e |= strbuf_str(b, "\n:");
	e |= strbuf_str(b, sp->chain);
	e |= strbuf_str(b, " - [0:0]\n");
	if (!jump_ok) {
		for (i = 0; i < ts->njumps; i++) {
			e |= strbuf_str(b, "-D ");
			e |= strbuf_str(b, ts->jumps[i] + 3);
			e |= strbuf_str(b, "\n");
		}
	}
	for (k = 1; k < (size_t)n; k++) {
		e |= strbuf_str(b, want[k]);
		e |= strbuf_str(b, "\n");
	}
	if (!jump_ok) {
		/* "-A FORWARD <spec>" -> "-I FORWARD 1 <spec>" */
		e |= strbuf_str(b, "-I ");
		e |= strbuf_str(b, sp->parent);
		e |= strbuf_str(b, " 1");
		e |= strbuf_str(b, want[0] + 3 + strlen(sp->parent));
		e |= strbuf_str(b, "\n");
	}
	e |= strbuf_str(b, "COMMIT\n");
	return e ? -ENOMEM : 0;
}

static int start_restore(struct ipt *ipt)
{
	char *argv[] = { ipt->restore_bin, arg_w, arg_5, arg_noflush, NULL };
	struct strbuf b = { 0 };
	int t, e = 0;

	ipt->repaired = ipt->removed = 0;
	for (t = 0; t < T_COUNT && e == 0; t++)
		e = plan_table(ipt, t, ipt->rf, &b, &ipt->repaired, &ipt->removed);
	if (e < 0) {
		snprintf(ipt->errmsg, sizeof(ipt->errmsg), "out of memory");
		strbuf_free(&b);
		return e;
	}
	if (b.len == 0)
		return 1; /* everything in place */
	if (log_enabled(LOG_LVL_TRACE))
		log_trace("%s --noflush <<EOF\n%sEOF", ipt->restore_bin, b.p);
	ipt->restore_has_rf = ipt->rf && strstr(b.p, "--random-fully") != NULL;
	ipt->step = STEP_RESTORE;
	e = job_start(ipt, argv, b.p);
	strbuf_free(&b);
	if (e < 0)
		snprintf(ipt->errmsg, sizeof(ipt->errmsg), "%.300s: cannot run it: %s",
		         ipt->restore_bin, strerror(-e));
	return e;
}

/* Record what is now in place; a failure to write the state file is not fatal. */
static void commit_state(struct ipt *ipt)
{
	bool changed = false;
	int t, e;

	for (t = 0; t < T_COUNT; t++) {
		bool now = table_wanted(ipt, t);

		if (ipt->had[t] != now) {
			ipt->had[t] = now;
			changed = true;
		}
	}
	if (changed || ipt->repaired) {
		e = state_write(ipt);
		if (e < 0)
			log_warnx("%s: cannot write the state file %s: %s", ipt->tool,
			          ipt->state_file, strerror(-e));
	}
}

/* "iptables-save v1.8.9 (nf_tables)" -> >= 1.6.2? */
static bool version_has_random_fully(const char *s)
{
	const char *v = s ? strstr(s, " v") : NULL;
	unsigned a = 0, b = 0, c = 0;

	if (!v || sscanf(v + 2, "%u.%u.%u", &a, &b, &c) < 2)
		return false;
	return a > 1 || (a == 1 && (b > 6 || (b == 6 && c >= 2)));
}

static void next_save_or_restore(struct ipt *ipt)
{
	int e;

	e = start_save(ipt);
	if (e == 0)
		return;
	if (e < 0) {
		finish(ipt, e);
		return;
	}
	e = start_restore(ipt);
	if (e == 0)
		return;
	if (e < 0) {
		finish(ipt, e);
		return;
	}
	commit_state(ipt);
	finish(ipt, 0);
}

static void step_done(struct ipt *ipt, const struct proc_result *r)
{
	int e;

	switch (ipt->step) {
	case STEP_VERSION:
		ipt->rf_probed = true;
		ipt->rf = proc_ok(r) && version_has_random_fully(r->out);
		log_debug("%s: %s--random-fully", ipt->tool, ipt->rf ? "" : "no ");
		ipt->table = 0;
		next_save_or_restore(ipt);
		return;
	case STEP_SAVE:
		if (!proc_ok(r)) {
			finish(ipt, job_failure(ipt, r, ipt->save_bin));
			return;
		}
		e = parse_save(ipt->table, r->out, r->out_len, &ipt->ts[ipt->table]);
		if (e < 0) {
			snprintf(ipt->errmsg, sizeof(ipt->errmsg), "out of memory");
			finish(ipt, e);
			return;
		}
		ipt->table++;
		next_save_or_restore(ipt);
		return;
	case STEP_RESTORE:
		if (!proc_ok(r)) {
			if (ipt->restore_has_rf && ipt->o.random_fully < 0 && !ipt->rf_retried) {
				/* iptables knows --random-fully, the kernel may not: as flannel
				 * would without it */
				log_debug(
					"%s: restore with --random-fully failed, retrying without",
					ipt->tool);
				ipt->rf = false;
				ipt->rf_retried = true;
				e = start_restore(ipt);
				if (e == 0)
					return;
				finish(ipt, e < 0 ? e : 0);
				return;
			}
			finish(ipt, job_failure(ipt, r, ipt->restore_bin));
			return;
		}
		commit_state(ipt);
		finish(ipt, 0);
		return;
	case STEP_IDLE:
		break;
	}
}

int ipt_sync(struct ipt *ipt)
{
	char *argv[] = { ipt->save_bin, arg_version, NULL };
	int e;

	if (!ipt)
		return -EINVAL;
	if (!ipt->has_lease)
		return -EAGAIN;
	if (ipt->step != STEP_IDLE) {
		ipt->queued = true;
		return 0;
	}
	if (!table_involved(ipt, T_FILTER) && !table_involved(ipt, T_NAT))
		return 0; /* nothing to do, nothing to report */
	for (int t = 0; t < T_COUNT; t++)
		table_state_clear(&ipt->ts[t]);
	ipt->table = 0;
	if (ipt->o.masq && ipt->o.random_fully < 0 && !ipt->rf_probed) {
		ipt->step = STEP_VERSION;
		e = job_start(ipt, argv, NULL);
		if (e == 0)
			return 0;
		ipt->step = STEP_IDLE;
		return e;
	}
	e = start_save(ipt);
	if (e < 0) {
		ipt->step = STEP_IDLE;
		return e;
	}
	if (e > 0) /* no table: cannot happen with a table involved */
		finish(ipt, 0);
	return 0;
}

static void on_resync(struct ev_timer *t, void *ctx)
{
	struct ipt *ipt = ctx;
	int e;

	(void)t;
	if (ipt->step != STEP_IDLE)
		return; /* still busy: skip this round */
	e = ipt_sync(ipt);
	if (e < 0) {
		struct ipt_result res = { .err = e, .msg = ipt->errmsg };

		if (ipt->o.done)
			ipt->o.done(ipt->o.ctx, &res);
	}
}

/* ---- Public ---- */

struct ipt *ipt_new(struct ev_loop *loop, const struct ipt_opts *opts, char *err, size_t errlen)
{
	char dummy[IPT_ERR_MAX], pathbuf[4096], save[32], restore[32];
	const char *path;
	struct ipt *ipt;
	int e = ENOMEM;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!loop || !opts || opts->random_fully < -1 || opts->random_fully > 1 ||
	    (opts->family && opts->family != AF_INET && opts->family != AF_INET6)) {
		snprintf(err, errlen, "invalid arguments");
		errno = EINVAL;
		return NULL;
	}
	ipt = calloc(1, sizeof(*ipt));
	if (!ipt)
		goto nomem;
	ipt->loop = loop;
	ipt->o = *opts;
	ipt->o.state_file = NULL;
	ipt->o.path = NULL;
	ipt->o.family = opts->family ? opts->family : AF_INET;
	ipt->tool = ipt->o.family == AF_INET6 ? "ip6tables" : "iptables";
	ipt->rf = opts->random_fully == 1;
	ipt->rf_probed = opts->random_fully >= 0;
	if (opts->state_file) {
		ipt->state_file = strdup(opts->state_file);
		if (!ipt->state_file)
			goto nomem;
		state_read(ipt);
	}
	ipt->resync = ev_timer_new(loop, on_resync, ipt);
	if (!ipt->resync) {
		e = errno ? errno : ENOMEM;
		snprintf(err, errlen, "event loop: %s", strerror(e));
		goto fail;
	}
	if (opts->path) {
		path = opts->path;
	} else {
		snprintf(pathbuf, sizeof(pathbuf), "%s%s%s", getenv("PATH") ? getenv("PATH") : "",
		         getenv("PATH") ? ":" : "", DEFAULT_PATH);
		path = pathbuf;
	}
	snprintf(save, sizeof(save), "%s-save", ipt->tool);
	snprintf(restore, sizeof(restore), "%s-restore", ipt->tool);
	ipt->have_bins = find_bin(path, save, ipt->save_bin, sizeof(ipt->save_bin)) &&
	                 find_bin(path, restore, ipt->restore_bin, sizeof(ipt->restore_bin));
	if (!ipt->have_bins && (table_involved(ipt, T_FILTER) || table_involved(ipt, T_NAT))) {
		snprintf(err, errlen, "%s/%s not found in %s: install the iptables package%s", save,
		         restore, path,
		         opts->masq ? " (needed by --ip-masq)"
		         : opts->forward_rules
		                 ? " (needed by --iptables-forward-rules)"
		                 : " (needed to remove the chains of a turned-off feature)");
		e = ENOENT;
		goto fail;
	}
	return ipt;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	ipt_free(ipt);
	errno = e;
	return NULL;
}

int ipt_set_lease(struct ipt *ipt, const struct ipam_prefix *network,
                  const struct ipam_prefix *subnet)
{
	if (!ipt)
		return -EINVAL;
	if (!network && !subnet && !ipt->o.forward_rules && !ipt->o.masq) {
		/* nothing wanted: a sync only removes what the state file records */
		memset(&ipt->network, 0, sizeof(ipt->network));
		memset(&ipt->subnet, 0, sizeof(ipt->subnet));
	} else if (!network || !subnet || network->addr.family != ipt->o.family ||
	           subnet->addr.family != ipt->o.family) {
		return -EINVAL;
	} else {
		ipt->network = ipam_prefix_network(network);
		ipt->subnet = ipam_prefix_network(subnet);
	}
	ipt->has_lease = true;
	ipt->first_pending = true;
	if (ipt->o.resync_s && !ev_timer_active(ipt->resync))
		ev_timer_start(ipt->resync, (uint64_t)ipt->o.resync_s * 1000,
		               (uint64_t)ipt->o.resync_s * 1000);
	return ipt_sync(ipt);
}

bool ipt_busy(const struct ipt *ipt)
{
	return ipt && ipt->step != STEP_IDLE;
}

bool ipt_random_fully(const struct ipt *ipt)
{
	return ipt && ipt->rf;
}

void ipt_free(struct ipt *ipt)
{
	int t;

	if (!ipt)
		return;
	job_reset(ipt);
	for (t = 0; t < T_COUNT; t++)
		table_state_clear(&ipt->ts[t]);
	ev_timer_free(ipt->resync);
	free(ipt->state_file);
	free(ipt);
}
