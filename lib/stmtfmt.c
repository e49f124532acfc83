/*
 * stmtfmt: a statement's canonical text, its signature and its CSV and JSON files
 * (see stmtfmt.h and README "Statements").
 */
#include "stmtfmt.h"

#include "stmthtml.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* At most this many fields a line: the widest section has 14. */
#define MAX_FIELDS 64

struct fields {
	const char *at[MAX_FIELDS];
	size_t len[MAX_FIELDS];
	int n;
};

void
stmtfmt_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Splits line[0..len) (no LF) at TABs. Returns 0, or -1 past MAX_FIELDS. */
static int
split_tabs(const char *line, size_t len, struct fields *f)
{
	size_t start = 0;

	f->n = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && line[i] != '\t')
			continue;
		if (f->n == MAX_FIELDS)
			return -1;
		f->at[f->n] = line + start;
		f->len[f->n] = i - start;
		f->n++;
		start = i + 1;
	}
	return 0;
}

static bool
field_is(const struct fields *f, int i, const char *s)
{
	return f->len[i] == strlen(s) && memcmp(f->at[i], s, f->len[i]) == 0;
}

/* The next line of text from *pos: its start and length without the LF; false at the end. */
static bool
next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *linelen)
{
	const char *nl;

	if (*pos >= len)
		return false;
	*line = text + *pos;
	nl = memchr(*line, '\n', len - *pos);
	*linelen = nl != NULL ? (size_t)(nl - *line) : len - *pos;
	*pos += *linelen + 1;
	return true;
}

int
stmtfmt_check(const char *text, size_t len, char *err, size_t errlen)
{
	size_t hl = strlen(STMTFMT_HEADER), pos = hl;
	const char *line;
	size_t linelen;
	struct fields f;
	char name[128] = "";
	int ncols = -1, lineno = 1;

	if (len < hl || memcmp(text, STMTFMT_HEADER, hl) != 0) {
		stmtfmt_errf(err, errlen, "line 1: not \"allot statement<TAB>1\"");
		return -1;
	}
	if (text[len - 1] != '\n') {
		stmtfmt_errf(err, errlen, "the last line is not ended by LF");
		return -1;
	}
	while (next_line(text, len, &pos, &line, &linelen)) {
		lineno++;
		if (linelen == 0 || memchr(line, '\r', linelen) != NULL ||
		    memchr(line, '\0', linelen)) {
			stmtfmt_errf(
			    err, errlen, "line %d: empty, or holds a raw CR or NUL", lineno);
			return -1;
		}
		if (split_tabs(line, linelen, &f) != 0) {
			stmtfmt_errf(
			    err, errlen, "line %d: more than %d fields", lineno, MAX_FIELDS);
			return -1;
		}
		if (field_is(&f, 0, "columns")) {
			if (f.n < 3 || f.len[1] == 0 || f.len[1] >= sizeof(name)) {
				stmtfmt_errf(err, errlen,
				    "line %d: a columns line names its section and its columns",
				    lineno);
				return -1;
			}
			memcpy(name, f.at[1], f.len[1]);
			name[f.len[1]] = '\0';
			ncols = f.n - 2;
			continue;
		}
		if (ncols < 0 || !field_is(&f, 0, name)) {
			stmtfmt_errf(err, errlen, "line %d: a row outside its section (\"%.*s\")",
			    lineno, (int)(f.len[0] > 40 ? 40 : f.len[0]), f.at[0]);
			return -1;
		}
		if (f.n != ncols + 1) {
			stmtfmt_errf(err, errlen,
			    "line %d: section %s has %d columns, the row %d fields", lineno, name,
			    ncols, f.n - 1);
			return -1;
		}
	}
	return 0;
}

int
stmtfmt_hash_hex(const char *text, size_t len, char hex[STMTFMT_HASH_HEX + 1])
{
	uint8_t h[AUDITFMT_HASH_LEN];

	if (auditfmt_sha256(text, len, h) != 0)
		return -1;
	auditfmt_hex(h, sizeof(h), hex);
	return 0;
}

int
stmtfmt_sign(EVP_PKEY *key, const char *text, size_t len, char sig[STMTFMT_SIG_HEX + 1])
{
	uint8_t h[AUDITFMT_HASH_LEN], s[AUDITFMT_SIG_LEN];

	if (auditfmt_sha256(text, len, h) != 0 || auditfmt_sign(key, h, s) != 0)
		return -1;
	auditfmt_hex(s, sizeof(s), sig);
	return 0;
}

