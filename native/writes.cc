// Writes of a commit's pages on an I/O thread of the addon's (iothreads.cc): writeAsync,
// stopWrites.
//
//   writeAsync(fd, buffers, offsets: Float64Array, counts: Uint32Array): { done, job }
//   stopWrites(job): boolean
//
// writeAsync makes calls.length = offsets.length pwritev calls: call i writes the next counts[i]
// buffers, one after the other, at byte offsets[i] of the file. They run in order on one
// I/O thread, so the event loop goes on meanwhile; `done` settles once they ran (or
// were stopped), rejecting with the first call's error.
//
// stopWrites lets a synchronous writer take a commit over while its writes wait for a thread:
// after it returns, the thread writes nothing more. It returns true when every call was made in
// full before the stop (waiting for calls under way to end), false when none was made or one
// failed: the caller then writes the pages itself. Why a stop and not "write them again
// anyway": a late write of this commit's bytes could land after later commits reused its pages.
//
// The buffers stay referenced (so alive) until `done` settles, through an array of the
// addon's own, and the engine neither changes nor reuses them before then.

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "mapkv.h"

namespace mapkv {

namespace {

// Marks the job handles writeAsync makes, so that stopWrites reads only those.
const napi_type_tag kJobTag = {0x6d61706b76777269ULL, 0x7465732e6a6f6231ULL};

// Linux writes at most this many bytes per call (MAX_RW_COUNT); a longer call is refused here
// rather than cut short.
constexpr uint64_t kMaxCallBytes = 0x7ffff000;

struct Call {
  uint64_t offset;
  size_t first;  // index of its first buffer in WriteState::iov
  size_t count;
  uint64_t bytes;
};

// What the thread and the stopper share. `mu` is held by the thread over all its calls, and
// by stopWrites while it sets `stopped`: so a stop either comes first (the thread then makes
// no call) or waits for every call to end.
struct WriteState {
  std::mutex mu;
  bool stopped = false;
  bool finished = false;  // the thread made every call it was going to
  int error = 0;          // errno of the failed call, 0 when all succeeded
};

// Makes one call in full: pwritev until every byte of its buffers is in. Returns 0 or errno.
int WriteCall(int fd, const Call& call, std::vector<struct iovec>* iov) {
  struct iovec* v = iov->data() + call.first;
  size_t left = call.count;
  uint64_t offset = call.offset;
  uint64_t rest = call.bytes;
  while (rest > 0) {
    // Empty buffers (and those written in full) are passed over: with rest > 0 a non-empty
    // one remains, so a call that writes nothing made no progress.
    while (left > 0 && v->iov_len == 0) {
      ++v;
      --left;
    }
    // SAFETY: fd is a non-negative int (checked on the JS thread; the kernel checks that it is
    // open for writing, EBADF). v[0, left) point into the backing stores of Uint8Arrays that
    // the job keeps referenced (so alive and not detached: the engine never transfers its
    // page buffers) and that the JS thread leaves unchanged until `done` settles; each length
    // is at most the array's byteLength. 0 < left <= IOV_MAX (checked), the call's bytes <=
    // 0x7ffff000 and offset + bytes <= 2^53 fit off_t. EINTR is retried; a short write goes on
    // from where it stopped.
    ssize_t n = pwritev(fd, v, static_cast<int>(left), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // no progress on a regular file: never loop forever
    offset += static_cast<uint64_t>(n);
    rest -= static_cast<uint64_t>(n);
    size_t done = static_cast<size_t>(n);
    while (left > 0 && done >= v->iov_len) {
      done -= v->iov_len;
      ++v;
      --left;
    }
    if (left > 0 && done > 0) {
      // Part of this buffer went in: the rest of it is written next. This changes our own
      // iovec copy, never the buffer.
      v->iov_base = static_cast<uint8_t*>(v->iov_base) + done;
      v->iov_len -= done;
    }
  }
  return 0;
}

class WriteJob : public IoJob {
 public:
  WriteJob(int fd, std::shared_ptr<WriteState> state, std::vector<Call> calls,
           std::vector<struct iovec> iov, napi_ref buffers, napi_deferred deferred)
      : fd_(fd),
        state_(std::move(state)),
        calls_(std::move(calls)),
        iov_(std::move(iov)),
        buffers_(buffers),
        deferred_(deferred) {}

  void Run() override {
    std::lock_guard<std::mutex> hold(state_->mu);
    if (state_->stopped) return;
    int err = 0;
    for (const Call& call : calls_) {
      err = WriteCall(fd_, call, &iov_);
      if (err != 0) break;
    }
    state_->error = err;
    state_->finished = true;
  }

  void Complete(napi_env env) override {
    int err;
    {
      std::lock_guard<std::mutex> hold(state_->mu);
      err = state_->error;
    }
    SettlePromise(Napi::Env(env), deferred_, err, "pwritev");
    // The thread wrote (or was stopped): the buffers may go.
    napi_delete_reference(env, buffers_);
  }

 private:
  int fd_;
  std::shared_ptr<WriteState> state_;
  std::vector<Call> calls_;
  std::vector<struct iovec> iov_;
  // Keeps the buffers alive until Complete (or until the environment ends, which frees it).
  napi_ref buffers_;
  napi_deferred deferred_;
};

// Whether `x` is an integer in [0, 2^53 - 1], stored in `out` when it is. The comparisons come
// first: they fail for NaN, and converting a double outside uint64_t's range is undefined.
bool SafeInteger(double x, uint64_t* out) {
  if (!(x >= 0 && x <= static_cast<double>(kMaxSafeInteger))) return false;
  *out = static_cast<uint64_t>(x);
  return static_cast<double>(*out) == x;
}

// The data of argument `index` when it is a typed array of `type`, else a TypeError naming it.
template <typename T>
bool ReadTypedArray(const Napi::CallbackInfo& info, size_t index, napi_typedarray_type type,
                    const char* name, const char* typeName, const T** data, size_t* length) {
  napi_typedarray_type got;
  void* raw = nullptr;
  if (!info[index].IsTypedArray() ||
      napi_get_typedarray_info(info.Env(), info[index], &got, length, &raw, nullptr, nullptr) !=
          napi_ok ||
      got != type) {
    ThrowTypeError(info.Env(), std::string(name) + " must be a " + typeName + ", got " +
                                   Describe(info[index]));
    return false;
  }
  // A zero-length array may have no data; it is never read then.
  *data = static_cast<const T*>(raw);
  return true;
}

Napi::Value WriteAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ReadFd(info, 0, &fd)) return env.Undefined();
  if (!info[1].IsArray()) {
    ThrowTypeError(env, "buffers must be an array, got " + Describe(info[1]));
    return env.Undefined();
  }
  Napi::Array buffers = info[1].As<Napi::Array>();
  const uint32_t bufferCount = buffers.Length();
  std::vector<struct iovec> iov;
  iov.reserve(bufferCount);
  // The job references its own array of the buffers, not the caller's: a caller that
  // emptied its array afterwards (or whose elements are getters) could otherwise let a buffer
  // be collected mid-write.
  Napi::Array held = Napi::Array::New(env, bufferCount);
  for (uint32_t i = 0; i < bufferCount; i++) {
    napi_value value;
    if (napi_get_element(env, buffers, i, &value) != napi_ok) return env.Undefined();
    // One call reads the type, the length and the data: this loop runs for every page of a
    // commit. It fails for a value that is not a typed array.
    napi_typedarray_type type;
    size_t length;
    void* data;
    if (napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr) !=
            napi_ok ||
        type != napi_uint8_array) {
      // An exception the call left pending (there is none for a mere wrong type) goes first.
      if (env.IsExceptionPending()) return env.Undefined();
      ThrowTypeError(env, "buffers[" + std::to_string(i) + "] must be a Uint8Array, got " +
                              Describe(Napi::Value(env, value)));
      return env.Undefined();
    }
    iov.push_back({data, length});
    if (napi_set_element(env, held, i, value) != napi_ok) return env.Undefined();
  }
  // Read after the buffers: reading an element may run a getter, which could detach the
  // offsets' or counts' memory. From here on no JavaScript runs until the calls are built.
  const double* offsets;
  const uint32_t* counts;
  size_t callCount, countsLength;
  if (!ReadTypedArray(info, 2, napi_float64_array, "offsets", "Float64Array", &offsets,
                      &callCount) ||
      !ReadTypedArray(info, 3, napi_uint32_array, "counts", "Uint32Array", &counts,
                      &countsLength)) {
    return env.Undefined();
  }
  if (callCount != countsLength) {
    ThrowRangeError(env, "offsets and counts must have the same length");
    return env.Undefined();
  }
  std::vector<Call> calls;
  calls.reserve(callCount);
  size_t next = 0;
  for (size_t i = 0; i < callCount; i++) {
    uint64_t offset;
    if (!SafeInteger(offsets[i], &offset)) {
      ThrowRangeError(env, "offsets[" + std::to_string(i) + "] must be an integer in [0, 2^53)");
      return env.Undefined();
    }
    const uint64_t count = counts[i];
    if (count == 0 || count > IOV_MAX || count > iov.size() - next) {
      ThrowRangeError(env, "counts[" + std::to_string(i) + "] must be 1 to " +
                               std::to_string(IOV_MAX) + " and stay within buffers");
      return env.Undefined();
    }
    uint64_t bytes = 0;
    for (size_t j = next; j < next + count; j++) bytes += iov[j].iov_len;
    if (bytes > kMaxCallBytes || bytes > kMaxSafeInteger - offset) {
      ThrowRangeError(env, "call " + std::to_string(i) +
                               " writes more than 0x7ffff000 bytes or past 2^53");
      return env.Undefined();
    }
    calls.push_back({offset, next, static_cast<size_t>(count), bytes});
    next += count;
  }
  if (next != iov.size()) {
    ThrowRangeError(env, "counts must add up to buffers.length");
    return env.Undefined();
  }
  napi_deferred deferred;
  napi_value promise;
  if (!NewPromise(env, &deferred, &promise)) return env.Undefined();
  auto state = std::make_shared<WriteState>();
  Napi::Object result = Napi::Object::New(env);
  result.Set("done", Napi::Value(env, promise));
  // The job handle owns one reference to the shared state; its finalizer drops it.
  auto job = Napi::External<std::shared_ptr<WriteState>>::New(
      env, new std::shared_ptr<WriteState>(state),
      [](Napi::Env, std::shared_ptr<WriteState>* shared) { delete shared; });
  if (napi_type_tag_object(env, job, &kJobTag) != napi_ok) {
    ThrowTypeError(env, "writeAsync could not tag its job handle");
    return env.Undefined();
  }
  result.Set("job", job);
  napi_ref buffersRef;
  if (napi_create_reference(env, held, 1, &buffersRef) != napi_ok) return env.Undefined();
  if (!QueueIo(env, new WriteJob(fd, state, std::move(calls), std::move(iov), buffersRef,
                                 deferred))) {
    napi_delete_reference(env, buffersRef);
    return env.Undefined();
  }
  return result;
}

Napi::Value StopWrites(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool tagged = false;
  if (info[0].IsExternal() &&
      napi_check_object_type_tag(env, info[0], &kJobTag, &tagged) != napi_ok) {
    return env.Undefined();
  }
  if (!tagged) {
    ThrowTypeError(env, "job must be a handle from writeAsync, got " + Describe(info[0]));
    return env.Undefined();
  }
  // The tag says writeAsync made this external, so it holds what the cast names.
  auto* held = info[0].As<Napi::External<std::shared_ptr<WriteState>>>().Data();
  WriteState& state = **held;
  // Blocks while the thread is making its calls (a commit's pages: microseconds to a few
  // milliseconds of page-cache copies), so that none is made after this returns.
  std::lock_guard<std::mutex> hold(state.mu);
  state.stopped = true;
  return Napi::Boolean::New(env, state.finished && state.error == 0);
}

}  // namespace

void InitWrites(Napi::Env env, Napi::Object exports) {
  exports.Set("writeAsync", Napi::Function::New(env, WriteAsync, "writeAsync"));
  exports.Set("stopWrites", Napi::Function::New(env, StopWrites, "stopWrites"));
}

}  // namespace mapkv
