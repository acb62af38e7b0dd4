"""The kvstream Python module against a real sender (kvstream.Server in this process): zero-copy
fetches into paged and contiguous numpy layouts equal to `kvstream decode`, non-blocking transfers
with the GIL released, typed exceptions, put + Lookup + serving from a store, __version__."""
import os
import re
import socket
import threading
import time

import numpy as np
import pytest

import kvstream
from conftest import decoded, paged_cache, scrambled_slots


def test_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", kvstream.__version__)
    assert kvstream.__version__ == kvstream._core.library_version()


def test_paged_fetch_equals_decode_of_the_same_plan(context, server):
    levels = context.profile.levels + ["fp16", "q8", "q4"]
    plan = [levels[(2 * c) % len(levels)] for c in range(5)]
    bs, blocks = 16, 24
    caches = paged_cache(context.shape, blocks, bs)
    slots = scrambled_slots(300, blocks, bs)
    layout = kvstream.Layout([c[0] for c in caches], [c[1] for c in caches], slot_mapping=slots)
    events = []
    r = kvstream.fetch(layout, "127.0.0.1", server.port, "story", policy="plan:" + ",".join(plan),
                       on_chunk=events.append)
    assert r.complete and r.tokens == 300 and r.failed == []
    assert r.token_ids == context.tokens
    assert [e.index for e in events] == [0, 1, 2, 3, 4] and all(e.ok for e in events)
    assert r.plan == ",".join(plan)
    for c in range(5):
        want = decoded(context, plan[c], c)
        for t in range(c * 64, min(300, (c + 1) * 64)):
            b, o = divmod(int(slots[t]), bs)
            for layer, cache in enumerate(caches):
                np.testing.assert_array_equal(cache[0, b, o].view(np.uint16), want[f"k.{layer}"][t - c * 64].view(np.uint16))
                np.testing.assert_array_equal(cache[1, b, o].view(np.uint16), want[f"v.{layer}"][t - c * 64].view(np.uint16))
    # zero copy: the engine's arrays themselves were written, and only at mapped slots
    used = np.zeros(blocks * bs, bool)
    used[slots] = True
    for cache in caches:
        flat = cache.reshape(2, blocks * bs, -1)
        assert not np.isnan(flat[:, used]).any() and np.isnan(flat[:, ~used]).all()


def test_heads_major_bf16_and_contiguous_f32_layouts(context, server):
    level = context.profile.levels[0]
    want = [decoded(context, level, c) for c in range(5)]
    layers, heads, dim = context.shape
    # FlashInfer HND-like blocks [blocks, heads, block_size, dim], handed over as a strided view
    bs, blocks = 8, 40
    hnd = [np.zeros((2, blocks, heads, bs, dim), np.uint16) for _ in range(layers)]
    slots = scrambled_slots(300, blocks, bs, seed=11)
    layout = kvstream.Layout([a[0].transpose(0, 2, 1, 3) for a in hnd], [a[1].transpose(0, 2, 1, 3) for a in hnd],
                             slot_mapping=slots, dtype="bf16")
    assert kvstream.fetch(layout, "127.0.0.1", server.port, "story", policy="fixed:" + level).complete
    # contiguous fp32 [tokens, heads, dim]
    k = [np.zeros((300, heads, dim), np.float32) for _ in range(layers)]
    v = [np.zeros((300, heads, dim), np.float32) for _ in range(layers)]
    assert kvstream.fetch(kvstream.Layout(k, v), "127.0.0.1", server.port, "story", policy="fixed:" + level).complete
    for t in range(300):
        c, i = divmod(t, 64)
        b, o = divmod(int(slots[t]), bs)
        for layer in range(layers):
            f16 = want[c][f"k.{layer}"][i].astype(np.float32)
            np.testing.assert_allclose(k[layer][t], f16, rtol=1e-3, atol=1e-4)  # fp16 rounding of the same values
            bf = (hnd[layer][0, b, :, o].astype(np.uint32) << 16).view(np.float32)
            np.testing.assert_allclose(bf, k[layer][t], rtol=8e-3, atol=1e-6)  # bf16 rounding of the fp32 values


