// CRC-32C (Castagnoli) of a byte range: crc32c, crc32cTable.
//
//   crc32c(buf, start, end, seed): number
//
// The same function as crc32cJs in src/format/crc32c.ts: the checksum of buf[start, end) with
// reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF, where `seed` is the
// checksum of the bytes before (0 for none), so a range can be checksummed in pieces. The
// result is an unsigned 32-bit integer; crc32c("123456789") is 0xE3069283.
//
// Every page is checksummed at commit and again when verified, so this is a hot path. On x86
// CPUs with SSE4.2 the `crc32` instruction folds 8 bytes per instruction (it computes exactly
// this polynomial); elsewhere a slicing-by-8 table loop runs. `crc32cTable` always runs the
// table loop, so tests can compare both on a CPU that has the instruction.
//
// The call is cheap on purpose: a raw N-API callback (no node-addon-api wrapper objects), no
// allocation and no exception unless an argument is refused.

#include <cstring>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define MAPKV_CRC32C_X86 1
#endif

#include "mapkv.h"

namespace mapkv {

namespace {

// ---- the table implementation (every CPU) ---------------------------------------------------

constexpr uint32_t kPolynomial = 0x82F63B78;  // reflected Castagnoli polynomial

// kTables.t[k][b] is the CRC register after feeding byte b followed by k zero bytes into a zero
// register: table 0 is the classic byte table, table k shifts it k bytes further. Computed at
// compile time (8 KiB of read-only data, no initialisation order to get wrong).
struct ByteTables {
  uint32_t t[8][256];
};

constexpr ByteTables MakeByteTables() {
  ByteTables tables{};
  for (uint32_t b = 0; b < 256; b++) {
    uint32_t c = b;
    for (int bit = 0; bit < 8; bit++) c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
    tables.t[0][b] = c;
  }
  for (uint32_t b = 0; b < 256; b++) {
    uint32_t c = tables.t[0][b];
    for (int k = 1; k < 8; k++) {
      c = tables.t[0][c & 0xFF] ^ (c >> 8);
      tables.t[k][b] = c;
    }
  }
  return tables;
}

constexpr ByteTables kTables = MakeByteTables();
static_assert(kTables.t[0][1] == 0xF26B8303, "CRC-32C byte table");

// Feeds p[0, n) into the raw register `crc` (before the final inversion) 8 bytes per step.
// Bytes are assembled little-endian by hand (the reflected CRC consumes the lowest byte
// first), so this is right on a big-endian CPU too and never makes an unaligned load.
uint32_t UpdateTable(uint32_t crc, const uint8_t* p, size_t n) {
  const auto& t = kTables.t;
  for (; n >= 8; p += 8, n -= 8) {
    const uint32_t lo = crc ^ (static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
                               static_cast<uint32_t>(p[2]) << 16 |
                               static_cast<uint32_t>(p[3]) << 24);
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
  }
  for (; n > 0; p++, n--) crc = t[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
  return crc;
}

// ---- the SSE4.2 implementation (x86 CPUs that have it) --------------------------------------

#ifdef MAPKV_CRC32C_X86

// One `crc32` instruction has a latency of 3 cycles but the CPU can start one per cycle, so a
// single chain of them runs at a third of the possible speed. The loop below therefore runs
// three independent chains over three adjacent blocks of kBlock bytes and joins them:
//
//   register(r, A B C) = shift(shift(register(r, A)) ^ register(0, B)) ^ register(0, C)
//
// where shift(x) is the register after feeding kBlock zero bytes to x. That holds because the
// raw register update is linear over GF(2): feeding B after A is feeding B to 0 plus feeding
// |B| zeros to the register A left. shift is itself linear, so it is four table lookups, one
// per byte of x: Shift<kBlock>::table.t[k][b] = shift(b << 8k).

// The register after feeding n zero bytes to x, byte by byte (compile time only).
constexpr uint32_t FeedZeros(uint32_t x, size_t n) {
  for (size_t i = 0; i < n; i++) x = kTables.t[0][x & 0xFF] ^ (x >> 8);
  return x;
}

struct ShiftTable {
  uint32_t t[4][256];
};

constexpr ShiftTable MakeShiftTable(size_t n) {
  // shift is linear, so shift(x) is the xor of shift(bit) over the bits set in x.
  uint32_t basis[32] = {};
  for (int bit = 0; bit < 32; bit++) basis[bit] = FeedZeros(uint32_t{1} << bit, n);
  ShiftTable table{};
  for (int k = 0; k < 4; k++) {
    for (uint32_t b = 0; b < 256; b++) {
      uint32_t x = 0;
      for (int bit = 0; bit < 8; bit++) {
        if (b & (1u << bit)) x ^= basis[8 * k + bit];
      }
      table.t[k][b] = x;
    }
  }
  return table;
}

// Two block sizes. The long one is chosen so that one round (3 blocks, 4080 bytes) covers
// almost all of the 4092 checksummed bytes of a 4 KiB page, [4, 4096); k rounds fit the
// [4, k * 4096) of larger pages and runs the same way. The short one (3 x 128 bytes) takes
// most of what is left of a range before the single-chain tail. Both are multiples of 8.
constexpr size_t kLongBlock = 1360;
constexpr size_t kShortBlock = 128;
static_assert(kLongBlock % 8 == 0 && kShortBlock % 8 == 0, "blocks are whole 8-byte words");

template <size_t kBlock>
struct Shift {
  static constexpr ShiftTable table = MakeShiftTable(kBlock);
};

template <size_t kBlock>
inline uint32_t ShiftBlock(uint32_t x) {
  const auto& t = Shift<kBlock>::table.t;
  return t[0][x & 0xFF] ^ t[1][(x >> 8) & 0xFF] ^ t[2][(x >> 16) & 0xFF] ^ t[3][x >> 24];
}

// One `crc32` step over the 8 bytes at p.
// SAFETY: runs only when the CPU has SSE4.2 (kHasSse42, read at load), the one thing the crc32
// instruction requires: it works on general-purpose registers, so it needs no state the OS
// must enable. `target("sse4.2")` lets the compiler emit it in these functions alone, so the
// rest of the addon still runs on any x86 CPU. p points at 8 readable
// bytes (the callers' loop bounds); memcpy makes the unaligned load well-defined and x86 is
// little-endian, the byte order the reflected CRC consumes.
__attribute__((target("sse4.2"))) inline uint32_t Step8(uint32_t crc, const uint8_t* p) {
#ifdef __x86_64__
  uint64_t word;
  std::memcpy(&word, p, 8);
  return static_cast<uint32_t>(_mm_crc32_u64(crc, word));
#else
  // 32-bit x86 has no 64-bit crc32: two 4-byte steps, lowest bytes first.
  uint32_t lo, hi;
  std::memcpy(&lo, p, 4);
  std::memcpy(&hi, p + 4, 4);
  return _mm_crc32_u32(_mm_crc32_u32(crc, lo), hi);
#endif
}

// Rounds of three interleaved chains over 3 * kBlock bytes while that many remain; advances
// p and n past them.
template <size_t kBlock>
__attribute__((target("sse4.2"))) inline uint32_t Rounds(uint32_t crc, const uint8_t*& p,
                                                          size_t& n) {
  for (; n >= 3 * kBlock; p += 3 * kBlock, n -= 3 * kBlock) {
    uint32_t a = crc, b = 0, c = 0;
    // SAFETY: the three reads stay inside p[0, 3 * kBlock), which the loop condition keeps
    // inside the caller's range.
    for (size_t i = 0; i < kBlock; i += 8) {
      a = Step8(a, p + i);
      b = Step8(b, p + kBlock + i);
      c = Step8(c, p + 2 * kBlock + i);
    }
    crc = ShiftBlock<kBlock>(ShiftBlock<kBlock>(a) ^ b) ^ c;
  }
  return crc;
}

// Feeds p[0, n) into the raw register `crc`; the same result as UpdateTable.
// SAFETY: call only when kHasSse42 (see Step8); p[0, n) is readable.
__attribute__((target("sse4.2"))) uint32_t UpdateSse42(uint32_t crc, const uint8_t* p, size_t n) {
  crc = Rounds<kLongBlock>(crc, p, n);
  crc = Rounds<kShortBlock>(crc, p, n);
  for (; n >= 8; p += 8, n -= 8) crc = Step8(crc, p);
  // SAFETY: _mm_crc32_u8 needs SSE4.2 like Step8; *p is inside the range (n > 0).
  for (; n > 0; p++, n--) crc = _mm_crc32_u8(crc, *p);
  return crc;
}

// Whether this CPU has SSE4.2, read once when the addon is loaded (a namespace-scope constant
// is initialised by the dynamic loader before any JS can call in, and never written again, so
// worker threads read it without a race).
bool DetectSse42() {
  // SAFETY: __builtin_cpu_init has no preconditions; calling it first makes
  // __builtin_cpu_supports valid even if this initialiser runs before libgcc's own.
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}

const bool kHasSse42 = DetectSse42();

#endif  // MAPKV_CRC32C_X86

// Feeds p[0, n) into the raw register `crc` with the fastest implementation this CPU has.
inline uint32_t Update(uint32_t crc, const uint8_t* p, size_t n) {
#ifdef MAPKV_CRC32C_X86
  if (kHasSse42) return UpdateSse42(crc, p, n);
#endif
  return UpdateTable(crc, p, n);
}

// ---- the JS functions -----------------------------------------------------------------------

// How a refused `buf` is named in its TypeError: "a string", "an ArrayBuffer", ...
std::string DescribeBuffer(const Napi::Value& value) {
  if (value.IsTypedArray()) {
    switch (value.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_int8_array:
        return "an Int8Array";
      case napi_uint8_clamped_array:
        return "a Uint8ClampedArray";
      default:
        return "a TypedArray of wider elements";
    }
  }
  if (value.IsArrayBuffer()) return "an ArrayBuffer";
  if (value.IsDataView()) return "a DataView";
  return Describe(value);
}

// Throws the error for arguments the fast path in Checksum refused. Slow and allocating: it
// runs only on the way to an exception.
void ThrowArgumentError(napi_env raw, napi_callback_info rawInfo) {
  Napi::Env env(raw);
  Napi::CallbackInfo info(raw, rawInfo);
  Napi::Value buf = info[0];
  if (!buf.IsTypedArray() || buf.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(env, "buf must be a Uint8Array, got " + DescribeBuffer(buf));
    return;
  }
  const size_t length = buf.As<Napi::TypedArray>().ElementLength();
  uint64_t start, end, seed;
  if (!ReadSafeInteger(info, 1, "start", &start) || !ReadSafeInteger(info, 2, "end", &end)) {
    return;
  }
  if (start > end || end > length) {
    ThrowRangeError(env, "crc32c range [" + std::to_string(start) + ", " + std::to_string(end) +
                             ") is outside a buffer of " + std::to_string(length) + " bytes");
    return;
  }
  if (!ReadSafeInteger(info, 3, "seed", &seed)) return;
  if (seed > UINT32_MAX) {
    ThrowRangeError(env, "seed must be at most 4294967295, got " + std::to_string(seed));
    return;
  }
  // Unreachable while this function and the fast path agree; refuse rather than compute.
  ThrowRangeError(env, "crc32c arguments refused");
}

// Whether start and end are integers with 0 <= start <= end <= length. NaN fails every
// comparison; the casts to size_t run only once 0 <= start <= end <= length holds, so they are
// defined (the value fits).
inline bool IsRange(double start, double end, size_t length) {
  return start >= 0 && start <= end && end <= static_cast<double>(length) &&
         static_cast<double>(static_cast<size_t>(start)) == start &&
         static_cast<double>(static_cast<size_t>(end)) == end;
}

// Whether seed is an integer in [0, 2^32 - 1]; the cast runs only once it is in range.
inline bool IsUint32(double seed) {
  return seed >= 0 && seed <= 4294967295.0 &&
         static_cast<double>(static_cast<uint32_t>(seed)) == seed;
}

// crc32c(buf, start, end, seed) and crc32cTable(...): validates the arguments without
// allocating, then runs `update` over buf[start, end).
template <uint32_t (*update)(uint32_t, const uint8_t*, size_t)>
napi_value Checksum(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  // SAFETY: argv has room for argc = 4 values; missing arguments are filled with undefined.
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;

  napi_typedarray_type type;
  size_t length;
  void* data;
  double start, end, seed;
  // None of these calls throws: a value of the wrong type gives a status other than napi_ok
  // (or a typed array of another type), and every refusal goes to ThrowArgumentError.
  // napi_get_typedarray_info gives the element count and the address of element 0 (byteOffset
  // included); a detached buffer has length 0, so only an empty range of it passes. (For a
  // typed array of at most 64 bytes V8 keeps the bytes on its heap and this call moves them
  // out once; crc32c in src/format sends only longer ranges here.)
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, nullptr, nullptr) !=
          napi_ok ||
      type != napi_uint8_array || napi_get_value_double(env, argv[1], &start) != napi_ok ||
      napi_get_value_double(env, argv[2], &end) != napi_ok ||
      napi_get_value_double(env, argv[3], &seed) != napi_ok || !IsRange(start, end, length) ||
      !IsUint32(seed)) {
    ThrowArgumentError(env, info);
    return nullptr;
  }
  const size_t from = static_cast<size_t>(start);
  const size_t count = static_cast<size_t>(end) - from;
  const uint32_t inverted = ~static_cast<uint32_t>(seed);
  // SAFETY: [from, from + count) lies inside the view's `length` bytes (checked above), so
  // every byte read is part of buf; an empty range reads nothing (data may be null). As with
  // every view, a mapped page past the end of its file is the caller's to avoid (SIGBUS).
  const uint32_t crc =
      count == 0 ? inverted : update(inverted, static_cast<const uint8_t*>(data) + from, count);
  napi_value result;
  if (napi_create_uint32(env, ~crc, &result) != napi_ok) return nullptr;
  return result;
}

void Export(Napi::Env env, Napi::Object exports, const char* name, napi_callback callback) {
  napi_value fn;
  NAPI_THROW_IF_FAILED_VOID(
      env, napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, nullptr, &fn));
  exports.Set(name, Napi::Value(env, fn));
}

}  // namespace

void InitCrc32c(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "crc32c", Checksum<Update>);
  Export(env, exports, "crc32cTable", Checksum<UpdateTable>);
}

}  // namespace mapkv
