"""kvstream: stream LLM KV caches over the network into caller-owned (paged) buffers.

The Python face of the kvstream C++ library (include/kvstream/; contracts there):

    Lookup(store_dir, model_name).longest_prefix(tokens)   how many leading tokens a store holds
    Layout(k, v, slot_mapping=None)                         per-layer numpy arrays, zero-copy:
        [tokens, heads, head_dim] (contiguous) or [blocks, block_size, heads, head_dim] (paged)
    fetch(layout, host, port, context, ...)                 a context into the layout (GIL released)
    start_fetch(...) -> Transfer                            non-blocking: poll(), wait_tokens(n),
                                                            wait(), cancel(), on_chunk callbacks
    Server(dir, store_dir=..., keys_file=... or insecure=True)  a sender in this process
    Profile.load(path), put(profile, layout, tokens, store_dir)   encode + store (save-back)

Errors are kvstream.Error subclasses, one per error code (kvstream.ERROR_CLASSES), each also
deriving from the closest built-in exception (e.g. kvstream.InvalidArgumentError is a ValueError).
"""
import builtins as _builtins

from . import _core
from ._core import (ChunkEvent, Layout, Lookup, LookupResult, Profile, PutResult, Server, TokenRange,
                    Transfer, TransferResult, TransferStatus, fetch, put, start_fetch)

__version__ = _core.__version__


class Error(Exception):
    """A kvstream error; `code` is the stable code name ("corrupt", "unknown_context", ...)."""
    code = "internal"


def _error_class(name, code, *bases):
    cls = type(name, (Error,) + bases, {"code": code, "__doc__": f"kvstream error code '{code}'."})
    globals()[name] = cls
    return cls


ERROR_CLASSES = {c.code: c for c in [
    _error_class("InvalidArgumentError", "invalid_argument", ValueError),
    _error_class("NotFoundError", "not_found", FileNotFoundError),
    _error_class("IoError", "io", OSError),
    _error_class("CorruptError", "corrupt"),
    _error_class("ProtocolError", "protocol"),
    _error_class("VersionError", "version"),
    _error_class("UnknownContextError", "unknown_context", LookupError),
    _error_class("StalledError", "stalled", _builtins.TimeoutError),
    _error_class("ClosedError", "closed", ConnectionError),
    _error_class("TimeoutError", "timeout", _builtins.TimeoutError),
    _error_class("AuthError", "auth", PermissionError),
    _error_class("ResourceExhaustedError", "resource_exhausted", MemoryError),
    _error_class("UnavailableError", "unavailable", ConnectionError),
    _error_class("CancelledError", "cancelled"),
    _error_class("InternalError", "internal", RuntimeError),
]}
_core._error_classes.update(ERROR_CLASSES)

__all__ = ["__version__", "Error", "ERROR_CLASSES", "ChunkEvent", "Layout", "Lookup", "LookupResult", "Profile",
           "PutResult", "Server", "TokenRange", "Transfer", "TransferResult", "TransferStatus", "fetch", "put",
           "start_fetch"] + [c.__name__ for c in ERROR_CLASSES.values()]
