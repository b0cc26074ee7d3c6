#!/usr/bin/env python3
"""make_safetensors_fixtures.py: writes tests/fixtures/safetensors/*.

Valid files are written by the `safetensors` library itself (plus two
hand-built ones that the library must load: unaligned data and a header with
leading whitespace). Malformed files are built by manipulating bytes; the
script checks that the reference library rejects each of them (or notes where
it does not). Values follow closed forms (arange etc.) that
tests/test_safetensors.c knows independently.

Also writes:
  valid_mixed.inspect.txt  the expected `arc2face inspect` output, computed
                           here from Python's view of the file.
  writer_ref_*.safetensors files whose exact bytes our writer must reproduce.

Usage: python3 tools/ref/make_safetensors_fixtures.py [--check-c FILE...]
  --check-c FILE...  only load FILEs (e.g. written by our C writer) with the
                     Python library and print their tensors.
"""
import json
import os
import struct
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "safetensors")


def path(name):
    return os.path.join(OUT, name)


def raw(name, header, data=b"", n_override=None, pad=True):
    """Writes u64 N | header | data. header: dict (compact JSON) or bytes."""
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    n = len(h) if n_override is None else n_override
    with open(path(name), "wb") as f:
        f.write(struct.pack("<Q", n) + h + data)


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def python_rejects(name):
    try:
        with safe_open(path(name), framework="pt") as f:
            for k in f.keys():
                f.get_tensor(k)
        return False
    except Exception:
        return True


def make_valid():
    # valid_mixed: every kind the reader must handle. Values (the C test knows them):
    t = {
        "a.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),           # 0..5
        "b.half": (torch.arange(5, dtype=torch.float32) * 0.5 - 1).half(),        # -1, -0.5, 0, 0.5, 1
        "c.bf16": ((torch.arange(3, dtype=torch.float32) - 1) * 1.5).bfloat16().reshape(3, 1),  # -1.5, 0, 1.5
        "d.index": torch.arange(4, dtype=torch.int64) * 10**12,                   # 0, 1e12, 2e12, 3e12
        "e.scalar": torch.tensor(7.25, dtype=torch.float32),                      # rank 0
        "f.empty": torch.zeros(0, 3, dtype=torch.float32),                        # empty
        "g.mask": torch.tensor([True, False, True]),                              # BOOL
    }
    save_file(t, path("valid_mixed.safetensors"), metadata={"format": "pt", "note": "arc2face fixture"})

    # valid_empty: no tensors, metadata only.
    save_file({}, path("valid_empty.safetensors"), metadata={"format": "pt"})

    # valid_unaligned: ascending alignment, so F32/F16/BF16 data sit at odd offsets.
    # u8 = [1, 2, 3], f32 = [0.25, -8.0], f16 = [1, 2, 3], bf16 = [-3.0]
    data = bytes([1, 2, 3]) + struct.pack("<2f", 0.25, -8.0)
    data += torch.tensor([1, 2, 3], dtype=torch.float16).numpy().tobytes()
    data += torch.tensor([-3.0], dtype=torch.bfloat16).view(torch.int16).numpy().tobytes()
    raw("valid_unaligned.safetensors", {
        "u8": entry("U8", [3], 0, 3), "f32": entry("F32", [2], 3, 11),
        "f16": entry("F16", [3], 11, 17), "bf16": entry("BF16", [1], 17, 19)}, data)

    # valid_leading_ws: the reference parser accepts JSON whitespace before '{'.
    h = b" \n\t" + json.dumps({"x": entry("F32", [1], 0, 4)}, separators=(",", ":")).encode()
    raw("valid_leading_ws.safetensors", h, struct.pack("<f", 1.5))

    for n in ["valid_mixed", "valid_empty", "valid_unaligned", "valid_leading_ws"]:
        assert not python_rejects(n + ".safetensors"), n
    got = load_file(path("valid_unaligned.safetensors"))
    assert got["f32"].tolist() == [0.25, -8.0] and got["bf16"].float().tolist() == [-3.0]


