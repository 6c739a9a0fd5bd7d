// Shared declarations of the mapkv addon.
//
// The addon does only what JavaScript cannot (mmap/munmap, msync, madvise, posix_fallocate,
// fdatasync, flock, atomics over mapped memory, and pwritev calls on an I/O thread that
// can be stopped) or cannot do fast enough (CRC-32C with the CPU's crc32 instruction). Every exported function validates its arguments and throws a
// TypeError or RangeError instead of handing the kernel (or the CPU) a value that could crash
// the process. A failed system call throws a Node-shaped Error with
// `code` ('ENOSPC'), `errno` (negative, as Node's own errors: -28) and `syscall` ('fallocate').
//
// Every system call carries a SAFETY note naming the preconditions that make it sound.

#ifndef MAPKV_NATIVE_MAPKV_H_
#define MAPKV_NATIVE_MAPKV_H_

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace mapkv {

// ---- promises (errors.cc) --------------------------------------------------------------------

// A new promise and its deferred, or false when Node-API refuses to make one: it does once the
// environment can no longer run JavaScript (a worker being ended, its flag set by another
// thread at any moment). node-addon-api's Promise::Deferred leaves its promise uninitialised
// then, and returning that garbage to V8 crashed the process (test/crash/BUGS.md #9). The
// caller then returns undefined and starts nothing.
bool NewPromise(Napi::Env env, napi_deferred* deferred, napi_value* promise);
// Settles `deferred` (resolved with undefined when `error` is 0, else rejected with the system
// error of `error` and `syscall`). A failure, in an environment that is ending, is ignored:
// nothing is left to run on the promise.
void SettlePromise(Napi::Env env, napi_deferred deferred, int error, const char* syscall);

// ---- I/O threads (iothreads.cc) -------------------------------------------------------------

// Work for the addon's I/O threads: Run() on one of them (system calls only, no JS value),
// then Complete() on the JS thread that queued it, which settles its promise and drops its
// references. Deleted after Complete(), or without it when the environment ends first (so
// a destructor must not call Node-API).
class IoJob {
 public:
  virtual ~IoJob() = default;
  virtual void Run() = 0;
  virtual void Complete(napi_env env) = 0;
};
// Queues `job` (ownership passes) on the calling environment's I/O threads. False, with a JS
// exception pending and the job deleted, when it cannot be queued.
bool QueueIo(napi_env env, IoJob* job);

// ---- errors (errors.cc) ----------------------------------------------------------------------

// Throws `new TypeError(message)` into JS. The caller returns at once.
// A short description of a JS value's type for error messages: "a string", "undefined".
std::string Describe(const Napi::Value& value);

void ThrowTypeError(Napi::Env env, const std::string& message);
// Throws `new RangeError(message)` into JS. The caller returns at once.
void ThrowRangeError(Napi::Env env, const std::string& message);
// Throws a Node-shaped system error for errno value `err` (positive) raised by `syscall`.
void ThrowSystemError(Napi::Env env, int err, const char* syscall);
// The same error as a value, for rejecting a promise.
Napi::Error SystemError(Napi::Env env, int err, const char* syscall);

// ---- arguments (errors.cc) -------------------------------------------------------------------
// Each reader returns false after throwing a JS exception; the caller then returns undefined.

// The largest integer a JS number holds exactly: 2^53 - 1.
constexpr uint64_t kMaxSafeInteger = (uint64_t{1} << 53) - 1;

// A number that is an integer in [0, Number.MAX_SAFE_INTEGER].
bool ReadSafeInteger(const Napi::CallbackInfo& info, size_t index, const char* name,
                     uint64_t* out);
// The same check of a value already read (an array element: `name` is "offsets[3]").
bool ReadSafeIntegerValue(Napi::Env env, const Napi::Value& value, const std::string& name,
                          uint64_t* out);
// A file descriptor: an integer in [0, INT32_MAX]. Whether it is open is for the kernel to say.
bool ReadFd(const Napi::CallbackInfo& info, size_t index, int* out);
// A boolean (true or false only).
bool ReadBool(const Napi::CallbackInfo& info, size_t index, const char* name, bool* out);

// ---- mappings (mapping.cc) -------------------------------------------------------------------

// The heap record of one live mapping, owned by the ArrayBuffer that exposes it.
struct Mapping {
  void* base;          // what mmap returned: page-aligned
  size_t mappedBytes;  // what was passed to mmap: caller's length + delta
  uint8_t* data;       // base + delta: the first byte the caller asked for (ArrayBuffer data)
  size_t length;       // the caller's length (ArrayBuffer byteLength)
  bool writable;       // mapped with PROT_WRITE
  bool mapped;         // false once munmap has run (by unmap() or a failed creation)
};

// Reads argument `index` as an ArrayBuffer created by map() and still mapped. Throws a
// TypeError for anything else (not an ArrayBuffer, not ours, or already unmapped).
bool ReadMapping(const Napi::CallbackInfo& info, size_t index, Mapping** out);

// The OS page size, read once at load.
size_t PageSize();

void InitMapping(Napi::Env env, Napi::Object exports);
void InitFile(Napi::Env env, Napi::Object exports);
void InitAtomics(Napi::Env env, Napi::Object exports);
void InitCrc32c(Napi::Env env, Napi::Object exports);
void InitWrites(Napi::Env env, Napi::Object exports);
void InitIo(Napi::Env env, Napi::Object exports);

}  // namespace mapkv

#endif  // MAPKV_NATIVE_MAPKV_H_
