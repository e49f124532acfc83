/*
 * tariff: site_billing's JSON into resources, and a job's bill on one of them.
 * The rule's arithmetic is billing.c's; this module only chooses the resource
 * and the weight in force.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tariff.h"

struct weight {
	int64_t from_s;
	int32_t per_mille;
};

struct resource {
	int64_t id;
	char *partition;
	char *native_unit;
	struct billing_resource br;
	struct weight *weights; /* by date, oldest first */
	size_t nweights;
};

struct tariff {
	struct resource *res;
	size_t nres;
};

static int64_t
json_int(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return 0;
}

void
tariff_free(struct tariff *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nres; i++) {
		free(t->res[i].partition);
		free(t->res[i].native_unit);
		free(t->res[i].weights);
	}
	free(t->res);
	free(t);
}

static int
parse_resource(const json_t *item, struct resource *r)
{
	const json_t *weights = json_object_get(item, "weights");
	const char *rule = json_string_value(json_object_get(item, "rule"));
	const char *part = json_string_value(json_object_get(item, "partition"));
	const char *unit = json_string_value(json_object_get(item, "nativeUnit"));
	size_t j;
	json_t *w;

	if (part == NULL || rule == NULL || !json_is_array(weights) ||
	    billing_rule_parse(rule, &r->br.rule) != 0)
		return -1;
	r->id = json_int(item, "id");
	r->partition = strdup(part);
	r->native_unit = strdup(unit != NULL ? unit : "");
	r->br.gpus_per_node = (int32_t)json_int(item, "gpusPerNode");
	r->br.cores_per_gpu = (int32_t)json_int(item, "coresPerGpu");
	r->br.threads_per_core = (int32_t)json_int(item, "threadsPerCore");
	r->br.mem_per_gpu_mb = json_int(item, "memPerGpuMb");
	r->br.native_milli_per_gpu_hour = json_int(item, "nativeMilliPerGpuHour");
	r->nweights = json_array_size(weights);
	r->weights = calloc(r->nweights > 0 ? r->nweights : 1, sizeof(*r->weights));
	if (r->partition == NULL || r->native_unit == NULL || r->weights == NULL)
		return -1;
	json_array_foreach(weights, j, w)
	{
		r->weights[j].from_s = json_int(w, "from");
		r->weights[j].per_mille = (int32_t)json_int(w, "perMille");
	}
	return 0;
}

struct tariff *
tariff_new(const json_t *billing)
{
	struct tariff *t;
	json_t *item;
	size_t i;

	if (!json_is_array(billing) || (t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->res =
	    calloc(json_array_size(billing) > 0 ? json_array_size(billing) : 1, sizeof(*t->res));
	if (t->res == NULL) {
		free(t);
		return NULL;
	}
	json_array_foreach(billing, i, item)
	{
		t->nres = i + 1;
		if (parse_resource(item, &t->res[i]) != 0) {
			tariff_free(t);
			return NULL;
		}
	}
	return t;
}

/* The weight in force at start_s: the latest whose date is not after it; 0 if none. */
static int32_t
weight_at(const struct resource *r, int64_t start_s)
{
	int32_t w = 0;

	for (size_t i = 0; i < r->nweights; i++)
		if (r->weights[i].from_s <= start_s)
			w = r->weights[i].per_mille;
	return w;
}

int
tariff_bill(const struct tariff *t, const char *site, const char *partition, int64_t start_s,
    const struct billing_usage *usage, struct tariff_bill *out, char *reason, size_t reasonlen)
{
	const struct resource *r = NULL;
	struct billing_resource br;

	for (size_t i = 0; i < t->nres && r == NULL; i++)
		if (strcmp(t->res[i].partition, partition) == 0)
			r = &t->res[i];
	if (r == NULL) {
		snprintf(reason, reasonlen, "unknown partition \"%.100s\" at site \"%.100s\"",
		    partition, site);
		return -1;
	}
	br = r->br;
	if ((br.weight_per_mille = weight_at(r, start_s)) <= 0) {
		snprintf(reason, reasonlen,
		    "no billing weight of %.100s/%.100s in force at the job's start", site,
		    r->partition);
		return -1;
	}
	if (billing_compute(&br, usage, &out->charge, reason, reasonlen) != 0)
		return -1;
	out->resource_id = r->id;
	out->weight_per_mille = br.weight_per_mille;
	out->native_unit = r->native_unit;
	return 0;
}
