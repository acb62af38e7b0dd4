// kvstream._core: the Python binding of the public C++ API (include/kvstream/), through pybind11.
// python/kvstream/__init__.py re-exports it and defines the exception classes.
//
// Contract (what the binding adds to the C++ contracts):
// - Zero copy: a Layout wraps the caller's arrays through the buffer protocol (numpy arrays, or
//   anything exposing a strided buffer): kvstream writes into their memory, and the Layout keeps
//   the arrays alive for as long as a Transfer using it exists.
// - The GIL is released while kvstream waits or works (fetch, Transfer.wait / wait_tokens, put,
//   Lookup, Server start/stop); an on_chunk callback runs on kvstream's network thread holding the
//   GIL (an exception it raises is reported as unraisable and ignored).
// - Every kvstream::Error becomes the kvstream exception class of its code (kvstream.Error
//   subclasses, see __init__.py).
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "kvstream/kvstream.h"

namespace py = pybind11;
using namespace kvstream;

namespace {

Error bad(const std::string& what) { return Error(ErrorCode::kInvalidArgument, what); }

// A KvLayout over Python buffers, and the buffers it points into.
struct PyLayout {
  KvLayout layout;
  std::vector<py::object> keep;  // the arrays (their memory must outlive every use)
};

Dtype dtype_of(const py::buffer_info& b, const std::string& forced) {
  if (!forced.empty()) {
    if (forced == "bf16" || forced == "bfloat16") return Dtype::BF16;
    if (forced == "f16" || forced == "float16") return Dtype::F16;
    if (forced == "f32" || forced == "float32") return Dtype::F32;
    throw bad("unknown dtype '" + forced + "' (f16, bf16 or f32)");
  }
  if (b.format == py::format_descriptor<float>::format() && b.itemsize == 4) return Dtype::F32;
  if (b.format == "e" && b.itemsize == 2) return Dtype::F16;
  throw bad("array format '" + b.format + "' is neither float16 nor float32 (bfloat16: pass dtype='bf16')");
}

// Layout(k, v, slot_mapping=None, dtype=None, keys_pre_rope=False): k and v are per-layer lists of
// [tokens, heads, head_dim] (contiguous) or [blocks, block_size, heads, head_dim] (paged) arrays,
// any strides but a contiguous head_dim, all layers alike.
std::shared_ptr<PyLayout> make_layout(const py::sequence& k, const py::sequence& v, const py::object& slots,
                                      const std::string& dtype, bool keys_pre_rope, bool writable) {
  auto pl = std::make_shared<PyLayout>();
  KvLayout& L = pl->layout;
  if (py::len(k) == 0 || py::len(k) != py::len(v)) throw bad("k and v need one array per layer, as many of each");
  std::vector<ssize_t> shape0, strides0;
  for (size_t i = 0; i < 2 * py::len(k); ++i) {
    py::object obj = i % 2 == 0 ? k[i / 2] : v[i / 2];
    py::buffer buf = py::reinterpret_borrow<py::buffer>(obj);
    py::buffer_info b = buf.request(writable);
    if (b.ndim != 3 && b.ndim != 4) throw bad("arrays must be [tokens, heads, head_dim] or [blocks, block_size, heads, head_dim]");
    const Dtype d = dtype_of(b, dtype);
    if (size_t(b.itemsize) != element_bytes(d)) throw bad("dtype does not match the arrays' item size");
    if (b.strides.back() != b.itemsize) throw bad("head_dim must be contiguous (the last axis' stride = item size)");
    for (auto s : b.strides)
      if (s <= 0) throw bad("strides must be positive");
    if (i == 0) {
      shape0 = b.shape;
      strides0 = b.strides;
      L.dtype = d;
    } else if (b.shape != shape0 || b.strides != strides0 || d != L.dtype) {
      throw bad("every layer's K and V arrays need the same shape, strides and dtype");
    }
    (i % 2 == 0 ? L.k : L.v).push_back(b.ptr);
    pl->keep.push_back(obj);
  }
  const bool paged = shape0.size() == 4;
  L.shape = KvShape{int(py::len(k)), int(shape0[shape0.size() - 2]), int(shape0.back())};
  L.head_stride = strides0[strides0.size() - 2];
  L.token_stride = strides0[strides0.size() - 3];
  L.keys_pre_rope = keys_pre_rope;
  if (paged) {
    L.block_stride = strides0[0];
    L.block_size = uint32_t(shape0[1]);
    L.capacity = uint64_t(shape0[0]);
    if (slots.is_none()) throw bad("a paged layout ([blocks, block_size, heads, head_dim]) needs slot_mapping");
    const auto sm = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(slots);
    if (!sm || sm.ndim() != 1) throw bad("slot_mapping must be a 1-D integer array");
    L.slot_mapping.assign(sm.data(), sm.data() + sm.size());
  } else {
    if (!slots.is_none()) throw bad("slot_mapping needs paged arrays ([blocks, block_size, heads, head_dim])");
    L.capacity = uint64_t(shape0[0]);
  }
  L.validate();
  return pl;
}

std::vector<int32_t> token_vector(const py::object& tokens) {
  const auto a = py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(tokens);
  if (!a || a.ndim() != 1) throw bad("tokens must be a 1-D sequence of integers");
  return std::vector<int32_t>(a.data(), a.data() + a.size());
}

// A Transfer and what it needs from Python: the layout's arrays and the callback, destroyed only
// after the C++ Transfer (whose threads may call back into Python) has finished.
struct PyTransfer {
  std::shared_ptr<PyLayout> layout;
  py::object callback;
  std::unique_ptr<Transfer> t;
  ~PyTransfer() {
    py::gil_scoped_release nogil;
    t.reset();  // cancels and joins; the callback may still run until then (it takes the GIL)
  }
};

FetchOptions fetch_options(const std::string& host, uint16_t port, const std::string& context, double slo_ms,
                           const std::string& policy, uint64_t max_tokens, bool partial,
                           const std::string& profile_cache_dir, double stall_timeout_s, double total_timeout_s,
                           const std::string& tenant, const std::string& keys_file, const std::string& tls_ca_file) {
  FetchOptions o;
  o.tenant = tenant;
  o.keys_file = keys_file;
  o.tls_ca_file = tls_ca_file;
  o.host = host;
  o.port = port;
  o.context = context;
  o.slo_ms = slo_ms;
  o.policy = policy;
  o.max_tokens = max_tokens;
  o.partial = partial;
  o.profile_cache_dir = profile_cache_dir;
  o.stall_timeout_s = stall_timeout_s;
  o.total_timeout_s = total_timeout_s;
  return o;
}

std::unique_ptr<PyTransfer> start_transfer(std::shared_ptr<PyLayout> layout, FetchOptions o, py::object on_chunk) {
  auto pt = std::make_unique<PyTransfer>();
  pt->layout = std::move(layout);
  pt->callback = on_chunk;
  if (!on_chunk.is_none()) {
    PyObject* cb = pt->callback.ptr();  // owned by pt, which outlives the C++ Transfer
    o.on_chunk = [cb](const ChunkEvent& e) {
      py::gil_scoped_acquire gil;
      try {
        py::handle fn(cb);
        fn(e);
      } catch (py::error_already_set& err) {
        err.discard_as_unraisable("kvstream on_chunk callback");
      }
    };
  }
  const KvLayout& L = pt->layout->layout;
  py::gil_scoped_release nogil;
  pt->t = Transfer::start(o, L);
  return pt;
}

py::tuple shape_tuple(const KvShape& s) { return py::make_tuple(s.n_layers, s.n_kv_heads, s.head_dim); }

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "kvstream: stream LLM KV caches into caller-owned (paged) buffers; see kvstream/__init__.py";
  m.attr("__version__") = KVSTREAM_VERSION;
  m.def("library_version", &kvstream::version, "The version of the linked kvstream library.");

