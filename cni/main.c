/* twill-cni: flannel-compatible CNI plugin (cni/cni.h, twill-cni(8)). */
#include <stdio.h>
#include <string.h>

#include "cni/cni.h"

extern char **environ;

int main(int argc, char **argv)
{
	struct cni_call call = { .envp = environ, .in = stdin, .out = stdout, .errout = stderr };

	/* runtimes pass no arguments; these are for a human at a shell */
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: CNI_COMMAND=ADD|DEL|CHECK|VERSION CNI_CONTAINERID=ID CNI_NETNS=PATH \\\n"
		       "       CNI_IFNAME=NAME CNI_PATH=DIRS twill-cni < NETWORK-CONFIG\n"
		       "\n"
		       "A CNI plugin for twill and flannel networks: it reads flannel's CNI network\n"
		       "config (\"type\": \"flannel\", subnetFile, dataDir, delegate) and the subnet file\n"
		       "twilld writes, and delegates to the bridge plugin with host-local IPAM over\n"
		       "the node's subnet. Install it as \"flannel\" in the runtime's plugin\n"
		       "directory for conflists written for flannel. See twill-cni(8).\n"
		       "\n"
		       "  -h, --help   show this help\n"
		       "  --version    show the version and the CNI versions supported\n");
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("twill-cni %s (CNI 0.3.0, 0.3.1, 0.4.0, 1.0.0)\n", TWILL_VERSION);
		return 0;
	}
	return cni_run(&call);
}
