/*
 * jtree: a strict JSON parser into a flat node array (see jtree.h).
 *
 * Recursive descent over a NUL-terminated private copy of the text. Nodes are
 * referred to by index while parsing, since the array may move as it grows.
 */
#include "jtree.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	struct jtree *t;
	char *p, *end;    /* the next byte; the text's terminating NUL */
	const char *fail; /* the reason, once it failed */
	char *fail_at;
};

size_t
jtree_utf8_seq(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	/* Each test stops at the first byte that is not a continuation, NUL included. */
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f))
			return 0; /* overlong, or a surrogate */
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
			return 0; /* overlong, or past U+10FFFF */
		return 4;
	}
	return 0;
}

static bool
fail(struct parser *ps, char *at, const char *why)
{
	if (ps->fail == NULL) {
		ps->fail = why;
		ps->fail_at = at;
	}
	return false;
}

static void
skip_space(struct parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
		ps->p++;
}

/* A new node of type; returns its index, or 0 when out of memory. */
static uint32_t
new_node(struct parser *ps, enum jtree_type type)
{
	struct jtree *t = ps->t;

	if (t->n >= t->cap) {
		uint32_t cap = t->cap < 64 ? 64 : t->cap * 2;
		struct jnode *nodes;

		if (cap <= t->cap || (nodes = realloc(t->nodes, cap * sizeof(*nodes))) == NULL) {
			fail(ps, ps->p, "out of memory");
			return 0;
		}
		t->nodes = nodes;
		t->cap = cap;
	}
	if (t->n == 1)
		memset(&t->nodes[0], 0, sizeof(t->nodes[0]));
	memset(&t->nodes[t->n], 0, sizeof(t->nodes[0]));
	t->nodes[t->n].type = type;
	return t->n++;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The four hex digits at s as a code unit, or -1. */
static long
hex4(const char *s)
{
	long v = 0;

	for (int i = 0; i < 4; i++) {
		int h = hex_value(s[i]); /* stops at the NUL: it is no hex digit */

		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

static char *
put_utf8(char *w, unsigned long cp)
{
	if (cp < 0x80) {
		*w++ = (char)cp;
	} else if (cp < 0x800) {
		*w++ = (char)(0xc0 | cp >> 6);
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*w++ = (char)(0xe0 | cp >> 12);
		*w++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*w++ = (char)(0xf0 | cp >> 18);
		*w++ = (char)(0x80 | (cp >> 12 & 0x3f));
		*w++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	}
	return w;
}

/*
 * The string whose opening quote is at ps->p, unescaped in place: no escape is
 * shorter than what it stands for, so the writer never passes the reader.
 */
static bool
parse_string(struct parser *ps, const char **out, size_t *len)
{
	char *r = ps->p + 1, *w = r, *start = r;

	for (;;) {
		unsigned char c = (unsigned char)*r;

		if (c == '"')
			break;
		if (r == ps->end)
			return fail(ps, r, "unterminated string");
		if (c < 0x20)
			return fail(ps, r, "control character in a string");
		if (c >= 0x80) {
			size_t n = jtree_utf8_seq((const unsigned char *)r);

			if (n == 0)
				return fail(ps, r, "invalid UTF-8 in a string");
			memmove(w, r, n);
			w += n;
			r += n;
			continue;
		}
		if (c != '\\') {
			*w++ = *r++;
			continue;
		}
		switch (r[1]) {
		case '"':
		case '\\':
		case '/':
			*w++ = r[1];
			break;
		case 'b':
			*w++ = '\b';
			break;
		case 'f':
			*w++ = '\f';
			break;
		case 'n':
			*w++ = '\n';
			break;
		case 'r':
			*w++ = '\r';
			break;
		case 't':
			*w++ = '\t';
			break;
		case 'u': {
			long hi = hex4(r + 2), lo;

			if (hi < 0)
				return fail(ps, r, "invalid \\u escape");
			if (hi >= 0xdc00 && hi <= 0xdfff)
				return fail(ps, r, "lone low surrogate in a \\u escape");
			if (hi >= 0xd800 && hi <= 0xdbff) {
				if (r[6] != '\\' || r[7] != 'u' || (lo = hex4(r + 8)) < 0xdc00 ||
				    lo > 0xdfff)
					return fail(ps, r, "high surrogate without its low one");
				w = put_utf8(w,
				    0x10000 + ((unsigned long)(hi - 0xd800) << 10) +
				        (unsigned long)(lo - 0xdc00));
				r += 12;
				continue;
			}
			w = put_utf8(w, (unsigned long)hi);
			r += 6;
			continue;
		}
		default:
			return fail(ps, r, "invalid escape in a string");
		}
		r += 2;
	}
	*w = '\0';
	*out = start;
	*len = (size_t)(w - start);
	ps->p = r + 1;
	return true;
}

static bool
parse_number(struct parser *ps, struct jnode *n)
{
	char *s = ps->p, *q = s, *num_end;
	bool integral = true;

	if (*q == '-')
		q++;
	if (*q == '0')
		q++;
	else if (*q >= '1' && *q <= '9')
		while (*q >= '0' && *q <= '9')
			q++;
	else
		return fail(ps, s, "invalid number");
	if (*q == '.') {
		integral = false;
		if (*++q < '0' || *q > '9')
			return fail(ps, s, "invalid number");
		while (*q >= '0' && *q <= '9')
			q++;
	}
	if (*q == 'e' || *q == 'E') {
		integral = false;
		q++;
		if (*q == '+' || *q == '-')
			q++;
		if (*q < '0' || *q > '9')
			return fail(ps, s, "invalid number");
		while (*q >= '0' && *q <= '9')
			q++;
	}
	/* strtoll and strtod stop where the grammar above did: the next byte is no digit. */
	errno = 0;
	if (integral) {
		n->type = JT_INTEGER;
		n->integer = strtoll(s, &num_end, 10);
		if (errno == ERANGE)
			return fail(ps, s, "too big integer");
	} else {
		n->type = JT_REAL;
		n->real = strtod(s, &num_end);
		if (errno == ERANGE && isinf(n->real))
			return fail(ps, s, "real number overflow");
	}
	if (num_end != q)
		return fail(ps, s, "invalid number");
	ps->p = q;
	return true;
}

static bool parse_value(struct parser *ps, uint32_t at, int depth);

struct key_ref {
	const char *key;
	size_t len;
};

/* Orders keys by length, then bytes, for the duplicate check of a large object. */
static int
key_cmp(const void *a, const void *b)
{
	const struct key_ref *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->key, y->key, x->len);
}

/* Refuses an object with two members of one name: pairwise when small, sorted when not. */
static bool
check_duplicates(struct parser *ps, uint32_t obj, char *at)
{
	const struct jnode *nodes = ps->t->nodes;
	uint32_t n = nodes[obj].count, k = 0;
	struct key_ref *keys;
	bool ok = true;

	if (n <= 16) {
		for (uint32_t i = nodes[obj].first; i != 0; i = nodes[i].next)
			for (uint32_t j = nodes[i].next; j != 0; j = nodes[j].next)
				if (nodes[i].keylen == nodes[j].keylen &&
				    memcmp(nodes[i].key, nodes[j].key, nodes[i].keylen) == 0)
					return fail(ps, at, "duplicate object key");
		return true;
	}
	if ((keys = malloc(n * sizeof(*keys))) == NULL)
		return fail(ps, at, "out of memory");
	for (uint32_t i = nodes[obj].first; i != 0; i = nodes[i].next)
		keys[k++] = (struct key_ref){nodes[i].key, nodes[i].keylen};
	qsort(keys, n, sizeof(*keys), key_cmp);
	for (uint32_t i = 1; i < n && ok; i++)
		ok = key_cmp(&keys[i - 1], &keys[i]) != 0;
	free(keys);
	return ok ? true : fail(ps, at, "duplicate object key");
}

/* The members of the object at node obj; ps->p is just past its '{'. */
static bool
parse_object(struct parser *ps, uint32_t obj, int depth)
{
	struct jtree *t = ps->t;
	char *open = ps->p - 1;
	uint32_t last = 0;

	skip_space(ps);
	if (*ps->p == '}') {
		ps->p++;
		return true;
	}
	for (;;) {
		const char *key;
		size_t keylen;
		uint32_t m;

		skip_space(ps);
		if (*ps->p != '"')
			return fail(ps, ps->p, "string or '}' expected");
		if (!parse_string(ps, &key, &keylen))
			return false;
		skip_space(ps);
		if (*ps->p != ':')
			return fail(ps, ps->p, "':' expected");
		ps->p++;
		if ((m = new_node(ps, JT_NULL)) == 0)
			return false;
		t->nodes[m].key = key;
		t->nodes[m].keylen = keylen;
		if (last == 0)
			t->nodes[obj].first = m;
		else
			t->nodes[last].next = m;
		last = m;
		t->nodes[obj].count++;
		if (!parse_value(ps, m, depth + 1))
			return false;
		skip_space(ps);
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p != '}')
			return fail(ps, ps->p, "',' or '}' expected");
		ps->p++;
		return check_duplicates(ps, obj, open);
	}
}

/* The elements of the array at node arr; ps->p is just past its '['. */
static bool
parse_array(struct parser *ps, uint32_t arr, int depth)
{
	struct jtree *t = ps->t;
	uint32_t last = 0;

	skip_space(ps);
	if (*ps->p == ']') {
		ps->p++;
		return true;
	}
	for (;;) {
		uint32_t e;

		if ((e = new_node(ps, JT_NULL)) == 0)
			return false;
		if (last == 0)
			t->nodes[arr].first = e;
		else
			t->nodes[last].next = e;
		last = e;
		t->nodes[arr].count++;
		if (!parse_value(ps, e, depth + 1))
			return false;
		skip_space(ps);
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p != ']')
			return fail(ps, ps->p, "',' or ']' expected");
		ps->p++;
		return true;
	}
}

