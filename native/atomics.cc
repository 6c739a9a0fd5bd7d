// Sequentially consistent atomics over mapped memory.
//
// JS Atomics work only on SharedArrayBuffers, not on the ArrayBuffers map() returns,
// so the reader table in the MAP_SHARED lock file is read and written through these. Values
// are unsigned: 32-bit ones in [0, 2^32 - 1], 64-bit ones in [0, Number.MAX_SAFE_INTEGER]
// (stored as uint64_t; a stored value above that is refused on load rather than rounded).
// Offsets must be naturally aligned in memory and inside the view. Like every view, the word
// must lie below the end of the file: the caller keeps that (a page past EOF is a SIGBUS).

#include <cstdint>
#include <string>

#include "mapkv.h"

namespace mapkv {

namespace {

static_assert(__atomic_always_lock_free(sizeof(uint32_t), 0), "32-bit atomics must be lock-free");
static_assert(__atomic_always_lock_free(sizeof(uint64_t), 0), "64-bit atomics must be lock-free");

// Reads (view, offset) and returns the address of a naturally aligned word of type T inside
// the live mapping, or nullptr after throwing. `store` additionally requires a writable view.
template <typename T>
T* ReadWord(const Napi::CallbackInfo& info, bool store) {
  Napi::Env env = info.Env();
  Mapping* mapping;
  uint64_t offset;
  if (!ReadMapping(info, 0, &mapping) || !ReadSafeInteger(info, 1, "offset", &offset)) {
    return nullptr;
  }
  if (offset > mapping->length || sizeof(T) > mapping->length - offset) {
    ThrowRangeError(env, "atomic offset " + std::to_string(offset) + " is outside the view of " +
                             std::to_string(mapping->length) + " bytes");
    return nullptr;
  }
  uint8_t* address = mapping->data + offset;
  if (reinterpret_cast<uintptr_t>(address) % sizeof(T) != 0) {
    ThrowRangeError(env, "atomic offset " + std::to_string(offset) + " is not " +
                             std::to_string(sizeof(T)) + "-byte aligned in memory");
    return nullptr;
  }
  if (store && !mapping->writable) {
    ThrowTypeError(env, "view is read-only: map it with { write: true } to store");
    return nullptr;
  }
  return reinterpret_cast<T*>(address);
}

// Reads a value argument of the word's type: an integer in [0, max].
bool ReadValue(const Napi::CallbackInfo& info, size_t index, const char* name, uint64_t max,
               uint64_t* out) {
  if (!ReadSafeInteger(info, index, name, out)) return false;
  if (*out > max) {
    ThrowRangeError(info.Env(), std::string(name) + " must be at most " + std::to_string(max) +
                                    ", got " + std::to_string(*out));
    return false;
  }
  return true;
}

template <typename T>
constexpr uint64_t MaxValue() {
  return sizeof(T) == 8 ? kMaxSafeInteger : static_cast<uint64_t>(UINT32_MAX);
}

// atomicLoadN(view, offset): number
template <typename T>
Napi::Value AtomicLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  T* word = ReadWord<T>(info, false);
  if (word == nullptr) return env.Undefined();
  // SAFETY: word is naturally aligned and inside a live mapping (ReadWord checked both); the
  // access is lock-free (static_assert), so it is atomic against other processes too.
  const uint64_t value = __atomic_load_n(word, __ATOMIC_SEQ_CST);
  if (value > MaxValue<T>()) {
    ThrowRangeError(env, "stored value " + std::to_string(value) +
                             " is above Number.MAX_SAFE_INTEGER");
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(value));
}

// atomicStoreN(view, offset, value): void
template <typename T>
Napi::Value AtomicStore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  T* word = ReadWord<T>(info, true);
  uint64_t value;
  if (word == nullptr || !ReadValue(info, 2, "value", MaxValue<T>(), &value)) {
    return env.Undefined();
  }
  // SAFETY: word is naturally aligned, inside a live mapping and writable (ReadWord checked);
  // value fits T (checked against MaxValue).
  __atomic_store_n(word, static_cast<T>(value), __ATOMIC_SEQ_CST);
  return env.Undefined();
}

// atomicCasN(view, offset, expected, desired): boolean (true when the swap happened)
template <typename T>
Napi::Value AtomicCas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  T* word = ReadWord<T>(info, true);
  uint64_t expected, desired;
  if (word == nullptr || !ReadValue(info, 2, "expected", MaxValue<T>(), &expected) ||
      !ReadValue(info, 3, "desired", MaxValue<T>(), &desired)) {
    return env.Undefined();
  }
  T current = static_cast<T>(expected);
  // SAFETY: word is naturally aligned, inside a live mapping and writable (ReadWord checked);
  // both values fit T (checked); `current` is a live local the builtin may overwrite.
  const bool swapped = __atomic_compare_exchange_n(word, &current, static_cast<T>(desired), false,
                                                   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return Napi::Boolean::New(env, swapped);
}

// fence(): void. A sequentially consistent thread fence.
Napi::Value Fence(const Napi::CallbackInfo& info) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return info.Env().Undefined();
}

}  // namespace

void InitAtomics(Napi::Env env, Napi::Object exports) {
  exports.Set("atomicLoad32", Napi::Function::New(env, AtomicLoad<uint32_t>, "atomicLoad32"));
  exports.Set("atomicStore32", Napi::Function::New(env, AtomicStore<uint32_t>, "atomicStore32"));
  exports.Set("atomicCas32", Napi::Function::New(env, AtomicCas<uint32_t>, "atomicCas32"));
  exports.Set("atomicLoad64", Napi::Function::New(env, AtomicLoad<uint64_t>, "atomicLoad64"));
  exports.Set("atomicStore64", Napi::Function::New(env, AtomicStore<uint64_t>, "atomicStore64"));
  exports.Set("atomicCas64", Napi::Function::New(env, AtomicCas<uint64_t>, "atomicCas64"));
  exports.Set("fence", Napi::Function::New(env, Fence, "fence"));
}

}  // namespace mapkv
