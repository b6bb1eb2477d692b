/* twill-cni: flannel-compatible CNI plugin (cni/cni.h, twill-cni(8)). */
#include <stdio.h>

#include "cni/cni.h"

extern char **environ;

int main(void)
{
	struct cni_call call = { .envp = environ, .in = stdin, .out = stdout, .errout = stderr };

	return cni_run(&call);
}