def test_non_blocking_transfer_poll_wait_and_callbacks(context, server):
    caches = paged_cache(context.shape, 24, 16)
    layout = kvstream.Layout([c[0] for c in caches], [c[1] for c in caches], slot_mapping=scrambled_slots(300, 24, 16))
    seen = []
    t = kvstream.start_fetch(layout, "127.0.0.1", server.port, "story", policy="fixed:q8", max_tokens=200,
                             on_chunk=lambda e: seen.append((e.index, tuple(e.tokens))))
    assert t.wait_tokens(128, timeout=30)
    r = t.wait()
    st = t.poll()
    assert st.done and st.ok and st.error is None
    assert st.chunks_total == 4 and st.tokens_total == 200 and st.prefix_tokens == 200
    assert r.tokens == 200 and len(r.token_ids) == 200
    assert seen == [(0, (0, 64)), (1, (64, 128)), (2, (128, 192)), (3, (192, 200))]


def silent_listener():
    """A TCP server that accepts and never answers (the fetch stalls)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    return s


def test_waiting_releases_the_gil_and_stalls_are_typed(context):
    layout = kvstream.Layout(*[[np.zeros((300,) + context.shape[1:], np.float16) for _ in range(context.shape[0])]
                               for _ in range(2)])
    lst = silent_listener()
    try:
        counter = [0]
        stop = threading.Event()

        def spin():
            while not stop.is_set():
                counter[0] += 1

        th = threading.Thread(target=spin)
        th.start()
        t0 = time.monotonic()
        with pytest.raises(kvstream.StalledError) as e:
            kvstream.fetch(layout, "127.0.0.1", lst.getsockname()[1], "story", stall_timeout_s=0.5)
        waited = time.monotonic() - t0
        before = counter[0]
        time.sleep(0.05)
        stop.set()
        th.join()
        assert isinstance(e.value, TimeoutError) and e.value.code == "stalled"
        assert waited >= 0.5
        assert before > 1000  # the other thread ran while fetch() waited
    finally:
        lst.close()


def test_typed_exceptions(context, server, tmp_path):
    shape = context.shape
    layout = kvstream.Layout(*[[np.zeros((300,) + shape[1:], np.float16) for _ in range(shape[0])] for _ in range(2)])
    with pytest.raises(kvstream.UnknownContextError) as e:
        kvstream.fetch(layout, "127.0.0.1", server.port, "no-such-context")
    assert isinstance(e.value, LookupError) and isinstance(e.value, kvstream.Error)
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(kvstream.UnavailableError):
        kvstream.fetch(layout, "127.0.0.1", port, "story")
    with pytest.raises(kvstream.InvalidArgumentError) as e:  # a layout of another model
        kvstream.fetch(kvstream.Layout(*[[np.zeros((300, 2, 8), np.float16)] * 2 for _ in range(2)]),
                       "127.0.0.1", server.port, "story")
    assert isinstance(e.value, ValueError) and "the layout is for" in str(e.value)
    with pytest.raises(kvstream.InvalidArgumentError):
        kvstream.Layout([np.zeros((4, 16, 2, 8), np.float16)], [np.zeros((4, 16, 2, 8), np.float16)])  # no slots
    with pytest.raises(kvstream.InvalidArgumentError, match="two tokens map to one slot"):
        a = np.zeros((4, 16, 2, 8), np.float16)
        kvstream.Layout([a], [a.copy()], slot_mapping=[0, 1, 1])
    with pytest.raises(kvstream.NotFoundError):
        kvstream.Profile.load(str(tmp_path / "missing.kvprofile"))
    (tmp_path / "bad.kvprofile").write_bytes(b"not a profile")
    with pytest.raises(kvstream.CorruptError):
        kvstream.Profile.load(str(tmp_path / "bad.kvprofile"))


def test_authentication(context, tmp_path):
    """A Server needs keys_file or insecure=True; with keys, a fetch proves its tenant's key."""
    with pytest.raises(kvstream.AuthError) as e:
        kvstream.Server(str(context.dir))
    assert isinstance(e.value, PermissionError)
    (tmp_path / "serve" / "acme").mkdir(parents=True)
    for f in (context.kvs, context.profile_path):
        (tmp_path / "serve" / "acme" / f.name).write_bytes(f.read_bytes())
    secret = "ab" * 32
    keys = tmp_path / "keys"
    keys.write_text(f"acme {secret}\n")
    keys.chmod(0o600)
    srv = kvstream.Server(str(tmp_path / "serve"), keys_file=str(keys))
    srv.start()
    try:
        shape = context.shape
        layout = kvstream.Layout(*[[np.zeros((300,) + shape[1:], np.float16) for _ in range(shape[0])] for _ in range(2)])
        with pytest.raises(kvstream.AuthError):
            kvstream.fetch(layout, "127.0.0.1", srv.port, "story", stall_timeout_s=2)
        r = kvstream.fetch(layout, "127.0.0.1", srv.port, "story", tenant="acme", keys_file=str(keys))
        assert r.complete and r.tokens > 0
    finally:
        srv.stop()


