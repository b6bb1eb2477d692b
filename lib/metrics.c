#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/metrics.h"

struct metric_series {
	struct metric *m;
	char *v[2];
	_Atomic uint64_t bits; /* counter: the value; gauge: the double's bits */
};

struct metric {
	struct metrics *reg;
	enum metric_type type;
	char *name;
	char *help;
	char *label[2];
	unsigned nlabels;
	pthread_mutex_t lock; /* series array */
	struct metric_series **series;
	size_t nseries, cap;
};

struct scrape_hook {
	metrics_scrape_cb cb;
	void *ctx;
};

struct metrics {
	pthread_mutex_t lock; /* families array */
	struct metric **fam;
	size_t nfam, cap;
	struct scrape_hook *hooks;
	size_t nhooks;
};

static uint64_t dbl_bits(double d)
{
	uint64_t b;

	memcpy(&b, &d, sizeof(b));
	return b;
}

static double bits_dbl(uint64_t b)
{
	double d;

	memcpy(&d, &b, sizeof(d));
	return d;
}

struct metrics *metrics_new(void)
{
	struct metrics *reg = calloc(1, sizeof(*reg));

	if (!reg) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&reg->lock, NULL);
	return reg;
}

static void metric_free(struct metric *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->nseries; i++) {
		free(m->series[i]->v[0]);
		free(m->series[i]->v[1]);
		free(m->series[i]);
	}
	free(m->series);
	pthread_mutex_destroy(&m->lock);
	free(m->name);
	free(m->help);
	free(m->label[0]);
	free(m->label[1]);
	free(m);
}

void metrics_free(struct metrics *reg)
{
	size_t i;

	if (!reg)
		return;
	for (i = 0; i < reg->nfam; i++)
		metric_free(reg->fam[i]);
	free(reg->fam);
	free(reg->hooks);
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

static struct metrics *global_reg;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
	global_reg = metrics_new();
}

struct metrics *metrics_global(void)
{
	pthread_once(&global_once, global_init);
	if (!global_reg)
		errno = ENOMEM;
	return global_reg;
}

