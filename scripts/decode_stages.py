#!/usr/bin/env python3
"""Groups perf samples of a kvstream decode into stages (issue 17's per-stage profile).

Input: `perf script -F ip,sym,symoff,dso` output (stdin or a file) and the binary. Each sample's
address is resolved with `addr2line -f -i -C` (the whole inline chain: the SIMD kernels inline
everything) and assigned to the stage of the innermost frame that names one (rules below: by
function, and for the previous decoder's fused loop by source line). Samples outside decoding (the
benchmark's encoder, statistics, profile loading) are counted apart.
Usage: decode_stages.py BINARY [PERF_SCRIPT_OUTPUT] > stages.json
"""
import collections
import json
import re
import subprocess
import sys

# (stage, function-name substrings), tried in order on each frame from the innermost out.
RULES = [
    ("rANS decode (table lookup, multiply)", ["decode8", "decode16", "rans_decode_step", "rans_lane_decode"]),
    ("rANS refill (word stream)", ["refill8", "refill16", "enter_tail", "hd_group_word", "rans_lane_refill"]),
    ("dequantization", ["dequant8", "dequant16", "dequant_hd"]),
    ("escapes", ["fix_escapes", "find_escape_hd", "escape_lanes"]),
    ("RoPE angles (cos/sin)", ["rope_angles", "rope_cs_rows", "RopeTable", "cosf", "sinf", "powf", "__cos", "__sin", "__pow", "sincos"]),
    ("RoPE", ["rope8", "rope16", "rope_rotate_rows", "rotate_pair", "rope_pair_hd"]),
    ("fp16 conversion + store", ["store8", "store16", "bf16_of", "f32_to_f16", "f32_to_bf16", "store_hd", "convert_floats", "convert_scalar"]),
    ("CRC32C", ["crc32c"]),
    ("parsing and checks", ["parse_blob_header", "parse_quant_layout", "parse_escapes", "ByteReader", "read_token_ids",
                            "check_token_ids", "check_dest_fits", "validate", "check_quant_status", "row_offset"]),
    ("allocation", ["malloc", "_int_free", "_int_realloc", "cfree", "free", "operator new", "operator delete", "tcache"]),
    ("layer 0 from the token table", ["fill_token_layer", "tokens_run", "emit16", "fill_token_pair_hd", "fill_tokens_"]),
    ("copies and fills", ["memmove", "memcpy", "memset"]),
    ("layer walk and loop control", ["round<", "decode_group_hd", "hd_value_pos", "hd_next_round", "hd_store_value", "start_run",
                                     "init_group", "finish_group", "lanes_", "decode_round", "run<"]),
    ("per-chunk setup", ["decode_quant_chunks", "prepare", "hd_chunk", "decode_groups_avx", "decode_parsed", "decode_chunk",
                         "decode_batch", "CpuDecoder::submit", "ReferenceCpuDecoder", "KvCache::resize", "scratch_blocks",
                         "store_float_rows", "lower_bound"]),
]
# The previous decoder's per-value loop (chunk_v2.cpp decode_quant_v2) fuses stages; its own lines
# are split by their text.
V2_LINES = [("dequantization", re.compile(r"value\[|dst\[b\]\[off\]|v != v")),
            ("escapes", re.compile(r"esc|slot = t\.mean"))]
DECODE_ROOTS = ["decode_quant", "decode_group", "Decoder", "decode_chunk", "run<", "tokens_run", "crc32c", "rope", "f32_to_",
                "parse_", "store_float_rows", "decode_parsed", "DecodeWorkspace", "convert_", "emit16", "malloc", "free",
                "mem", "operator new", "operator delete", "KvCache::resize", "fill_token"]


def read_samples(text, binary):
    """(symbol, file address in binary or None, dso) per sample; the binary's text mapping from the
    PERF_RECORD_MMAP2 lines (--show-mmap-events) turns run-time addresses into file addresses."""
    maps, out = [], []
    name = binary.split("/")[-1]
    for line in text.splitlines():
        m = re.search(r"PERF_RECORD_MMAP2? .*\[0x([0-9a-f]+)\(0x([0-9a-f]+)\) @ 0x([0-9a-f]+).*\]: r-xp (\S+)", line)
        if m and m.group(4).endswith("/" + name):
            maps.append((int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)))
            continue
        m = re.match(r"\s*([0-9a-f]+)\s+(.+?)(\+0x[0-9a-f]+)?\s+\((.+)\)\s*$", line)
        if not m:
            continue
        ip, sym, dso = int(m.group(1), 16), m.group(2), m.group(4)
        addr = None
        if dso.endswith("/" + name):
            for start, size, pgoff in maps:
                if start <= ip < start + size:
                    addr = ip - start + pgoff
        out.append((sym, addr, dso))
    return out


def main():
    binary = sys.argv[1]
    text = open(sys.argv[2]).read() if len(sys.argv) > 2 else sys.stdin.read()
    samples = read_samples(text, binary)
    addrs = sorted({a for _, a, _ in samples if a is not None})
    frames = {}
    if addrs:
        res = subprocess.run(["addr2line", "-f", "-i", "-C", "-a", "-e", binary] + [hex(a) for a in addrs],
                             capture_output=True, text=True).stdout.splitlines()
        cur = None
        for line in res:
            if re.fullmatch(r"0x[0-9a-f]+", line):
                cur = int(line, 16)
                frames[cur] = []
            elif cur is not None:
                frames[cur].append(line)
    src_cache = {}

    def source_line(loc):
        m = re.match(r"(.+):(\d+)", loc)
        if not m:
            return ""
        path, n = m.group(1), int(m.group(2))
        if path not in src_cache:
            try:
                src_cache[path] = open(path).read().splitlines()
            except OSError:
                src_cache[path] = []
        lines = src_cache[path]
        return lines[n - 1] if 0 < n <= len(lines) else ""

    def stage_of(sym, addr, dso):
        chain = []  # (function, location), innermost first
        if addr in frames:
            f = frames[addr]
            chain = [(f[k], f[k + 1] if k + 1 < len(f) else "") for k in range(0, len(f), 2)]
        if not chain:
            chain = [(sym, "")]
        names = " ".join(fn for fn, _ in chain) + " " + sym
        if not any(r in names for r in DECODE_ROOTS):
            return None
        for fn, loc in chain:
            if "decode_quant_v2" in fn:
                text_line = source_line(loc)
                for stage, rx in V2_LINES:
                    if rx.search(text_line):
                        return stage
                return "rANS decode (table lookup, multiply)"
            for stage, keys in RULES:
                if any(k in fn for k in keys):
                    return stage
        return "other decode code"

    counts = collections.Counter()
    outside = 0
    for s in samples:
        st = stage_of(*s)
        if st is None:
            outside += 1
        else:
            counts[st] += 1
    total = sum(counts.values())
    json.dump({"samples_decoding": total, "samples_outside_decoding": outside,
               "stages_pct": {k: round(100.0 * v / total, 1) for k, v in counts.most_common()} if total else {}},
              sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
