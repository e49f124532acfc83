/*
 * render: prints responses, generically over protobuf-c descriptors.
 *
 * Field values are read through the descriptors' offsets, so a new message
 * type prints without new code. Tables are aligned on display width (UTF-8
 * code points), numbers to the right. Choosing what to print for which
 * command is left to the CLI.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pbjson.h"
#include "reqflags.h"
#include "render.h"

/* A table of text cells, printed aligned. */
struct table {
	size_t ncols;
	const char *const *header;
	const bool *right; /* per column: align to the right */
	char **cells;      /* row-major, ncols per row */
	size_t ncells, cap;
	bool failed;
};

static void
table_init(struct table *t, size_t ncols, const char *const *header, const bool *right)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->header = header;
	t->right = right;
}

static void
table_cleanup(struct table *t)
{
	for (size_t i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
}

/* Appends the next cell (rows fill left to right); copies text. */
static void
table_add(struct table *t, const char *text)
{
	char *copy;

	if (t->failed)
		return;
	if (t->ncells == t->cap) {
		size_t cap = t->cap > 0 ? t->cap * 2 : 64;
		char **cells = realloc(t->cells, cap * sizeof(*cells));

		if (cells == NULL) {
			t->failed = true;
			return;
		}
		t->cells = cells;
		t->cap = cap;
	}
	copy = strdup(text != NULL ? text : "");
	if (copy == NULL) {
		t->failed = true;
		return;
	}
	t->cells[t->ncells++] = copy;
}

/* Display width of UTF-8 text: one column per code point. */
static size_t
render_width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static void
table_put_cell(struct strbuf *line, const char *text, size_t width, bool right)
{
	size_t pad = width - render_width(text);

	if (right)
		strbuf_printf(line, "%*s%s  ", (int)pad, "", text);
	else
		strbuf_printf(line, "%s%*s  ", text, (int)pad, "");
}

/* Prints line without its trailing blanks, then a newline. */
static void
table_put_line(FILE *out, struct strbuf *line)
{
	while (line->len > 0 && line->data[line->len - 1] == ' ')
		line->data[--line->len] = '\0';
	if (line->len > 0)
		fwrite(line->data, 1, line->len, out);
	fputc('\n', out);
	strbuf_reset(line);
}

static bool
table_print(FILE *out, const struct table *t)
{
	struct strbuf line;
	size_t *width;
	size_t nrows, c, r;
	bool ok;

	if (t->failed)
		return false;
	width = calloc(t->ncols > 0 ? t->ncols : 1, sizeof(*width));
	if (width == NULL)
		return false;
	nrows = t->ncols > 0 ? t->ncells / t->ncols : 0;
	for (c = 0; c < t->ncols; c++) {
		width[c] = render_width(t->header[c]);
		for (r = 0; r < nrows; r++) {
			size_t w = render_width(t->cells[r * t->ncols + c]);

			if (w > width[c])
				width[c] = w;
		}
	}
	strbuf_init(&line);
	for (c = 0; c < t->ncols; c++)
		table_put_cell(&line, t->header[c], width[c], t->right[c]);
	ok = !strbuf_failed(&line);
	table_put_line(out, &line);
	for (r = 0; r < nrows && ok; r++) {
		for (c = 0; c < t->ncols; c++)
			table_put_cell(&line, t->cells[r * t->ncols + c], width[c], t->right[c]);
		ok = !strbuf_failed(&line);
		table_put_line(out, &line);
	}
	strbuf_cleanup(&line);
	free(width);
	return ok;
}

static bool
render_is_number(const ProtobufCFieldDescriptor *fd)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_BOOL:
	case PROTOBUF_C_TYPE_ENUM:
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES:
	case PROTOBUF_C_TYPE_MESSAGE:
		return false;
	default:
		return true;
	}
}

/*
 * The shortest decimal text that reads back as d; a whole number below 2^53 in
 * plain digits (3600, not 3.6e+03).
 */
