/*
 * Twirp v7 error codes and their fixed HTTP statuses, shared by the daemon and
 * the clients.
 */
#ifndef ALLOT_TWIRP_CODES_H
#define ALLOT_TWIRP_CODES_H

enum twirp_code {
	TWIRP_CANCELED,
	TWIRP_UNKNOWN,
	TWIRP_INVALID_ARGUMENT,
	TWIRP_MALFORMED,
	TWIRP_DEADLINE_EXCEEDED,
	TWIRP_NOT_FOUND,
	TWIRP_BAD_ROUTE,
	TWIRP_ALREADY_EXISTS,
	TWIRP_PERMISSION_DENIED,
	TWIRP_UNAUTHENTICATED,
	TWIRP_RESOURCE_EXHAUSTED,
	TWIRP_FAILED_PRECONDITION,
	TWIRP_ABORTED,
	TWIRP_OUT_OF_RANGE,
	TWIRP_UNIMPLEMENTED,
	TWIRP_INTERNAL,
	TWIRP_UNAVAILABLE,
	TWIRP_DATALOSS,
	TWIRP_NCODES
};

/* "invalid_argument" and so on; never NULL for a valid code. */
const char *twirp_code_name(enum twirp_code code);
/* The HTTP status Twirp fixes for the code (400, 404, ...). */
int twirp_code_status(enum twirp_code code);
/* Returns the code named name, or TWIRP_UNKNOWN for a name it does not know. */
enum twirp_code twirp_code_from_name(const char *name);

#endif
