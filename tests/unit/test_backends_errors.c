/*
 * Failures of backend init and start for real reasons (kernel refusals in a private network
 * namespace, bad Backend options): the reason lands in the caller's buffer with what failed,
 * on which device or address, and the kernel's text, and the backend itself logs nothing
 * (backend_ops: twilld logs it, once).
 */
#include "tests/unit/nltest.h"

#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "tests/unit/be_testenv.h"

static struct be_extif ext;
static struct ev_loop *loop;
static int saved_stderr = -1;
static char logfile[] = "/tmp/twill-be-errors-XXXXXX";

static void setup(void)
{
	log_init("test", LOG_LVL_WARN);
	netns_underlay(&ext);
	loop = ev_loop_new();
	cr_assert(loop);
}

static void teardown(void)
{
	ev_loop_free(loop);
}

TestSuite(be_errors, .init = setup, .fini = teardown, .timeout = 60);

/* From here on, what the code under test writes to stderr (the log) goes to a file. */
static void capture_log(void)
{
	int fd = mkstemp(logfile);

	cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	cr_assert(saved_stderr >= 0);
	cr_assert_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/* Stop capturing; what was logged meanwhile, into @buf. */
static const char *captured_log(char *buf, size_t len)
{
	FILE *f;
	size_t n;

	fflush(stderr);
	cr_assert_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
	close(saved_stderr);
	f = fopen(logfile, "r");
	cr_assert(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	unlink(logfile);
	return buf;
}

static struct backend *try_init(const char *type, const char *cfgjson, char *err, size_t errlen)
{
	struct subnet_config *cfg = mk_config(cfgjson);
	struct lease_attrs a = { 0 };
	struct backend *be;

	be = backend_lookup(type)->init(loop, cfg, &ext, env_settings(), &a, err, errlen);
	lease_attrs_clear(&a);
	subnet_config_free(cfg);
	return be;
}

#define VXLAN_CFG(opts) "{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"vxlan\"" opts "}}"

/* Another VXLAN device holds VNI 1 on port 8472: flannel.1 cannot be created. */
Test(be_errors, vxlan_init_vni_taken)
{
	char err[BE_ERR_MAX] = "stale", log[4096];

	cr_assert_eq(sh("ip link add vx-other type vxlan id 1 dstport 8472 local 192.0.2.1 dev ul"),
	             0);
	capture_log();
	errno = 0;
	cr_assert_null(try_init("vxlan", VXLAN_CFG(""), err, sizeof(err)));
	cr_assert_eq(errno, EEXIST, "%s", strerror(errno));
	cr_assert_str_empty(captured_log(log, sizeof(log)), "the backend logged: %s", log);
	cr_assert(strstr(err, "vxlan flannel.1: creating the device failed: ") == err, "%s", err);
	cr_assert(strstr(err, strerror(EEXIST)), "no errno text: %s", err);
	cr_assert(strstr(err, "VNI already exists"), "no kernel text: %s", err);
	cr_assert(strstr(err, "device vx-other has VNI 1 on UDP port 8472"), "%s", err);
	cr_assert(strstr(err, "set another Backend.VNI"), "%s", err);
	/* nothing was created */
	cr_assert_neq(sh("ip link show flannel.1 >/dev/null 2>&1"), 0);
}

Test(be_errors, vxlan_init_bad_option)
{
	char err[BE_ERR_MAX], log[4096];

	capture_log();
	cr_assert_null(try_init("vxlan", VXLAN_CFG(",\"VNI\":\"one\""), err, sizeof(err)));
	cr_assert_eq(errno, EINVAL);
	cr_assert_str_empty(captured_log(log, sizeof(log)), "the backend logged: %s", log);
	cr_assert_str_eq(err, "vxlan: Backend.VNI must be an integer in 0..16777215");
	cr_assert_neq(sh("ip link show flannel.1 >/dev/null 2>&1"), 0);
}

/*
 * A compatible flannel.1 exists (adopted by init, MTU left alone); Backend.MTU asks for more
 * than the underlay allows: the kernel refuses the MTU when start brings the device up.
 */
Test(be_errors, vxlan_start_mtu_refused)
{
	const struct backend_ops *vx = backend_lookup("vxlan");
	char err[BE_ERR_MAX], log[4096];
	struct backend *be;
	struct lease own;
	int r;

	cr_assert_eq(
		sh("ip link add flannel.1 type vxlan id 1 dstport 8472 local 192.0.2.1 dev ul"), 0);
	be = try_init("vxlan", VXLAN_CFG(",\"MTU\":9000"), err, sizeof(err));
	cr_assert(be, "init: %s", err);
	mk_lease(&own, "198.18.0.0/24", "192.0.2.1", "vxlan", NULL);
	capture_log();
	r = vx->start(be, &own, err, sizeof(err));
	cr_assert_str_empty(captured_log(log, sizeof(log)), "the backend logged: %s", log);
	cr_assert_eq(r, -EINVAL, "start: %d (%s)", r, err);
	cr_assert(strstr(err, "vxlan flannel.1: setting MTU 9000 and bringing the device up "
	                      "failed: ") == err,
	          "%s", err);
	cr_assert(strstr(err, strerror(EINVAL)), "no errno text: %s", err);
	/* a second try fails the same way, with the same text (twilld logs it once) */
	{
		char again[BE_ERR_MAX];

		cr_assert_eq(vx->start(be, &own, again, sizeof(again)), -EINVAL);
		cr_assert_str_eq(again, err);
	}
	lease_clear(&own);
	vx->stop(be);
}

/* Another program has the udp port: the UDP socket cannot be bound. */
Test(be_errors, udp_init_port_taken)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(8285) };
	char err[BE_ERR_MAX], log[4096];
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert(s >= 0);
	inet_pton(AF_INET, "192.0.2.1", &sa.sin_addr);
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
	setenv("TWILL_UDP_WORKERS", "1", 1);
	capture_log();
	errno = 0;
	cr_assert_null(try_init("udp",
	                        "{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}",
	                        err, sizeof(err)));
	cr_assert_eq(errno, EADDRINUSE, "%s", strerror(errno));
	cr_assert_str_empty(captured_log(log, sizeof(log)), "the backend logged: %s", log);
	cr_assert(strstr(err, "udp: cannot bind 192.0.2.1:8285: ") == err, "%s", err);
	cr_assert(strstr(err, strerror(EADDRINUSE)), "no errno text: %s", err);
	cr_assert(strstr(err, "set another Backend.Port"), "%s", err);
	close(s);
}

