// image.h: 8-bit RGB images in memory, PNG/JPEG decoding (libpng,
// libjpeg-turbo), atomic PNG writing, resizing and grids.
//
// Image: px [h, w, c] row-major, c = 3 (RGB) for everything image_load
// returns (image_save_png also takes c = 1 or 4).
//
// Decoding follows what upstream Arc2Face does with a photo,
// np.array(PIL.Image.open(path)) (shared/reference/arc2face-upstream.md 1.2):
//  - the format is chosen by the magic bytes, not the file name;
//  - EXIF orientation is NOT applied (PIL's Image.open does not rotate; the
//    detector then sees the stored pixel grid, as upstream's does);
//  - JPEG: libjpeg's defaults as in Pillow (ISLOW integer IDCT, fancy
//    upsampling), so the pixels equal PIL's for the same libjpeg-turbo IDCT;
//    grayscale is replicated to RGB; CMYK/YCCK converted as PIL's
//    convert("RGB") does (Adobe-inverted CMYK, R = C' K' / 255);
//  - PNG: palette expanded, grayscale replicated, alpha dropped (not
//    composited: PIL's convert("RGB")), 16-bit reduced to the high byte
//    (PIL's "RGB;16B" raw mode), 1/2/4-bit scaled to 0..255, no gamma
//    correction, Adam7 interlacing handled.
// Errors: a missing, empty, unknown, corrupt or truncated file, or one whose
// header declares absurd dimensions (checked before anything is allocated),
// gives -1 and one a2f_set_error line "NAME: problem". The libraries' errors
// are caught with setjmp/longjmp inside this file; nothing exits. A JPEG that
// ends early is an error (Pillow raises "image file is truncated"); other
// libjpeg warnings (e.g. extraneous bytes before a marker) are tolerated, as
// Pillow does.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int w, h, c;
    uint8_t *px;  // [h, w, c]
} Image;

#define IMAGE_MAX_SIDE 65535                 // per dimension
#define IMAGE_DEFAULT_MAX_PIXELS (1u << 28)  // 268M pixels (805 MB RGB)

// Sets the largest w*h the decoders accept (0: the default); returns the
// previous value. The fuzzer lowers it.
size_t image_set_max_pixels(size_t max_pixels);

// Decodes PATH (PNG or JPEG by magic bytes) into im (RGB8). 0 / -1.
int image_load(Image *im, const char *path);
// Same from memory; NAME is used in error lines.
int image_load_memory(Image *im, const void *data, size_t n, const char *name);

// Writes im (c = 1, 3 or 4; 8-bit) as PNG: PATH.tmp, fsync, rename. 0 / -1.
int image_save_png(const Image *im, const char *path);
// Encodes im as PNG into a malloc'd buffer (*out, *n). 0 / -1.
int image_encode_png(const Image *im, uint8_t **out, size_t *n);

// Allocates a zeroed (black) w x h x c image. 0 / -1 (bad size).
int image_alloc(Image *im, int w, int h, int c);
void image_free(Image *im);

// dst (allocated here, dw x dh, src's channels) = bilinear resize of src with
// half-pixel centres (cv2 INTER_LINEAR geometry, float weights); when
// shrinking by more than 2x, an area average is used instead (no aliasing).
int image_resize(Image *dst, const Image *src, int dw, int dh);

// A grid of n images (c = 3) in `cols` columns: every cell is cell x cell
// pixels, each image resized to fit its cell keeping its aspect ratio and
// centred; cells separated and surrounded by `pad` pixels of gray `bg`.
// out allocated here. 0 / -1.
int image_grid(Image *out, const Image *const *imgs, int n, int cols, int cell, int pad, uint8_t bg);