static void
render_double(struct strbuf *out, double d)
{
	char buf[64];

	if (d == (double)(long long)d && d > -9007199254740992.0 && d < 9007199254740992.0) {
		snprintf(buf, sizeof(buf), "%lld", (long long)d);
		strbuf_puts(out, buf);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	strbuf_puts(out, buf);
}

/* Appends one value of fd stored at p. */
static void
render_value(struct strbuf *out, const ProtobufCFieldDescriptor *fd, const void *p)
{
	const ProtobufCEnumValue *ev;
	const char *s;
	char name[128];
	int32_t i32;
	int64_t i64;
	uint32_t u32;
	uint64_t u64;
	float f;
	double d;
	protobuf_c_boolean b;
	int e;

	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		memcpy(&i32, p, sizeof(i32));
		strbuf_printf(out, "%" PRId32, i32);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		memcpy(&u32, p, sizeof(u32));
		strbuf_printf(out, "%" PRIu32, u32);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		memcpy(&i64, p, sizeof(i64));
		strbuf_printf(out, "%" PRId64, i64);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		memcpy(&u64, p, sizeof(u64));
		strbuf_printf(out, "%" PRIu64, u64);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		memcpy(&f, p, sizeof(f));
		render_double(out, f);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		memcpy(&d, p, sizeof(d));
		render_double(out, d);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		memcpy(&b, p, sizeof(b));
		strbuf_puts(out, b ? "true" : "false");
		break;
	case PROTOBUF_C_TYPE_ENUM:
		memcpy(&e, p, sizeof(e));
		ev = protobuf_c_enum_descriptor_get_value(fd->descriptor, e);
		if (ev != NULL) {
			reqflags_enum_short(fd->descriptor, ev, name, sizeof(name));
			strbuf_puts(out, name);
		} else {
			strbuf_printf(out, "%d", e);
		}
		break;
	case PROTOBUF_C_TYPE_STRING:
		memcpy(&s, p, sizeof(s));
		/* Control characters would break the lines and the alignment. */
		for (; s != NULL && *s != '\0'; s++)
			strbuf_putc(out, (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
		break;
	case PROTOBUF_C_TYPE_BYTES:
		strbuf_printf(out, "(%zu bytes)", ((const ProtobufCBinaryData *)p)->len);
		break;
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m;

		memcpy(&m, p, sizeof(m));
		if (m != NULL && !pbjson_encode(m, out))
			strbuf_puts(out, "?");
		break;
	}
	}
}

/* False when the field holds no value: another member of its oneof is set, or an absent optional. */
static bool
render_field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd)
{
	const char *base = (const char *)msg;

	if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t which;

		memcpy(&which, base + fd->quantifier_offset, sizeof(which));
		return which == fd->id;
	}
	if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->type != PROTOBUF_C_TYPE_STRING &&
	    fd->type != PROTOBUF_C_TYPE_MESSAGE) {
		protobuf_c_boolean has;

		memcpy(&has, base + fd->quantifier_offset, sizeof(has));
		return has != 0;
	}
	return true;
}

void
render_field(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd, struct strbuf *out)
{
	const char *base = (const char *)msg;

	if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n;
		const char *arr;

		memcpy(&n, base + fd->quantifier_offset, sizeof(n));
		memcpy(&arr, base + fd->offset, sizeof(arr));
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				strbuf_putc(out, ',');
			render_value(out, fd, arr + i * pbjson_field_size(fd));
		}
		return;
	}
	if (render_field_present(msg, fd))
		render_value(out, fd, base + fd->offset);
}

/* The only field of msg's type when it is a repeated message, else NULL. */
static const ProtobufCFieldDescriptor *
render_list_field(const ProtobufCMessageDescriptor *desc)
{
	if (desc->n_fields != 1)
		return NULL;
	if (desc->fields[0].label != PROTOBUF_C_LABEL_REPEATED ||
	    desc->fields[0].type != PROTOBUF_C_TYPE_MESSAGE)
		return NULL;
	return &desc->fields[0];
}

