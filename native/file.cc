// File operations: pageSize, fallocate, punchHole, fdatasync, flock, funlock, fileSize.

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "mapkv.h"

namespace mapkv {

namespace {

// pageSize(): number
Napi::Value GetPageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(PageSize()));
}

// Reads the (fd, offset, length) arguments of fallocate and punchHole: length > 0 and
// offset + length at most 2^53, so both fit off_t. False with a JS exception pending otherwise.
bool ReadFileRange(const Napi::CallbackInfo& info, const char* call, int* fd, uint64_t* offset,
                   uint64_t* length) {
  Napi::Env env = info.Env();
  if (!ReadFd(info, 0, fd) || !ReadSafeInteger(info, 1, "offset", offset) ||
      !ReadSafeInteger(info, 2, "length", length)) {
    return false;
  }
  if (*length == 0) {
    ThrowRangeError(env, std::string(call) + " length must be non-zero");
    return false;
  }
  if (*length > kMaxSafeInteger - *offset) {
    ThrowRangeError(env,
                    std::string(call) + " offset + length must be at most Number.MAX_SAFE_INTEGER");
    return false;
  }
  return true;
}

// fallocate(fd, offset, length): void. Allocates real blocks for [offset, offset + length),
// extending the file when the range passes its end, so a full disk fails here (ENOSPC) rather
// than as a SIGBUS when a page of a mapping is first written.
Napi::Value Fallocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t offset, length;
  if (!ReadFileRange(info, "fallocate", &fd, &offset, &length)) return env.Undefined();
  int err;
  do {
    // SAFETY: offset >= 0 and length > 0 (checked) and offset + length <= 2^53 fits off_t, so
    // the kernel sees no EINVAL from us; it checks that fd is open for writing (EBADF). It
    // touches no memory of ours. posix_fallocate RETURNS the error number (errno is not set);
    // EINTR (a signal during a long allocation) is retried.
    err = posix_fallocate(fd, static_cast<off_t>(offset), static_cast<off_t>(length));
  } while (err == EINTR);
  if (err != 0) ThrowSystemError(env, err, "fallocate");
  return env.Undefined();
}

// punchHole(fd, offset, length): void. Deallocates the blocks of [offset, offset + length)
// without changing the file's size: the range reads as zeros and its page-cache pages are
// dropped. A commit whose flush failed punches the pages it wrote, so that their next writes
// land in fresh blocks (see WriteTxn.writtenRanges for why).
Napi::Value PunchHole(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t offset, length;
  if (!ReadFileRange(info, "punchHole", &fd, &offset, &length)) return env.Undefined();
  int result;
  do {
    // SAFETY: offset >= 0 and length > 0 (checked) and offset + length <= 2^53 fits off_t.
    // PUNCH_HOLE must be paired with KEEP_SIZE (EINVAL otherwise), and the pair never extends
    // the file. The kernel checks that fd is open for writing (EBADF) and that the file
    // system supports punching (EOPNOTSUPP). It touches no memory of ours; mappings of the
    // range read zeros afterwards. EINTR is retried.
    result = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                       static_cast<off_t>(length));
  } while (result != 0 && errno == EINTR);
  if (result != 0) ThrowSystemError(env, errno, "fallocate");
  return env.Undefined();
}

// fdatasync(fd): void
Napi::Value Fdatasync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ReadFd(info, 0, &fd)) return env.Undefined();
  int result;
  do {
    // SAFETY: fd is a non-negative int (checked); the kernel checks that it is open (EBADF).
    // No memory of ours is passed.
    result = fdatasync(fd);
  } while (result != 0 && errno == EINTR);
  if (result != 0) ThrowSystemError(env, errno, "fdatasync");
  return env.Undefined();
}

