"""Shared fixtures of the Python suites: a real stories260K context served by kvstream.

The data is made with the kvstream command (KVSTREAM_BIN, default build/bin/kvstream) on the
bundled data (KVSTREAM_DATA, default data/): two TinyStories passages prefilled by stories260K, a
model-free profile from one passage's KV (`profile --kv`), the other encoded into story.kvs with
the profile's levels and the fp16/q8/q4 baselines (5 chunks of 64 tokens, 300 tokens).
"""
import json
import os
import pathlib
import struct
import subprocess
import types

import numpy as np
import pytest

import kvstream

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = pathlib.Path(os.environ.get("KVSTREAM_DATA", ROOT / "data"))
KVSTREAM_BIN = os.environ.get("KVSTREAM_BIN", str(ROOT / "build" / "bin" / "kvstream"))
MODEL = DATA / "models" / "stories260K" / "stories260K.bin"
TOKENIZER = DATA / "models" / "stories260K" / "tok512.bin"
TEXT = DATA / "text" / "tinystories_val.txt"


def kv_cli(*args):
    """Runs the kvstream command; returns its stdout."""
    return subprocess.run([KVSTREAM_BIN, *map(str, args)], check=True, capture_output=True, text=True).stdout


def read_safetensors(path):
    """(metadata, {name: array}) of a kvstream KV safetensors file (F16/F32/I32 tensors)."""
    b = pathlib.Path(path).read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    dtypes = {"F16": np.float16, "F32": np.float32, "I32": np.int32, "BF16": np.uint16}
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        out[name] = np.frombuffer(b[8 + n + lo:8 + n + hi], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return head.get("__metadata__", {}), out


@pytest.fixture(scope="session")
def context(tmp_path_factory):
    work = tmp_path_factory.mktemp("kvstream-py")
    serve = work / "serve"
    serve.mkdir()
    text = TEXT.read_text()
    kv_cli("prefill", "--model", MODEL, "--tokenizer", TOKENIZER, "--prompt", text[:4000], "--max-tokens", 320,
           "-o", work / "calib.safetensors")
    kv_cli("prefill", "--model", MODEL, "--tokenizer", TOKENIZER, "--prompt", text[-6000:], "--max-tokens", 300,
           "-o", work / "ctx.safetensors")
    kv_cli("profile", "--kv", work / "calib.safetensors", "-o", serve / "p.kvprofile")
    kv_cli("encode", work / "ctx.safetensors", "--profile", serve / "p.kvprofile", "--baselines",
           "-o", serve / "story.kvs")
    meta, tensors = read_safetensors(work / "ctx.safetensors")
    profile = kvstream.Profile.load(str(serve / "p.kvprofile"))
    return types.SimpleNamespace(work=work, dir=serve, kvs=serve / "story.kvs", profile_path=serve / "p.kvprofile",
                                 profile=profile, shape=profile.shape, tokens=tensors["tokens"].tolist(),
                                 original=tensors, chunk_tokens=64)


@pytest.fixture(scope="session")
def server(context):
    s = kvstream.Server(str(context.dir), insecure=True)
    s.start()
    yield s
    s.stop()


def decoded(context, level, chunk):
    """{'k.L'/'v.L': fp16 [tokens, heads, dim]} of one chunk at one level, as `kvstream decode` gives it."""
    out = context.work / f"decode-{level}-{chunk}.safetensors"
    if not out.exists():
        kv_cli("decode", context.kvs, "--profile", context.profile_path, "--level", level,
               "--chunks", f"{chunk}:{chunk + 1}", "--dtype", "f16", "-o", out)
    return read_safetensors(out)[1]


def paged_cache(shape, blocks, block_size, dtype=np.float16, fill=np.nan):
    """vLLM-style per-layer [2, blocks, block_size, heads, dim] arrays (K = [0], V = [1])."""
    layers, heads, dim = shape
    return [np.full((2, blocks, block_size, heads, dim), fill, dtype=dtype) for _ in range(layers)]


def scrambled_slots(tokens, blocks, block_size, seed=3):
    order = np.random.default_rng(seed).permutation(blocks)
    t = np.arange(tokens)
    return (order[t // block_size] * block_size + t % block_size).astype(np.int64)
