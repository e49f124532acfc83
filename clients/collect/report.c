/*
 * report: the daemon's /metrics and backlog line (see report.h), read from the
 * spool's, the sender's and the sources' counters.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "collector.h"
#include "log.h"
#include "report.h"

static void
family(struct strbuf *out, const char *name, const char *type, const char *help)
{
	strbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family with one value per kind of batch. Counters stay exact to 2^53. */
static void
per_kind(struct strbuf *out, const char *name, const char *type, const char *help,
    const double v[SPOOL_NKINDS])
{
	family(out, name, type, help);
	for (int k = 0; k < SPOOL_NKINDS; k++)
		strbuf_printf(out, "%s{kind=\"%s\"} %.15g\n", name,
		    spool_kind_name((enum spool_kind)k), v[k]);
}

static void
single(struct strbuf *out, const char *name, const char *type, const char *help, double v)
{
	family(out, name, type, help);
	strbuf_printf(out, "%s %.15g\n", name, v);
}

static void
render_metrics(struct collector *c, struct strbuf *out)
{
	double batches[SPOOL_NKINDS], records[SPOOL_NKINDS], bytes[SPOOL_NKINDS], age[SPOOL_NKINDS],
	    acked[SPOOL_NKINDS], acked_records[SPOOL_NKINDS], refused[SPOOL_NKINDS],
	    rejected[SPOOL_NKINDS], failures[SPOOL_NKINDS], in_a_row[SPOOL_NKINDS];
	struct sender_stats st;
	struct spool_stats ss;
	int64_t now = collector_wall_ms();

	sender_get_stats(c->sender, &st);
	for (int k = 0; k < SPOOL_NKINDS; k++) {
		spool_get_stats(c->spool, k, &ss);
		batches[k] = (double)ss.batches;
		records[k] = (double)ss.records;
		bytes[k] = (double)ss.bytes;
		age[k] = ss.oldest_ms > 0 ? (double)(now - ss.oldest_ms) / 1000.0 : 0.0;
		acked[k] = (double)st.batches_acked[k];
		acked_records[k] = (double)st.records_acked[k];
		refused[k] = (double)st.records_refused[k];
		rejected[k] = (double)st.batches_rejected[k];
		failures[k] = (double)st.attempts_failed[k];
		in_a_row[k] = (double)st.failures_in_a_row[k];
	}
	per_kind(out, "allot_collect_spool_batches", "gauge",
	    "Batches in the spool, not yet acknowledged.", batches);
	per_kind(out, "allot_collect_spool_records", "gauge", "Records or samples in the spool.",
	    records);
	per_kind(out, "allot_collect_spool_bytes", "gauge", "Size of the spooled batches.", bytes);
	per_kind(out, "allot_collect_spool_oldest_age_seconds", "gauge",
	    "Age of the oldest spooled batch (0 when empty).", age);
	single(out, "allot_collect_spool_full", "gauge",
	    "1 while the spool is full and the sources are not read.", c->paused ? 1 : 0);
	single(out, "allot_collect_held_records", "gauge",
	    "Records read but waiting in memory for room in the spool.",
	    (double)batcher_pending(c->batcher));
	per_kind(out, "allot_collect_batches_acked_total", "counter",
	    "Batches allotd acknowledged.", acked);
	per_kind(out, "allot_collect_records_acked_total", "counter",
	    "Records or samples in acknowledged batches.", acked_records);
	per_kind(out, "allot_collect_records_refused_total", "counter",
	    "Records allotd acknowledged but refused one by one (unknown account, ...).", refused);
	per_kind(out, "allot_collect_batches_rejected_total", "counter",
	    "Batches refused for good and moved to the spool's rejected/ folder.", rejected);
	per_kind(out, "allot_collect_send_failures_total", "counter",
	    "Attempts to send that failed and will be retried.", failures);
	per_kind(out, "allot_collect_send_failures_in_a_row", "gauge",
	    "Failed attempts since the last success (0: allotd takes batches).", in_a_row);
	single(out, "allot_collect_send_in_flight", "gauge",
	    "1 while a batch awaits allotd's answer.", st.in_flight ? 1 : 0);
	single(out, "allot_collect_last_ack_timestamp_seconds", "gauge",
	    "Unix time of the last acknowledgement (0: none yet).",
	    (double)st.last_ack_ms / 1000.0);
	single(out, "allot_collect_records_read_total", "counter",
	    "Records and samples read from the sources.", (double)c->records_read);
	single(out, "allot_collect_parse_errors_total", "counter",
	    "Inputs or lines that did not parse.", (double)c->parse_errors);
	single(out, "allot_collect_records_skipped_total", "counter",
	    "Job records and steps of partitions not in the partitions key.",
	    (double)batcher_skipped(c->batcher));
	family(out, "allot_collect_sacct_runs_total", "counter", "sacct runs, by outcome.");
	strbuf_printf(out,
	    "allot_collect_sacct_runs_total{outcome=\"ok\"} %" PRIu64 "\n"
	    "allot_collect_sacct_runs_total{outcome=\"failed\"} %" PRIu64 "\n",
	    c->sacct_runs, c->sacct_failures);
	family(out, "allot_collect_scrapes_total", "counter",
	    "Exporter scrapes, by exporter and outcome.");
	for (int i = 0; i < 2; i++)
		strbuf_printf(out,
		    "allot_collect_scrapes_total{exporter=\"%s\",outcome=\"ok\"} %" PRIu64 "\n"
		    "allot_collect_scrapes_total{exporter=\"%s\",outcome=\"failed\"} %" PRIu64 "\n",
		    c->scrapes[i].name, c->scrapes[i].scrapes - c->scrapes[i].failures,
		    c->scrapes[i].name, c->scrapes[i].failures);
}

void
report_metrics_cb(struct evhttp_request *req, void *arg)
{
	struct collector *c = arg;
	struct evbuffer *buf;
	struct strbuf out;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_send_error(req, 405, "GET only");
		return;
	}
	strbuf_init(&out);
	render_metrics(c, &out);
	if (strbuf_failed(&out) || (buf = evbuffer_new()) == NULL) {
		strbuf_cleanup(&out);
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	evbuffer_add(buf, out.data, out.len);
	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", buf);
	evbuffer_free(buf);
	strbuf_cleanup(&out);
}

void
report_backlog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct collector *c = arg;
	struct sender_stats st;
	struct spool_stats ss;

	(void)fd;
	(void)what;
	spool_get_stats(c->spool, -1, &ss);
	sender_get_stats(c->sender, &st);
	if (ss.batches > 0 || c->last_backlog > 0)
		log_info("backlog: %zu batches, %" PRIu64 " records, oldest %.0f s%s%s%s",
		    ss.batches, ss.records,
		    ss.oldest_ms > 0 ? (double)(collector_wall_ms() - ss.oldest_ms) / 1000.0 : 0.0,
		    c->paused ? "; spool full, reading stopped" : "",
		    st.last_error[0] != '\0' ? "; last error: " : "", st.last_error);
	c->last_backlog = ss.batches;
}
