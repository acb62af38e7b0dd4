// rans.h: the project's rANS entropy coder (32-bit state, 16-bit renormalisation, after ryg_rans),
// with a flat, table-driven decode step that CPU code and CUDA kernels share.
//
// The math (Duda's range variant of ANS; notation as in ryg_rans):
//   A table of frequencies f[s] >= 1 sums to M = 2^scale_bits; c[s] = f[0] + ... + f[s-1].
//   Encoding symbol s maps state x to  C(x) = (x / f[s]) * M + c[s] + (x mod f[s]).
//   Decoding inverts it: slot = x mod M identifies s (c[s] <= slot < c[s] + f[s]) and
//                        x = f[s] * (x / M) + slot - c[s].
//   Each step grows x by about log2(M / f[s]) bits = the symbol's information, so the state carries
//   the message; whole 16-bit words move between state and stream to keep x in I = [L, 2^32),
//   L = 2^16. The encoder emits a word when C(x) would leave I, i.e. when
//   x >= x_max(s) = ((L >> scale_bits) << 16) * f[s]; the decoder reads one word back when x < L.
//   With scale_bits <= 16 one word per step always suffices (x/M * f >= 2^4 before the read).
//   The encoder runs over a stream's symbols backwards, starting from x = L, and finishes by
//   storing x (the "final state"); the decoder starts from that state, walks forwards and must end
//   exactly at x = L having consumed every word — a free integrity check.
//
// Decode table ("slot table"), one per (layer, kind, channel) table, 2^scale_bits uint32 entries:
//   entry = sym << 24 | (slot - c[sym]) << 12 | f[sym]   (needs scale_bits <= 12, f < 4096)
// so a decode step is one load, a multiply-add and a conditional 16-bit read.
//
// Contract: decode_step never reads outside [ptr, end): when a corrupt stream runs dry it feeds
// zero words and sets `overrun`; callers reject a stream unless, after its last symbol,
// x == kRansL, ptr == end and overrun == 0.
//
// Interleaved groups (blob format 3, after Giesen's "Interleaved entropy coders" and htscodecs'
// rANS 32x16): kRansLanes states share ONE word stream. Symbols are dealt round-robin (symbol k of
// the group goes to state k mod kRansLanes); in each round every state decodes one symbol
// (rans_lane_decode) and then the states whose x fell below L read the next words of the shared
// stream in increasing state order (rans_lane_refill). The encoder walks the symbols backwards with
// one RansEncoder-style state per lane and a single word list, so its reversed word list is exactly
// the order the decoder reads. The states of a round are independent, which is what a SIMD register
// (8 or 16 states per instruction) or a warp (one state per thread, ballot + popc for the word
// offsets) exploits; the word order makes every implementation produce the same bits.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#if defined(__CUDACC__)
#define KVSTREAM_HD __host__ __device__
#define KVSTREAM_HD_HOT __host__ __device__ __forceinline__
#else
#define KVSTREAM_HD
#define KVSTREAM_HD_HOT inline __attribute__((always_inline))  // per-value helpers of the decode loops
#endif

