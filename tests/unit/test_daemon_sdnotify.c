#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/sdnotify.h"

static int bind_dgram(const char *name, bool abstract)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	if (abstract) {
		memcpy(sa.sun_path + 1, name, strlen(name));
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	} else {
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", name);
		len = sizeof(sa);
	}
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, len), 0, "bind: %s", strerror(errno));
	return fd;
}

static void expect_msg(int fd, const char *want)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[64];
	ssize_t n;

	cr_assert_eq(poll(&p, 1, 2000), 1, "no datagram");
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_expect_str_eq(buf, want);
}

Test(sdnotify, unset_is_a_no_op)
{
	unsetenv("NOTIFY_SOCKET");
	cr_expect_eq(sd_notify_send("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	cr_expect_eq(sd_notify_send("READY=1"), 0);
}

Test(sdnotify, abstract_socket)
{
	char name[64], env[80];
	int fd;

	snprintf(name, sizeof(name), "twill-sdnotify-%d", (int)getpid());
	fd = bind_dgram(name, true);
	snprintf(env, sizeof(env), "@%s", name);
	setenv("NOTIFY_SOCKET", env, 1);
	cr_assert_eq(sd_notify_send("READY=1"), 0);
	expect_msg(fd, "READY=1");
	close(fd);
}

Test(sdnotify, path_socket)
{
	char dir[] = "/tmp/twill-sdn-XXXXXX", path[96];
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notify", dir);
	fd = bind_dgram(path, false);
	setenv("NOTIFY_SOCKET", path, 1);
	cr_assert_eq(sd_notify_send("READY=1"), 0);
	expect_msg(fd, "READY=1");
	close(fd);
	unlink(path);
	rmdir(dir);
}

Test(sdnotify, bad_addresses)
{
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	cr_expect_eq(sd_notify_send("READY=1"), -EINVAL);
	setenv("NOTIFY_SOCKET", "@", 1);
	cr_expect_eq(sd_notify_send("READY=1"), -EINVAL);
	setenv("NOTIFY_SOCKET", "/nonexistent/twill/notify", 1);
	cr_expect_eq(sd_notify_send("READY=1"), -ENOENT);
}
