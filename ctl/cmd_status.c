/*
 * twillctl status: fetch a node's /v1/status document (daemon/status.h) from twilld's health
 * port and print it as a table, or as JSON with --json. The document comes from the network:
 * ctl_status_print() checks it and never trusts a field's type (fuzzed).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "lib/errfmt.h"

#define STATUS_BODY_MAX (1024 * 1024)

/* A string member, or @def when absent or not a string. */
static const char *sget(json_t *o, const char *key, const char *def)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : def;
}

/* An integer member into *@ret; false when absent or not an integer. */
static bool iget(json_t *o, const char *key, json_int_t *ret)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v))
		return false;
	*ret = json_integer_value(v);
	return true;
}

static void duration(json_int_t s, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT " s ago", -s);
	else if (s >= 86400)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT "d%02" JSON_INTEGER_FORMAT "h",
		         s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT "h%02" JSON_INTEGER_FORMAT "m", s / 3600,
		         s % 3600 / 60);
	else
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT "m%02" JSON_INTEGER_FORMAT "s", s / 60,
		         s % 60);
}

static void row(FILE *out, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void row(FILE *out, const char *what, const char *fmt, ...)
{
	va_list ap;

	fprintf(out, "%-14s ", what);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
}

static void print_node(json_t *doc, FILE *out)
{
	json_t *be = json_object_get(doc, "backend"), *lease = json_object_get(doc, "lease");
	json_t *net = json_object_get(doc, "network");
	json_int_t n = 0, mtu;
	const char *pre = "in ";
	char left[48];

	row(out, "node", "%s on %s, twilld %s", sget(be, "interface_ip", "-"),
	    sget(be, "interface", "-"), sget(doc, "version", "?"));
	if (json_is_true(json_object_get(doc, "ready")))
		row(out, "ready", "yes");
	else
		row(out, "ready", "no: %s", sget(doc, "ready_reason", "unknown"));
	if (json_is_object(lease)) {
		if (iget(lease, "expires_in_s", &n)) {
			duration(n, left, sizeof(left));
			if (n < 0)
				pre = "";
		} else {
			pre = "";
			snprintf(left, sizeof(left), "never (reservation)");
		}
		row(out, "lease", "%s%s%s, public IP %s, expires %s%s",
		    sget(lease, "subnet", sget(lease, "ipv6_subnet", "-")),
		    json_is_string(json_object_get(lease, "ipv6_subnet")) &&
		                    json_is_string(json_object_get(lease, "subnet"))
		            ? " "
		            : "",
		    json_is_string(json_object_get(lease, "subnet"))
		            ? sget(lease, "ipv6_subnet", "")
		            : "",
		    sget(lease, "public_ip", "-"), pre, left);
	} else {
		row(out, "lease", "none");
	}
	if (json_is_object(net) && iget(net, "subnet_len", &n))
		row(out, "network", "%s, subnets /%" JSON_INTEGER_FORMAT "%s%s",
		    sget(net, "network", "-"), n,
		    json_is_string(json_object_get(net, "ipv6_network")) ? ", IPv6 " : "",
		    sget(net, "ipv6_network", ""));
	else
		row(out, "network", "no config yet");
	if (!iget(be, "mtu", &mtu))
		mtu = 0;
	row(out, "backend", "%s, %s, MTU %" JSON_INTEGER_FORMAT, sget(be, "type", "-"),
	    json_is_true(json_object_get(be, "started")) ? "running" : "not started", mtu);
}

static void print_devices(json_t *doc, FILE *out)
{
	json_t *devs = json_object_get(json_object_get(doc, "backend"), "devices"), *d;
	size_t i;

	json_array_foreach(devs, i, d) {
		json_int_t mtu = 0;

		iget(d, "mtu", &mtu);
		if (!json_is_true(json_object_get(d, "present")))
			row(out, i ? "" : "devices", "%s: MISSING", sget(d, "name", "?"));
		else
			row(out, i ? "" : "devices", "%s: %s, %s, MTU %" JSON_INTEGER_FORMAT,
			    sget(d, "name", "?"),
			    sget(d, "kind", "?")[0] ? sget(d, "kind", "?") : "-",
			    json_is_true(json_object_get(d, "up")) ? "up" : "DOWN", mtu);
	}
}

static void print_etcd(json_t *doc, FILE *out)
{
	json_t *e = json_object_get(doc, "etcd"), *errs = json_object_get(e, "errors"), *v;
	char buf[256] = "";
	json_int_t n = 0, nconn = 0, ago;
	const char *k;
	size_t used = 0;

	json_object_foreach(errs, k, v) {
		if (!json_is_integer(v) || json_integer_value(v) == 0 || used >= sizeof(buf) - 1)
			continue;
		used += (size_t)snprintf(buf + used, sizeof(buf) - used,
		                         "%s%s %" JSON_INTEGER_FORMAT, used ? ", " : "", k,
		                         json_integer_value(v));
	}
	if (used >= sizeof(buf))
		used = sizeof(buf) - 1;
	row(out, "store", "%s (%s)", sget(e, "endpoint", "-"), sget(e, "store", "-"));
	if (iget(e, "requests", &n) && iget(e, "connections", &nconn))
		row(out, "",
		    "%" JSON_INTEGER_FORMAT " requests over %" JSON_INTEGER_FORMAT
		    " connections, errors: %s",
		    n, nconn, used ? buf : "none");
	else if (iget(e, "requests", &n))
		row(out, "", "%" JSON_INTEGER_FORMAT " requests, errors: %s", n,
		    used ? buf : "none");
	if (iget(e, "last_ok_ms_ago", &ago))
		row(out, "",
		    "last answer %" JSON_INTEGER_FORMAT ".%01" JSON_INTEGER_FORMAT " s ago",
		    ago / 1000, ago % 1000 / 100);
}

/* The udp data path's per-peer drops as a table under the "udp" rows. */
static void print_peer_drops(json_t *pd, FILE *out)
{
	json_int_t n;
	json_t *e;
	size_t i;

	if (!json_is_array(pd) || json_array_size(pd) == 0)
		return;
	row(out, "", "dropped from/for these underlay addresses:");
	row(out, "", "  %-15s %12s  %s", "ADDRESS", "PACKETS", "REASON");
	json_array_foreach(pd, i, e) {
		if (!iget(e, "packets", &n))
			n = 0;
		row(out, "", "  %-15s %12" JSON_INTEGER_FORMAT "  %s", sget(e, "address", "?"), n,
		    sget(e, "reason", "?"));
	}
}

static void print_state(json_t *doc, FILE *out)
{
	json_t *l = json_object_get(doc, "leases"), *ipt = json_object_get(doc, "iptables");
	json_t *udp = json_object_get(doc, "udp"), *v;
	json_int_t remote = 0, routes, rec, rep, tx = 0, rx = 0;
	const char *k;

	iget(l, "remote", &remote);
	if (iget(l, "routes_programmed", &routes))
		row(out, "remote leases",
		    "%" JSON_INTEGER_FORMAT " known; routes programmed: %" JSON_INTEGER_FORMAT
		    " (%s)%s",
		    remote, routes, sget(l, "routes_source", "?"),
		    routes != remote ? "  <- differs" : "");
	else
		row(out, "remote leases", "%" JSON_INTEGER_FORMAT " known", remote);
	if (iget(l, "kernel_reconciles", &rec) && iget(l, "kernel_repairs", &rep))
		row(out, "kernel",
		    "%" JSON_INTEGER_FORMAT " checks, %" JSON_INTEGER_FORMAT " repairs", rec, rep);
	if (json_is_true(json_object_get(ipt, "active")))
		row(out, "iptables", "forward rules %s, masquerade %s, last sync %s",
		    json_is_true(json_object_get(ipt, "forward_rules")) ? "on" : "off",
		    json_is_true(json_object_get(ipt, "masquerade")) ? "on" : "off",
		    sget(ipt, "last_error", "ok"));
	else
		row(out, "iptables", "off");
	if (json_is_object(udp)) {
		iget(udp, "tx_packets", &tx);
		iget(udp, "rx_packets", &rx);
		row(out, "udp",
		    "%" JSON_INTEGER_FORMAT " packets sent, %" JSON_INTEGER_FORMAT " received", tx,
		    rx);
		json_object_foreach(json_object_get(udp, "drops"), k, v)
			if (json_is_integer(v))
				row(out, "", "dropped %" JSON_INTEGER_FORMAT ": %s",
				    json_integer_value(v), k);
		print_peer_drops(json_object_get(udp, "peer_drops"), out);
	}
	row(out, "last error", "%s", sget(doc, "last_error", "none"));
}

int ctl_status_print(const char *body, size_t len, bool json, FILE *out, char *err, size_t errlen)
{
	json_error_t je;
	json_t *doc = json_loadb(body, len, 0, &je);
	const char *schema;
	char q[ERRFMT_QUOTE_SIZE];

	if (!doc) {
		errfmt(err, errlen, "the answer is not JSON: %s", je.text);
		return -EINVAL;
	}
	schema = sget(doc, "schema", NULL);
	if (!json_is_object(doc) || !schema || strcmp(schema, "twill.status/v1") != 0) {
		errfmt(err, errlen, "the answer is not a twill status document (schema %s)",
		       schema ? errfmt_quote(schema, q) : "missing");
		json_decref(doc);
		return -EINVAL;
	}
	if (json) {
		json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', out);
	} else {
		print_node(doc, out);
		print_devices(doc, out);
		print_etcd(doc, out);
		print_state(doc, out);
	}
	json_decref(doc);
	return 0;
}

struct body {
	char *buf;
	size_t len;
	bool too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
	struct body *b = ctx;
	size_t add = size * n;
	char *nb;

	if (b->len + add > STATUS_BODY_MAX) {
		b->too_big = true;
		return 0;
	}
	nb = realloc(b->buf, b->len + add + 1);
	if (!nb)
		return 0;
	memcpy(nb + b->len, p, add);
	b->buf = nb;
	b->len += add;
	b->buf[b->len] = '\0';
	return add;
}

/* GET @url into @b; 0, or 1 after a message. */
static int fetch(struct ctl *c, const char *url, struct body *b)
{
	char curlerr[CURL_ERROR_SIZE] = "";
	CURL *h = curl_easy_init();
	long code = 0;
	CURLcode cr;

	if (!h) {
		fprintf(c->err, "twillctl status: cannot initialise libcurl\n");
		return 1;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curlerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	cr = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	if (cr != CURLE_OK) {
		fprintf(c->err,
		        "twillctl status: cannot reach twilld at %s: %s\n"
		        "Is twilld running with --healthz-port (and --healthz-ip) matching --healthz?\n",
		        url,
		        b->too_big   ? "answer larger than 1 MiB"
		        : curlerr[0] ? curlerr
		                     : curl_easy_strerror(cr));
		return 1;
	}
	if (code != 200) {
		fprintf(c->err, "twillctl status: %s answered HTTP %ld%s\n", url, code,
		        code == 404 ? " (a twilld without /v1/status, or not twilld)" : "");
		return 1;
	}
	return 0;
}

int ctl_status(struct ctl *c, const char *healthz, bool json)
{
	struct body b = { 0 };
	char url[2048], err[512] = "";
	size_t n;
	int ret;

	if (!healthz || !*healthz)
		healthz = CTL_HEALTHZ_DEFAULT;
	n = strlen(healthz);
	while (n > 0 && healthz[n - 1] == '/')
		n--;
	/* the node's health port (the status path is added) or the full status URL */
	if (n >= 10 && strncmp(healthz + n - 10, "/v1/status", 10) == 0)
		snprintf(url, sizeof(url), "%.*s", (int)n, healthz);
	else
		snprintf(url, sizeof(url), "%.*s/v1/status", (int)n, healthz);
	ret = fetch(c, url, &b);
	if (ret == 0 &&
	    ctl_status_print(b.buf ? b.buf : "", b.len, json, c->out, err, sizeof(err)) < 0) {
		fprintf(c->err, "twillctl status: %s: %s\n", url, err);
		ret = 1;
	}
	free(b.buf);
	return ret;
}
