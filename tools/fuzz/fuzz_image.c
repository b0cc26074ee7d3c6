// fuzz_image.c: libFuzzer target for the PNG and JPEG decoders
// (data/image.h). Each input is a whole file, decoded from memory by
// image_load_memory (the code image_load runs after reading the file), with
// the pixel limit lowered to 2^20 so that a header claiming a huge image is
// rejected instead of slowing the run. Accepted inputs must give a
// consistent RGB8 image; rejected ones exactly one error line naming the
// input. Build and run: tools/fuzz/run.sh SECONDS. Seeds: tools/fuzz/seeds-image/.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../data/image.h"
#include "../../kernels/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) image_set_max_pixels(1u << 20), init = 1;
    Image im;
    if (image_load_memory(&im, data, size, "fuzz") != 0) {
        CHECK(strncmp(a2f_last_error(), "fuzz: ", 6) == 0 && !strchr(a2f_last_error(), '\n'));
        CHECK(im.px == NULL);
        return 0;
    }
    CHECK(im.c == 3 && im.w >= 1 && im.h >= 1 && (size_t)im.w * im.h <= (1u << 20));
    // Touch every pixel (ASan: the buffer is as large as claimed).
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)im.w * im.h * 3; i++) sum += im.px[i];
    (void)sum;
    // Re-encode and decode: PNG round trip is exact.
    uint8_t *png;
    size_t n;
    CHECK(image_encode_png(&im, &png, &n) == 0);
    Image back;
    CHECK(image_load_memory(&back, png, n, "fuzz-png") == 0);
    CHECK(back.w == im.w && back.h == im.h && memcmp(back.px, im.px, (size_t)im.w * im.h * 3) == 0);
    image_free(&back);
    free(png);
    image_free(&im);
    return 0;
}
