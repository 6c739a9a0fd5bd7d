// Memory mappings: map, unmap, msync, madvise.
//
// A mapping is handed to JS as an ArrayBuffer over the caller's bytes. Its heap record
// (`Mapping`) is owned by that ArrayBuffer object: a finalizer attached to the object munmaps
// the range if unmap() never ran, then frees the record.
//
// Why the ArrayBuffer is made with V8's API and not napi_create_external_arraybuffer: Node
// backs an external ArrayBuffer with a V8 backing store that has a deleter, and V8 charges such
// a store's whole length to its external memory. A database maps 1 GiB segments, so every open
// charged 1 GiB and V8 answered with a scavenge and a full collection (3-8 ms of a 12 ms cold
// open on the project's machine). A backing store made with V8's EmptyDeleter is not charged:
// V8 does not own the bytes. That is the truth here - they are the file's page cache, which the
// kernel reclaims by itself - and it makes us responsible for the rule V8 states for it: the
// bytes may go only once no ArrayBuffer can reach them. unmap() detaches before munmap; the
// finalizer runs only after the object was collected. No other ArrayBuffer shares the backing
// store: these buffers never leave the library (Storage hands out copies of values), so they
// are never transferred to a worker, which is the one way V8 shares a non-shared store.
//
// Recognising our ArrayBuffers: map() type-tags every ArrayBuffer it returns
// (napi_type_tag_object) and enters it in a process-wide registry keyed by its data pointer.
// The tag tells "not created by map()" from "created by map() but since unmapped"; the
// registry gives the record of a live mapping. Live mappings never overlap, so a data pointer
// names at most one of them; an unmapped ArrayBuffer is detached (data pointer null) and has
// left the registry, so an address the kernel reuses for a later mapping is never confused with
// it. The registry is guarded by a mutex because worker threads load the addon too.

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

#include <v8.h>

#include "mapkv.h"