// fdatasyncAsync(fd): Promise<void>. The same flush as fdatasync on an I/O thread of the
// addon's (iothreads.cc), so the event loop keeps running while the disk works. The caller
// keeps `fd` open until the promise settles (the engine awaits every flush before it closes
// the file).
class FdatasyncJob : public IoJob {
 public:
  FdatasyncJob(int fd, napi_deferred deferred) : fd_(fd), deferred_(deferred) {}

  void Run() override {
    int result;
    do {
      // SAFETY: runs off the JS thread and touches no JS value; fd is a non-negative int
      // (checked on the JS thread) and the kernel checks that it is open (EBADF).
      result = fdatasync(fd_);
    } while (result != 0 && errno == EINTR);
    error_ = result == 0 ? 0 : errno;
  }

  void Complete(napi_env env) override {
    SettlePromise(Napi::Env(env), deferred_, error_, "fdatasync");
  }

 private:
  int fd_;
  int error_ = 0;
  napi_deferred deferred_;
};

Napi::Value FdatasyncAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ReadFd(info, 0, &fd)) return env.Undefined();
  napi_deferred deferred;
  napi_value promise;
  if (!NewPromise(env, &deferred, &promise)) return env.Undefined();
  if (!QueueIo(env, new FdatasyncJob(fd, deferred))) return env.Undefined();
  return Napi::Value(env, promise);
}

// flock(fd, exclusive, wait): boolean. With wait false, returns false when another open file
// description holds a conflicting lock; with wait true, blocks until the lock is taken.
Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  bool exclusive, wait;
  if (!ReadFd(info, 0, &fd) || !ReadBool(info, 1, "exclusive", &exclusive) ||
      !ReadBool(info, 2, "wait", &wait)) {
    return env.Undefined();
  }
  const int operation = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB);
  int result;
  do {
    // SAFETY: fd is a non-negative int (checked), operation is LOCK_EX or LOCK_SH, optionally
    // with LOCK_NB; the kernel checks that fd is open (EBADF). A blocking wait interrupted by a
    // signal (EINTR) is retried.
    result = flock(fd, operation);
  } while (result != 0 && errno == EINTR);
  if (result == 0) return Napi::Boolean::New(env, true);
  if (!wait && errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
  ThrowSystemError(env, errno, "flock");
  return env.Undefined();
}

// funlock(fd): void. Releases this open file description's flock lock (a no-op when none).
Napi::Value Funlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ReadFd(info, 0, &fd)) return env.Undefined();
  int result;
  do {
    // SAFETY: fd is a non-negative int (checked); LOCK_UN never blocks; the kernel checks that
    // fd is open (EBADF).
    result = flock(fd, LOCK_UN);
  } while (result != 0 && errno == EINTR);
  if (result != 0) ThrowSystemError(env, errno, "flock");
  return env.Undefined();
}

// fileSize(fd): number
Napi::Value FileSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ReadFd(info, 0, &fd)) return env.Undefined();
  struct stat status;
  // SAFETY: fd is a non-negative int (checked; the kernel checks it is open, EBADF); `status`
  // is a live stack object of the type fstat writes.
  if (fstat(fd, &status) != 0) {
    ThrowSystemError(env, errno, "fstat");
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(status.st_size));
}

}  // namespace

void InitFile(Napi::Env env, Napi::Object exports) {
  exports.Set("pageSize", Napi::Function::New(env, GetPageSize, "pageSize"));
  exports.Set("fallocate", Napi::Function::New(env, Fallocate, "fallocate"));
  exports.Set("punchHole", Napi::Function::New(env, PunchHole, "punchHole"));
  exports.Set("fdatasync", Napi::Function::New(env, Fdatasync, "fdatasync"));
  exports.Set("fdatasyncAsync", Napi::Function::New(env, FdatasyncAsync, "fdatasyncAsync"));
  exports.Set("flock", Napi::Function::New(env, Flock, "flock"));
  exports.Set("funlock", Napi::Function::New(env, Funlock, "funlock"));
  exports.Set("fileSize", Napi::Function::New(env, FileSize, "fileSize"));
}

}  // namespace mapkv