static bool
render_list(FILE *out, const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *list)
{
	const ProtobufCMessageDescriptor *ed = list->descriptor;
	const char **header = NULL;
	bool *right = NULL;
	unsigned *cols = NULL;
	size_t ncols = 0, n;
	ProtobufCMessage **elems;
	struct table t;
	struct strbuf sb;
	bool ok = false;

	header = calloc(ed->n_fields + 1, sizeof(*header));
	right = calloc(ed->n_fields + 1, sizeof(*right));
	cols = calloc(ed->n_fields + 1, sizeof(*cols));
	if (header == NULL || right == NULL || cols == NULL)
		goto done;
	for (unsigned i = 0; i < ed->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &ed->fields[i];

		if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
			continue;
		header[ncols] = fd->name;
		right[ncols] = render_is_number(fd) && fd->label != PROTOBUF_C_LABEL_REPEATED;
		cols[ncols++] = i;
	}

	memcpy(&n, (const char *)msg + list->quantifier_offset, sizeof(n));
	memcpy(&elems, (const char *)msg + list->offset, sizeof(elems));
	table_init(&t, ncols, header, right);
	strbuf_init(&sb);
	for (size_t r = 0; r < n; r++) {
		for (size_t c = 0; c < ncols; c++) {
			strbuf_reset(&sb);
			render_field(elems[r], &ed->fields[cols[c]], &sb);
			table_add(&t, sb.data != NULL ? sb.data : "");
		}
	}
	ok = !strbuf_failed(&sb) && table_print(out, &t);
	strbuf_cleanup(&sb);
	table_cleanup(&t);
done:
	free(header);
	free(right);
	free(cols);
	return ok;
}

static bool
render_lines(FILE *out, const ProtobufCMessage *msg, const char *prefix)
{
	const ProtobufCMessageDescriptor *desc = msg->descriptor;
	struct strbuf sb, sub;
	bool ok = true;

	strbuf_init(&sb);
	strbuf_init(&sub);
	for (unsigned i = 0; i < desc->n_fields && ok; i++) {
		const ProtobufCFieldDescriptor *fd = &desc->fields[i];
		const char *base = (const char *)msg;

		if (fd->type == PROTOBUF_C_TYPE_MESSAGE && fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n;
			ProtobufCMessage **elems;

			memcpy(&n, base + fd->quantifier_offset, sizeof(n));
			memcpy(&elems, base + fd->offset, sizeof(elems));
			for (size_t j = 0; j < n && ok; j++) {
				strbuf_reset(&sub);
				strbuf_printf(&sub, "%s%s[%zu].", prefix, fd->name, j);
				ok = !strbuf_failed(&sub) && render_lines(out, elems[j], sub.data);
			}
			continue;
		}
		if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
			ProtobufCMessage *m;

			if (!render_field_present(msg, fd))
				continue;
			memcpy(&m, base + fd->offset, sizeof(m));
			if (m == NULL)
				continue;
			strbuf_reset(&sub);
			strbuf_printf(&sub, "%s%s.", prefix, fd->name);
			ok = !strbuf_failed(&sub) && render_lines(out, m, sub.data);
			continue;
		}
		strbuf_reset(&sb);
		render_field(msg, fd, &sb);
		if (strbuf_failed(&sb)) {
			ok = false;
			break;
		}
		fprintf(out, "%s%s: %s\n", prefix, fd->name, sb.data != NULL ? sb.data : "");
	}
	strbuf_cleanup(&sb);
	strbuf_cleanup(&sub);
	return ok;
}

bool
render_message(FILE *out, const ProtobufCMessage *msg)
{
	const ProtobufCFieldDescriptor *list = render_list_field(msg->descriptor);

	if (list != NULL)
		return render_list(out, msg, list);
	return render_lines(out, msg, "");
}

bool
render_json(FILE *out, const ProtobufCMessage *msg)
{
	struct strbuf sb;
	bool ok;

	strbuf_init(&sb);
	ok = pbjson_encode(msg, &sb) && !strbuf_failed(&sb);
	if (ok) {
		fwrite(sb.data, 1, sb.len, out);
		fputc('\n', out);
	}
	strbuf_cleanup(&sb);
	return ok;
}

