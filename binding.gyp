{
  "targets": [
    {
      "target_name": "netmodes",
      "sources": [
        "native/addon.cc",
        "native/netns.cc",
        "native/nl/socket.cc",
        "<!@(ls -1 native/rtnl/*.cc)",
        "<!@(ls -1 native/nft/*.cc)",
        "native/fs/fs.cc",
        "native/chain.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    },
    {
      "target_name": "netmodes-exec",
      "type": "executable",
      "sources": ["native/exec/exec.c"],
      "cflags": ["-std=c11", "-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "netmodes-cni",
      "type": "executable",
      "sources": ["native/cni/cni.c"],
      "cflags": ["-std=c11", "-O2", "-Wall", "-Wextra"]
    }
  ]
}