static bool
parse_literal(struct parser *ps, struct jnode *n, const char *word, enum jtree_type type)
{
	size_t len = strlen(word);

	if ((size_t)(ps->end - ps->p) < len || memcmp(ps->p, word, len) != 0)
		return fail(ps, ps->p, "invalid token");
	n->type = type;
	ps->p += len;
	return true;
}

/* Parses one value into node at (already made, so that its parent links to it). */
static bool
parse_value(struct parser *ps, uint32_t at, int depth)
{
	struct jtree *t = ps->t;

	if (depth >= JTREE_MAX_DEPTH)
		return fail(ps, ps->p, "maximum nesting depth reached");
	skip_space(ps);
	switch (*ps->p) {
	case '{':
		t->nodes[at].type = JT_OBJECT;
		ps->p++;
		return parse_object(ps, at, depth);
	case '[':
		t->nodes[at].type = JT_ARRAY;
		ps->p++;
		return parse_array(ps, at, depth);
	case '"': {
		const char *s;
		size_t len;

		if (!parse_string(ps, &s, &len))
			return false;
		t->nodes[at].type = JT_STRING;
		t->nodes[at].str = s;
		t->nodes[at].len = len;
		return true;
	}
	case 't':
		return parse_literal(ps, &t->nodes[at], "true", JT_TRUE);
	case 'f':
		return parse_literal(ps, &t->nodes[at], "false", JT_FALSE);
	case 'n':
		return parse_literal(ps, &t->nodes[at], "null", JT_NULL);
	default:
		if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
			return parse_number(ps, &t->nodes[at]);
		if (ps->p == ps->end)
			return fail(ps, ps->p, "unexpected end of input");
		return fail(ps, ps->p, "invalid token");
	}
}

