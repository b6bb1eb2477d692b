/* daemon/status.c: the /v1/status document built from a snapshot (status_build). */
#include <string.h>

#include <criterion/criterion.h>

#include "daemon/status.h"

static struct ipam_prefix pfx(const char *s)
{
	struct ipam_prefix p;

	cr_assert_eq(ipam_prefix_parse(s, &p), 0, "%s", s);
	return p;
}

static struct ipam_addr addr(const char *s)
{
	struct ipam_addr a;

	cr_assert_eq(ipam_addr_parse(s, &a), 0, "%s", s);
	return a;
}

static char *dump(const struct status_input *in)
{
	json_t *doc = status_build(in);
	char *s;

	cr_assert_not_null(doc);
	s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	return s;
}

Test(daemon_status, before_the_config)
{
	struct status_input in = { .now_s = 1000, .ready_reason = "no valid network config yet" };
	char *s = dump(&in);

	cr_assert_str_eq(
		s,
		"{\"schema\":\"twill.status/v1\",\"version\":\"" TWILL_VERSION "\",\"time\":1000,"
		"\"ready\":false,\"ready_reason\":\"no valid network config yet\",\"last_error\":null,"
		"\"network\":null,\"lease\":null,\"backend\":{\"type\":null,\"started\":false,"
		"\"mtu\":null,\"interface\":null,\"interface_ip\":null,\"devices\":[]},\"etcd\":{"
		"\"store\":null,\"endpoint\":null},\"leases\":{\"remote\":0,\"renewals\":0,"
		"\"skipped\":0,\"routes_programmed\":null,\"routes_source\":null,"
		"\"kernel_reconciles\":null,\"kernel_repairs\":null},\"iptables\":{\"active\":false,"
		"\"masquerade\":false,\"forward_rules\":false,\"last_error\":null},\"udp\":null}");
	free(s);
}

Test(daemon_status, running_vxlan_node)
{
	struct status_input in = {
		.now_s = 1000,
		.ready = true,
		.ready_reason = "",
		.last_error = "etcd: timeout",
		.has_config = true,
		.subnet_len = 24,
		.has_lease = true,
		.has_ipv4 = true,
		.expires_at = 1600,
		.subnet_file = "/run/flannel/subnet.env",
		.backend = "vxlan",
		.started = true,
		.mtu = 1450,
		.ext_name = "eth0",
		.n_devices = 1,
		.store_kind = "etcd",
		.endpoint = "http://192.0.2.100:2379",
		.has_store_stats = true,
		.now_ms = 5000,
		.remote_leases = 2,
		.has_routes = true,
		.routes_programmed = 1,
		.routes_source = "kernel",
		.renewals = 3,
		.has_be_stats = true,
		.ipt_on = true,
		.forward_rules = true,
		.random_fully = true,
		.ipt_error = "",
	};
	json_t *doc, *v;

	in.network = pfx("198.18.0.0/16");
	in.subnet = pfx("198.18.7.0/24");
	in.public_ip = addr("192.0.2.11");
	in.ext_addr = addr("192.0.2.11");
	in.devices[0] = (struct status_device){
		.name = "flannel.1", .kind = "vxlan", .mtu = 1450, .up = true, .present = true
	};
	in.stats.requests[STORE_STAT_GET] = 4;
	in.stats.requests[STORE_STAT_KEEPALIVE] = 6;
	in.stats.errors[STORE_STAT_ERR_TIMEOUT] = 1;
	in.stats.last_ok_ms = 4750;
	in.stats.connects = 1;
	in.be.repairs = 2;
	in.be.reconciles = 9;
	doc = status_build(&in);
	cr_assert_not_null(doc);
	cr_assert(json_is_null(json_object_get(doc, "ready_reason")), "ready: no reason");
	cr_assert_str_eq(json_string_value(json_object_get(doc, "last_error")), "etcd: timeout");
	v = json_object_get(doc, "lease");
	cr_assert_str_eq(json_string_value(json_object_get(v, "subnet")), "198.18.7.0/24");
	cr_assert_str_eq(json_string_value(json_object_get(v, "public_ip")), "192.0.2.11");
	cr_assert_eq(json_integer_value(json_object_get(v, "expires_in_s")), 600);
	v = json_object_get(doc, "backend");
	cr_assert_eq(json_integer_value(json_object_get(v, "mtu")), 1450);
	v = json_array_get(json_object_get(v, "devices"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(v, "name")), "flannel.1");
	cr_assert(json_is_true(json_object_get(v, "up")));
	v = json_object_get(doc, "etcd");
	cr_assert_eq(json_integer_value(json_object_get(v, "requests")), 10);
	cr_assert_eq(json_integer_value(json_object_get(v, "connections")), 1);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(v, "errors"), "timeout")),
	             1);
	cr_assert_eq(json_integer_value(json_object_get(v, "last_ok_ms_ago")), 250);
	v = json_object_get(doc, "leases");
	cr_assert_eq(json_integer_value(json_object_get(v, "remote")), 2);
	cr_assert_eq(json_integer_value(json_object_get(v, "routes_programmed")), 1);
	cr_assert_eq(json_integer_value(json_object_get(v, "kernel_repairs")), 2);
	v = json_object_get(doc, "iptables");
	cr_assert(json_is_true(json_object_get(v, "random_fully")));
	cr_assert(json_is_null(json_object_get(v, "last_error")));
	cr_assert(json_is_null(json_object_get(doc, "udp")));
	json_decref(doc);
}

Test(daemon_status, reservation_and_udp_drops)
{
	struct status_input in = { .now_s = 1000,
		                   .has_lease = true,
		                   .has_ipv4 = true,
		                   .backend = "udp",
		                   .has_be_stats = true };
	json_t *doc, *v;

	in.subnet = pfx("198.18.9.0/24");
	in.be.has_datapath = true;
	in.be.tx_packets = 7;
	in.be.drops[0].reason = "unknown_src";
	in.be.drops[0].n = 1;
	in.be.drops[1].reason = "short";
	in.be.drops[1].n = 0;
	in.be.drops[2].reason = "no_route";
	in.be.drops[2].n = 3;
	in.be.n_drops = 3;
	strcpy(in.be.peer_drops[0].addr, "192.0.2.99");
	in.be.peer_drops[0].reason = "unknown_src";
	in.be.peer_drops[0].n = 1;
	in.be.n_peer_drops = 1;
	doc = status_build(&in);
	cr_assert_not_null(doc);
	v = json_object_get(doc, "lease");
	cr_assert(json_is_null(json_object_get(v, "expires_at")), "a reservation never expires");
	v = json_object_get(doc, "udp");
	cr_assert_eq(json_integer_value(json_object_get(v, "tx_packets")), 7);
	v = json_object_get(v, "drops");
	cr_assert_eq(json_object_size(v), 2, "reasons with no drops are left out");
	cr_assert_eq(json_integer_value(json_object_get(v, "no_route")), 3);
	cr_assert_eq(json_integer_value(json_object_get(v, "unknown_src")), 1);
	v = json_object_get(json_object_get(doc, "udp"), "peer_drops");
	cr_assert_eq(json_array_size(v), 1);
	v = json_array_get(v, 0);
	cr_assert_str_eq(json_string_value(json_object_get(v, "address")), "192.0.2.99");
	cr_assert_str_eq(json_string_value(json_object_get(v, "reason")), "unknown_src");
	cr_assert_eq(json_integer_value(json_object_get(v, "packets")), 1);
	json_decref(doc);
}
