/*
 * A small metrics registry: counters and gauges, each a family with zero, one
 * or two label names, rendered in the Prometheus text exposition format 0.0.4.
 *
 * Threads: families are registered from one thread (the loop). A series
 * (one label-value combination) is looked up or created with metric_series(),
 * which is thread-safe; its pointer stays valid until metrics_free(), so hot
 * paths (udp workers) look it up once and then only do lock-free atomic
 * increments. Rendering may run while other threads increment.
 *
 * Naming: counters end in "_total"; units belong in the name (_seconds, _bytes).
 * The output is deterministic: families sorted by name, series by label values.
 * No logging.
 */
#ifndef TWILL_LIB_METRICS_H
#define TWILL_LIB_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum metric_type {
	METRIC_COUNTER,
	METRIC_GAUGE,
};

struct metrics;
struct metric;
struct metric_series;

/* Called at the start of every metrics_render(), to fill gauges from live state. */
typedef void (*metrics_scrape_cb)(void *ctx, struct metrics *reg);

/* An empty registry; NULL with errno ENOMEM. */
struct metrics *metrics_new(void);
/* Frees the registry, its families and series. NULL-safe. */
void metrics_free(struct metrics *reg);
/* The process-wide registry (created on first use, never freed); NULL only on ENOMEM. */
struct metrics *metrics_global(void);

/*
 * Register a family. @name: [a-zA-Z_:][a-zA-Z0-9_:]*, counters end in "_total";
 * @help: one line of text (copied); @label1/@label2: label names or NULL
 * ([a-zA-Z_][a-zA-Z0-9_]*, not "__..."; @label2 only with @label1).
 * Registering the same name again with the same type and labels returns the
 * existing family. NULL with errno EINVAL (bad name/labels), EEXIST (same name,
 * other type or labels) or ENOMEM.
 */
struct metric *metrics_register(struct metrics *reg, enum metric_type type, const char *name,
                                const char *help, const char *label1, const char *label2);
/* The family called @name, or NULL (errno ENOENT). */
struct metric *metrics_find(struct metrics *reg, const char *name);

/*
 * The series of @m for the given label values (as many as the family has
 * labels; extra ones are ignored; NULL counts as ""), created at zero on first
 * use. Thread-safe. NULL with errno EINVAL (@m NULL, a missing value) or ENOMEM.
 * A series without labels: metric_series(m, NULL, NULL).
 */
struct metric_series *metric_series(struct metric *m, const char *v1, const char *v2);

/* Lock-free updates; each accepts NULL (no-op) so a failed lookup is harmless. */
void metric_series_add(struct metric_series *s, uint64_t n);     /* counter += n; gauge += n */
void metric_series_inc(struct metric_series *s);                 /* += 1 */
void metric_series_set(struct metric_series *s, double v);       /* gauges (counters: ignored) */
void metric_series_gauge_add(struct metric_series *s, double d); /* gauge += d (may be < 0) */
/* The current value (counters as double); 0 for NULL. */
double metric_series_value(const struct metric_series *s);

/* Shorthands through metric_series(); no-op when the lookup fails. */
void metric_inc(struct metric *m, const char *v1, const char *v2);
void metric_add(struct metric *m, const char *v1, const char *v2, uint64_t n);
void metric_set(struct metric *m, const char *v1, const char *v2, double v);

/* Add a scrape callback (called in registration order). 0 or -ENOMEM. */
int metrics_on_scrape(struct metrics *reg, metrics_scrape_cb cb, void *ctx);
/* Remove the callback added with the same @cb and @ctx (before @ctx is freed); 0 or -ENOENT. */
int metrics_off_scrape(struct metrics *reg, metrics_scrape_cb cb, void *ctx);

/*
 * The exposition text (scrape callbacks run first): per family "# HELP",
 * "# TYPE", then one line per series. *@ret_text is malloc'd, NUL-terminated,
 * the caller's. 0 or -ENOMEM.
 */
int metrics_render(struct metrics *reg, char **ret_text, size_t *ret_len);

/* ---- twill's own metric families ---- */

#define TWILL_M_LEASE_HELD     "twill_lease_held"               /* gauge */
#define TWILL_M_LEASE_EXPIRY   "twill_lease_expiry_seconds"     /* gauge */
#define TWILL_M_REMOTE_LEASES  "twill_remote_leases"            /* gauge */
#define TWILL_M_LEASE_EVENTS   "twill_lease_events_total"       /* counter {kind} */
#define TWILL_M_LEASE_RENEWALS "twill_lease_renewals_total"     /* counter */
#define TWILL_M_ETCD_REQUESTS  "twill_etcd_requests_total"      /* counter {op} */
#define TWILL_M_ETCD_ERRORS    "twill_etcd_errors_total"        /* counter {kind} */
#define TWILL_M_ETCD_ENDPOINT  "twill_etcd_endpoint_info"       /* gauge {endpoint}: 1 in use */
#define TWILL_M_NETLINK_OPS    "twill_netlink_operations_total" /* counter */
#define TWILL_M_NETLINK_ERRORS "twill_netlink_errors_total"     /* counter */
#define TWILL_M_KERNEL_REPAIRS "twill_kernel_repairs_total"     /* counter */
#define TWILL_M_UDP_PACKETS    "twill_udp_packets_total"        /* counter {dir} */
#define TWILL_M_UDP_BYTES      "twill_udp_bytes_total"          /* counter {dir} */
#define TWILL_M_UDP_DROPPED    "twill_udp_dropped_total"        /* counter {reason} */

/*
 * Register every family above in @reg with its HELP text and labels (families
 * without labels get their zero series, so they show from the first scrape).
 * Idempotent. 0, or -errno of the first failure (-EEXIST: a name already
 * registered with another type or labels).
 */
int metrics_register_twill(struct metrics *reg);

#endif
