/* The ops tables of the built-in backends (backend_lookup() is the public way in). */
#ifndef TWILL_BACKENDS_BACKENDS_H
#define TWILL_BACKENDS_BACKENDS_H

#include "backends/backend.h"

extern const struct backend_ops vxlan_backend_ops;
extern const struct backend_ops hostgw_backend_ops;
extern const struct backend_ops udp_backend_ops;

#endif