def test_cancel_and_partial(context, server):
    shape = context.shape
    layout = kvstream.Layout(*[[np.zeros((300,) + shape[1:], np.float16) for _ in range(shape[0])] for _ in range(2)])
    lst = silent_listener()
    try:
        t = kvstream.start_fetch(layout, "127.0.0.1", lst.getsockname()[1], "story", stall_timeout_s=30)
        time.sleep(0.1)
        t.cancel()
        with pytest.raises(kvstream.CancelledError):
            t.wait()
        assert t.poll().error == "cancelled"
    finally:
        lst.close()
    r = kvstream.fetch(layout, "127.0.0.1", server.port, "gone", partial=True, max_tokens=256)
    assert not r.complete and r.error == "unknown_context"
    assert [tuple(x) for x in r.failed] == [(0, 256)]


def test_put_lookup_and_serving_from_the_store(context, tmp_path):
    store = tmp_path / "store"
    orig = context.original
    layers = context.shape[0]
    # the engine's KV of the context, in a paged fp16 cache
    bs, blocks = 16, 24
    caches = paged_cache(context.shape, blocks, bs, fill=0)
    slots = scrambled_slots(300, blocks, bs, seed=5)
    for layer in range(layers):
        for kind, name in ((0, "k"), (1, "v")):
            caches[layer][kind].reshape(blocks * bs, *context.shape[1:])[slots] = orig[f"{name}.{layer}"].astype(np.float16)
    src = kvstream.Layout([c[0] for c in caches], [c[1] for c in caches], slot_mapping=slots, writable=False)
    res = kvstream.put(context.profile, src, context.tokens, str(store))
    assert re.fullmatch(r"[0-9a-f]{32}", res.context) and res.tokens == 300 and res.stored_bytes > 0

    lookup = kvstream.Lookup(str(store), context.profile.model_name)
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in store.iterdir()}
    assert lookup.entries == 1
    hit = lookup.longest_prefix(context.tokens[:200])
    assert (hit.matched_tokens, hit.context, hit.stored_tokens) == (200, res.context, 300)
    assert lookup.longest_prefix(context.tokens[:100] + [7, 7, 7]).matched_tokens == 100
    assert lookup.longest_prefix(np.array(context.tokens + [5, 6], np.int32)).matched_tokens == 300
    assert lookup.longest_prefix([9] * 70).matched_tokens == 0
    assert kvstream.Lookup(str(store), "another-model").longest_prefix(context.tokens).matched_tokens == 0
    after = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in store.iterdir()}
    assert before == after  # side-effect free

    with pytest.raises(kvstream.NotFoundError):
        kvstream.Lookup(str(tmp_path / "no-store"), "m")

    srv = kvstream.Server(str(context.dir), store_dir=str(store), insecure=True)
    srv.start()
    try:
        assert srv.lookup(context.tokens[:130]).matched_tokens == 130
        k = [np.zeros((300,) + context.shape[1:], np.float32) for _ in range(layers)]
        v = [np.zeros((300,) + context.shape[1:], np.float32) for _ in range(layers)]
        best = context.profile.levels[0]
        r = kvstream.fetch(kvstream.Layout(k, v), "127.0.0.1", srv.port, res.context, policy="fixed:" + best)
        assert r.complete and r.token_ids == context.tokens
    finally:
        srv.stop()
    # what comes back is the stored KV at the best level: close to the original (SNR >= 30 dB)
    sig = sum(float(((orig[f"k.{l}"] - orig[f"k.{l}"].mean(0)) ** 2).sum()) for l in range(layers))
    err = sum(float(((orig[f"k.{l}"] - k[l]) ** 2).sum()) for l in range(layers))
    assert 10 * np.log10(sig / err) >= 30
