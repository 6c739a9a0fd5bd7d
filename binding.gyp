{
  "targets": [
    {
      "target_name": "mapkv",
      "sources": [
        "native/mapkv.cc",
        "native/errors.cc",
        "native/mapping.cc",
        "native/file.cc",
        "native/atomics.cc",
        "native/crc32c.cc",
        "native/writes.cc",
        "native/iothreads.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"
      ],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
