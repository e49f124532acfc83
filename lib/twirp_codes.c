/*
 * The Twirp v7 table of error codes: name and HTTP status, in one place.
 */
#include <string.h>

#include "twirp_codes.h"

static const struct {
	const char *name;
	int status;
} codes[TWIRP_NCODES] = {
    [TWIRP_CANCELED] = {"canceled", 408},
    [TWIRP_UNKNOWN] = {"unknown", 500},
    [TWIRP_INVALID_ARGUMENT] = {"invalid_argument", 400},
    [TWIRP_MALFORMED] = {"malformed", 400},
    [TWIRP_DEADLINE_EXCEEDED] = {"deadline_exceeded", 408},
    [TWIRP_NOT_FOUND] = {"not_found", 404},
    [TWIRP_BAD_ROUTE] = {"bad_route", 404},
    [TWIRP_ALREADY_EXISTS] = {"already_exists", 409},
    [TWIRP_PERMISSION_DENIED] = {"permission_denied", 403},
    [TWIRP_UNAUTHENTICATED] = {"unauthenticated", 401},
    [TWIRP_RESOURCE_EXHAUSTED] = {"resource_exhausted", 429},
    [TWIRP_FAILED_PRECONDITION] = {"failed_precondition", 412},
    [TWIRP_ABORTED] = {"aborted", 409},
    [TWIRP_OUT_OF_RANGE] = {"out_of_range", 400},
    [TWIRP_UNIMPLEMENTED] = {"unimplemented", 501},
    [TWIRP_INTERNAL] = {"internal", 500},
    [TWIRP_UNAVAILABLE] = {"unavailable", 503},
    [TWIRP_DATALOSS] = {"dataloss", 500},
};

const char *
twirp_code_name(enum twirp_code code)
{
	if ((unsigned)code >= TWIRP_NCODES)
		code = TWIRP_UNKNOWN;
	return codes[code].name;
}

int
twirp_code_status(enum twirp_code code)
{
	if ((unsigned)code >= TWIRP_NCODES)
		code = TWIRP_UNKNOWN;
	return codes[code].status;
}

enum twirp_code
twirp_code_from_name(const char *name)
{
	for (int i = 0; i < TWIRP_NCODES; i++)
		if (strcmp(codes[i].name, name) == 0)
			return (enum twirp_code)i;
	return TWIRP_UNKNOWN;
}