static bool name_ok(const char *s, bool colon)
{
	size_t i;

	if (!s || !*s)
		return false;
	for (i = 0; s[i]; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		             (colon && c == ':');

		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

static bool label_ok(const char *s)
{
	return name_ok(s, false) && strncmp(s, "__", 2) != 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool str_eq_null(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static struct metric *find_locked(struct metrics *reg, const char *name)
{
	size_t i;

	for (i = 0; i < reg->nfam; i++)
		if (strcmp(reg->fam[i]->name, name) == 0)
			return reg->fam[i];
	return NULL;
}

struct metric *metrics_find(struct metrics *reg, const char *name)
{
	struct metric *m;

	if (!reg || !name) {
		errno = EINVAL;
		return NULL;
	}
	pthread_mutex_lock(&reg->lock);
	m = find_locked(reg, name);
	pthread_mutex_unlock(&reg->lock);
	if (!m)
		errno = ENOENT;
	return m;
}

struct metric *metrics_register(struct metrics *reg, enum metric_type type, const char *name,
                                const char *help, const char *label1, const char *label2)
{
	struct metric *m = NULL, *old;
	int err = ENOMEM;

	if (!reg || !name_ok(name, true) || (type != METRIC_COUNTER && type != METRIC_GAUGE) ||
	    (type == METRIC_COUNTER && !ends_with(name, "_total")) || (label2 && !label1) ||
	    (label1 && !label_ok(label1)) || (label2 && !label_ok(label2)) ||
	    (label1 && label2 && strcmp(label1, label2) == 0) || (help && strchr(help, '\n'))) {
		errno = EINVAL;
		return NULL;
	}
	pthread_mutex_lock(&reg->lock);
	old = find_locked(reg, name);
	if (old) {
		pthread_mutex_unlock(&reg->lock);
		if (old->type == type && str_eq_null(old->label[0], label1) &&
		    str_eq_null(old->label[1], label2))
			return old;
		errno = EEXIST;
		return NULL;
	}
	if (reg->nfam == reg->cap) {
		size_t cap = reg->cap ? reg->cap * 2 : 16;
		struct metric **fam = realloc(reg->fam, cap * sizeof(*fam));

		if (!fam)
			goto fail;
		reg->fam = fam;
		reg->cap = cap;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		goto fail;
	pthread_mutex_init(&m->lock, NULL);
	m->reg = reg;
	m->type = type;
	m->name = strdup(name);
	m->help = strdup(help ? help : "");
	m->label[0] = label1 ? strdup(label1) : NULL;
	m->label[1] = label2 ? strdup(label2) : NULL;
	m->nlabels = label2 ? 2 : label1 ? 1 : 0;
	if (!m->name || !m->help || (label1 && !m->label[0]) || (label2 && !m->label[1]))
		goto fail;
	reg->fam[reg->nfam++] = m;
	pthread_mutex_unlock(&reg->lock);
	return m;
fail:
	pthread_mutex_unlock(&reg->lock);
	metric_free(m);
	errno = err;
	return NULL;
}

struct metric_series *metric_series(struct metric *m, const char *v1, const char *v2)
{
	const char *v[2] = { v1 ? v1 : "", v2 ? v2 : "" };
	struct metric_series *s = NULL;
	size_t i;
	unsigned k;

	if (!m) {
		errno = EINVAL;
		return NULL;
	}
	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->nseries; i++) {
		bool same = true;

		for (k = 0; k < m->nlabels; k++)
			if (strcmp(m->series[i]->v[k], v[k]) != 0)
				same = false;
		if (same) {
			s = m->series[i];
			goto out;
		}
	}
	if (m->nseries == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 4;
		struct metric_series **arr = realloc(m->series, cap * sizeof(*arr));

		if (!arr)
			goto nomem;
		m->series = arr;
		m->cap = cap;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto nomem;
	s->m = m;
	for (k = 0; k < m->nlabels; k++) {
		s->v[k] = strdup(v[k]);
		if (!s->v[k])
			goto nomem;
	}
	atomic_init(&s->bits, m->type == METRIC_GAUGE ? dbl_bits(0.0) : 0);
	m->series[m->nseries++] = s;
out:
	pthread_mutex_unlock(&m->lock);
	return s;
nomem:
	pthread_mutex_unlock(&m->lock);
	if (s) {
		free(s->v[0]);
		free(s->v[1]);
		free(s);
	}
	errno = ENOMEM;
	return NULL;
}

void metric_series_gauge_add(struct metric_series *s, double d)
{
	uint64_t old, nv;

	if (!s || s->m->type != METRIC_GAUGE)
		return;
	old = atomic_load_explicit(&s->bits, memory_order_relaxed);
	do {
		nv = dbl_bits(bits_dbl(old) + d);
	} while (!atomic_compare_exchange_weak_explicit(&s->bits, &old, nv, memory_order_relaxed,
	                                                memory_order_relaxed));
}

void metric_series_add(struct metric_series *s, uint64_t n)
{
	if (!s)
		return;
	if (s->m->type == METRIC_COUNTER)
		atomic_fetch_add_explicit(&s->bits, n, memory_order_relaxed);
	else
		metric_series_gauge_add(s, (double)n);
}

void metric_series_inc(struct metric_series *s)
{
	metric_series_add(s, 1);
}

void metric_series_set(struct metric_series *s, double v)
{
	if (!s || s->m->type != METRIC_GAUGE)
		return;
	atomic_store_explicit(&s->bits, dbl_bits(v), memory_order_relaxed);
}

double metric_series_value(const struct metric_series *s)
{
	uint64_t b;

	if (!s)
		return 0;
	b = atomic_load_explicit(&((struct metric_series *)(uintptr_t)s)->bits,
	                         memory_order_relaxed);
	return s->m->type == METRIC_COUNTER ? (double)b : bits_dbl(b);
}

void metric_inc(struct metric *m, const char *v1, const char *v2)
{
	metric_series_inc(metric_series(m, v1, v2));
}

void metric_add(struct metric *m, const char *v1, const char *v2, uint64_t n)
{
	metric_series_add(metric_series(m, v1, v2), n);
}

void metric_set(struct metric *m, const char *v1, const char *v2, double v)
{
	metric_series_set(metric_series(m, v1, v2), v);
}

int metrics_on_scrape(struct metrics *reg, metrics_scrape_cb cb, void *ctx)
{
	struct scrape_hook *h;

	if (!reg || !cb)
		return -EINVAL;
	h = realloc(reg->hooks, (reg->nhooks + 1) * sizeof(*h));
	if (!h)
		return -ENOMEM;
	reg->hooks = h;
	h[reg->nhooks].cb = cb;
	h[reg->nhooks].ctx = ctx;
	reg->nhooks++;
	return 0;
}

int metrics_off_scrape(struct metrics *reg, metrics_scrape_cb cb, void *ctx)
{
	size_t i;

	if (!reg)
		return -EINVAL;
	for (i = 0; i < reg->nhooks; i++) {
		if (reg->hooks[i].cb == cb && reg->hooks[i].ctx == ctx) {
			memmove(&reg->hooks[i], &reg->hooks[i + 1],
			        (reg->nhooks - i - 1) * sizeof(*reg->hooks));
			reg->nhooks--;
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- Exposition ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->oom || b->len + more + 1 <= b->cap)
		return;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
	sb_reserve(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

/* HELP text escapes \ and newline; label values also escape ". */
static void sb_escaped(struct sbuf *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			sb_puts(b, "\\\\");
		else if (*s == '\n')
			sb_puts(b, "\\n");
		else if (quote && *s == '"')
			sb_puts(b, "\\\"");
		else
			sb_putn(b, s, 1);
	}
}

static void format_value(char *buf, size_t len, const struct metric_series *s)
{
	uint64_t b = atomic_load_explicit(&((struct metric_series *)(uintptr_t)s)->bits,
	                                  memory_order_relaxed);
	double d;

	if (s->m->type == METRIC_COUNTER) {
		snprintf(buf, len, "%" PRIu64, b);
		return;
	}
	d = bits_dbl(b);
	if (isnan(d))
		snprintf(buf, len, "NaN");
	else if (isinf(d))
		snprintf(buf, len, "%s", d > 0 ? "+Inf" : "-Inf");
	else if (d > -1e15 && d < 1e15 && d == (double)(long long)d)
		snprintf(buf, len, "%.0f", d == 0 ? 0.0 : d); /* no "-0" */
	else
		snprintf(buf, len, "%.17g", d);
}

static int cmp_fam(const void *a, const void *b)
{
	const struct metric *x = *(struct metric *const *)a, *y = *(struct metric *const *)b;

	return strcmp(x->name, y->name);
}

static int cmp_series(const void *a, const void *b)
{
	const struct metric_series *x = *(struct metric_series *const *)a;
	const struct metric_series *y = *(struct metric_series *const *)b;
	unsigned k;
	int c;

	for (k = 0; k < x->m->nlabels; k++) {
		c = strcmp(x->v[k], y->v[k]);
		if (c)
			return c;
	}
	return 0;
}

static void render_family(struct sbuf *b, struct metric *m)
{
	char val[64];
	size_t i;
	unsigned k;

	sb_puts(b, "# HELP ");
	sb_puts(b, m->name);
	sb_puts(b, " ");
	sb_escaped(b, m->help, false);
	sb_puts(b, "\n# TYPE ");
	sb_puts(b, m->name);
	sb_puts(b, m->type == METRIC_COUNTER ? " counter\n" : " gauge\n");
	pthread_mutex_lock(&m->lock);
	if (m->nseries > 1)
		qsort(m->series, m->nseries, sizeof(*m->series), cmp_series);
	for (i = 0; i < m->nseries; i++) {
		struct metric_series *s = m->series[i];

		sb_puts(b, m->name);
		if (m->nlabels) {
			sb_puts(b, "{");
			for (k = 0; k < m->nlabels; k++) {
				if (k)
					sb_puts(b, ",");
				sb_puts(b, m->label[k]);
				sb_puts(b, "=\"");
				sb_escaped(b, s->v[k], true);
				sb_puts(b, "\"");
			}
			sb_puts(b, "}");
		}
		format_value(val, sizeof(val), s);
		sb_puts(b, " ");
		sb_puts(b, val);
		sb_puts(b, "\n");
	}
	pthread_mutex_unlock(&m->lock);
}

int metrics_render(struct metrics *reg, char **ret_text, size_t *ret_len)
{
	struct sbuf b = { 0 };
	size_t i;

	if (!reg || !ret_text)
		return -EINVAL;
	for (i = 0; i < reg->nhooks; i++)
		reg->hooks[i].cb(reg->hooks[i].ctx, reg);
	sb_reserve(&b, 0);
	if (!b.oom)
		b.p[0] = '\0';
	pthread_mutex_lock(&reg->lock);
	if (reg->nfam > 1)
		qsort(reg->fam, reg->nfam, sizeof(*reg->fam), cmp_fam);
	for (i = 0; i < reg->nfam; i++)
		render_family(&b, reg->fam[i]);
	pthread_mutex_unlock(&reg->lock);
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*ret_text = b.p;
	if (ret_len)
		*ret_len = b.len;
	return 0;
}

/* ---- twill's families ---- */

static const struct {
	enum metric_type type;
	const char *name, *label, *help;
} twill_families[] = {
	{ METRIC_GAUGE, TWILL_M_LEASE_HELD, NULL,
	  "1 while this node holds its subnet lease, else 0." },
	{ METRIC_GAUGE, TWILL_M_LEASE_EXPIRY, NULL,
	  "Seconds until the own lease expires (0 without a lease)." },
	{ METRIC_GAUGE, TWILL_M_REMOTE_LEASES, NULL,
	  "Leases and reservations of other nodes currently known." },
	{ METRIC_COUNTER, TWILL_M_LEASE_EVENTS, "kind", "Lease events from the store, by kind." },
	{ METRIC_COUNTER, TWILL_M_LEASE_RENEWALS, NULL, "Successful renewals of the own lease." },
	{ METRIC_COUNTER, TWILL_M_ETCD_REQUESTS, "op", "Requests sent to etcd, by operation." },
	{ METRIC_COUNTER, TWILL_M_ETCD_ERRORS, "kind",
	  "Failed etcd requests, by kind of failure." },
	{ METRIC_GAUGE, TWILL_M_ETCD_ENDPOINT, "endpoint",
	  "The etcd endpoint in use (value 1); endpoints used before show 0." },
	{ METRIC_COUNTER, TWILL_M_NETLINK_OPS, NULL, "Netlink requests sent to the kernel." },
	{ METRIC_COUNTER, TWILL_M_NETLINK_ERRORS, NULL, "Netlink requests the kernel refused." },
	{ METRIC_COUNTER, TWILL_M_KERNEL_REPAIRS, NULL,
	  "Kernel state (routes, neighbours, iptables rules) found missing or changed and restored." },
	{ METRIC_COUNTER, TWILL_M_UDP_PACKETS, "dir",
	  "Packets through the udp backend, by direction." },
	{ METRIC_COUNTER, TWILL_M_UDP_BYTES, "dir",
	  "Bytes through the udp backend, by direction." },
	{ METRIC_COUNTER, TWILL_M_UDP_DROPPED, "reason",
	  "Packets the udp backend dropped, by reason." },
};

int metrics_register_twill(struct metrics *reg)
{
	size_t i;

	if (!reg)
		return -EINVAL;
	for (i = 0; i < sizeof(twill_families) / sizeof(twill_families[0]); i++) {
		struct metric *m =
			metrics_register(reg, twill_families[i].type, twill_families[i].name,
		                         twill_families[i].help, twill_families[i].label, NULL);

		if (!m)
			return -errno;
		if (!twill_families[i].label && !metric_series(m, NULL, NULL))
			return -ENOMEM;
	}
	return 0;
}
