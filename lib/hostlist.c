/*
 * hostlist: Slurm's compressed node lists expanded (hostlist.h states the syntax).
 *
 * Two passes over the text: the first checks every item and counts its names
 * (the product of its groups' sizes) and their longest length, so that a list
 * naming too many nodes is refused before a byte is written; the second writes
 * the names, recursing once per bracketed group of an item (at most
 * HOSTLIST_MAX_NAME groups, since each group adds a digit to the name). What a
 * caller does with the names (a protobuf field, a PostgreSQL array) is its own.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hostlist.h"

/* More digits than a node's number ever has; keeps every value far from overflow. */
#define HOSTLIST_MAX_DIGITS 9

static int
fail(char *err, size_t errlen, size_t pos, const char *what)
{
	snprintf(err, errlen, "character %zu: %s", pos + 1, what);
	return -1;
}

static int
is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '.' || c == '_' || c == '-';
}

/* A number at s[*i]: its value and width in digits. 0, or -1 when there is none. */
static int
number_read(const char *s, size_t end, size_t *i, uint32_t *v, int *width)
{
	size_t start = *i;
	uint32_t n = 0;

	while (*i < end && s[*i] >= '0' && s[*i] <= '9') {
		if (*i - start == HOSTLIST_MAX_DIGITS)
			return -1;
		n = n * 10 + (uint32_t)(s[*i] - '0');
		(*i)++;
	}
	if (*i == start)
		return -1;
	*v = n;
	*width = (int)(*i - start);
	return 0;
}

static int
digits_of(uint32_t v)
{
	int d = 1;

	while (v >= 10) {
		v /= 10;
		d++;
	}
	return d;
}

/* One range of a group, "7", "001-004": read from s[*i], which then follows it. */
struct range {
	uint32_t lo, hi;
	int width; /* of the low bound: the names' zero padding */
};

static int
range_read(const char *s, size_t end, size_t *i, struct range *r, char *err, size_t errlen)
{
	size_t at = *i;
	int hi_width;

	if (number_read(s, end, i, &r->lo, &r->width) != 0)
		return fail(err, errlen, at, "a number of 1 to 9 digits was expected");
	r->hi = r->lo;
	if (*i < end && s[*i] == '-') {
		(*i)++;
		at = *i;
		if (number_read(s, end, i, &r->hi, &hi_width) != 0)
			return fail(err, errlen, at, "a number of 1 to 9 digits was expected");
		if (r->hi < r->lo) {
			char what[64];

			snprintf(what, sizeof(what), "range %u-%u goes down", (unsigned)r->lo,
			    (unsigned)r->hi);
			return fail(err, errlen, at, what);
		}
	}
	return 0;
}

/*
 * Checks the group opening at s[open] ('['): its size (number of values) and the
 * widest value it writes. Returns the index of its ']', or 0 with err.
 */
static size_t
group_check(const char *s, size_t end, size_t open, size_t max_hosts, uint64_t *size, int *width,
    char *err, size_t errlen)
{
	size_t i = open + 1;
	struct range r;

	*size = 0;
	*width = 0;
	for (;;) {
		int w;

		if (range_read(s, end, &i, &r, err, errlen) != 0)
			return 0;
		*size += (uint64_t)(r.hi - r.lo) + 1;
		if (*size > max_hosts) {
			snprintf(err, errlen, "more than %zu nodes", max_hosts);
			return 0;
		}
		w = digits_of(r.hi) > r.width ? digits_of(r.hi) : r.width;
		if (w > *width)
			*width = w;
		if (i == end) {
			fail(err, errlen, open, "\"[\" is not closed");
			return 0;
		}
		if (s[i] == ']')
			return i;
		if (s[i] != ',') {
			fail(err, errlen, i, "\",\", \"-\" or \"]\" was expected");
			return 0;
		}
		i++;
	}
}

/*
 * Checks the item s[start..end) and counts its names into *count. 0, or -1 with
 * err; *count is only ever raised up to max_hosts.
 */
static int
item_check(const char *s, size_t start, size_t end, size_t max_hosts, size_t *count, char *err,
    size_t errlen)
{
	uint64_t names = 1;
	size_t longest = 0;

	if (start == end)
		return fail(err, errlen, start, "empty node name");
	for (size_t i = start; i < end; i++) {
		uint64_t size;
		int width;

		if (s[i] == '[') {
			if ((i = group_check(s, end, i, max_hosts, &size, &width, err, errlen)) ==
			    0)
				return -1;
			if (names * size > max_hosts - *count) {
				snprintf(err, errlen, "more than %zu nodes", max_hosts);
				return -1;
			}
			names *= size;
			longest += (size_t)width;
		} else if (s[i] == ']') {
			return fail(err, errlen, i, "\"]\" without \"[\"");
		} else if (!is_name_char(s[i])) {
			char what[64];

			snprintf(what, sizeof(what), "%s%c%s is not allowed in a node name",
			    s[i] > ' ' && s[i] < 127 ? "\"" : "byte ",
			    s[i] > ' ' && s[i] < 127 ? s[i] : '?',
			    s[i] > ' ' && s[i] < 127 ? "\"" : "");
			return fail(err, errlen, i, what);
		} else {
			longest++;
		}
	}
	if (longest > HOSTLIST_MAX_NAME) {
		char what[80];

		snprintf(what, sizeof(what), "a node name is longer than %d characters",
		    HOSTLIST_MAX_NAME);
		return fail(err, errlen, start, what);
	}
	*count += (size_t)names;
	return 0;
}

