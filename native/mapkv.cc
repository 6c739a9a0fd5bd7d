// The mapkv addon's entry point: registers the exports of each part.
//
//   mapping.cc  map, unmap, msync, madvise
//   file.cc     pageSize, fallocate, fdatasync, flock, funlock, fileSize
//   atomics.cc  atomicLoad/Store/Cas 32 and 64, fence
//   crc32c.cc   crc32c, crc32cTable
//   writes.cc   writeAsync, stopWrites
//   iothreads.cc  the I/O threads behind writeAsync and fdatasyncAsync; ioSleep, ioThreads
//   errors.cc   argument validation and Node-shaped system errors

#include "mapkv.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  mapkv::InitMapping(env, exports);
  mapkv::InitFile(env, exports);
  mapkv::InitAtomics(env, exports);
  mapkv::InitCrc32c(env, exports);
  mapkv::InitWrites(env, exports);
  mapkv::InitIo(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(mapkv, Init)
