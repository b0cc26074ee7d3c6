#!/usr/bin/env python3
"""Writes tests/fixtures/image/* for tests/test_image.c.

PNG files are written by a small encoder here (zlib + CRC, filter types
0..4 rotated per row, optional Adam7 interlacing), covering every colour type
and bit depth; the expected RGB8 pixels come from the source arrays, converted
as PIL's np.array(Image.open(p).convert("RGB")) would: grayscale replicated,
alpha dropped, palette looked up (tRNS ignored), 16-bit -> high byte, 1/2/4-bit
gray scaled to 0..255.

JPEG files are written by Pillow (libjpeg-turbo) in several layouts; the
expected pixels are Pillow's own decode, np.array(Image.open(p).convert("RGB")).
Pillow's libjpeg-turbo (3.x) and the system one (2.1) use the same ISLOW
integer IDCT and fancy upsampling, which are exact integer algorithms, so the
decodes must agree bit for bit.

expected.safetensors: "<file>" F32 [h, w, 3] per fixture file.
"""
import os
import struct
import zlib

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "image")


def chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filter_rows(rows, bpp):
    """rows: list of bytes (packed scanlines). Filter type (row index % 5)."""
    out = b""
    prev = bytes(len(rows[0])) if rows else b""
    for i, r in enumerate(rows):
        ft = i % 5
        f = bytearray(len(r))
        for x in range(len(r)):
            a = r[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ft]
            f[x] = (r[x] - pred) & 0xff
        out += bytes([ft]) + bytes(f)
        prev = r
    return out


def pack_rows(samples, depth):
    """samples [h, w*ch] ints -> list of packed scanline bytes."""
    rows = []
    for row in samples:
        if depth == 8:
            rows.append(bytes(int(v) for v in row))
        elif depth == 16:
            rows.append(b"".join(struct.pack(">H", int(v)) for v in row))
        else:
            bits = "".join(format(int(v), "0%db" % depth) for v in row)
            bits += "0" * (-len(bits) % 8)
            rows.append(bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)))
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, samples, ctype, depth, palette=None, trns=None, interlace=False):
    """samples [h, w, ch] ints in 0..2^depth-1 (palette indices for ctype 3)."""
    h, w, ch = samples.shape
    bpp = max(1, ch * depth // 8)
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += filter_rows(pack_rows(sub.reshape(sub.shape[0], -1), depth), bpp)
    else:
        raw = filter_rows(pack_rows(samples.reshape(h, -1), depth), bpp)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, int(interlace)))
    if palette is not None:
        data += chunk(b"PLTE", bytes(palette.astype(np.uint8).reshape(-1)))
    if trns is not None:
        data += chunk(b"tRNS", trns)
    comp = zlib.compress(raw, 9)
    half = len(comp) // 2  # two IDAT chunks: the decoder must join them
    data += chunk(b"IDAT", comp[:half]) + chunk(b"IDAT", comp[half:]) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(7)
    exp = {}
    h, w = 7, 13

    def add_png(name, samples, ctype, depth, expected, **kw):
        write_png(os.path.join(OUT, name), samples, ctype, depth, **kw)
        exp[name] = torch.from_numpy(expected.astype(np.float32))

    def gray_to_rgb8(g, depth):
        if depth == 16:
            g = g >> 8
        elif depth < 8:
            g = g * (255 // (2 ** depth - 1))
        return np.repeat(g[..., None], 3, axis=2)

    for depth in (1, 2, 4, 8, 16):
        g = rng.integers(0, 2 ** depth, (h, w, 1))
        add_png("gray%d.png" % depth, g, 0, depth, gray_to_rgb8(g[..., 0], depth))
    for depth in (8, 16):
        s = rng.integers(0, 2 ** depth, (h, w, 3))
        add_png("rgb%d.png" % depth, s, 2, depth, s >> 8 if depth == 16 else s)
        s = rng.integers(0, 2 ** depth, (h, w, 2))
        add_png("graya%d.png" % depth, s, 4, depth, gray_to_rgb8(s[..., 0], depth))
        s = rng.integers(0, 2 ** depth, (h, w, 4))
        add_png("rgba%d.png" % depth, s, 6, depth, (s[..., :3] >> 8) if depth == 16 else s[..., :3])
    for depth in (1, 2, 4, 8):
        n = 2 ** depth
        pal = rng.integers(0, 256, (n, 3))
        idx = rng.integers(0, n, (h, w, 1))
        trns = bytes(rng.integers(0, 256, n).astype(np.uint8)) if depth == 4 else None
        add_png("pal%d.png" % depth, idx, 3, depth, pal[idx[..., 0]], palette=pal, trns=trns)
    s = rng.integers(0, 256, (19, 23, 3))
    add_png("rgb8_adam7.png", s, 2, 8, s, interlace=True)
    g = rng.integers(0, 4, (9, 11, 1))
    add_png("gray2_adam7.png", g, 0, 2, gray_to_rgb8(g[..., 0], 2), interlace=True)

    # JPEG: a smooth image with some edges, odd size (partial MCUs).
    y, x = np.mgrid[0:37, 0:45].astype(np.float64)
    img = np.stack([128 + 90 * np.sin(x / 5), 255 * x / 45, 128 + 100 * np.cos(y / 4)], 2)
    img[10:20, 15:30] = [250, 20, 40]
    img = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    pil = Image.fromarray(img)
    jpegs = {
        "q90_420.jpg": (pil, dict(quality=90, subsampling=2)),
        "q95_444.jpg": (pil, dict(quality=95, subsampling=0)),
        "q75_422.jpg": (pil, dict(quality=75, subsampling=1)),
        "progressive.jpg": (pil, dict(quality=85, progressive=True)),
        "gray.jpg": (pil.convert("L"), dict(quality=90)),
        "cmyk.jpg": (pil.convert("CMYK"), dict(quality=90)),
    }
    for name, (im, kw) in jpegs.items():
        p = os.path.join(OUT, name)
        im.save(p, **kw)
        exp[name] = torch.from_numpy(np.array(Image.open(p).convert("RGB")).astype(np.float32))
    save_file(exp, os.path.join(OUT, "expected.safetensors"))
    print("wrote", len(exp), "fixtures to", OUT)


if __name__ == "__main__":
    main()