/* Adds the rows of one balance: GPU-hours, then the native unit when there is one. */
static void
render_balance_rows(struct table *t, const char *id, const char *scope, const char *window,
    const Allot__V1__Balance *b)
{
	static const Allot__V1__Balance zero = ALLOT__V1__BALANCE__INIT;
	char num[64];

	if (b == NULL)
		b = &zero;
	table_add(t, id);
	table_add(t, scope);
	table_add(t, window);
	table_add(t, "GPU-h");
	const double gpu_h[4] = {b->granted_gpu_hours, b->charged_gpu_hours, b->pending_gpu_hours,
	    b->available_gpu_hours};
	for (int i = 0; i < 4; i++) {
		snprintf(num, sizeof(num), "%.2f", gpu_h[i]);
		table_add(t, num);
	}
	if (b->native_unit == NULL || b->native_unit[0] == '\0')
		return;
	table_add(t, "");
	table_add(t, "");
	table_add(t, "");
	table_add(t, b->native_unit);
	const double native[4] = {
	    b->native_granted, b->native_charged, b->native_pending, b->native_available};
	for (int i = 0; i < 4; i++) {
		snprintf(num, sizeof(num), "%.2f", native[i]);
		table_add(t, num);
	}
}

/* One row of the movements table: an allocation's, or the total's. */
static void
render_movement_row(struct table *t, const char *id, const Allot__V1__Movements *m)
{
	static const Allot__V1__Movements zero = ALLOT__V1__MOVEMENTS__INIT;
	char num[64];

	if (m == NULL)
		m = &zero;
	table_add(t, id);
	const double gpu_h[6] = {m->granted_gpu_hours, m->added_gpu_hours, m->used_gpu_hours,
	    m->refunded_gpu_hours, m->credited_gpu_hours, m->expired_gpu_hours};
	for (int i = 0; i < 6; i++) {
		snprintf(num, sizeof(num), "%.2f", gpu_h[i]);
		table_add(t, num);
	}
}

/* Where each allocation's GPU-hours came from and went (Movements). */
static bool
render_movements(FILE *out, const Allot__V1__GetBalanceResponse *resp)
{
	static const char *const header[] = {
	    "allocation", "granted", "added", "used", "refunded", "credited", "expired"};
	static const bool right[] = {true, true, true, true, true, true, true};
	struct table t;
	char id[32];
	bool ok;

	table_init(&t, 7, header, right);
	for (size_t i = 0; i < resp->n_allocations; i++) {
		snprintf(id, sizeof(id), "%" PRId64, resp->allocations[i]->allocation_id);
		render_movement_row(&t, id, resp->allocations[i]->movements);
	}
	render_movement_row(&t, "total", resp->movements);
	fputs("\nmovements (GPU-h):\n", out);
	ok = table_print(out, &t);
	table_cleanup(&t);
	return ok;
}

bool
render_balance(FILE *out, const Allot__V1__GetBalanceResponse *resp)
{
	static const char *const header[] = {
	    "allocation", "scope", "window", "unit", "granted", "charged", "pending", "available"};
	static const bool right[] = {true, false, false, false, true, true, true, true};
	struct table t;
	struct strbuf window;
	char id[32];
	bool ok;

	table_init(&t, 8, header, right);
	strbuf_init(&window);
	for (size_t i = 0; i < resp->n_allocations; i++) {
		const Allot__V1__AllocationBalance *a = resp->allocations[i];

		snprintf(id, sizeof(id), "%" PRId64, a->allocation_id);
		strbuf_reset(&window);
		strbuf_printf(&window, "%s .. %s", a->starts_at != NULL ? a->starts_at : "",
		    a->ends_at != NULL ? a->ends_at : "");
		render_balance_rows(
		    &t, id, a->scope, window.data != NULL ? window.data : "", a->balance);
	}
	render_balance_rows(&t, "total", "", "", resp->total);
	ok = !strbuf_failed(&window);
	strbuf_cleanup(&window);
	fprintf(out, "project: %s\n", resp->project != NULL ? resp->project : "");
	ok = ok && table_print(out, &t);
	table_cleanup(&t);
	return ok && render_movements(out, resp);
}

/* Appends a CSV field, quoted when it holds a comma, a quote or a line break. */
static void
render_csv_field(struct strbuf *line, const char *text, bool last)
{
	if (strpbrk(text, ",\"\r\n") != NULL) {
		strbuf_putc(line, '"');
		for (const char *p = text; *p != '\0'; p++) {
			if (*p == '"')
				strbuf_putc(line, '"');
			strbuf_putc(line, *p);
		}
		strbuf_putc(line, '"');
	} else {
		strbuf_puts(line, text);
	}
	strbuf_putc(line, last ? '\n' : ',');
}