bool
jtree_parse(struct jtree *t, const char *json, size_t len, char *err, size_t errlen)
{
	struct parser ps = {.t = t};
	char spare[1];

	if (err == NULL || errlen == 0) {
		err = spare;
		errlen = sizeof(spare);
	}
	memset(t, 0, sizeof(*t));
	if (len >= SIZE_MAX || (t->text = malloc(len + 1)) == NULL) {
		snprintf(err, errlen, "line 1 column 1: out of memory");
		return false;
	}
	if (len > 0)
		memcpy(t->text, json, len);
	t->text[len] = '\0';
	ps.p = t->text;
	ps.end = t->text + len;
	t->n = 1; /* node 0 stands for none; the root is node 1 */
	if (new_node(&ps, JT_NULL) == 0 || !parse_value(&ps, 1, 0)) {
		/* fall through to the report */
	} else {
		skip_space(&ps);
		if (ps.p == ps.end)
			return true;
		fail(&ps, ps.p, "end of input expected");
	}
	{
		unsigned line = 1, col = 1;

		for (const char *c = t->text; c < ps.fail_at && c < ps.end; c++) {
			if (*c == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		snprintf(err, errlen, "line %u column %u: %s", line, col,
		    ps.fail != NULL ? ps.fail : "invalid JSON");
	}
	return false;
}

void
jtree_free(struct jtree *t)
{
	free(t->text);
	free(t->nodes);
	memset(t, 0, sizeof(*t));
}
