/* vxlan backend internals shared with its tests. */
#ifndef TWILL_BACKENDS_VXLAN_H
#define TWILL_BACKENDS_VXLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "subnet/config.h"

struct vxlan_options {
	uint32_t vni;        /* VNI, default 1 */
	uint16_t port;       /* Port, default 8472 */
	bool gbp;            /* GBP */
	bool learning;       /* Learning */
	bool direct_routing; /* DirectRouting */
	int mtu;             /* MTU, default underlay MTU - 50 */
};

/* Read and check the vxlan options of @cfg->backend; 0 or -EINVAL with the reason in @err. */
int vxlan_parse_options(const struct subnet_config *cfg, int ext_mtu, struct vxlan_options *ret,
                        char *err, size_t errlen);

#endif
