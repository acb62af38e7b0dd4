"""A vLLM-style KV connector on top of the kvstream Python module: the skeleton an engine
integration fills in (vLLM's KVConnectorBase_V1 splits the same work between a scheduler-side and a
worker-side object; here one class plays both roles, and numpy arrays stand in for the engine's
paged KV cache tensors).

Scheduler side (cheap, synchronous, no side effects on the store):
    get_num_new_matched_tokens(request, num_computed_tokens) -> (tokens to load, load_async)
        kvstream.Lookup: the longest stored prefix of the prompt
    update_state_after_alloc(request, block_ids, num_external_tokens)
    build_connector_meta() -> ConnectorMetadata   (what the worker must load and save this step)
    request_finished(request, block_ids) -> (delay_free_blocks, params): schedule the save-back

Worker side (one kvstream Transfer per request, non-blocking, GIL released while waiting):
    register_kv_caches({layer_name: array [2, num_blocks, block_size, kv_heads, head_dim]})
    bind_connector_metadata(meta); start_load_kv()
    wait_for_layer_load(layer_name)   kvstream chunks carry every layer of their tokens, so a layer is
                                      loaded once the request's tokens are (one wait covers all layers)
    save_kv_layer(...) / wait_for_save()   saves are whole requests: kvstream.put (encode + store)
    get_finished(finished_req_ids) -> (done_sending, done_recving)
    get_block_ids_with_load_errors()  blocks whose tokens did not load: the engine recomputes them

Design decisions worth knowing:
- A request whose stored prefix cannot be fetched (entry evicted between lookup and load, corrupt
  chunk, sender gone) is not an error for the engine: the Transfer runs with partial=True and the
  tokens it could not write come back as failed ranges, i.e. blocks to recompute (vLLM's
  "load errors"), exactly like tokens that were never stored.
- At most len(prompt) - 1 tokens are loaded: the engine must compute at least the last prompt
  token to produce logits.
- The scheduler never fetches anything: Lookup only reads the store's index.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

import kvstream


@dataclasses.dataclass
class Request:
    """The part of an engine request a connector needs."""
    request_id: str
    prompt_token_ids: List[int]


@dataclasses.dataclass
class LoadSpec:
    request_id: str
    context: str            # the store entry to fetch (its key)
    first: int              # tokens [0, first) are already computed by the engine: not written
    end: int                # tokens [first, end) are loaded
    slot_mapping: np.ndarray  # slot of every token in [0, end) (-1 for tokens not to write)


@dataclasses.dataclass
class SaveSpec:
    request_id: str
    tokens: List[int]
    slot_mapping: np.ndarray


@dataclasses.dataclass
class ConnectorMetadata:
    loads: List[LoadSpec] = dataclasses.field(default_factory=list)
    saves: List[SaveSpec] = dataclasses.field(default_factory=list)


class KvstreamConnector:
    def __init__(self, *, host: str, port: int, store_dir: str, profile_path: str, block_size: int,
                 chunk_tokens: int = 64, slo_ms: float = 1000.0, policy: str = "adaptive"):
        self.host, self.port, self.store_dir = host, port, store_dir
        self.block_size, self.chunk_tokens = block_size, chunk_tokens
        self.slo_ms, self.policy = slo_ms, policy
        self.profile = kvstream.Profile.load(profile_path)
        self.lookup = kvstream.Lookup(store_dir, self.profile.model_name, chunk_tokens)
        # scheduler state
        self._matched: Dict[str, Tuple[str, int, int]] = {}   # request -> (context, first, end)
        self._blocks: Dict[str, List[int]] = {}
        self._meta = ConnectorMetadata()
        # worker state
        self._k: List[np.ndarray] = []
        self._v: List[np.ndarray] = []
        self._bound: Optional[ConnectorMetadata] = None
        self._loads: Dict[str, Tuple[kvstream.Transfer, LoadSpec]] = {}
        self._load_errors: Set[int] = set()
        self._saves: Dict[str, threading.Thread] = {}
        self._save_results: Dict[str, object] = {}

    # ---- scheduler side ----
    def get_num_new_matched_tokens(self, request: Request, num_computed_tokens: int) -> Tuple[int, bool]:
        hit = self.lookup.longest_prefix(request.prompt_token_ids)
        end = min(hit.matched_tokens, len(request.prompt_token_ids) - 1)
        if end <= num_computed_tokens:
            return 0, False
        self._matched[request.request_id] = (hit.context, num_computed_tokens, end)
        return end - num_computed_tokens, True

    def update_state_after_alloc(self, request: Request, block_ids: Sequence[int], num_external_tokens: int):
        self._blocks[request.request_id] = list(block_ids)
        if num_external_tokens == 0:
            return
        context, first, end = self._matched.pop(request.request_id)
        self._meta.loads.append(LoadSpec(request.request_id, context, first, end,
                                         self._slots(block_ids, end, first)))

    def build_connector_meta(self) -> ConnectorMetadata:
        meta, self._meta = self._meta, ConnectorMetadata()
        return meta

    def request_finished(self, request: Request, block_ids: Sequence[int]) -> Tuple[bool, Optional[dict]]:
        """Schedules the save-back of the request's prompt KV; the engine keeps the blocks until
        get_finished() reports the save done (delay_free_blocks = True)."""
        n = len(request.prompt_token_ids)
        self._meta.saves.append(SaveSpec(request.request_id, list(request.prompt_token_ids),
                                         self._slots(block_ids, n)))
        return True, None

    def _slots(self, block_ids: Sequence[int], end: int, first: int = 0) -> np.ndarray:
        t = np.arange(end)
        blocks = np.asarray(block_ids, np.int64)
        slots = blocks[t // self.block_size] * self.block_size + t % self.block_size
        slots[:first] = -1
        return slots

    # ---- worker side ----
    def register_kv_caches(self, kv_caches: Dict[str, np.ndarray]):
        """kv_caches: layer name -> [2, num_blocks, block_size, kv_heads, head_dim] (K = [0], V = [1]),
        in layer order."""
        self._k = [t[0] for t in kv_caches.values()]
        self._v = [t[1] for t in kv_caches.values()]
        self._layer_index = {name: i for i, name in enumerate(kv_caches)}

    def bind_connector_metadata(self, meta: ConnectorMetadata):
        self._bound = meta

    def start_load_kv(self):
        for spec in self._bound.loads:
            layout = kvstream.Layout(self._k, self._v, slot_mapping=spec.slot_mapping)
            t = kvstream.start_fetch(layout, self.host, self.port, spec.context, slo_ms=self.slo_ms,
                                     policy=self.policy, max_tokens=spec.end, partial=True)
            self._loads[spec.request_id] = (t, spec)
        for spec in self._bound.saves:
            th = threading.Thread(target=self._save, args=(spec,), daemon=True)
            th.start()
            self._saves[spec.request_id] = th

    def wait_for_layer_load(self, layer_name: str):
        for t, spec in self._loads.values():
            t.wait_tokens(spec.end)

    def save_kv_layer(self, layer_name: str, kv_layer=None, attn_metadata=None):
        pass  # saves are whole requests (kvstream.put encodes every layer), started in start_load_kv

    def wait_for_save(self):
        for th in list(self._saves.values()):
            th.join()

    def _save(self, spec: SaveSpec):
        layout = kvstream.Layout(self._k, self._v, slot_mapping=spec.slot_mapping, writable=False)
        try:
            self._save_results[spec.request_id] = kvstream.put(self.profile, layout, spec.tokens, self.store_dir,
                                                               chunk_tokens=self.chunk_tokens)
        except kvstream.Error as e:  # a failed save loses only the cache entry
            self._save_results[spec.request_id] = e

    def get_finished(self, finished_req_ids: Set[str]) -> Tuple[Set[str], Set[str]]:
        done_sending = {r for r, th in self._saves.items() if not th.is_alive()}
        for r in done_sending:
            del self._saves[r]
        done_recving = set()
        for r, (t, spec) in list(self._loads.items()):
            if not t.poll().done:
                continue
            result = t.wait()
            for rng in result.failed:
                lo, hi = max(rng.begin, spec.first), min(rng.end, spec.end)
                self._load_errors.update(int(s) // self.block_size for s in spec.slot_mapping[lo:hi])
            done_recving.add(r)
            del self._loads[r]
        return done_sending, done_recving

    def get_block_ids_with_load_errors(self) -> Set[int]:
        errors, self._load_errors = self._load_errors, set()
        return errors

    def save_result(self, request_id: str):
        """What the save of a finished request gave: a kvstream.PutResult or the kvstream.Error."""
        return self._save_results.get(request_id)
