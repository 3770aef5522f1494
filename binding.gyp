{
  "targets": [
    {
      "target_name": "afpacket",
      "sources": ["native/afpacket.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