/* The end of the item starting at s[i]: the next comma outside brackets, or end. */
static size_t
item_end(const char *s, size_t i, size_t end)
{
	int depth = 0;

	for (; i < end; i++) {
		if (s[i] == '[')
			depth++;
		else if (s[i] == ']')
			depth--;
		else if (s[i] == ',' && depth <= 0)
			break;
	}
	return i;
}

struct emit {
	struct strbuf *out;
	char sep;
	bool first;
};

/* Writes the names of s[i..end) (checked), each prefixed with name[0..nlen). */
static void
item_emit(struct emit *e, const char *s, size_t i, size_t end, char *name, size_t nlen)
{
	size_t close;
	struct range r;

	while (i < end && s[i] != '[')
		name[nlen++] = s[i++];
	if (i == end) {
		if (!e->first)
			strbuf_putc(e->out, e->sep);
		strbuf_append(e->out, name, nlen);
		e->first = false;
		return;
	}
	close = i + (size_t)((const char *)memchr(s + i, ']', end - i) - (s + i));
	i++;
	while (i < close) {
		if (range_read(s, close, &i, &r, NULL, 0) != 0)
			return; /* not reached: checked */
		for (uint64_t v = r.lo; v <= r.hi; v++) {
			int w = snprintf(name + nlen, HOSTLIST_MAX_NAME + 1 - nlen, "%0*u", r.width,
			    (unsigned)v);

			item_emit(e, s, close + 1, end, name, nlen + (size_t)w);
		}
		if (i < close)
			i++; /* the ',' between ranges */
	}
}

long
hostlist_count(const char *s, size_t len, size_t max_hosts, char *err, size_t errlen)
{
	size_t count = 0, i, end;

	if (len == 0) {
		snprintf(err, errlen, "empty node list");
		return -1;
	}
	for (i = 0;; i = end + 1) {
		end = item_end(s, i, len);
		if (item_check(s, i, end, max_hosts, &count, err, errlen) != 0)
			return -1;
		if (end == len)
			break;
	}
	return (long)count;
}

long
hostlist_expand(const char *s, size_t len, size_t max_hosts, char sep, struct strbuf *out,
    char *err, size_t errlen)
{
	long count = hostlist_count(s, len, max_hosts, err, errlen);
	struct emit e = {out, sep, true};
	char name[HOSTLIST_MAX_NAME + 1];
	size_t i, end;

	if (count < 0)
		return -1;
	for (i = 0;; i = end + 1) {
		end = item_end(s, i, len);
		item_emit(&e, s, i, end, name, 0);
		if (end == len)
			break;
	}
	if (strbuf_failed(out)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return count;
}

/* A name's prefix length and trailing number, when it ends in 1 to 9 digits. */
static bool
name_split(const char *name, size_t *prefix, uint32_t *v, int *width)
{
	size_t len = strlen(name), i = len;

	while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9' && len - i < HOSTLIST_MAX_DIGITS)
		i--;
	if (i == len || (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9'))
		return false;
	*prefix = i;
	*width = (int)(len - i);
	*v = 0;
	for (; i < len; i++)
		*v = *v * 10 + (uint32_t)(name[i] - '0');
	return true;
}

int
hostlist_compress(const char *const *names, size_t n, struct strbuf *out)
{
	size_t i = 0;

	while (i < n) {
		size_t prefix, p2, j = i + 1;
		uint32_t v, v2, lo, hi;
		int width, w2;
		bool ranges = false;

		if (i > 0)
			strbuf_putc(out, ',');
		if (!name_split(names[i], &prefix, &v, &width)) {
			strbuf_puts(out, names[i]);
			i++;
			continue;
		}
		/* The run of names of this prefix and width: one bracket of ranges. */
		while (j < n && name_split(names[j], &p2, &v2, &w2) && p2 == prefix &&
		    w2 == width && memcmp(names[j], names[i], prefix) == 0)
			j++;
		if (j == i + 1) {
			strbuf_puts(out, names[i]);
			i++;
			continue;
		}
		strbuf_append(out, names[i], prefix);
		strbuf_putc(out, '[');
		lo = hi = v;
		for (size_t k = i + 1; k <= j; k++) {
			if (k < j) {
				(void)name_split(names[k], &p2, &v2, &w2);
				if (v2 == hi + 1 && hi != UINT32_MAX) {
					hi = v2;
					continue;
				}
			}
			if (ranges)
				strbuf_putc(out, ',');
			ranges = true;
			if (lo == hi)
				strbuf_printf(out, "%0*u", width, (unsigned)lo);
			else
				strbuf_printf(
				    out, "%0*u-%0*u", width, (unsigned)lo, width, (unsigned)hi);
			if (k < j)
				lo = hi = v2;
		}
		strbuf_putc(out, ']');
		i = j;
	}
	return strbuf_failed(out) ? -1 : 0;
}