namespace kvstream::codec {

inline constexpr uint32_t kRansL = 1u << 16;    // lower bound of the normalised state interval
inline constexpr int kRansMaxScaleBits = 12;    // slot-table packing limit
inline constexpr int kRansMaxSymbols = 256;     // symbols per table (8-bit symbol field)
inline constexpr uint32_t kRansLanes = 16;      // states per interleaved group (blob format 3)

// Packs one slot-table entry (see above).
KVSTREAM_HD inline uint32_t rans_slot_entry(uint32_t sym, uint32_t bias, uint32_t freq) {
  return (sym << 24) | (bias << 12) | freq;
}

// The state of one stream being decoded. ptr/end delimit its words (little-endian uint16).
struct RansDecoder {
  uint32_t x;
  const uint8_t* ptr;
  const uint8_t* end;
  uint32_t overrun;
};

// One decode step: returns the symbol at the front of the stream. `slots` is the 2^scale_bits
// entry slot table of the symbol's (layer, kind, channel). Plain inline, host and device.
KVSTREAM_HD inline uint32_t rans_decode_step(RansDecoder& d, const uint32_t* slots,
                                             uint32_t scale_bits) {
  const uint32_t e = slots[d.x & ((1u << scale_bits) - 1u)];
  d.x = (e & 0xFFFu) * (d.x >> scale_bits) + ((e >> 12) & 0xFFFu);
  if (d.x < kRansL) {
    uint32_t w = 0;
    if (d.ptr < d.end) {
      w = uint32_t(d.ptr[0]) | (uint32_t(d.ptr[1]) << 8);
      d.ptr += 2;
    } else {
      d.overrun = 1;
    }
    d.x = (d.x << 16) | w;
  }
  return e >> 24;
}

// True when a fully decoded stream ended where its encoder started (see contract).
KVSTREAM_HD inline bool rans_decoder_ok(const RansDecoder& d) {
  return d.x == kRansL && d.ptr == d.end && d.overrun == 0;
}

// Interleaved groups, one lane (state): the decode step without the refill. Returns the slot
// table entry (symbol = entry >> 24) and leaves x = f * (x / M) + slot - c[s], which may be < L.
KVSTREAM_HD inline uint32_t rans_lane_decode(uint32_t& x, const uint32_t* slots, uint32_t scale_bits) {
  const uint32_t e = slots[x & ((1u << scale_bits) - 1u)];
  x = (e & 0xFFFu) * (x >> scale_bits) + ((e >> 12) & 0xFFFu);
  return e;
}
// True when the lane reads a word this round (in increasing lane order from the shared stream).
KVSTREAM_HD inline bool rans_lane_needs_word(uint32_t x) { return x < kRansL; }
KVSTREAM_HD inline uint32_t rans_lane_refill(uint32_t x, uint32_t word) { return (x << 16) | word; }

// The encoder's half of one step: state x, word list rev (back to front, shared by a group's
// lanes). Symbol with cumulative start `start` and frequency `freq` (freq >= 1).
inline void rans_encode_put(uint32_t& x, std::vector<uint16_t>& rev, uint32_t start, uint32_t freq,
                            int scale_bits) {
  const uint32_t x_max = ((kRansL >> scale_bits) << 16) * freq;
  if (x >= x_max) {
    rev.push_back(static_cast<uint16_t>(x));
    x >>= 16;
  }
  x = ((x / freq) << scale_bits) + (x % freq) + start;
}

// A normalised frequency table: freq[s] >= 1 for every symbol, sum == 1 << scale_bits.
struct RansTable {
  int scale_bits = 12;
  std::vector<uint32_t> freq;  // size = number of symbols (2..kRansMaxSymbols)
  std::vector<uint32_t> cum;   // cum[s] = freq[0] + ... + freq[s-1]; size = symbols + 1
};

// Scales counts (any non-negative values; zero counts still get frequency 1 so every symbol stays
// codable) to a table summing to 2^scale_bits, minimising the expected code length greedily.
// Throws std::invalid_argument if counts.size() is outside [2, kRansMaxSymbols], scale_bits is
// outside [1, kRansMaxScaleBits] or there are more symbols than 2^scale_bits.
RansTable rans_normalize(std::span<const double> counts, int scale_bits);
// Builds cum from freq and checks the table (sizes, freq >= 1, sum); throws std::invalid_argument.
void rans_finish_table(RansTable& t);
// Writes the table's 2^scale_bits slot entries to out (which must hold that many).
void rans_build_slots(const RansTable& t, uint32_t* out);

// Encodes one stream. Symbols are pushed in REVERSE order (last symbol first); words accumulate
// back to front. finish() returns the final state and leaves words() = the stream in decode order.
class RansEncoder {
 public:
  void reset() { x_ = kRansL; rev_.clear(); }
  void put(uint32_t start, uint32_t freq, int scale_bits) { rans_encode_put(x_, rev_, start, freq, scale_bits); }
  // Returns the final state and writes the stream's words, little-endian, in decode order.
  uint32_t finish(std::vector<uint8_t>& out) const {
    for (size_t i = rev_.size(); i-- > 0;) {
      out.push_back(static_cast<uint8_t>(rev_[i] & 0xFF));
      out.push_back(static_cast<uint8_t>(rev_[i] >> 8));
    }
    return x_;
  }
  size_t words() const { return rev_.size(); }

 private:
  uint32_t x_ = kRansL;
  std::vector<uint16_t> rev_;
};

}  // namespace kvstream::codec
