#!/usr/bin/env python3
"""Reads a kvstream KV cache file (safetensors) with numpy and a few lines of header parsing,
independently of kvstream's own reader (codec/safetensors.cpp), to confirm the format: an u64
little-endian header length N, N bytes of JSON (tensor name -> dtype, shape, data_offsets, plus
__metadata__), then the tensors' bytes back to back. kvstream writes k.{layer} and v.{layer}
([tokens, kv_heads, head_dim], F32/F16/BF16) and tokens (I32 [tokens]) (docs/FORMAT.md).

Prints one JSON object: file/header/data bytes, metadata, each tensor's dtype and shape, the token
ids, and the shape kvstream's kv-info reports (tokens, layers, kv_heads, head_dim, dtype).
  --values             also "k" and "v": per layer, every value as float32, in file order
  --rounded-from F32   also compare this file's K/V with numpy's own round-to-nearest-even of the
                       F32 file's values to this file's dtype ("rounding_mismatches" of
                       "values_compared"); for checking kvstream's f32 -> f16/bf16 conversion
Exits 1 with a message if the file breaks the format.
Usage: scripts/read_kv_numpy.py FILE [--values] [--rounded-from F32_FILE]
"""
import argparse
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"), "I32": np.dtype("<i4")}


def fail(path, why):
    sys.exit("read_kv_numpy: %s: %s" % (path, why))


def read(path):
    raw = open(path, "rb").read()
    if len(raw) < 8:
        fail(path, "shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        fail(path, "header length %d beyond the file" % n)
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {})
    tensors, end = {}, 0
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, stop = t["data_offsets"]
        dt = DTYPES.get(t["dtype"])
        if dt is None:
            fail(path, "tensor %s has dtype %s" % (name, t["dtype"]))
        if begin != end or stop < begin or stop > len(data):
            fail(path, "tensor %s at bytes [%d, %d) leaves a hole, overlaps or runs past the data" % (name, begin, stop))
        if (stop - begin) != int(np.prod(t["shape"], dtype=np.int64)) * dt.itemsize:
            fail(path, "tensor %s: %d bytes for shape %s" % (name, stop - begin, t["shape"]))
        a = np.frombuffer(data, dtype=dt, count=(stop - begin) // dt.itemsize, offset=begin).reshape(t["shape"])
        if t["dtype"] == "BF16":  # bfloat16 = the top half of a float32
            a = (a.astype("<u4") << 16).view("<f4")
        tensors[name] = (t["dtype"], a)
        end = stop
    if end != len(data):
        fail(path, "%d bytes after the last tensor" % (len(data) - end))
    return raw, n, metadata, tensors


def to_dtype(x, dtype):
    """numpy's own round-to-nearest-even of float32 values to dtype, back as float32."""
    if dtype == "F32":
        return x
    if dtype == "F16":
        return x.astype(np.float16).astype(np.float32)
    u = x.astype("<f4").view("<u4").astype(np.uint64)
    return (((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u4") << 16).view("<f4")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--values", action="store_true")
    ap.add_argument("--rounded-from")
    args = ap.parse_args()
    raw, n, metadata, tensors = read(args.file)
    layers = sum(1 for name in tensors if name.startswith("k."))
    k0 = tensors["k.0"][1]
    kv_dtypes = {tensors[p + str(l)][0] for p in ("k.", "v.") for l in range(layers)}
    out = {
        "file_bytes": len(raw), "header_bytes": n, "data_bytes": len(raw) - 8 - n, "metadata": metadata,
        "tensors": {name: {"dtype": d, "shape": list(a.shape)} for name, (d, a) in tensors.items()},
        "tokens": int(k0.shape[0]), "layers": layers, "kv_heads": int(k0.shape[1]), "head_dim": int(k0.shape[2]),
        "dtype": kv_dtypes.pop() if len(kv_dtypes) == 1 else "mixed",
        "token_ids": tensors["tokens"][1].tolist(),
    }
    if args.values:
        for p in ("k", "v"):
            out[p] = [tensors["%s.%d" % (p, l)][1].astype(np.float32).ravel().tolist() for l in range(layers)]
    if args.rounded_from:
        _, _, _, ref = read(args.rounded_from)
        mismatches = compared = 0
        for p in ("k.", "v."):
            for l in range(layers):
                dtype, mine = tensors[p + str(l)]
                want = to_dtype(ref[p + str(l)][1].astype(np.float32), dtype)
                mismatches += int(np.count_nonzero(mine.astype("<f4").view("<u4") != want.view("<u4")))
                compared += mine.size
        out["rounding_mismatches"], out["values_compared"] = mismatches, compared
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
