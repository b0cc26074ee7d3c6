// fuzz_safetensors.c: libFuzzer target for the safetensors header parser and
// loaders. Each input is a whole file image, parsed in memory with
// st_open_memory (the same code st_open runs on the mapping); accepted inputs
// also go through st_find, st_metadata_get and the float loaders, and the
// tiling invariant is asserted. Build and run: tools/fuzz/run.sh SECONDS.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../nn/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    SafeTensors st;
    if (st_open_memory(&st, "fuzz", data, size) != 0) {
        CHECK(strncmp(a2f_last_error(), "fuzz: ", 6) == 0 && !strchr(a2f_last_error(), '\n'));
        return 0;
    }
    uint64_t end = 0;
    for (int i = 0; i < st_count(&st); i++) {
        const StTensor *t = st_tensor(&st, i);
        CHECK(t->offset == end);
        end = t->offset + t->nbytes;
        CHECK(st_find(&st, t->name) == i);
        DType dt;
        if (st_dtype_to_dtype(t->dtype, &dt) == 0) {
            // numel is bounded by the input size here (nbytes was checked against it).
            float *f = malloc((size_t)t->numel * sizeof *f + 1);
            uint16_t *b = malloc((size_t)t->numel * sizeof *b + 1);
            CHECK(st_load_f32(&st, t->name, f, t->ndim, t->shape) == 0);
            CHECK(st_load_bf16(&st, t->name, b, t->ndim, t->shape) == 0);
            free(f);
            free(b);
        } else {
            float x;
            CHECK(st_load_f32(&st, t->name, &x, 0, NULL) == -1);
        }
    }
    CHECK(end == st.data_len && 8 + st.header_len + st.data_len == size);
    for (int i = 0; i < st.nmeta; i++) CHECK(st_metadata_get(&st, st.meta_key[i]) == st.meta_val[i]);
    st_close(&st);
    return 0;
}
