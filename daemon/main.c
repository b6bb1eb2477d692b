#include <signal.h>
#include <stdio.h>

#include "daemon/opts.h"
#include "daemon/twilld.h"
#include "lib/log.h"

int main(int argc, char **argv)
{
	struct twilld_opts o;
	char err[512];
	int r;

	twilld_opts_init(&o);
	r = twilld_opts_parse(&o, argc, argv, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "twilld: %s\nRun 'twilld --help' for the list of flags.\n", err);
		twilld_opts_free(&o);
		return 2;
	}
	if (o.help) {
		twilld_opts_usage(&o, "twilld", stdout);
		twilld_opts_free(&o);
		return 0;
	}
	if (o.version) {
		printf("twilld %s\n", TWILL_VERSION);
		twilld_opts_free(&o);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	log_init("twilld", twilld_opts_log_level(&o));
	r = twilld_run(&o);
	twilld_opts_free(&o);
	return r < 0 ? 1 : 0;
}
