/* The label values of the etcd store's counters (store_stats.h), for metrics and status. */
#include "subnet/store_stats.h"

static const char *const stat_op_names[STORE_STAT_OP_COUNT] = {
	[STORE_STAT_GET] = "get",       [STORE_STAT_LIST] = "list",
	[STORE_STAT_CREATE] = "create", [STORE_STAT_CAS] = "cas",
	[STORE_STAT_PUT] = "put",       [STORE_STAT_DELETE] = "delete",
	[STORE_STAT_GRANT] = "grant",   [STORE_STAT_KEEPALIVE] = "keepalive",
	[STORE_STAT_REVOKE] = "revoke", [STORE_STAT_TIMETOLIVE] = "timetolive",
	[STORE_STAT_AUTH] = "auth",     [STORE_STAT_WATCH] = "watch",
	[STORE_STAT_PROBE] = "probe",
};

static const char *const stat_err_names[STORE_STAT_ERR_COUNT] = {
	[STORE_STAT_ERR_CONNECT] = "connect",
	[STORE_STAT_ERR_TIMEOUT] = "timeout",
	[STORE_STAT_ERR_TLS] = "tls",
	[STORE_STAT_ERR_AUTH] = "auth",
	[STORE_STAT_ERR_UNAVAILABLE] = "unavailable",
	[STORE_STAT_ERR_REJECTED] = "rejected",
	[STORE_STAT_ERR_PROTOCOL] = "protocol",
	[STORE_STAT_ERR_STREAM] = "stream",
};

const char *store_stat_op_name(enum store_stat_op op)
{
	return (unsigned)op < STORE_STAT_OP_COUNT ? stat_op_names[op] : "unknown";
}

const char *store_stat_err_name(enum store_stat_err kind)
{
	return (unsigned)kind < STORE_STAT_ERR_COUNT ? stat_err_names[kind] : "unknown";
}
