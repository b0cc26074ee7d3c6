// fuzz_torch.c: libFuzzer target for the torch.save checkpoint reader.
// The first input byte picks the layer: even -> the rest is a whole file image
// for torch_open_memory (zip + pickle + storages; a mutated data.pkl usually
// fails its CRC there), odd -> the rest is fed straight to the restricted
// unpickler tpkl_parse, so pickle mutations are not masked by the CRC.
// Accepted inputs are walked: every tensor's bytes must lie inside the input
// and float tensors must load. Build and run: tools/fuzz/run.sh SECONDS.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../nn/torch_pickle.h"
#include "../../nn/torch_zip.h"

static void check_error(const char *prefix) {
    CHECK(strncmp(a2f_last_error(), prefix, strlen(prefix)) == 0 && !strchr(a2f_last_error(), '\n'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (data[0] & 1) {
        TPklResult r;
        if (tpkl_parse(p, n, "fuzz", &r) != 0) {
            check_error("fuzz: ");
            return 0;
        }
        for (int i = 0; i < r.count; i++) {
            const TPklTensor *t = &r.tensors[i];
            CHECK(t->name && t->storage_key && t->ndim >= 0 && t->ndim <= TPKL_MAX_DIMS);
            CHECK(t->numel == 0 || t->offset + t->numel <= t->storage_numel);
        }
        tpkl_free(&r);
        return 0;
    }
    SafeTensors st;
    if (torch_open_memory(&st, "fuzz", p, n) != 0) {
        check_error("fuzz");
        return 0;
    }
    for (int i = 0; i < st_count(&st); i++) {
        const StTensor *t = st_tensor(&st, i);
        CHECK((const uint8_t *)t->data >= p && t->nbytes <= n && (const uint8_t *)t->data - p <= (ptrdiff_t)(n - t->nbytes));
        CHECK(st_find(&st, t->name) >= 0);
        DType dt;
        if (st_dtype_to_dtype(t->dtype, &dt) == 0) {
            float *f = malloc((size_t)t->numel * sizeof *f + 1);
            CHECK(st_load_f32(&st, t->name, f, t->ndim, t->shape) == 0);
            free(f);
        }
    }
    st_close(&st);
    return 0;
}
