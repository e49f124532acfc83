/*
 * ingest: the Usage.Ingest handler (see ingest.c).
 */
#ifndef ALLOT_INGEST_H
#define ALLOT_INGEST_H

#include "twirp.h"

/* Handles an authorized, decoded allot.v1.IngestRequest; always answers the call. */
void ingest_handle(struct twirp_call *call);

#endif
