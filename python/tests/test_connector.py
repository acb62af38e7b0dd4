"""examples/python/connector.py, the vLLM-style connector skeleton, with numpy arrays standing in
for the engine's paged KV cache: request A is prefilled by the "engine" (the original KV) and
saved back; request B shares A's prompt prefix: the scheduler's lookup finds it, the worker loads
it into B's freshly allocated blocks, and those blocks then hold exactly what `kvstream decode` of
the stored entry gives; tokens the engine had already computed are left alone; an entry that
vanished between lookup and load comes back as blocks to recompute."""
import numpy as np
import pytest

import kvstream
from conftest import kv_cli, read_safetensors
from connector import KvstreamConnector, Request

BS = 16
BLOCKS = 64


class BlockAllocator:
    def __init__(self, n, seed=1):
        self.free = list(np.random.default_rng(seed).permutation(n))

    def take(self, tokens):
        n = -(-tokens // BS)
        out, self.free = self.free[:n], self.free[n:]
        return [int(b) for b in out]


@pytest.fixture()
def engine(context, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    srv = kvstream.Server(str(context.dir), store_dir=str(store), insecure=True)
    srv.start()
    layers, heads, dim = context.shape
    caches = {f"layer.{l}": np.full((2, BLOCKS, BS, heads, dim), np.nan, np.float16) for l in range(layers)}
    best = context.profile.levels[0]
    conn = KvstreamConnector(host="127.0.0.1", port=srv.port, store_dir=str(store),
                             profile_path=str(context.profile_path), block_size=BS, policy="fixed:" + best)
    conn.register_kv_caches(caches)
    yield conn, caches, store, srv, best
    srv.stop()


def prefill_and_save(context, conn, caches, alloc):
    """Request A: nothing stored yet, the engine computes the prompt itself (here: the original KV)
    and the connector saves it back when the request finishes."""
    a = Request("A", context.tokens)
    assert conn.get_num_new_matched_tokens(a, 0) == (0, False)
    blocks = alloc.take(300)
    conn.update_state_after_alloc(a, blocks, 0)
    t = np.arange(300)
    slots = np.asarray(blocks)[t // BS] * BS + t % BS
    for l, cache in enumerate(caches.values()):
        cache[0].reshape(BLOCKS * BS, *cache.shape[3:])[slots] = context.original[f"k.{l}"].astype(np.float16)
        cache[1].reshape(BLOCKS * BS, *cache.shape[3:])[slots] = context.original[f"v.{l}"].astype(np.float16)
    assert conn.request_finished(a, blocks) == (True, None)
    conn.bind_connector_metadata(conn.build_connector_meta())
    conn.start_load_kv()
    conn.wait_for_save()
    sent, recvd = conn.get_finished({"A"})
    assert sent == {"A"} and recvd == set()
    saved = conn.save_result("A")
    assert isinstance(saved, kvstream.PutResult) and saved.tokens == 300
    return saved


def stored_decode(context, store, key, level, tmp_path):
    """K/V of the stored entry at `level`, as `kvstream store get` + `kvstream decode` give them."""
    kv_cli("store", "get", "--dir", store, "--key", key, "--model-name", context.profile.model_name,
           "-o", tmp_path / "entry.kvs")
    kv_cli("decode", tmp_path / "entry.kvs", "--profile", context.profile_path, "--level", level, "--dtype", "f16",
           "-o", tmp_path / "entry.safetensors")
    return read_safetensors(tmp_path / "entry.safetensors")[1]


def load(conn, request, num_computed, alloc):
    n, asynchronous = conn.get_num_new_matched_tokens(request, num_computed)
    blocks = alloc.take(len(request.prompt_token_ids))
    conn.update_state_after_alloc(request, blocks, n)
    conn.bind_connector_metadata(conn.build_connector_meta())
    conn.start_load_kv()
    for name in ["layer.0", "layer.4"]:
        conn.wait_for_layer_load(name)
    finished = set()
    while request.request_id not in finished:
        finished |= conn.get_finished(set())[1]
    return n, asynchronous, blocks


def test_save_then_load_a_shared_prefix_into_paged_arrays(context, engine, tmp_path):
    conn, caches, store, srv, best = engine
    alloc = BlockAllocator(BLOCKS)
    saved = prefill_and_save(context, conn, caches, alloc)
    # Request B: A's first 260 tokens, then something new.
    b = Request("B", context.tokens[:260] + [17, 23, 5, 9])
    n, asynchronous, blocks = load(conn, b, 0, alloc)
    assert (n, asynchronous) == (260, True)
    assert conn.get_block_ids_with_load_errors() == set()
    want = stored_decode(context, store, saved.context, best, tmp_path)
    for l, cache in enumerate(caches.values()):
        for t in range(264):
            row_k = cache[0, blocks[t // BS], t % BS]
            if t < 260:
                np.testing.assert_array_equal(row_k.view(np.uint16), want[f"k.{l}"][t].view(np.uint16))
                np.testing.assert_array_equal(cache[1, blocks[t // BS], t % BS].view(np.uint16),
                                              want[f"v.{l}"][t].view(np.uint16))
            else:
                assert np.isnan(row_k).all()  # the engine computes these itself


def test_tokens_the_engine_already_computed_are_not_written(context, engine):
    conn, caches, store, srv, best = engine
    alloc = BlockAllocator(BLOCKS, seed=2)
    prefill_and_save(context, conn, caches, alloc)
    c = Request("C", context.tokens[:200])
    n, _, blocks = load(conn, c, 64, alloc)  # the first 64 tokens were a local prefix-cache hit
    assert n == 199 - 64
    for cache in caches.values():
        assert np.isnan(cache[0, blocks[0]]).all() and np.isnan(cache[0, blocks[3]]).all()  # tokens 0..63
        assert not np.isnan(cache[0, blocks[4]]).any()  # token 64.. loaded
        assert not np.isnan(cache[0, blocks[12], :199 - 192]).any()  # up to token 198


def test_an_entry_gone_between_lookup_and_load_is_blocks_to_recompute(context, engine):
    conn, caches, store, srv, best = engine
    alloc = BlockAllocator(BLOCKS, seed=3)
    prefill_and_save(context, conn, caches, alloc)
    d = Request("D", context.tokens[:150])
    n, _ = conn.get_num_new_matched_tokens(d, 0)
    assert n == 149
    for f in store.glob("*.kvrec"):
        f.unlink()  # evicted by another process
    blocks = alloc.take(150)
    conn.update_state_after_alloc(d, blocks, n)
    conn.bind_connector_metadata(conn.build_connector_meta())
    conn.start_load_kv()
    conn.wait_for_layer_load("layer.0")
    finished = set()
    while "D" not in finished:
        finished |= conn.get_finished(set())[1]
    assert conn.get_block_ids_with_load_errors() == set(blocks[:10])  # tokens 0..148 = blocks 0..9
