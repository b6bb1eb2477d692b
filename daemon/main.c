#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("twilld %s\n", TWILL_VERSION);
		return 0;
	}
	fprintf(stderr, "usage: twilld [flags] (not implemented yet)\n");
	return 2;
}
