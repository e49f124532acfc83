/*
 * metrics: what allotd counts. Requests by route and Twirp code, a latency
 * histogram per route, the database pool's state and records ingested. The
 * codes seen per route are few, so they live in a short list per route rather
 * than a full matrix.
 */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "metrics.h"
#include "strbuf.h"

static const double buckets[] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))
#define NCODES 24
#define NEVENT_KEYS 32 /* (kind, threshold) pairs; one more counts the others */

struct route_metrics {
	struct {
		const char *code;
		unsigned long long n;
	} codes[NCODES];
	unsigned long long bucket[NBUCKETS];
	unsigned long long count;
	double sum;
};

struct metrics {
	size_t nroutes;
	const char *const *names;
	struct route_metrics *routes; /* nroutes + 1: the last is "unmatched" */
	unsigned long long records[4];
	unsigned long long reserve_groups, reservations;
	unsigned long long expired, blocks_sealed, entries_sealed;
	struct {
		char kind[32];
		int threshold_pct;
		unsigned long long n;
	} events[NEVENT_KEYS];
	size_t nevents;
	unsigned long long events_other;
};

struct metrics *
metrics_new(size_t nroutes, const char *const *route_names)
{
	struct metrics *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	if ((m->routes = calloc(nroutes + 1, sizeof(*m->routes))) == NULL) {
		free(m);
		return NULL;
	}
	m->nroutes = nroutes;
	m->names = route_names;
	return m;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	free(m->routes);
	free(m);
}

void
metrics_observe_request(struct metrics *m, int route, const char *code, double seconds)
{
	struct route_metrics *r;

	r = &m->routes[route >= 0 && (size_t)route < m->nroutes ? (size_t)route : m->nroutes];
	/* Codes are static strings (Twirp's table, "ok"), so pointers compare. */
	for (size_t i = 0; i < NCODES; i++) {
		if (r->codes[i].code == NULL)
			r->codes[i].code = code;
		if (r->codes[i].code == code) {
			r->codes[i].n++;
			break;
		}
	}
	for (size_t i = 0; i < NBUCKETS; i++)
		if (seconds <= buckets[i])
			r->bucket[i]++;
	r->count++;
	r->sum += seconds;
}

void
metrics_count_records(struct metrics *m, long charged, long duplicate, long recorded, long rejected)
{
	m->records[0] += (unsigned long long)charged;
	m->records[1] += (unsigned long long)duplicate;
	m->records[2] += (unsigned long long)recorded;
	m->records[3] += (unsigned long long)rejected;
}

void
metrics_count_reserve_group(struct metrics *m, size_t reservations)
{
	m->reserve_groups++;
	m->reservations += reservations;
}

void
metrics_count_expired(struct metrics *m, unsigned long long n)
{
	m->expired += n;
}

void
metrics_count_sealed(struct metrics *m, unsigned long long entries)
{
	m->blocks_sealed++;
	m->entries_sealed += entries;
}

void
metrics_count_event(struct metrics *m, const char *kind, int threshold_pct)
{
	size_t i;

	for (i = 0; i < m->nevents; i++)
		if (m->events[i].threshold_pct == threshold_pct &&
		    strcmp(m->events[i].kind, kind) == 0)
			break;
	if (i == m->nevents) {
		if (m->nevents == NEVENT_KEYS || strlen(kind) >= sizeof(m->events[i].kind) ||
		    strspn(kind, "abcdefghijklmnopqrstuvwxyz_") != strlen(kind)) {
			m->events_other++;
			return;
		}
		memcpy(m->events[i].kind, kind, strlen(kind) + 1);
		m->events[i].threshold_pct = threshold_pct;
		m->nevents++;
	}
	m->events[i].n++;
}

static const char *
route_name(const struct metrics *m, size_t i)
{
	return i < m->nroutes ? m->names[i] : "unmatched";
}

