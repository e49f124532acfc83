/*
 * jtree: a JSON text parsed into one flat array of nodes, for pbjson's decoder.
 *
 * pbjson reads every request and every answer of the SQL functions; building a
 * general-purpose document (a hash table per object, a malloc per value) cost
 * more than everything else allotd does for a call. A jtree is parsed in one
 * pass over a private copy of the text: strings are unescaped in place and
 * NUL-terminated there, nodes live in one growing array and link to their
 * siblings by index, nothing else is allocated.
 *
 * The grammar is RFC 8259's, strictly: one value with optional whitespace
 * around it (any value, not only an object), no trailing commas, no comments.
 * Strings must be valid UTF-8 and may hold \u0000 (their length says where they
 * end); a lone surrogate escape is refused. An integer (no fraction, no
 * exponent) must fit a long long, a real a finite double. Duplicate keys in one
 * object are refused. Nesting is bounded by JTREE_MAX_DEPTH.
 */
#ifndef ALLOT_JTREE_H
#define ALLOT_JTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JTREE_MAX_DEPTH 512

enum jtree_type {
	JT_NULL,
	JT_FALSE,
	JT_TRUE,
	JT_INTEGER,
	JT_REAL,
	JT_STRING,
	JT_ARRAY,
	JT_OBJECT,
};

struct jnode {
	enum jtree_type type;
	uint32_t next;   /* the parent's next element or member; 0 after the last */
	uint32_t first;  /* an array's first element, an object's first member; 0 if none */
	uint32_t count;  /* an array's elements, an object's members */
	const char *key; /* an object member's name, NUL-terminated; NULL elsewhere */
	size_t keylen;
	const char *str; /* a string's value, NUL-terminated */
	size_t len;      /* its length in bytes (it may hold NUL) */
	long long integer;
	double real;
};

struct jtree {
	char *text;          /* the private copy the strings point into */
	struct jnode *nodes; /* nodes[0] is unused, so that index 0 means none */
	uint32_t n, cap;
};

/*
 * Parses json[0..len) into t. Returns true, or false with a reason in err
 * ("line 1 column 7: duplicate object key"; cut to errlen). t is freed with
 * jtree_free whatever the outcome.
 */
bool jtree_parse(struct jtree *t, const char *json, size_t len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

void jtree_free(struct jtree *t);

/* The top value of a parsed tree. */
static inline const struct jnode *
jtree_root(const struct jtree *t)
{
	return &t->nodes[1];
}

/* Node i of t, or NULL for 0 (the end of a list). */
static inline const struct jnode *
jtree_node(const struct jtree *t, uint32_t i)
{
	return i != 0 ? &t->nodes[i] : NULL;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
size_t jtree_utf8_seq(const unsigned char *s);

#endif