namespace mapkv {

namespace {

static_assert(sizeof(off_t) == 8, "mapkv needs a 64-bit off_t");

// Marks the ArrayBuffers map() creates. Random, fixed for the life of the format.
constexpr napi_type_tag kMappingTag = {0x6d61706b76a1e0c3ULL, 0x9f27b5d40c8e13a1ULL};

std::mutex registryMutex;
// Live mappings by data pointer (the ArrayBuffer's first byte).
std::unordered_map<const uint8_t*, Mapping*> registry;

// napi_value is, in every Node release, the address of a V8 handle's slot: Node's own
// v8impl::JsValueFromV8LocalValue is this cast. The handle lives in the handle scope Node
// opened for the current call, like every napi_value the call creates.
static_assert(sizeof(napi_value) == sizeof(v8::Local<v8::Value>),
              "napi_value must be a V8 handle's slot address");
napi_value ToNapiValue(v8::Local<v8::Value> local) {
  return reinterpret_cast<napi_value>(*local);
}

// Finalizer of a mapping's ArrayBuffer object. Node runs it after the object was
// garbage-collected (whether or not unmap() detached it first), or when the environment shuts
// down. Either way no JS value reaches the bytes any more.
void FinalizeMapping(napi_env /*env*/, void* /*data*/, void* hint) {
  Mapping* mapping = static_cast<Mapping*>(hint);
  bool unmapNow = false;
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    if (mapping->mapped) {
      unmapNow = true;
      mapping->mapped = false;
      auto found = registry.find(mapping->data);
      if (found != registry.end() && found->second == mapping) registry.erase(found);
    }
  }
  if (unmapNow) {
    // SAFETY: base and mappedBytes are exactly what mmap returned and was given; `mapped` was
    // still true (checked under the lock, then cleared), so the range was never unmapped and
    // cannot belong to a later mapping; no JS view can reach it, since the ArrayBuffer's
    // memory is gone. munmap of a valid range cannot fail; there is nobody to report to.
    munmap(mapping->base, mapping->mappedBytes);
  }
  delete mapping;
}

// Reads a boolean option: absent or undefined gives false.
bool ReadOption(Napi::Env env, const Napi::Object& options, const char* name, bool* out) {
  Napi::Value value = options.Get(name);
  if (env.IsExceptionPending()) return false;  // a throwing getter
  if (value.IsUndefined()) {
    *out = false;
    return true;
  }
  if (!value.IsBoolean()) {
    ThrowTypeError(env, std::string("map option '") + name + "' must be a boolean");
    return false;
  }
  *out = value.As<Napi::Boolean>().Value();
  return true;
}

// Checks that [offset, offset + length) is a non-empty range inside the mapping.
bool CheckRange(Napi::Env env, const Mapping* mapping, uint64_t offset, uint64_t length,
                const char* what) {
  if (length == 0) {
    ThrowRangeError(env, std::string(what) + " length must be non-zero");
    return false;
  }
  if (offset > mapping->length || length > mapping->length - offset) {
    ThrowRangeError(env, std::string(what) + " range [" + std::to_string(offset) + ", " +
                             std::to_string(offset + length) + ") is outside the view of " +
                             std::to_string(mapping->length) + " bytes");
    return false;
  }
  return true;
}

// map(fd, offset, length, { write, shared, populate, noReserve }): ArrayBuffer
Napi::Value Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t offset, length;
  if (!ReadFd(info, 0, &fd) || !ReadSafeInteger(info, 1, "offset", &offset) ||
      !ReadSafeInteger(info, 2, "length", &length)) {
    return env.Undefined();
  }
  if (length == 0) {
    ThrowRangeError(env, "mapping length must be non-zero");
    return env.Undefined();
  }
  if (length > kMaxSafeInteger - offset) {
    ThrowRangeError(env, "mapping offset + length must be at most Number.MAX_SAFE_INTEGER");
    return env.Undefined();
  }
  // JS cannot view more through one Uint8Array, and V8 would abort on a backing store past
  // its own limit: refuse here, before anything is mapped.
  if (length > v8::TypedArray::kMaxLength) {
    ThrowRangeError(env, "mapping length must be at most " +
                             std::to_string(v8::TypedArray::kMaxLength) + " bytes");
    return env.Undefined();
  }
  bool write = false, shared = false, populate = false, noReserve = false;
  if (!info[3].IsUndefined()) {
    if (!info[3].IsObject()) {
      ThrowTypeError(env, "map options must be an object");
      return env.Undefined();
    }
    Napi::Object options = info[3].As<Napi::Object>();
    if (!ReadOption(env, options, "write", &write) ||
        !ReadOption(env, options, "shared", &shared) ||
        !ReadOption(env, options, "populate", &populate) ||
        !ReadOption(env, options, "noReserve", &noReserve)) {
      return env.Undefined();
    }
  }

  // mmap wants a page-aligned file offset: map from the page holding `offset` and hand out the
  // bytes from `offset` on (as memmap2's MmapInner::new does).
  const uint64_t delta = offset % PageSize();
  const uint64_t alignedOffset = offset - delta;
  const size_t mappedBytes = static_cast<size_t>(length + delta);
  const int prot = write ? (PROT_READ | PROT_WRITE) : PROT_READ;
  int flags = shared ? MAP_SHARED : MAP_PRIVATE;
  if (populate) flags |= MAP_POPULATE;
  if (noReserve) flags |= MAP_NORESERVE;

  // SAFETY: addr is null and MAP_FIXED is not set, so the kernel picks unused address space
  // and no existing mapping is replaced; mappedBytes > 0 (length checked non-zero);
  // alignedOffset is a multiple of the page size (we split offset above) and fits off_t
  // (<= 2^53); the kernel checks that fd is open and that its access mode allows prot
  // (EBADF, EACCES). Bytes past end of file are mapped but never touched by the engine.
  void* base = mmap(nullptr, mappedBytes, prot, flags, fd, static_cast<off_t>(alignedOffset));
  if (base == MAP_FAILED) {
    ThrowSystemError(env, errno, "mmap");
    return env.Undefined();
  }

