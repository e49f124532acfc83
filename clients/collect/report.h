/*
 * report: what the daemon says of itself: its /metrics (Prometheus text) and a
 * backlog line in the log while batches wait.
 */
#ifndef ALLOT_COLLECT_REPORT_H
#define ALLOT_COLLECT_REPORT_H

#include <event2/http.h>

#include "collector.h"

/* evhttp's callback for GET /metrics; arg is the collector. */
void report_metrics_cb(struct evhttp_request *req, void *arg);
/* Every 30 s: logs the backlog when there is one (and once when it is gone). */
void report_backlog_cb(evutil_socket_t fd, short what, void *arg);

#endif