def make_writer_refs():
    # Our writer must reproduce these bytes exactly (the C test re-writes the
    # tensors it reads and compares). Names chosen so name order != dtype order.
    save_file({
        "w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "h": torch.arange(4, dtype=torch.float16),
        "b": torch.tensor([1.0, -2.0], dtype=torch.bfloat16),
        "u": torch.tensor([1, 2, 3], dtype=torch.uint8),
        "s": torch.tensor(0.5, dtype=torch.float32),
        "i": torch.tensor([-1, 5], dtype=torch.int64),
    }, path("writer_ref_a.safetensors"), metadata={"format": "pt"})
    # A header whose JSON is already a multiple of 8 long (no padding edge case).
    for k in range(1, 9):
        name = "x" * k
        js = json.dumps({name: entry("F32", [1], 0, 4)}, separators=(",", ":"))
        if len(js) % 8 == 0:
            break
    save_file({name: torch.tensor([2.5])}, path("writer_ref_b.safetensors"))
    with open(path("writer_ref_b.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
    assert n == len(js), (n, len(js))


def make_malformed():
    ok_h = {"a": entry("F32", [2], 0, 8)}
    ok_d = struct.pack("<2f", 1, 2)
    cases = {}

    def bad(name, header, data=ok_d, **kw):
        raw(name, header, data, **kw)
        cases[name] = python_rejects(name)

    with open(path("bad_empty.safetensors"), "wb"):
        pass
    cases["bad_empty.safetensors"] = python_rejects("bad_empty.safetensors")
    with open(path("bad_short.safetensors"), "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00")
    cases["bad_short.safetensors"] = python_rejects("bad_short.safetensors")
    bad("bad_truncated.safetensors", ok_h, ok_d[:5])
    bad("bad_header_past_end.safetensors", ok_h, n_override=4096)
    bad("bad_header_absurd.safetensors", ok_h, n_override=1 << 40)
    bad("bad_json.safetensors", b'{"a": {"dtype": "F32", "shape": [2], ')
    bad("bad_utf8.safetensors", b'{"a\xff": ' + json.dumps(entry("F32", [2], 0, 8)).encode() + b"}")
    bad("bad_not_object.safetensors", b"[1, 2]")
    bad("bad_entry_not_object.safetensors", {"a": 3}, b"")
    bad("bad_missing_dtype.safetensors", {"a": {"shape": [2], "data_offsets": [0, 8]}})
    bad("bad_offsets_range.safetensors", {"a": entry("F32", [2], 0, 8), "b": entry("F32", [1], 8, 12)})
    bad("bad_overlap.safetensors", {"a": entry("F32", [2], 0, 8), "b": entry("F32", [1], 4, 8)})
    bad("bad_hole.safetensors", {"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)}, ok_d + ok_d[:4])
    bad("bad_unknown_dtype.safetensors", {"a": entry("F33", [2], 0, 8)})
    bad("bad_shape_mismatch.safetensors", {"a": entry("F32", [2, 2], 0, 8)})
    bad("bad_negative_dim.safetensors", {"a": entry("F32", [-2], 0, 8)})
    bad("bad_float_dim.safetensors", {"a": entry("F32", [2.5], 0, 8)})
    bad("bad_huge_dim.safetensors", {"a": entry("F32", [1 << 48], 0, 8)})
    bad("bad_overflow.safetensors", {"a": entry("F32", [1 << 40, 1 << 40], 0, 8)})
    bad("bad_offsets_count.safetensors", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})
    bad("bad_duplicate_key.safetensors",
        b'{"a":' + json.dumps(entry("F32", [1], 0, 4)).encode() + b',"a":' +
        json.dumps(entry("F32", [1], 4, 8)).encode() + b"}")
    bad("bad_duplicate_field.safetensors", b'{"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}')
    bad("bad_trailing.safetensors", ok_h, ok_d + b"JUNK")
    bad("bad_metadata_nonstring.safetensors", {"__metadata__": {"epoch": 3}, **ok_h})
    bad("bad_metadata_tensor.safetensors", {"__metadata__": entry("F32", [2], 0, 8)})
    bad("bad_nul_name.safetensors", b'{"a\\u0000b":' + json.dumps(entry("F32", [2], 0, 8)).encode() + b"}")
    bad("bad_extra_json.safetensors", json.dumps(ok_h).encode() + b" {}")
    bad("bad_bom.safetensors", b"\xef\xbb\xbf" + json.dumps(ok_h).encode())
    bad("bad_number.safetensors", b'{"a":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}')
    bad("bad_control_char.safetensors", b'{"a\x01":' + json.dumps(entry("F32", [2], 0, 8)).encode() + b"}")

    print("malformed fixture            reference library rejects it")
    for k, v in sorted(cases.items()):
        print(f"  {k:36s} {'yes' if v else 'NO (accepted)'}")


def group(n):
    return f"{n:,}"


def make_inspect_expectation():
    """Expected `arc2face inspect valid_mixed.safetensors` output, from Python's view:
    tensors in data-offset order, name and dtype columns padded to their widest
    entry, then metadata sorted by key, then the totals line."""
    p = path("valid_mixed.safetensors")
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data_len = len(f.read())
    rows = []
    with safe_open(p, framework="pt") as f:
        meta = f.metadata() or {}
        for k in f.keys():
            sl = f.get_slice(k)
            rows.append((hdr[k]["data_offsets"][0], hdr[k]["data_offsets"][1], k, sl.get_dtype(), sl.get_shape()))
    rows.sort()
    wn = max(len(r[2]) for r in rows)
    wd = max(len(r[3]) for r in rows)
    lines = []
    params = 0
    for _, _, k, dt, shape in rows:
        lines.append(f"{k.ljust(wn)}  {dt.ljust(wd)}  [{', '.join(str(d) for d in shape)}]")
        numel = 1
        for d in shape:
            numel *= d
        params += numel
    if meta:
        lines.append("metadata:")
        for k in sorted(meta):
            lines.append(f"  {k}: {meta[k]}")
    lines.append(f"tensors: {len(rows)}  parameters: {group(params)}  bytes: {group(data_len)}")
    with open(path("valid_mixed.inspect.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def check_c(files):
    for p in files:
        with safe_open(p, framework="pt") as f:
            print(p, "metadata", f.metadata())
            for k in f.keys():
                t = f.get_tensor(k)
                print(f"  {k} {t.dtype} {list(t.shape)} {t.flatten()[:6].tolist()}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--check-c":
        check_c(sys.argv[2:])
        sys.exit(0)
    os.makedirs(OUT, exist_ok=True)
    make_valid()
    make_writer_refs()
    make_malformed()
    make_inspect_expectation()
    print("wrote", os.path.normpath(OUT))