  Mapping* mapping = new (std::nothrow)
      Mapping{base, mappedBytes, static_cast<uint8_t*>(base) + delta,
              static_cast<size_t>(length), write, true};
  if (mapping == nullptr) {
    // SAFETY: base/mappedBytes are what mmap just returned and took; nothing else knows base.
    munmap(base, mappedBytes);
    Napi::Error::New(env, "out of memory for a mapping record").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Not charged to V8's external memory (see the top of this file). ArrayBuffer::New does not
  // fail: V8 aborts the process when it cannot allocate the small object itself, as it does
  // for any allocation of JS memory.
  std::unique_ptr<v8::BackingStore> store = v8::ArrayBuffer::NewBackingStore(
      mapping->data, mapping->length, v8::BackingStore::EmptyDeleter, nullptr);
  napi_value buffer =
      ToNapiValue(v8::ArrayBuffer::New(v8::Isolate::GetCurrent(), std::move(store)));

  if (napi_add_finalizer(env, buffer, nullptr, FinalizeMapping, mapping, nullptr) != napi_ok) {
    // No finalizer is attached, so the range and the record are ours alone; the buffer never
    // reaches JS (we throw) and is collected without touching its bytes.
    // SAFETY: base/mappedBytes are what mmap returned and took; nothing else knows them.
    munmap(base, mappedBytes);
    delete mapping;
    if (!env.IsExceptionPending()) {
      Napi::Error::New(env, "could not attach a finalizer to the mapping's ArrayBuffer")
          .ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }
  if (napi_type_tag_object(env, buffer, &kMappingTag) != napi_ok) {
    // The finalizer is attached and will free the record once the unreachable buffer is
    // collected; mark the record unmapped so that it does not munmap a second time.
    {
      std::lock_guard<std::mutex> lock(registryMutex);
      mapping->mapped = false;
    }
    // SAFETY: base/mappedBytes are what mmap returned and took; the record is marked unmapped
    // under the lock, so the finalizer leaves the range alone; the buffer never reaches JS (we
    // throw), so no view can reach the range.
    munmap(base, mappedBytes);
    if (!env.IsExceptionPending()) {
      Napi::Error::New(env, "could not tag the mapping's ArrayBuffer")
          .ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    registry[mapping->data] = mapping;
  }
  return Napi::Value(env, buffer);
}

// unmap(view): void. Unmaps and detaches, so every TypedArray over the view reads length 0.
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping;
  if (!ReadMapping(info, 0, &mapping)) return env.Undefined();
  void* const base = mapping->base;
  const size_t mappedBytes = mapping->mappedBytes;
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    registry.erase(mapping->data);
    mapping->mapped = false;
  }
  // Detach before munmap, so no JS view can reach the range once it is gone. The record may
  // be freed by the finalizer from here on: only the locals above are used below.
  napi_status status = napi_detach_arraybuffer(env, info[0]);
  if (status != napi_ok) {
    {
      std::lock_guard<std::mutex> lock(registryMutex);
      mapping->mapped = true;
      registry[mapping->data] = mapping;
    }
    if (!env.IsExceptionPending()) {
      Napi::Error::New(env, "could not detach the mapping's ArrayBuffer")
          .ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }
  // SAFETY: base/mappedBytes are exactly what mmap returned and took; the record was still
  // mapped (ReadMapping checked it in the registry) and is now marked unmapped under the lock,
  // so neither the finalizer nor a second unmap() will munmap this range again; the
  // ArrayBuffer is detached, so no JS view reaches it.
  if (munmap(base, mappedBytes) != 0) {
    ThrowSystemError(env, errno, "munmap");
  }
  return env.Undefined();
}

// msync(view, offset, length, sync: boolean): void
Napi::Value Msync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping;
  uint64_t offset, length;
  bool sync;
  if (!ReadMapping(info, 0, &mapping) || !ReadSafeInteger(info, 1, "offset", &offset) ||
      !ReadSafeInteger(info, 2, "length", &length) || !ReadBool(info, 3, "sync", &sync) ||
      !CheckRange(env, mapping, offset, length, "msync")) {
    return env.Undefined();
  }
  uint8_t* start = mapping->data + offset;
  const uintptr_t misalignment = reinterpret_cast<uintptr_t>(start) % PageSize();
  if (misalignment != 0) {
    ThrowRangeError(env, "msync offset " + std::to_string(offset) +
                             " is not page-aligned in memory (it is " +
                             std::to_string(misalignment) + " bytes into an OS page of " +
                             std::to_string(PageSize()) + ")");
    return env.Undefined();
  }
  // SAFETY: start is page-aligned (checked); [start, start + length) lies inside this live
  // mapping (range checked against the view, which lies inside the mapped bytes; ReadMapping
  // checked it is still mapped), so no other mapping's pages are touched; length > 0.
  if (msync(start, static_cast<size_t>(length), sync ? MS_SYNC : MS_ASYNC) != 0) {
    ThrowSystemError(env, errno, "msync");
  }
  return env.Undefined();
}

// madvise(view, offset, length, advice): void
Napi::Value Madvise(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping;
  uint64_t offset, length;
  if (!ReadMapping(info, 0, &mapping) || !ReadSafeInteger(info, 1, "offset", &offset) ||
      !ReadSafeInteger(info, 2, "length", &length) ||
      !CheckRange(env, mapping, offset, length, "madvise")) {
    return env.Undefined();
  }
  if (!info[3].IsString()) {
    ThrowTypeError(env, "advice must be one of 'normal', 'random', 'sequential', 'willneed', "
                        "'dontneed'");
    return env.Undefined();
  }
  const std::string name = info[3].As<Napi::String>().Utf8Value();
  int advice;
  if (name == "normal") {
    advice = MADV_NORMAL;
  } else if (name == "random") {
    advice = MADV_RANDOM;
  } else if (name == "sequential") {
    advice = MADV_SEQUENTIAL;
  } else if (name == "willneed") {
    advice = MADV_WILLNEED;
  } else if (name == "dontneed") {
    advice = MADV_DONTNEED;
  } else {
    ThrowTypeError(env, "advice must be one of 'normal', 'random', 'sequential', 'willneed', "
                        "'dontneed', got '" + name + "'");
    return env.Undefined();
  }
  // Advice applies to whole pages: widen the range down to the page holding its first byte.
  uint8_t* start = mapping->data + offset;
  const uintptr_t misalignment = reinterpret_cast<uintptr_t>(start) % PageSize();
  start -= misalignment;
  // SAFETY: start is page-aligned and not below base (base is page-aligned and the caller's
  // first byte is at or after it), and start + misalignment + length stays inside the view
  // (range checked), so the range lies inside this live mapping. The advice values are
  // hints, except MADV_DONTNEED, which drops clean pages (re-read from the file) and the
  // private copies of a MAP_PRIVATE writable view: documented behaviour, never a fault.
  if (madvise(start, static_cast<size_t>(length) + misalignment, advice) != 0) {
    ThrowSystemError(env, errno, "madvise");
  }
  return env.Undefined();
}

}  // namespace