void
metrics_render(
    const struct metrics *m, const struct db_stats *db, bool draining, struct strbuf *out)
{
	static const char *const statuses[] = {"charged", "duplicate", "recorded", "rejected"};

	strbuf_puts(out,
	    "# HELP allot_requests_total Requests answered, by route and Twirp code.\n"
	    "# TYPE allot_requests_total counter\n");
	for (size_t i = 0; i <= m->nroutes; i++)
		for (size_t c = 0; c < NCODES && m->routes[i].codes[c].code != NULL; c++)
			strbuf_printf(out, "allot_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
			    route_name(m, i), m->routes[i].codes[c].code, m->routes[i].codes[c].n);

	strbuf_puts(out,
	    "# HELP allot_request_duration_seconds Time from request to reply.\n"
	    "# TYPE allot_request_duration_seconds histogram\n");
	for (size_t i = 0; i <= m->nroutes; i++) {
		const struct route_metrics *r = &m->routes[i];

		if (r->count == 0)
			continue;
		for (size_t b = 0; b < NBUCKETS; b++)
			strbuf_printf(out,
			    "allot_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
			    route_name(m, i), buckets[b], r->bucket[b]);
		strbuf_printf(out,
		    "allot_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
		    "allot_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
		    "allot_request_duration_seconds_count{route=\"%s\"} %llu\n",
		    route_name(m, i), r->count, route_name(m, i), r->sum, route_name(m, i),
		    r->count);
	}

	strbuf_printf(out,
	    "# HELP allot_db_connections Database connections of the pool, by state.\n"
	    "# TYPE allot_db_connections gauge\n"
	    "allot_db_connections{state=\"configured\"} %d\n"
	    "allot_db_connections{state=\"connected\"} %d\n"
	    "allot_db_connections{state=\"busy\"} %d\n"
	    "# HELP allot_db_queued_queries Queries waiting for a connection.\n"
	    "# TYPE allot_db_queued_queries gauge\n"
	    "allot_db_queued_queries %d\n"
	    "# HELP allot_db_queries_total Queries sent to the pool.\n"
	    "# TYPE allot_db_queries_total counter\n"
	    "allot_db_queries_total %llu\n"
	    "# HELP allot_db_unavailable_total Queries answered unavailable.\n"
	    "# TYPE allot_db_unavailable_total counter\n"
	    "allot_db_unavailable_total %llu\n"
	    "# HELP allot_db_reconnects_total Reconnection attempts.\n"
	    "# TYPE allot_db_reconnects_total counter\n"
	    "allot_db_reconnects_total %llu\n",
	    db->connections, db->connected, db->busy, db->queued, db->queries, db->failures,
	    db->reconnects);

	strbuf_puts(out,
	    "# HELP allot_records_ingested_total Job records ingested, by outcome.\n"
	    "# TYPE allot_records_ingested_total counter\n");
	for (size_t i = 0; i < 4; i++)
		strbuf_printf(out, "allot_records_ingested_total{status=\"%s\"} %llu\n",
		    statuses[i], m->records[i]);
	strbuf_printf(out,
	    "# HELP allot_reserve_groups_total Transactions that reserved a group of holds.\n"
	    "# TYPE allot_reserve_groups_total counter\n"
	    "allot_reserve_groups_total %llu\n"
	    "# HELP allot_reservations_total Reservations sent to the database in those groups.\n"
	    "# TYPE allot_reservations_total counter\n"
	    "allot_reservations_total %llu\n",
	    m->reserve_groups, m->reservations);
	strbuf_printf(out,
	    "# HELP allot_allocations_expired_total Allocations whose remainder this allotd moved "
	    "to expired at their end.\n"
	    "# TYPE allot_allocations_expired_total counter\n"
	    "allot_allocations_expired_total %llu\n"
	    "# HELP allot_audit_blocks_sealed_total Journal blocks this allotd signed and "
	    "chained.\n"
	    "# TYPE allot_audit_blocks_sealed_total counter\n"
	    "allot_audit_blocks_sealed_total %llu\n"
	    "# HELP allot_audit_entries_sealed_total Journal entries in those blocks.\n"
	    "# TYPE allot_audit_entries_sealed_total counter\n"
	    "allot_audit_entries_sealed_total %llu\n",
	    m->expired, m->blocks_sealed, m->entries_sealed);
	strbuf_puts(out,
	    "# HELP allot_events_total Events of projects announced by this allotd, by kind and "
	    "threshold (percent of the grant).\n"
	    "# TYPE allot_events_total counter\n");
	for (size_t i = 0; i < m->nevents; i++)
		strbuf_printf(out, "allot_events_total{kind=\"%s\",threshold=\"%d\"} %llu\n",
		    m->events[i].kind, m->events[i].threshold_pct, m->events[i].n);
	if (m->events_other > 0)
		strbuf_printf(out, "allot_events_total{kind=\"other\",threshold=\"0\"} %llu\n",
		    m->events_other);
	strbuf_printf(out,
	    "# HELP allot_draining Whether allotd is stopping (1) or serving (0).\n"
	    "# TYPE allot_draining gauge\n"
	    "allot_draining %d\n",
	    draining ? 1 : 0);
}
