// netsim/trace.cpp — trace parsing (Mahimahi / cooked / const), scaling, looping capacity queries.
#include "netsim/trace.h"
#include "netsim/trace_data.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

namespace kvstream::netsim {

std::uint64_t Trace::Data::in_period_bytes(TimeNs r) const {
  if (fluid) {
    const auto it = std::upper_bound(start.begin(), start.end(), r);
    const std::size_t i = static_cast<std::size_t>(it - start.begin()) - 1;
    const u128 a = acc[i] + u128(rate[i]) * u128(r - start[i]);
    return static_cast<std::uint64_t>(a / kAccPerByte);
  }
  const auto it = std::upper_bound(offset.begin(), offset.end(), r);
  const std::size_t n = static_cast<std::size_t>(it - offset.begin());
  return n ? cum[n - 1] : 0;
}

TimeNs Trace::Data::in_period_time(std::uint64_t rem) const {
  if (fluid) {
    const u128 target = u128(rem) * kAccPerByte;
    // the first segment whose end holds the target; the one before it ends below the target, so
    // this segment has a positive rate
    const auto it = std::lower_bound(acc.begin() + 1, acc.end(), target);
    const std::size_t i = static_cast<std::size_t>(it - acc.begin()) - 1;
    const u128 need = target - acc[i];
    const u128 ns = (need + rate[i] - 1) / rate[i];
    return start[i] + static_cast<TimeNs>(ns);
  }
  const auto it = std::lower_bound(cum.begin(), cum.end(), rem);
  return offset[static_cast<std::size_t>(it - cum.begin())];
}

namespace {

std::string where(const std::string& name, std::size_t line) {
  return name + ":" + std::to_string(line) + ": ";
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> fields(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    std::size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

bool parse_double(std::string_view s, double& v) {
  // std::from_chars for double is available in libstdc++ 11+.
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && std::isfinite(v);
}

bool parse_u64(std::string_view s, std::uint64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

// Split content into (line number, trimmed text) for non-empty, non-comment lines.
std::vector<std::pair<std::size_t, std::string_view>> content_lines(std::string_view content) {
  std::vector<std::pair<std::size_t, std::string_view>> out;
  std::size_t line = 0, pos = 0;
  while (pos <= content.size()) {
    std::size_t nl = content.find('\n', pos);
    if (nl == std::string_view::npos) nl = content.size();
    ++line;
    std::string_view l = trim(content.substr(pos, nl - pos));
    if (!l.empty() && l.front() != '#') out.emplace_back(line, l);
    pos = nl + 1;
  }
  return out;
}

// Apply `scale` to unscaled per-opportunity bytes (cumulative rounding), merge equal offsets and
// drop zero-byte opportunities. Input offsets must be sorted, in [0, period).
std::shared_ptr<Trace::Data> finish(std::string name, TraceFormat format, double scale, TimeNs period,
                                    const std::vector<TimeNs>& offsets, const std::vector<std::uint64_t>& bytes,
                                    std::uint64_t unscaled_skip = 0) {
  if (!(scale > 0) || !std::isfinite(scale))
    throw TraceError(name + ": scale must be a positive finite number (got " + std::to_string(scale) + ")");
  if (period <= 0) throw TraceError(name + ": trace period is zero (need a last timestamp > 0)");
  auto d = std::make_shared<Trace::Data>();
  d->name = std::move(name);
  d->format = format;
  d->scale = scale;
  d->period = period;
  long double unscaled = 0;
  std::uint64_t prev = 0;
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    unscaled += static_cast<long double>(bytes[i]);
    long double s = unscaled * static_cast<long double>(scale);
    if (s > 1e18L) throw TraceError(d->name + ": capacity too large after scaling");
    std::uint64_t c = static_cast<std::uint64_t>(std::llround(s));
    if (c == prev) continue;
    if (!d->offset.empty() && d->offset.back() == offsets[i]) {
      d->cum.back() = c;
    } else {
      d->offset.push_back(offsets[i]);
      d->cum.push_back(c);
    }
    prev = c;
  }
  if (d->total() == 0)
    throw TraceError(d->name + ": trace has zero capacity" + (scale != 1.0 ? " (after scaling)" : ""));
  if (unscaled_skip && !d->offset.empty() && d->offset.front() == 0) {
    const auto sk = static_cast<std::uint64_t>(std::llround(static_cast<long double>(unscaled_skip) * scale));
    d->skip = std::min(sk, d->cum.front());
  }
  return d;
}

std::shared_ptr<Trace::Data> parse_mahimahi(const std::vector<std::pair<std::size_t, std::string_view>>& lines,
                                            const std::string& name, double scale) {
  std::vector<std::uint64_t> ms;
  ms.reserve(lines.size());
  for (auto& [ln, text] : lines) {
    std::uint64_t v = 0;
    auto f = fields(text);
    if (f.size() != 1 || !parse_u64(f[0], v))
      throw TraceError(where(name, ln) + "expected one non-negative integer millisecond timestamp, got '" +
                       std::string(text.substr(0, 60)) + "'");
    if (v > 1'000'000'000'000ull) throw TraceError(where(name, ln) + "timestamp too large");
    if (!ms.empty() && v < ms.back())
      throw TraceError(where(name, ln) + "non-monotonic time: " + std::to_string(v) + " ms after " +
                       std::to_string(ms.back()) + " ms");
    ms.push_back(v);
  }
  const TimeNs period = static_cast<TimeNs>(ms.back()) * 1'000'000;
  if (period <= 0) throw TraceError(name + ": trace period is zero (last timestamp must be > 0 ms)");
  // Offsets in [0, period): the last timestamp (== period) is offset 0 of the next loop.
  std::vector<TimeNs> off;
  std::vector<std::uint64_t> bytes;
  std::uint64_t at_period = 0;
  for (std::uint64_t v : ms) {
    TimeNs t = static_cast<TimeNs>(v) * 1'000'000;
    if (t == period) {
      ++at_period;
      continue;
    }
    if (!off.empty() && off.back() == t) {
      bytes.back() += kMtuBytes;
    } else {
      off.push_back(t);
      bytes.push_back(kMtuBytes);
    }
  }
  if (at_period) {
    if (!off.empty() && off.front() == 0) {
      bytes.front() += at_period * kMtuBytes;
    } else {
      off.insert(off.begin(), 0);
      bytes.insert(bytes.begin(), at_period * kMtuBytes);
    }
  }
  return finish(name, TraceFormat::kMahimahi, scale, period, off, bytes, at_period * kMtuBytes);
}

// Cooked lines -> rate segments (see trace.h for the rule on repeated timestamps).
std::shared_ptr<Trace::Data> parse_cooked(const std::vector<std::pair<std::size_t, std::string_view>>& lines,
                                          const std::string& name, double scale) {
  if (!(scale > 0) || !std::isfinite(scale))
    throw TraceError(name + ": scale must be a positive finite number (got " + std::to_string(scale) + ")");
  std::vector<double> t, mbps;
  t.reserve(lines.size());
  mbps.reserve(lines.size());
  for (auto& [ln, text] : lines) {
    auto f = fields(text);
    double a = 0, b = 0;
    if (f.size() != 2 || !parse_double(f[0], a) || !parse_double(f[1], b))
      throw TraceError(where(name, ln) + "expected 'time_s bandwidth_Mbps' (two finite numbers), got '" +
                       std::string(text.substr(0, 60)) + "'");
    if (a < 0 || b < 0) throw TraceError(where(name, ln) + "negative time or bandwidth");
    if (!t.empty() && a < t.back())
      throw TraceError(where(name, ln) + "non-monotonic time: " + std::to_string(a) + " s after " +
                       std::to_string(t.back()) + " s (time must not decrease)");
    if (a > 1e8) throw TraceError(where(name, ln) + "time too large (limit 10^8 s)");
    if (b > 1e7) throw TraceError(where(name, ln) + "bandwidth too large (limit 10^7 Mbit/s)");
    t.push_back(a);
    mbps.push_back(b);
  }
  // Runs of equal times: [first line, end line) per distinct time.
  std::vector<std::size_t> run_begin;
  for (std::size_t i = 0; i < t.size(); ++i)
    if (i == 0 || t[i] != t[i - 1]) run_begin.push_back(i);
  const std::size_t m = run_begin.size();
  run_begin.push_back(t.size());
  const double last_span = m > 1 ? t[run_begin[m - 1]] - t[run_begin[m - 2]] : 1.0;
  const double t0 = t.front();
  const double period_s = (t.back() - t0) + last_span;
  const TimeNs period = seconds_to_ns(period_s);
  if (period <= 0) throw TraceError(name + ": trace period is zero");

  auto d = std::make_shared<Trace::Data>();
  d->name = name;
  d->format = TraceFormat::kCooked;
  d->scale = scale;
  d->period = period;
  d->fluid = true;
  d->start.reserve(m);
  d->rate.reserve(m);
  for (std::size_t j = 0; j < m; ++j) {
    const double u = t[run_begin[j]] - t0;
    const double span = (j + 1 < m ? t[run_begin[j + 1]] - t0 : period_s) - u;
    const std::size_t k = run_begin[j + 1] - run_begin[j];
    for (std::size_t q = 0; q < k; ++q) {
      const TimeNs st = seconds_to_ns(u + span * static_cast<double>(q) / static_cast<double>(k));
      if (st >= period) break;
      const double bps = mbps[run_begin[j] + q] * 1e6 * scale;
      if (bps > 1e16) throw TraceError(name + ": bandwidth too large after scaling (limit 10^16 bit/s)");
      const auto r = static_cast<std::uint64_t>(std::llround(bps));
      if (!d->start.empty() && d->start.back() == st) {  // a zero-length part: the later sample holds
        d->rate.back() = r;
      } else if (!d->rate.empty() && d->rate.back() == r) {
        continue;  // same rate: one segment
      } else {
        d->start.push_back(st);
        d->rate.push_back(r);
      }
    }
  }
  // Merging zero-length parts may have left equal neighbours.
  std::size_t w = 0;
  for (std::size_t i = 0; i < d->start.size(); ++i) {
    if (w > 0 && d->rate[w - 1] == d->rate[i]) continue;
    d->start[w] = d->start[i];
    d->rate[w] = d->rate[i];
    ++w;
  }
  d->start.resize(w);
  d->rate.resize(w);
  d->acc.assign(w + 1, 0);
  for (std::size_t i = 0; i < w; ++i) {
    const TimeNs end = i + 1 < w ? d->start[i + 1] : period;
    d->acc[i + 1] = d->acc[i] + u128(d->rate[i]) * u128(end - d->start[i]);
  }
  const u128 total = d->acc[w] / kAccPerByte;
  if (total > u128(1'000'000'000'000'000'000ull))
    throw TraceError(name + ": capacity of one period cannot be represented (over 10^18 bytes)");
  d->fluid_total = static_cast<std::uint64_t>(total);
  if (d->fluid_total == 0)
    throw TraceError(name + ": trace has zero capacity" + (scale != 1.0 ? " (after scaling)" : ""));
  return d;
}

// "# kvstream: delay_ms=<ms>" anywhere in the content (the last one wins).
TimeNs path_delay_directive(std::string_view content, const std::string& name) {
  constexpr std::string_view kKey = "# kvstream: delay_ms=";
  TimeNs delay = 0;
  std::size_t pos = 0;
  while ((pos = content.find(kKey, pos)) != std::string_view::npos) {
    if (pos > 0 && content[pos - 1] != '\n') {
      pos += kKey.size();
      continue;
    }
    std::size_t e = content.find('\n', pos);
    if (e == std::string_view::npos) e = content.size();
    const std::string_view v = trim(content.substr(pos + kKey.size(), e - pos - kKey.size()));
    double ms = 0;
    if (!parse_double(v, ms) || ms < 0 || ms > 1e5)
      throw TraceError(name + ": bad '# kvstream: delay_ms=' directive (expected 0..100000 ms)");
    delay = seconds_to_ns(ms / 1e3);
    pos = e;
  }
  return delay;
}

}  // namespace

double parse_rate_bps(std::string_view rate) {
  std::string s;
  for (char c : rate) s.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  std::size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.' || s[i] == 'e' ||
                          ((s[i] == '+' || s[i] == '-') && i > 0 && s[i - 1] == 'e')))
    ++i;
  // 'e' may have been swallowed from a unit; back off if the unit part does not parse.
  std::string num = s.substr(0, i), unit = s.substr(i);
  double v = 0;
  if (num.empty() || !parse_double(num, v))
    throw TraceError("bad rate '" + std::string(rate) + "': expected <number><unit>, e.g. 50mbit");
  double mult = 0;
  if (unit == "bit" || unit == "bps") mult = 1;
  else if (unit == "kbit") mult = 1e3;
  else if (unit == "mbit") mult = 1e6;
  else if (unit == "gbit") mult = 1e9;
  else throw TraceError("bad rate unit in '" + std::string(rate) + "': use bit, kbit, mbit or gbit");
  const double bps = v * mult;
  if (!(bps > 0) || !std::isfinite(bps) || bps > 1e13)
    throw TraceError("bad rate '" + std::string(rate) + "': must be > 0 and <= 10 Tbit");
  return bps;
}

Trace Trace::constant(double bits_per_second, double scale) {
  if (!(bits_per_second > 0) || !std::isfinite(bits_per_second))
    throw TraceError("constant trace: rate must be > 0 bits/s");
  const double period_s = 8.0 * kMtuBytes / bits_per_second;
  if (period_s > 1e6) throw TraceError("constant trace: rate too low");
  TimeNs period = seconds_to_ns(period_s);
  if (period < 1) period = 1;
  std::ostringstream nm;
  nm << "const:" << bits_per_second / 1e6 << "mbit";
  // One opportunity at every multiple of the period, the first at t = period (as Mahimahi would
  // play a one-line trace "period").
  return Trace(finish(nm.str(), TraceFormat::kConstant, scale, period, {0}, {kMtuBytes}, kMtuBytes));
}

Trace Trace::from_opportunities(std::vector<TimeNs> offsets_ns, std::vector<std::uint64_t> bytes, TimeNs period_ns,
                                const std::string& name) {
  if (offsets_ns.size() != bytes.size()) throw TraceError(name + ": offsets and bytes differ in length");
  for (std::size_t i = 0; i < offsets_ns.size(); ++i) {
    if (offsets_ns[i] < 0 || offsets_ns[i] >= period_ns)
      throw TraceError(name + ": opportunity offset outside [0, period)");
    if (i && offsets_ns[i] < offsets_ns[i - 1]) throw TraceError(name + ": non-monotonic opportunity offsets");
  }
  return Trace(finish(name, TraceFormat::kMahimahi, 1.0, period_ns, offsets_ns, bytes));
}

Trace Trace::parse(std::string_view content, double scale, const std::string& name) {
  if (!(scale > 0) || !std::isfinite(scale))
    throw TraceError(name + ": scale must be a positive finite number");
  auto lines = content_lines(content);
  if (lines.empty()) throw TraceError(name + ": empty trace (no data lines)");
  const auto first = fields(lines.front().second);
  std::shared_ptr<Trace::Data> d;
  if (first.size() == 1) d = parse_mahimahi(lines, name, scale);
  else if (first.size() == 2) d = parse_cooked(lines, name, scale);
  if (d) {
    d->path_delay = path_delay_directive(content, name);
    return Trace(std::move(d));
  }
  throw TraceError(where(name, lines.front().first) +
                   "unknown trace format: expected 'ms' (Mahimahi) or 'time_s Mbps' (cooked) per line");
}

Trace Trace::load(const std::string& spec, double scale) {
  if (spec.rfind("const:", 0) == 0) return constant(parse_rate_bps(spec.substr(6)), scale);
  std::ifstream in(spec, std::ios::binary);
  if (!in) throw TraceError("cannot open trace file '" + spec + "'");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw TraceError("cannot read trace file '" + spec + "'");
  if (size > (std::streamoff(1) << 30)) throw TraceError("trace file '" + spec + "' is larger than 1 GiB");
  in.seekg(0);
  std::string content(static_cast<std::size_t>(size), '\0');
  in.read(content.data(), size);
  if (!in) throw TraceError("cannot read trace file '" + spec + "'");
  return parse(content, scale, spec);
}

const std::string& Trace::name() const { return d_->name; }
TraceFormat Trace::format() const { return d_->format; }
double Trace::scale() const { return d_->scale; }
TimeNs Trace::period_ns() const { return d_->period; }
std::uint64_t Trace::bytes_per_period() const { return d_->total(); }
double Trace::mean_bps() const { return 8.0 * static_cast<double>(d_->total()) / ns_to_seconds(d_->period); }
std::size_t Trace::opportunities_per_period() const { return d_->fluid ? 0 : d_->offset.size(); }
std::size_t Trace::segments() const { return d_->fluid ? d_->start.size() : 0; }
bool Trace::is_rate() const { return d_->fluid; }
TimeNs Trace::path_delay_ns() const { return d_->path_delay; }

namespace {
[[noreturn]] void overflow(const std::string& name) {
  throw TraceError(name + ": time overflow (transfer too large for this trace)");
}
}  // namespace

std::uint64_t Trace::cumulative_bytes(TimeNs t) const {
  if (t < 0) return 0;
  const auto& d = *d_;
  const TimeNs k = t / d.period;
  const TimeNs r = t - k * d.period;
  if (static_cast<std::uint64_t>(k) > (std::numeric_limits<std::uint64_t>::max() / 2) / d.total()) overflow(d.name);
  return static_cast<std::uint64_t>(k) * d.total() + d.in_period_bytes(r) - d.skip;
}

std::uint64_t Trace::bytes_deliverable(TimeNs t0, TimeNs t1) const {
  if (t1 <= t0) return 0;
  return cumulative_bytes(t1) - cumulative_bytes(t0);
}

TimeNs Trace::time_at_cumulative(std::uint64_t position) const {
  if (position == 0) return 0;
  const auto& d = *d_;
  if (position > std::numeric_limits<std::uint64_t>::max() / 2) overflow(d.name);
  position += d.skip;
  const std::uint64_t k = (position - 1) / d.total();
  const std::uint64_t rem = position - k * d.total();  // in [1, total]
  if (k > static_cast<std::uint64_t>(std::numeric_limits<TimeNs>::max() / d.period - 1)) overflow(d.name);
  return static_cast<TimeNs>(k) * d.period + d.in_period_time(rem);
}

TimeNs Trace::time_to_deliver(TimeNs t0, std::uint64_t bytes) const {
  if (bytes == 0) return t0;
  const std::uint64_t start = t0 > 0 ? cumulative_bytes(t0 - 1) : 0;  // opportunities before t0 are gone
  return time_at_cumulative(start + bytes);
}

}  // namespace kvstream::netsim
