/*
 * rfc3339: reads the times that sites report ("2026-09-29T08:48:23",
 * "2026-09-29T08:48:23Z", "2026-09-29T08:48:23.5+02:00", "2026-09-29").
 * A time without an offset is UTC, as allotd's database sessions take it.
 */
#ifndef ALLOT_RFC3339_H
#define ALLOT_RFC3339_H

#include <stdint.h>

/*
 * Parses s into seconds since the epoch (fractions of a second are dropped,
 * toward the past). Returns 0, or -1 when s is not such a time or a field is out
 * of range (month 13, February 30, hour 24, year before 1970 or after 9999).
 */
int rfc3339_parse(const char *s, int64_t *epoch_s) __attribute__((warn_unused_result));

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
int64_t rfc3339_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
