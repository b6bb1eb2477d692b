/*
 * libFuzzer harness: `twillctl status` reading a /v1/status document from the network
 * (ctl_status_print in ctl/cmd_status.c), as a table and as JSON.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	char err[512];

	if (!sink)
		sink = fopen("/dev/null", "w");
	if (!sink)
		abort();
	for (int json = 0; json < 2; json++) {
		err[0] = '\0';
		if (ctl_status_print((const char *)data, size, json, sink, err, sizeof(err)) < 0 &&
		    !err[0])
			abort();
	}
	return 0;
}
