/*
 * hostlist: Slurm's compressed lists of node names, expanded.
 *
 * "gpu[001-004,010],login1" is gpu001, gpu002, gpu003, gpu004, gpu010 and login1:
 * items separated by commas, each a name whose bracketed groups of numbers and
 * ranges expand in place; several groups in one name ("r[1-2]n[01-02]") expand as
 * their product, the first group outermost. A range keeps the width of its low
 * bound ("[08-11]" is 08, 09, 10, 11). Names hold letters, digits, '.', '_' and
 * '-', 1 to HOSTLIST_MAX_NAME characters. Pure: no I/O, no logging; the caller's
 * bound on the expansion is checked before anything is expanded.
 */
#ifndef ALLOT_HOSTLIST_H
#define ALLOT_HOSTLIST_H

#include <stddef.h>

#include "strbuf.h"

/* The longest node name, in characters (allot.node_name in SQL says the same). */
#define HOSTLIST_MAX_NAME 64

/*
 * Expands the hostlist s[0..len) (need not be NUL-terminated) and appends its names
 * to out in the list's order, each followed by sep but the last (a comma gives
 * Slurm's uncompressed form). Names are not deduplicated. Returns the number of
 * names (at least 1; max_hosts is at most 1 << 30), or -1 with a message in err ("more than 1000 nodes",
 * "character 5: range 9-3 goes down") and out unchanged, when s is empty, is not a
 * hostlist, or names more than max_hosts nodes. Out of memory is -1 as well, with
 * out's failure flag set.
 */
long hostlist_expand(const char *s, size_t len, size_t max_hosts, char sep, struct strbuf *out,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/* The same check without writing: the number of names s[0..len) expands to, or -1. */
long hostlist_count(const char *s, size_t len, size_t max_hosts, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Appends to out the compressed form of names[0..n) (each a node name as above),
 * the inverse of hostlist_expand for display: names that differ only in a trailing
 * number of one width, consecutive in the order given, become one range
 * ("lrdn0001", "lrdn0002", "lrdn0003", "lrdn0009" is "lrdn[0001-0003,0009]");
 * other names are written as they are. Expanding the result gives names back as
 * given, in their order, whatever it is (a sorted list compresses best). Returns
 * 0, or -1 when out failed to grow.
 */
int hostlist_compress(const char *const *names, size_t n, struct strbuf *out)
    __attribute__((warn_unused_result));

#endif