size_t PageSize() {
  // SAFETY: sysconf(_SC_PAGESIZE) has no preconditions and cannot fail on Linux. A
  // function-local static is initialised once even when worker threads load the addon.
  static const size_t value = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return value;
}

bool ReadMapping(const Napi::CallbackInfo& info, size_t index, Mapping** out) {
  Napi::Env env = info.Env();
  Napi::Value value = info[index];
  if (!value.IsArrayBuffer()) {
    ThrowTypeError(env, value.IsTypedArray()
                            ? "view must be the ArrayBuffer returned by map(), not a "
                              "TypedArray (pass its .buffer)"
                            : "view must be an ArrayBuffer returned by map()");
    return false;
  }
  bool tagged = false;
  if (napi_check_object_type_tag(env, value, &kMappingTag, &tagged) != napi_ok || !tagged) {
    ThrowTypeError(env, "view is not a mapping created by map()");
    return false;
  }
  Napi::ArrayBuffer buffer = value.As<Napi::ArrayBuffer>();
  const uint8_t* data = buffer.IsDetached() ? nullptr : static_cast<uint8_t*>(buffer.Data());
  if (data != nullptr) {
    std::lock_guard<std::mutex> lock(registryMutex);
    auto found = registry.find(data);
    if (found != registry.end() && found->second->mapped &&
        found->second->length == buffer.ByteLength()) {
      *out = found->second;
      return true;
    }
  }
  ThrowTypeError(env, "view was unmapped");
  return false;
}

void InitMapping(Napi::Env env, Napi::Object exports) {
  exports.Set("map", Napi::Function::New(env, Map, "map"));
  exports.Set("unmap", Napi::Function::New(env, Unmap, "unmap"));
  exports.Set("msync", Napi::Function::New(env, Msync, "msync"));
  exports.Set("madvise", Napi::Function::New(env, Madvise, "madvise"));
}

}  // namespace mapkv
