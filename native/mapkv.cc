#include <napi.h>
#include <unistd.h>

static Napi::Value PageSize(const Napi::CallbackInfo& info) {
  // sysconf(_SC_PAGESIZE) has no preconditions and cannot fail on Linux.
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("pageSize", Napi::Function::New(env, PageSize));
  return exports;
}

NODE_API_MODULE(mapkv, Init)
