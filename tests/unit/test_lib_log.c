/* lib/log: escaping of outside data, one line per message; lib/flags usage of --help. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/flags.h"
#include "lib/log.h"

Test(log_escape, control_bytes_backslash_and_invalid_utf8)
{
	char buf[128];

	cr_expect_str_eq(log_escape(buf, sizeof(buf), "10.5.1.0-24"), "10.5.1.0-24");
	cr_expect_str_eq(log_escape(buf, sizeof(buf), "a\nFORGED b"), "a\\nFORGED b");
	cr_expect_str_eq(log_escape(buf, sizeof(buf), "\r\t\x01\x7f"), "\\r\\t\\x01\\x7f");
	cr_expect_str_eq(log_escape(buf, sizeof(buf), "k\xff\xfe"), "k\\xff\\xfe");
	cr_expect_str_eq(log_escape(buf, sizeof(buf), "a\\nb"), "a\\\\nb");
	/* outside data: even valid UTF-8 is shown as bytes */
	cr_expect_str_eq(log_escape(buf, sizeof(buf), "\xc3\xa9"), "\\xc3\\xa9");
	cr_expect_str_eq(log_escape(buf, sizeof(buf), NULL), "");
	cr_expect_str_eq(log_escape_mem(buf, sizeof(buf), "a\0b", 3), "a\\x00b");
}

Test(log_escape, cut_at_an_escape_boundary_with_dots)
{
	char buf[8];

	cr_expect_str_eq(log_escape(buf, sizeof(buf), "abcdefghij"), "abcd...");
	cr_expect_str_eq(log_escape(buf, sizeof(buf), "abcdefg"), "abcdefg");
	cr_expect_str_eq(log_escape(buf, sizeof(buf), "ab\xff\xff\xff"), "ab...");
	cr_expect_eq(strlen(log_escape(buf, 3, "abcdef")), 2);
	cr_expect_str_eq(log_escape(buf, 1, "abc"), "");
}

/* Run @fn with stderr captured; the output in a malloc'd string. */
static char *capture(void (*fn)(void))
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	char *out = calloc(1, 8192);
	size_t n;

	cr_assert(tmp && saved >= 0 && out);
	fflush(stderr);
	cr_assert_geq(dup2(fileno(tmp), 2), 0);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(out, 1, 8191, tmp);
	out[n] = '\0';
	fclose(tmp);
	return out;
}

static void emit(void)
{
	log_init("logtest", LOG_LVL_INFO);
	log_warnx("lease key %s: skipped", "/p/10.1.0.0-24\nFORGED logtest: lease added\xff");
	log_info("caf\xc3\xa9 \\ kept");
	log_debug("not shown");
}

Test(log, a_message_is_one_line_with_controls_and_bad_utf8_escaped)
{
	char *out = capture(emit);
	char *nl = strchr(out, '\n');

	cr_assert(nl, "no output: %s", out);
	cr_expect(
		strstr(out,
	               " W logtest: lease key /p/10.1.0.0-24\\nFORGED logtest: lease added\\xff: skipped\n"),
		"%s", out);
	cr_expect(strstr(out, " I logtest: caf\xc3\xa9 \\ kept\n"), "%s", out);
	cr_expect_null(strstr(out, "not shown"));
	cr_expect_null(strstr(out, "\nFORGED"), "%s", out);
	free(out);
}

static void usage(void)
{
	bool help = true, version = true, other = true;
	struct flag_def defs[] = {
		{ .name = "help",
		  .type = FLAG_BOOL,
		  .target = &help,
		  .help = "print this message",
		  .no_env = true },
		{ .name = "h",
		  .type = FLAG_BOOL,
		  .target = &help,
		  .help = "print this message",
		  .no_env = true },
		{ .name = "version",
		  .type = FLAG_BOOL,
		  .target = &version,
		  .help = "print version",
		  .no_env = true },
		{ .name = "ip-masq", .type = FLAG_BOOL, .target = &other, .help = "masquerade" },
	};

	flags_usage(defs, 4, NULL, stderr);
}

Test(flags, usage_shows_no_default_for_help_and_version)
{
	char *out = capture(usage);

	cr_expect(strstr(out, "  --help\n    \tprint this message\n"), "%s", out);
	cr_expect(strstr(out, "  --h\n    \tprint this message\n"), "%s", out);
	cr_expect(strstr(out, "  --version\n    \tprint version\n"), "%s", out);
	cr_expect(strstr(out, "  --ip-masq\n    \tmasquerade (default true)\n"), "%s", out);
	free(out);
}
