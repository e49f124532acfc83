/*
 * rpc: the table of Allot's routes, who may call each and where it is served.
 */
#ifndef ALLOT_RPC_H
#define ALLOT_RPC_H

#include <stddef.h>

#include "twirp.h"

/* The routes of allot.v1; *n is set to their number. */
const struct twirp_route *rpc_routes(size_t *n);

#endif
