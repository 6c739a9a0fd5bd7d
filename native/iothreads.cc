// The addon's own I/O threads: where an async commit's page writes (writeAsync) and flushes
// (fdatasyncAsync) run while the event loop goes on.
//
// Why not libuv's thread pool (Napi::AsyncWorker), which these calls used before: waking a
// pool thread could put it on the CPU the event loop runs on, where it preempted the event
// loop for as long as it copied a commit's pages into the page cache. On the project's 2-vCPU
// machine that cost the event loop 113-122 us per 30-put commit (`node bench/handoff.mjs`). A
// thread under SCHED_BATCH is never woken into preempting the thread that woke it: it runs
// on an idle CPU, or once the event loop's slice ends. libuv's pool is Node's, shared with fs,
// crypto and zlib, and not ours to reschedule; these threads are. They also keep a commit's
// flush from queueing behind an application's own thread-pool work.
//
// Per environment (the main thread and each worker thread have their own): at most
// kMaxThreads threads, started as jobs find none waiting, each taking the oldest queued job.
// A job's Run() makes its system calls on an I/O thread and touches no JS value; its
// Complete() then runs on the JS thread, through a thread-safe function, to settle its promise
// and drop its references. While jobs are outstanding the thread-safe function is referenced,
// so the event loop stays alive for them as it did for libuv work.
//
// When the environment ends, its cleanup hook stops the threads after the jobs they are
// running and joins them before anything else of the environment is torn down (the hook was
// added after the thread-safe function's own, and hooks run last-added first): so no thread
// writes from a buffer whose memory is gone, or calls a thread-safe function that is. Jobs
// never started are dropped; their promises are never settled, as no JavaScript runs again.

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#include "mapkv.h"

namespace mapkv {

namespace {

// Threads per environment: as many as libuv's pool has by default, so flushes of several
// databases of one thread still overlap.
constexpr size_t kMaxThreads = 4;

struct IoThreads {
  napi_threadsafe_function tsfn = nullptr;
  size_t outstanding = 0;  // JS thread only: jobs queued and not completed yet
  std::vector<std::thread> threads;  // JS thread only: started and joined there

