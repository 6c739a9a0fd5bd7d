// Errors and argument validation shared by every exported function.

#include <uv.h>

#include <climits>
#include <cmath>
#include <string>

#include "mapkv.h"

namespace mapkv {

namespace {


// Formats a double for a message without a trailing ".000000".
std::string FormatNumber(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  char text[64];
  snprintf(text, sizeof text, "%.17g", value);
  return text;
}

}  // namespace

// A short description of a JS value's type for error messages: "got a string".
std::string Describe(const Napi::Value& value) {
  switch (value.Type()) {
    case napi_undefined:
      return "undefined";
    case napi_null:
      return "null";
    case napi_boolean:
      return "a boolean";
    case napi_number:
      return "a number";
    case napi_string:
      return "a string";
    case napi_symbol:
      return "a symbol";
    case napi_object:
      return "an object";
    case napi_function:
      return "a function";
    case napi_external:
      return "an external";
    case napi_bigint:
      return "a bigint";
  }
  return "an unknown value";
}

void ThrowTypeError(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
}

void ThrowRangeError(Napi::Env env, const std::string& message) {
  Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
}

Napi::Error SystemError(Napi::Env env, int err, const char* syscall) {
  // libuv's names and messages are the ones Node's own errors carry ('ENOSPC', "no space left
  // on device"); libuv error numbers are the negated errno values on Unix.
  const char* code = uv_err_name(-err);
  std::string message = std::string(code) + ": " + uv_strerror(-err) + ", " + syscall;
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("code", Napi::String::New(env, code));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

void ThrowSystemError(Napi::Env env, int err, const char* syscall) {
  SystemError(env, err, syscall).ThrowAsJavaScriptException();
}

bool ReadSafeInteger(const Napi::CallbackInfo& info, size_t index, const char* name,
                     uint64_t* out) {
  return ReadSafeIntegerValue(info.Env(), info[index], name, out);
}

bool ReadSafeIntegerValue(Napi::Env env, const Napi::Value& value, const std::string& name,
                          uint64_t* out) {
  if (!value.IsNumber()) {
    ThrowTypeError(env, name + " must be a number, got " + Describe(value));
    return false;
  }
  double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::trunc(number) != number) {
    ThrowRangeError(env, name + " must be an integer, got " + FormatNumber(number));
    return false;
  }
  if (number < 0) {
    ThrowRangeError(env, name + " must be non-negative, got " + FormatNumber(number));
    return false;
  }
  if (number > static_cast<double>(kMaxSafeInteger)) {
    ThrowRangeError(env,
                    name + " must be at most Number.MAX_SAFE_INTEGER, got " + FormatNumber(number));
    return false;
  }
  *out = static_cast<uint64_t>(number);
  return true;
}

bool ReadFd(const Napi::CallbackInfo& info, size_t index, int* out) {
  uint64_t fd;
  if (!ReadSafeInteger(info, index, "fd", &fd)) return false;
  if (fd > static_cast<uint64_t>(INT_MAX)) {
    ThrowRangeError(info.Env(), "fd must be at most 2147483647, got " + std::to_string(fd));
    return false;
  }
  *out = static_cast<int>(fd);
  return true;
}

bool ReadBool(const Napi::CallbackInfo& info, size_t index, const char* name, bool* out) {
  Napi::Value value = info[index];
  if (!value.IsBoolean()) {
    ThrowTypeError(info.Env(),
                   std::string(name) + " must be a boolean, got " + Describe(value));
    return false;
  }
  *out = value.As<Napi::Boolean>().Value();
  return true;
}

bool NewPromise(Napi::Env env, napi_deferred* deferred, napi_value* promise) {
  return napi_create_promise(env, deferred, promise) == napi_ok;
}

void SettlePromise(Napi::Env env, napi_deferred deferred, int error, const char* syscall) {
  if (error == 0) {
    napi_resolve_deferred(env, deferred, env.Undefined());
  } else {
    napi_reject_deferred(env, deferred, SystemError(env, error, syscall).Value());
  }
}

}  // namespace mapkv