/* One CSV field: quoted (quotes doubled) when it holds a comma or a quote. */
static void
csv_field(struct strbuf *out, const char *s, size_t len)
{
	if (memchr(s, ',', len) == NULL && memchr(s, '"', len) == NULL) {
		strbuf_append(out, s, len);
		return;
	}
	strbuf_putc(out, '"');
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"')
			strbuf_putc(out, '"');
		strbuf_putc(out, s[i]);
	}
	strbuf_putc(out, '"');
}

int
stmtfmt_to_csv(
    const char *text, size_t len, const char *sig, struct strbuf *out, char *err, size_t errlen)
{
	size_t pos = 0;
	const char *line;
	size_t linelen;
	struct fields f;

	if (stmtfmt_check(text, len, err, errlen) != 0)
		return -1;
	while (next_line(text, len, &pos, &line, &linelen)) {
		if (split_tabs(line, linelen, &f) != 0)
			return -1;
		for (int i = 0; i < f.n; i++) {
			if (i > 0)
				strbuf_putc(out, ',');
			csv_field(out, f.at[i], f.len[i]);
		}
		strbuf_putc(out, '\n');
	}
	strbuf_printf(out, "signature,%s\n", sig);
	if (strbuf_failed(out)) {
		stmtfmt_errf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static json_t *
json_field(const char *s, size_t len)
{
	return json_stringn(s, len);
}

json_t *
stmtfmt_to_json(const char *text, size_t len, const char *sig, char *err, size_t errlen)
{
	size_t pos = strlen(STMTFMT_HEADER);
	const char *line;
	size_t linelen;
	struct fields f, cols = {.n = 0};
	char hash[STMTFMT_HASH_HEX + 1];
	json_t *root, *sections, *rows = NULL;
	char colbuf[4096];

	if (stmtfmt_check(text, len, err, errlen) != 0)
		return NULL;
	if (stmtfmt_hash_hex(text, len, hash) != 0) {
		stmtfmt_errf(err, errlen, "SHA-256 failed");
		return NULL;
	}
	root = json_object();
	sections = json_array();
	if (root == NULL || sections == NULL ||
	    json_object_set_new(root, "format", json_string(STMTFMT_FORMAT)) != 0 ||
	    json_object_set_new(root, "sections", sections) != 0)
		goto oom;
	while (next_line(text, len, &pos, &line, &linelen)) {
		if (split_tabs(line, linelen, &f) != 0)
			goto oom;
		if (field_is(&f, 0, "columns")) {
			json_t *sec = json_object(), *names = json_array();

			rows = json_array();
			if (sec == NULL || names == NULL || rows == NULL ||
			    json_array_append_new(sections, sec) != 0 ||
			    json_object_set_new(sec, "name", json_field(f.at[1], f.len[1])) != 0 ||
			    json_object_set_new(sec, "columns", names) != 0 ||
			    json_object_set_new(sec, "rows", rows) != 0) {
				json_decref(names);
				goto oom;
			}
			/* The column names outlive f: copy them into colbuf. */
			size_t used = 0;

			cols.n = 0;
			for (int i = 2; i < f.n; i++) {
				if (used + f.len[i] + 1 > sizeof(colbuf)) {
					stmtfmt_errf(err, errlen, "column names too long");
					goto fail;
				}
				memcpy(colbuf + used, f.at[i], f.len[i]);
				colbuf[used + f.len[i]] = '\0';
				cols.at[cols.n] = colbuf + used;
				cols.len[cols.n] = f.len[i];
				cols.n++;
				used += f.len[i] + 1;
				if (json_array_append_new(names, json_field(f.at[i], f.len[i])) !=
				    0)
					goto oom;
			}
			continue;
		}
		json_t *row = json_object();

		if (row == NULL || json_array_append_new(rows, row) != 0)
			goto oom;
		for (int i = 1; i < f.n; i++)
			if (json_object_set_new(
			        row, cols.at[i - 1], json_field(f.at[i], f.len[i])) != 0)
				goto oom;
	}
	if (json_object_set_new(root, "statementHash", json_string(hash)) != 0 ||
	    json_object_set_new(root, "signature", json_string(sig)) != 0)
		goto oom;
	return root;
oom:
	stmtfmt_errf(err, errlen, "out of memory");
fail:
	json_decref(root);
	return NULL;
}

/* Parses one CSV record line[0..len) into TAB-joined canonical fields on out. */
static int
csv_line(const char *line, size_t len, struct strbuf *out, int lineno, char *err, size_t errlen)
{
	size_t i = 0;

	for (;;) {
		if (i < len && line[i] == '"') {
			i++;
			for (;;) {
				if (i >= len) {
					stmtfmt_errf(err, errlen,
					    "line %d: a quoted field is not closed", lineno);
					return -1;
				}
				if (line[i] == '"') {
					if (i + 1 < len && line[i + 1] == '"') {
						strbuf_putc(out, '"');
						i += 2;
						continue;
					}
					i++;
					break;
				}
				strbuf_putc(out, line[i++]);
			}
			if (i < len && line[i] != ',') {
				stmtfmt_errf(
				    err, errlen, "line %d: text after a quoted field", lineno);
				return -1;
			}
		} else {
			size_t start = i;

			while (i < len && line[i] != ',') {
				if (line[i] == '"') {
					stmtfmt_errf(err, errlen,
					    "line %d: a quote inside an unquoted field", lineno);
					return -1;
				}
				i++;
			}
			strbuf_append(out, line + start, i - start);
		}
		if (i >= len)
			break;
		strbuf_putc(out, '\t');
		i++; /* the comma */
	}
	strbuf_putc(out, '\n');
	return 0;
}

static int
from_csv(
    const char *data, size_t len, struct strbuf *canonical, char *sig, char *err, size_t errlen)
{
	size_t pos = 0;
	const char *line;
	size_t linelen;
	int lineno = 0;
	bool signed_ = false;
	static const char prefix[] = "signature,";

	while (next_line(data, len, &pos, &line, &linelen)) {
		lineno++;
		if (signed_) {
			stmtfmt_errf(err, errlen, "line %d: text after the signature line", lineno);
			return -1;
		}
		if (linelen > strlen(prefix) && memcmp(line, prefix, strlen(prefix)) == 0) {
			if (linelen - strlen(prefix) != STMTFMT_SIG_HEX) {
				stmtfmt_errf(err, errlen,
				    "line %d: the signature is not %d hex digits", lineno,
				    STMTFMT_SIG_HEX);
				return -1;
			}
			memcpy(sig, line + strlen(prefix), STMTFMT_SIG_HEX);
			sig[STMTFMT_SIG_HEX] = '\0';
			signed_ = true;
			continue;
		}
		if (csv_line(line, linelen, canonical, lineno, err, errlen) != 0)
			return -1;
	}
	if (!signed_) {
		stmtfmt_errf(
		    err, errlen, "no signature line (\"signature,<128 hex digits>\") at the end");
		return -1;
	}
	return 0;
}

static int
from_json(const char *data, size_t len, struct strbuf *canonical, char *sig, char *hash, char *err,
    size_t errlen)
{
	json_error_t je;
	json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	json_t *sections, *sec;
	const char *s;
	size_t si;
	int rc = -1;

	if (root == NULL) {
		stmtfmt_errf(err, errlen, "not JSON: line %d: %s", je.line, je.text);
		return -1;
	}
	s = json_string_value(json_object_get(root, "format"));
	if (s == NULL || strcmp(s, STMTFMT_FORMAT) != 0) {
		stmtfmt_errf(err, errlen, "format is not \"%s\"", STMTFMT_FORMAT);
		goto out;
	}
	sections = json_object_get(root, "sections");
	if (!json_is_array(sections)) {
		stmtfmt_errf(err, errlen, "no sections");
		goto out;
	}
	strbuf_puts(canonical, STMTFMT_HEADER);
	json_array_foreach(sections, si, sec)
	{
		const char *name = json_string_value(json_object_get(sec, "name"));
		json_t *cols = json_object_get(sec, "columns"),
		       *rows = json_object_get(sec, "rows");
		json_t *c, *row;
		size_t ci, ri;

		if (name == NULL || !json_is_array(cols) || !json_is_array(rows) ||
		    json_object_size(sec) != 3) {
			stmtfmt_errf(err, errlen, "sections[%zu]: not {name, columns, rows}", si);
			goto out;
		}
		strbuf_printf(canonical, "columns\t%s", name);
		json_array_foreach(cols, ci, c)
		{
			if (!json_is_string(c)) {
				stmtfmt_errf(err, errlen,
				    "sections[%zu] (%s): columns[%zu] is not a string", si, name,
				    ci);
				goto out;
			}
			strbuf_putc(canonical, '\t');
			strbuf_append(canonical, json_string_value(c), json_string_length(c));
		}
		strbuf_putc(canonical, '\n');
		json_array_foreach(rows, ri, row)
		{
			if (!json_is_object(row) ||
			    json_object_size(row) != json_array_size(cols)) {
				stmtfmt_errf(err, errlen,
				    "sections[%zu] (%s): rows[%zu] does not have its %zu columns",
				    si, name, ri, json_array_size(cols));
				goto out;
			}
			strbuf_puts(canonical, name);
			json_array_foreach(cols, ci, c)
			{
				json_t *v = json_object_get(row, json_string_value(c));

				if (!json_is_string(v)) {
					stmtfmt_errf(err, errlen,
					    "sections[%zu] (%s): rows[%zu].%s is not a string", si,
					    name, ri, json_string_value(c));
					goto out;
				}
				strbuf_putc(canonical, '\t');
				strbuf_append(
				    canonical, json_string_value(v), json_string_length(v));
			}
			strbuf_putc(canonical, '\n');
		}
	}
	s = json_string_value(json_object_get(root, "signature"));
	if (s == NULL || strlen(s) != STMTFMT_SIG_HEX) {
		stmtfmt_errf(err, errlen, "signature is not %d hex digits", STMTFMT_SIG_HEX);
		goto out;
	}
	memcpy(sig, s, STMTFMT_SIG_HEX + 1);
	s = json_string_value(json_object_get(root, "statementHash"));
	if (s == NULL || strlen(s) != STMTFMT_HASH_HEX) {
		stmtfmt_errf(err, errlen, "statementHash is not %d hex digits", STMTFMT_HASH_HEX);
		goto out;
	}
	memcpy(hash, s, STMTFMT_HASH_HEX + 1);
	if (json_object_size(root) != 4) {
		stmtfmt_errf(
		    err, errlen, "fields other than format, sections, statementHash, signature");
		goto out;
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

static int
from_file(const char *data, size_t len, struct strbuf *canonical, char *sig, char *hash, char *err,
    size_t errlen)
{
	size_t i = 0;

	while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t' || data[i] == '\r'))
		i++;
	hash[0] = '\0';
	if (i < len && data[i] == '{')
		return from_json(data, len, canonical, sig, hash, err, errlen);
	if (i < len && data[i] == '<')
		return stmthtml_from_file(data, len, canonical, sig, err, errlen);
	return from_csv(data, len, canonical, sig, err, errlen);
}

int
stmtfmt_from_file(const char *data, size_t len, struct strbuf *canonical,
    char sig[STMTFMT_SIG_HEX + 1], char *err, size_t errlen)
{
	char hash[STMTFMT_HASH_HEX + 1];

	return from_file(data, len, canonical, sig, hash, err, errlen);
}

int
stmtfmt_verify(EVP_PKEY *pub, const char *data, size_t len, char *err, size_t errlen)
{
	struct strbuf canonical;
	char sig[STMTFMT_SIG_HEX + 1], hash[STMTFMT_HASH_HEX + 1], mine[STMTFMT_HASH_HEX + 1];
	uint8_t h[AUDITFMT_HASH_LEN], s[AUDITFMT_SIG_LEN];
	int rc = -1;

	strbuf_init(&canonical);
	if (from_file(data, len, &canonical, sig, hash, err, errlen) != 0)
		goto out;
	if (strbuf_failed(&canonical) || canonical.data == NULL) {
		stmtfmt_errf(err, errlen, "out of memory");
		goto out;
	}
	if (stmtfmt_check(canonical.data, canonical.len, err, errlen) != 0)
		goto out;
	if (auditfmt_sha256(canonical.data, canonical.len, h) != 0) {
		stmtfmt_errf(err, errlen, "SHA-256 failed");
		goto out;
	}
	auditfmt_hex(h, sizeof(h), mine);
	if (hash[0] != '\0' && strcmp(hash, mine) != 0) {
		stmtfmt_errf(err, errlen,
		    "statementHash does not match the figures (changed, reordered, "
		    "removed or added)");
		goto out;
	}
	if (auditfmt_unhex(sig, STMTFMT_SIG_HEX, s, sizeof(s)) != 0) {
		stmtfmt_errf(err, errlen, "the signature is not hex");
		goto out;
	}
	if (!auditfmt_signature_ok(pub, h, s)) {
		stmtfmt_errf(err, errlen,
		    "the signature is not the audit key's over these figures (a byte "
		    "changed, or another key signed it)");
		goto out;
	}
	rc = 0;
out:
	strbuf_cleanup(&canonical);
	return rc;
}