  std::mutex mu;
  std::condition_variable wake;
  std::deque<IoJob*> queue;  // under mu
  size_t idle = 0;           // under mu: threads waiting for a job
  bool stopping = false;     // under mu
};

void RunThread(IoThreads* io) {
  // SAFETY: pthread_self() names this thread; SCHED_BATCH takes priority 0, and any thread
  // may switch itself from SCHED_OTHER to it (no privilege). If it fails (a kernel without
  // it), the thread stays SCHED_OTHER: only the wake-up preemption above comes back.
  sched_param param{};
  param.sched_priority = 0;
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
  for (;;) {
    IoJob* job;
    {
      std::unique_lock<std::mutex> lock(io->mu);
      io->idle++;
      io->wake.wait(lock, [io] { return io->stopping || !io->queue.empty(); });
      io->idle--;
      if (io->stopping) return;
      job = io->queue.front();
      io->queue.pop_front();
    }
    job->Run();
    // The queue of the thread-safe function is unbounded, so the call never blocks. It fails
    // (napi_closing) only once the environment is ending: the job's JavaScript side ends with
    // it, and its C++ side is freed here.
    if (napi_call_threadsafe_function(io->tsfn, job, napi_tsfn_blocking) != napi_ok) delete job;
  }
}

// On the JS thread, for each job a thread ran; env is null when the thread-safe function is
// being torn down with jobs still in its queue (then only the C++ side is freed, and `io`,
// which may be gone, is not touched).
void CompleteJob(napi_env env, napi_value /*js_callback*/, void* context, void* data) {
  auto* job = static_cast<IoJob*>(data);
  if (env != nullptr) {
    auto* io = static_cast<IoThreads*>(context);
    job->Complete(env);
    if (--io->outstanding == 0) napi_unref_threadsafe_function(env, io->tsfn);
  }
  delete job;
}

// The environment's cleanup hook (see the top of the file).
void StopThreads(void* arg) {
  auto* io = static_cast<IoThreads*>(arg);
  {
    std::lock_guard<std::mutex> lock(io->mu);
    io->stopping = true;
  }
  io->wake.notify_all();
  for (std::thread& thread : io->threads) thread.join();
  io->threads.clear();
  for (IoJob* job : io->queue) delete job;
  io->queue.clear();
}

// The thread-safe function's finalizer: the last use of `io` (after StopThreads).
void FreeThreads(napi_env /*env*/, void* data, void* /*hint*/) {
  delete static_cast<IoThreads*>(data);
}

// The environment's I/O threads' state, made on first use; null, with a JS exception pending,
// when Node-API refuses.
IoThreads* ThreadsOf(napi_env env) {
  void* data = nullptr;
  if (napi_get_instance_data(env, &data) != napi_ok) return nullptr;
  if (data != nullptr) return static_cast<IoThreads*>(data);
  auto* io = new IoThreads();
  io->threads.reserve(kMaxThreads);
  napi_value name;
  if (napi_create_string_utf8(env, "mapkv.io", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, io, FreeThreads, io,
                                      CompleteJob, &io->tsfn) != napi_ok) {
    delete io;
    if (!Napi::Env(env).IsExceptionPending()) {
      Napi::Error::New(env, "could not make the I/O threads' completion channel")
          .ThrowAsJavaScriptException();
    }
    return nullptr;
  }
  // From here FreeThreads owns `io`. Unreferenced until a job is outstanding: an idle channel
  // must not keep the process alive.
  napi_unref_threadsafe_function(env, io->tsfn);
  napi_add_env_cleanup_hook(env, StopThreads, io);
  napi_set_instance_data(env, io, nullptr, nullptr);
  return io;
}

// A job that only waits: occupies an I/O thread for tests (ioSleep).
class SleepJob : public IoJob {
 public:
  SleepJob(double ms, napi_deferred deferred) : ms_(ms), deferred_(deferred) {}
  void Run() override {
    const int64_t ns = static_cast<int64_t>(ms_ * 1e6);
    timespec left{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    // SAFETY: `left` is a valid timespec (0 <= tv_nsec < 1e9; ms_ is in [0, 10000], checked on
    // the JS thread); an interrupted sleep goes on with what is left of it.
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
  }
  void Complete(napi_env env) override { SettlePromise(Napi::Env(env), deferred_, 0, ""); }

 private:
  double ms_;
  napi_deferred deferred_;
};

// ioSleep(ms): Promise<void>. For tests: occupies one I/O thread for `ms` (0 to 10,000)
// milliseconds, so that a job queued after ioThreads of these waits for a thread.
Napi::Value IoSleep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) {
    ThrowTypeError(env, "ms must be a number, got " + Describe(info[0]));
    return env.Undefined();
  }
  const double ms = info[0].As<Napi::Number>().DoubleValue();
  if (!(ms >= 0 && ms <= 10000)) {
    ThrowRangeError(env, "ms must be 0 to 10000");
    return env.Undefined();
  }
  napi_deferred deferred;
  napi_value promise;
  if (!NewPromise(env, &deferred, &promise)) return env.Undefined();
  if (!QueueIo(env, new SleepJob(ms, deferred))) return env.Undefined();
  return Napi::Value(env, promise);
}

}  // namespace

bool QueueIo(napi_env env, IoJob* job) {
  IoThreads* io = ThreadsOf(env);
  if (io == nullptr) {
    delete job;
    return false;
  }
  bool start;
  {
    std::lock_guard<std::mutex> lock(io->mu);
    io->queue.push_back(job);
    // `threads` changes only on this thread. A thread busy now takes the job later anyway; a
    // new one is started only while none waits and the limit allows.
    start = io->idle == 0 && io->threads.size() < kMaxThreads;
  }
  if (start) {
    int error = 0;
    try {
      // SAFETY: `io` outlives the thread: StopThreads joins every thread before FreeThreads
      // can free it. pthread_create failing (EAGAIN) throws std::system_error; the thread's
      // state failing to allocate, std::bad_alloc. `threads` has room reserved for all, so
      // emplace_back itself allocates nothing.
      io->threads.emplace_back(RunThread, io);
    } catch (const std::system_error& e) {
      error = e.code().value();
    } catch (const std::bad_alloc&) {
      error = ENOMEM;
    }
    // No thread could be made (EAGAIN: a process or cgroup thread limit). With threads
    // already running, one of them takes the job; with none, it cannot run.
    if (error != 0 && io->threads.empty()) {
      {
        std::lock_guard<std::mutex> lock(io->mu);
        io->queue.pop_back();
      }
      delete job;
      ThrowSystemError(Napi::Env(env), error, "pthread_create");
      return false;
    }
  }
  io->wake.notify_one();
  if (io->outstanding++ == 0) napi_ref_threadsafe_function(env, io->tsfn);
  return true;
}

void InitIo(Napi::Env env, Napi::Object exports) {
  exports.Set("ioSleep", Napi::Function::New(env, IoSleep, "ioSleep"));
  exports.Set("ioThreads", Napi::Number::New(env, static_cast<double>(kMaxThreads)));
}

}  // namespace mapkv
