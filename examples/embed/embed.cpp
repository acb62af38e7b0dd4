// embed: fetch a context from a kvstream sender into a paged fp16 KV cache, the way an inference
// engine's KV connector would, using only the public API (<kvstream/kvstream.h>).
//
//   embed HOST:PORT CONTEXT PROFILE POLICY MAX_TOKENS OUT
//
// The engine side is played by plain vectors: per layer, K and V tensors of
// [blocks, 16, kv_heads, head_dim] fp16, and a slot mapping that scatters the context's tokens
// over the blocks in a shuffled order (as a block allocator would). The model's shape comes from
// its codec profile (PROFILE). After the fetch, it checks the transfer's own report (every token
// ready, no failed range, no write outside the mapped slots), then writes the fetched K/V
// un-paged to OUT — for each layer, K then V, [tokens, kv_heads, head_dim] fp16 — so that a test
// can compare it with `kvstream decode` of the same plan. Exit 0 on success.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <kvstream/kvstream.h>

int main(int argc, char** argv) {
  if (argc != 7) {
    std::cerr << "usage: embed HOST:PORT CONTEXT PROFILE POLICY MAX_TOKENS OUT\n";
    return 2;
  }
  const std::string endpoint = argv[1], context = argv[2], profile_path = argv[3], policy = argv[4], out = argv[6];
  const uint64_t max_tokens = std::stoull(argv[5]);
  try {
    const kvstream::Profile profile = kvstream::Profile::load(profile_path);
    const kvstream::KvShape shape = profile.shape();
    const uint32_t block_size = 16;
    const uint64_t blocks = (max_tokens + block_size - 1) / block_size + 3;  // 3 spare blocks
    const size_t block_elems = size_t(block_size) * size_t(shape.kv_dim());
    std::vector<std::vector<uint16_t>> k(size_t(shape.n_layers)), v(size_t(shape.n_layers));
    std::vector<void*> kp, vp;
    for (int l = 0; l < shape.n_layers; ++l) {
      k[size_t(l)].assign(blocks * block_elems, 0xFFFF);  // a NaN pattern no decode produces
      v[size_t(l)].assign(blocks * block_elems, 0xFFFF);
      kp.push_back(k[size_t(l)].data());
      vp.push_back(v[size_t(l)].data());
    }
    std::vector<int64_t> block_ids(blocks);
    std::iota(block_ids.begin(), block_ids.end(), 0);
    std::shuffle(block_ids.begin(), block_ids.end(), std::mt19937(42));
    std::vector<int64_t> slots(max_tokens);
    for (uint64_t t = 0; t < max_tokens; ++t) slots[t] = block_ids[t / block_size] * block_size + int64_t(t % block_size);

    kvstream::FetchOptions opt;
    const auto colon = endpoint.rfind(':');
    opt.host = endpoint.substr(0, colon);
    opt.port = uint16_t(std::stoi(endpoint.substr(colon + 1)));
    opt.context = context;
    opt.policy = policy;
    opt.slo_ms = 10000;
    size_t chunks = 0;
    opt.on_chunk = [&](const kvstream::ChunkEvent& e) {
      ++chunks;
      std::printf("  chunk %u tokens [%llu, %llu) %s, %llu B, ready %.1f ms\n", e.index,
                  (unsigned long long)e.tokens.begin, (unsigned long long)e.tokens.end, e.level.c_str(),
                  (unsigned long long)e.bytes, e.ready_ms);
    };
    auto transfer = kvstream::Transfer::start(
        opt, kvstream::KvLayout::paged(shape, kvstream::Dtype::F16, kp, vp, blocks, block_size, slots));
    const kvstream::TransferResult r = transfer->wait();
    const kvstream::TransferStatus st = transfer->poll();
    if (!r.complete || st.prefix_tokens != r.tokens || chunks != st.chunks_total) {
      std::cerr << "embed: incomplete fetch: " << r.message << "\n";
      return 1;
    }
    // No write outside the mapped slots: the spare blocks still hold the fill pattern.
    std::vector<bool> used(blocks, false);
    for (uint64_t t = 0; t < r.tokens; ++t) used[size_t(slots[t]) / block_size] = true;
    for (uint64_t b = 0; b < blocks; ++b)
      for (int l = 0; l < shape.n_layers && !used[b]; ++l)
        if (!std::all_of(k[size_t(l)].begin() + long(b * block_elems), k[size_t(l)].begin() + long((b + 1) * block_elems),
                         [](uint16_t x) { return x == 0xFFFF; })) {
          std::cerr << "embed: block " << b << " was written but holds no token\n";
          return 1;
        }
    std::ofstream f(out, std::ios::binary);
    const size_t row = size_t(shape.kv_dim());
    for (int l = 0; l < shape.n_layers; ++l)
      for (const auto* t : {&k[size_t(l)], &v[size_t(l)]})
        for (uint64_t tok = 0; tok < r.tokens; ++tok)
          f.write(reinterpret_cast<const char*>(t->data() + size_t(slots[tok]) * row), std::streamsize(row * 2));
    if (!f) {
      std::cerr << "embed: cannot write " << out << "\n";
      return 1;
    }
    std::printf("embed: kvstream %s: fetched %s (%llu tokens, plan %s) into %llu paged fp16 blocks, TTFT %.1f ms\n",
                kvstream::version(), context.c_str(), (unsigned long long)r.tokens, r.plan.c_str(),
                (unsigned long long)blocks, r.ttft_ms);
    return 0;
  } catch (const kvstream::Error& e) {
    std::cerr << "embed: kvstream error (" << kvstream::error_code_name(e.code()) << "): " << e.what() << "\n";
    return 10 + int(e.code());
  }
}