Test(be_errors, udp_init_bad_option)
{
	char err[BE_ERR_MAX], log[4096];

	capture_log();
	cr_assert_null(try_init("udp",
	                        "{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"udp\","
	                        "\"Port\":-1}}",
	                        err, sizeof(err)));
	cr_assert_eq(errno, EINVAL);
	cr_assert_str_empty(captured_log(log, sizeof(log)), "the backend logged: %s", log);
	cr_assert_str_eq(err, "udp: Backend.Port must be an integer 0..65535 (0: default 8285)");
}

/* host-gw with --public-ip elsewhere: refused at init, with the addresses and the way out. */
Test(be_errors, hostgw_init_public_ip_elsewhere)
{
	struct subnet_config *cfg =
		mk_config("{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"host-gw\"}}");
	struct lease_attrs a = { 0 };
	struct be_extif e = ext;
	char err[BE_ERR_MAX], log[4096];

	cr_assert_eq(ipam_addr_parse("192.0.2.99", &e.public_ip), 0);
	capture_log();
	cr_assert_null(backend_lookup("host-gw")->init(loop, cfg, &e, NULL, &a, err, sizeof(err)));
	cr_assert_str_empty(captured_log(log, sizeof(log)), "the backend logged: %s", log);
	cr_assert(strstr(err,
	                 "host-gw: the public IP 192.0.2.99 is not the address of the external "
	                 "interface ul (192.0.2.1)") == err,
	          "%s", err);
	subnet_config_free(cfg);
}