  // kvstream::Error -> the Python class registered for its code name in _error_classes (filled by
  // __init__.py); RuntimeError for a code without one.
  m.attr("_error_classes") = py::dict();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      py::dict classes = py::module_::import("kvstream._core").attr("_error_classes");
      py::object name = py::str(error_code_name(e.code()));
      py::object cls = classes.contains(name) ? py::object(classes[name])
                                              : py::reinterpret_borrow<py::object>(PyExc_RuntimeError);
      py::object exc = cls(e.what());
      try {
        exc.attr("code") = name;
      } catch (py::error_already_set&) {
      }
      PyErr_SetObject(cls.ptr(), exc.ptr());
    }
  });

  py::class_<LookupResult>(m, "LookupResult")
      .def_readonly("matched_tokens", &LookupResult::matched_tokens)
      .def_readonly("context", &LookupResult::context)
      .def_readonly("stored_tokens", &LookupResult::stored_tokens)
      .def("__repr__", [](const LookupResult& r) {
        return "LookupResult(matched_tokens=" + std::to_string(r.matched_tokens) + ", context='" + r.context +
               "', stored_tokens=" + std::to_string(r.stored_tokens) + ")";
      });

  py::class_<Lookup>(m, "Lookup", "The longest stored prefix of token sequences in a store directory (read-only).")
      .def(py::init([](const std::string& store_dir, const std::string& model_name, uint32_t chunk_tokens,
                       const std::string& tenant, const std::string& store_secret_file) {
             py::gil_scoped_release nogil;
             return std::make_unique<Lookup>(LookupOptions{store_dir, model_name, chunk_tokens, tenant, store_secret_file});
           }),
           py::arg("store_dir"), py::arg("model_name"), py::arg("chunk_tokens") = 64, py::arg("tenant") = "",
           py::arg("store_secret_file") = "")
      .def("longest_prefix",
           [](const Lookup& l, const py::object& tokens) {
             const auto t = token_vector(tokens);
             py::gil_scoped_release nogil;
             return l.longest_prefix(t);
           },
           py::arg("tokens"))
      .def_property_readonly("entries", [](const Lookup& l) {
        py::gil_scoped_release nogil;
        return l.entries();
      });

  py::class_<PyLayout, std::shared_ptr<PyLayout>>(m, "Layout",
                                                  "K/V arrays (per layer) kvstream writes into or reads from, zero-copy.")
      .def(py::init([](const py::sequence& k, const py::sequence& v, const py::object& slot_mapping,
                       const std::string& dtype, bool keys_pre_rope, bool writable) {
             return make_layout(k, v, slot_mapping, dtype, keys_pre_rope, writable);
           }),
           py::arg("k"), py::arg("v"), py::arg("slot_mapping") = py::none(), py::arg("dtype") = "",
           py::arg("keys_pre_rope") = false, py::arg("writable") = true)
      .def_property_readonly("paged", [](const PyLayout& l) { return l.layout.paged(); })
      .def_property_readonly("shape", [](const PyLayout& l) { return shape_tuple(l.layout.shape); })
      .def_property_readonly("max_tokens", [](const PyLayout& l) { return l.layout.max_tokens(); })
      .def_property_readonly("block_size", [](const PyLayout& l) { return l.layout.block_size; });

  py::class_<TokenRange>(m, "TokenRange")
      .def_readonly("begin", &TokenRange::begin)
      .def_readonly("end", &TokenRange::end)
      .def("__iter__", [](const TokenRange& r) { return py::iter(py::make_tuple(r.begin, r.end)); })
      .def("__eq__", [](const TokenRange& a, const py::tuple& b) {
        return py::len(b) == 2 && a.begin == b[0].cast<uint64_t>() && a.end == b[1].cast<uint64_t>();
      })
      .def("__repr__", [](const TokenRange& r) { return "(" + std::to_string(r.begin) + ", " + std::to_string(r.end) + ")"; });

  py::class_<ChunkEvent>(m, "ChunkEvent")
      .def_readonly("index", &ChunkEvent::index)
      .def_readonly("tokens", &ChunkEvent::tokens)
      .def_readonly("ok", &ChunkEvent::ok)
      .def_readonly("level", &ChunkEvent::level)
      .def_readonly("bytes", &ChunkEvent::bytes)
      .def_readonly("ready_ms", &ChunkEvent::ready_ms)
      .def_readonly("error", &ChunkEvent::error);

  py::class_<TransferStatus>(m, "TransferStatus")
      .def_readonly("prefix_tokens", &TransferStatus::prefix_tokens)
      .def_readonly("tokens_ready", &TransferStatus::tokens_ready)
      .def_readonly("tokens_total", &TransferStatus::tokens_total)
      .def_readonly("chunks_ready", &TransferStatus::chunks_ready)
      .def_readonly("chunks_failed", &TransferStatus::chunks_failed)
      .def_readonly("chunks_total", &TransferStatus::chunks_total)
      .def_readonly("done", &TransferStatus::done)
      .def_readonly("ok", &TransferStatus::ok)
      .def_property_readonly("error", [](const TransferStatus& s) -> py::object {
        if (!s.done || s.ok) return py::none();
        return py::str(error_code_name(s.error));
      })
      .def_readonly("message", &TransferStatus::message);

  py::class_<TransferResult>(m, "TransferResult")
      .def_readonly("context", &TransferResult::context)
      .def_readonly("tokens", &TransferResult::tokens)
      .def_readonly("token_ids", &TransferResult::token_ids)
      .def_readonly("failed", &TransferResult::failed)
      .def_readonly("complete", &TransferResult::complete)
      .def_readonly("ttft_ms", &TransferResult::ttft_ms)
      .def_readonly("bytes", &TransferResult::bytes)
      .def_readonly("plan", &TransferResult::plan)
      .def_readonly("report_json", &TransferResult::report_json)
      .def_property_readonly("error", [](const TransferResult& r) -> py::object {
        if (r.complete) return py::none();
        return py::str(error_code_name(r.error));
      })
      .def_readonly("message", &TransferResult::message);

  py::class_<PyTransfer>(m, "Transfer", "A fetch in progress (kvstream.start_fetch).")
      .def("poll", [](const PyTransfer& t) { return t.t->poll(); })
      .def("wait_tokens",
           [](const PyTransfer& t, uint64_t n, const py::object& timeout) {
             const double s = timeout.is_none() ? -1.0 : timeout.cast<double>();
             py::gil_scoped_release nogil;
             return t.t->wait_tokens(n, s);
           },
           py::arg("n"), py::arg("timeout") = py::none())
      .def("wait",
           [](PyTransfer& t) {
             py::gil_scoped_release nogil;
             return t.t->wait();
           })
      .def("cancel", [](PyTransfer& t) { t.t->cancel(); });

  // start_fetch() and fetch() take the same arguments.
  auto def_fetch = [&m](const char* name, const char* doc, auto finish) {
    m.def(name,
          [finish](std::shared_ptr<PyLayout> layout, const std::string& host, uint16_t port, const std::string& context,
                   double slo_ms, const std::string& policy, uint64_t max_tokens, bool partial,
                   const std::string& profile_cache_dir, double stall_timeout_s, double total_timeout_s,
                   py::object on_chunk, const std::string& tenant, const std::string& keys_file,
                   const std::string& tls_ca_file) {
            return finish(start_transfer(std::move(layout),
                                         fetch_options(host, port, context, slo_ms, policy, max_tokens, partial,
                                                       profile_cache_dir, stall_timeout_s, total_timeout_s, tenant,
                                                       keys_file, tls_ca_file),
                                         on_chunk));
          },
          doc, py::arg("layout"), py::arg("host"), py::arg("port"), py::arg("context"), py::arg("slo_ms") = 1000.0,
          py::arg("policy") = "adaptive", py::arg("max_tokens") = 0, py::arg("partial") = false,
          py::arg("profile_cache_dir") = "", py::arg("stall_timeout_s") = 5.0, py::arg("total_timeout_s") = 120.0,
          py::arg("on_chunk") = py::none(), py::arg("tenant") = "", py::arg("keys_file") = "",
          py::arg("tls_ca_file") = "");
  };
  def_fetch("start_fetch", "Start fetching a context from a kvstream sender into `layout`; returns a Transfer.",
            [](std::unique_ptr<PyTransfer> t) { return t; });
  def_fetch("fetch", "Fetch a context from a kvstream sender into `layout` (blocking, GIL released).",
            [](std::unique_ptr<PyTransfer> t) {
              py::gil_scoped_release nogil;
              return t->t->wait();
            });

  py::class_<Server>(m, "Server", "A kvstream sender in this process (directory and store sources).")
      .def(py::init([](const std::string& dir, const std::string& store_dir, const std::string& host, uint16_t port,
                       const std::string& model_name, uint64_t store_mem_bytes, uint64_t store_disk_bytes,
                       const std::string& store_policy, uint32_t chunk_tokens, const std::string& keys_file,
                       bool insecure, const std::string& store_secret_file, const std::string& tls_cert_file,
                       const std::string& tls_key_file) {
             ServerOptions o;
             o.keys_file = keys_file;
             o.insecure = insecure;
             o.store_secret_file = store_secret_file;
             o.tls_cert_file = tls_cert_file;
             o.tls_key_file = tls_key_file;
             o.dir = dir;
             o.store_dir = store_dir;
             o.host = host;
             o.port = port;
             o.model_name = model_name;
             o.store_mem_bytes = store_mem_bytes;
             o.store_disk_bytes = store_disk_bytes;
             o.store_policy = store_policy;
             o.chunk_tokens = chunk_tokens;
             py::gil_scoped_release nogil;
             return std::make_unique<Server>(o);
           }),
           py::arg("dir"), py::arg("store_dir") = "", py::arg("host") = "127.0.0.1", py::arg("port") = 0,
           py::arg("model_name") = "", py::arg("store_mem_bytes") = uint64_t(0),
           py::arg("store_disk_bytes") = uint64_t(1) << 30, py::arg("store_policy") = "lru",
           py::arg("chunk_tokens") = 64, py::arg("keys_file") = "", py::arg("insecure") = false,
           py::arg("store_secret_file") = "", py::arg("tls_cert_file") = "", py::arg("tls_key_file") = "")
      .def("start", [](Server& s) {
        py::gil_scoped_release nogil;
        s.start();
      })
      .def("stop", [](Server& s) {
        py::gil_scoped_release nogil;
        s.stop();
      })
      .def_property_readonly("port", &Server::port)
      .def("lookup",
           [](const Server& s, const py::object& tokens, const std::string& tenant) {
             const auto t = token_vector(tokens);
             py::gil_scoped_release nogil;
             return s.lookup(t, tenant);
           },
           py::arg("tokens"), py::arg("tenant") = "");

  py::class_<Profile>(m, "Profile", "A codec profile (tables, steps, level ladder) of one model.")
      .def_static("load", [](const std::string& path) {
        py::gil_scoped_release nogil;
        return Profile::load(path);
      })
      .def_property_readonly("model_name", &Profile::model_name)
      .def_property_readonly("shape", [](const Profile& p) { return shape_tuple(p.shape()); })
      .def_property_readonly("levels", &Profile::level_names)
      .def_property_readonly("hash", &Profile::hash);

  py::class_<PutResult>(m, "PutResult")
      .def_readonly("context", &PutResult::context)
      .def_readonly("tokens", &PutResult::tokens)
      .def_readonly("stored_bytes", &PutResult::stored_bytes)
      .def_readonly("seconds", &PutResult::seconds);
  m.def("put",
        [](const Profile& profile, std::shared_ptr<PyLayout> layout, const py::object& tokens,
           const std::string& store_dir, uint64_t disk_bytes, uint32_t chunk_tokens, const std::string& tenant,
           const std::string& store_secret_file) {
          const auto t = token_vector(tokens);
          PutOptions o{store_dir, disk_bytes, chunk_tokens, tenant, store_secret_file};
          py::gil_scoped_release nogil;
          return put(profile, layout->layout, t, o);
        },
        "Encode tokens' K/V from `layout` with `profile` and store them in store_dir (see include/kvstream/store.h).",
        py::arg("profile"), py::arg("layout"), py::arg("tokens"), py::arg("store_dir"),
        py::arg("disk_bytes") = uint64_t(1) << 30, py::arg("chunk_tokens") = 64, py::arg("tenant") = "",
        py::arg("store_secret_file") = "");
}
