/*
 * telemetry: the Usage.IngestMetrics handler (see telemetry.c).
 */
#ifndef ALLOT_TELEMETRY_H
#define ALLOT_TELEMETRY_H

#include "twirp.h"

/* Handles an authorized, decoded allot.v1.IngestMetricsRequest; always answers the call. */
void telemetry_ingest_handle(struct twirp_call *call);

#endif
