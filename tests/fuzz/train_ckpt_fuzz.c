/*
 * Fuzz driver for clients/train/ckpt.c: any bytes as a checkpoint of
 * allot-train, of any model config. Either it is refused with a reason and
 * nothing allocated, or it is accepted with a config that passes
 * model_config_check and the parameter count of that config, and encoding
 * what was read gives the input back byte for byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model m;
	struct ckpt_state st;
	char why[512];
	why[0] = '\0';
	if (ckpt_parse(data, size, NULL, &m, &st, why, sizeof(why)) != 0) {
		if (why[0] == '\0')
			abort();
		return 0;
	}
	size_t sizes[MODEL_NTENSORS];
	if (model_config_check(&m.cfg, why, sizeof(why)) != 0 ||
	    model_param_count(&m.cfg, sizes) != m.nparams || st.rng == 0 ||
	    st.data_pos >= st.corpus_len)
		abort();
	size_t len;
	uint8_t *again = ckpt_encode(&m, &st, &len);
	if (!again || len != size || memcmp(again, data, size) != 0)
		abort();
	free(again);
	model_free(&m);
	return 0;
}