/* The cells of one job, for the table (csv false) or CSV. */
static void
render_job_cells(const Allot__V1__JobSummary *j, bool csv, char cells[][64], const char **text)
{
	bool util = j->utilization_case == ALLOT__V1__JOB_SUMMARY__UTILIZATION_MEAN_UTILIZATION_PCT;
	bool energy = j->energy_case == ALLOT__V1__JOB_SUMMARY__ENERGY_ENERGY_KWH;
	const char *none = csv ? "" : "-";
	int n = 0;

	text[n++] = j->site;
	text[n++] = j->job_id;
	text[n++] = j->user;
	if (csv) {
		text[n++] = j->account;
		text[n++] = j->partition;
		text[n++] = j->start_time;
		text[n++] = j->state;
	}
	snprintf(cells[n], 64, "%" PRId32, j->gpus);
	text[n] = cells[n];
	n++;
	if (csv)
		snprintf(cells[n], 64, "%" PRId64, j->elapsed_s);
	else
		snprintf(cells[n], 64, "%" PRId64 ":%02" PRId64 ":%02" PRId64, j->elapsed_s / 3600,
		    j->elapsed_s / 60 % 60, j->elapsed_s % 60);
	text[n] = cells[n];
	n++;
	snprintf(cells[n], 64, csv ? "%.6f" : "%.2f", j->charged_gpu_hours);
	text[n] = cells[n];
	n++;
	snprintf(cells[n], 64, csv ? "%.3f" : "%.2f", (double)j->native_milli / 1000.0);
	text[n] = cells[n];
	n++;
	text[n++] = j->native_unit;
	if (csv) {
		snprintf(cells[n], 64, "%" PRId64, j->samples);
		text[n] = cells[n];
		n++;
	}
	if (util)
		snprintf(cells[n], 64, "%.*f", csv ? 2 : 1, j->mean_utilization_pct);
	text[n] = util ? cells[n] : none;
	n++;
	snprintf(cells[n], 64, csv ? "%.6f" : "%.2f", j->zero_utilization_gpu_hours);
	text[n] = cells[n];
	n++;
	if (energy)
		snprintf(cells[n], 64, csv ? "%.6f" : "%.3f", j->energy_kwh);
	text[n] = energy ? cells[n] : none;
}

bool
render_jobs(FILE *out, const Allot__V1__ListJobsResponse *resp, bool csv)
{
	static const char *const header[] = {"site", "job", "user", "gpus", "elapsed", "GPU-h",
	    "native", "unit", "util %", "idle GPU-h", "energy kWh"};
	static const bool right[] = {
	    false, false, false, true, true, true, true, false, true, true, true};
	static const char *const csv_header[] = {"site", "job_id", "user", "account", "partition",
	    "start_time", "state", "gpus", "elapsed_s", "charged_gpu_hours", "native",
	    "native_unit", "samples", "mean_utilization_pct", "zero_utilization_gpu_hours",
	    "energy_kwh"};
	const size_t ncols =
	    csv ? sizeof(csv_header) / sizeof(csv_header[0]) : sizeof(header) / sizeof(header[0]);
	char cells[16][64];
	const char *text[16];
	struct strbuf line;
	struct table t;
	bool ok;

	if (csv) {
		strbuf_init(&line);
		for (size_t c = 0; c < ncols; c++)
			render_csv_field(&line, csv_header[c], c + 1 == ncols);
		for (size_t i = 0; i < resp->n_jobs; i++) {
			render_job_cells(resp->jobs[i], true, cells, text);
			for (size_t c = 0; c < ncols; c++)
				render_csv_field(&line, text[c], c + 1 == ncols);
		}
		ok = !strbuf_failed(&line);
		if (ok && line.len > 0)
			ok = fwrite(line.data, 1, line.len, out) == line.len;
		strbuf_cleanup(&line);
		return ok;
	}
	table_init(&t, ncols, header, right);
	for (size_t i = 0; i < resp->n_jobs; i++) {
		render_job_cells(resp->jobs[i], false, cells, text);
		for (size_t c = 0; c < ncols; c++)
			table_add(&t, text[c]);
	}
	ok = table_print(out, &t);
	table_cleanup(&t);
	return ok;
}
