{
  # Sources are every src/native/*.cc; per-ISA files (*_avx2.cc, *_avx512.cc, *_avx512bf16.cc: GEMM kernels and the
  # SimdOps tables) get their own static libraries so only they see -mavx2/-mavx512* (selected at
  # run time). No -march=native anywhere.
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
    "cflags!": ["-fno-exceptions", "-O2", "-O0"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++1y", "-std=gnu++17", "-O2", "-O0"],
    "cflags": ["-O3", "-fPIC", "-fno-math-errno", "-fno-trapping-math"],
    "cflags_cc": ["-std=c++17", "-O3", "-fPIC", "-fexceptions", "-fno-math-errno", "-fno-trapping-math", "-pthread"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "OTHER_CPLUSPLUSFLAGS": ["-O3", "-fno-math-errno"]
    },
    "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17", "/O2"] } }
  },
  "targets": [
    {
      "target_name": "vlmix_gemm_avx2",
      "type": "static_library",
      "sources": ["src/native/gemm_avx2.cc"],
      "conditions": [["target_arch=='x64' or target_arch=='ia32'", { "cflags_cc": ["-mavx2", "-mfma"] }]]
    },
    {
      "target_name": "vlmix_gemm_avx512",
      "type": "static_library",
      "sources": ["src/native/gemm_avx512.cc"],
      "conditions": [["target_arch=='x64' or target_arch=='ia32'", {
        "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma"]
      }]]
    },
    {
      "target_name": "vlmix_gemm_avx512bf16",
      "type": "static_library",
      "sources": ["src/native/gemm_avx512bf16.cc"],
      "conditions": [["target_arch=='x64' or target_arch=='ia32'", {
        "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16", "-mavx2", "-mfma"]
      }]]
    },
    {
      "target_name": "vlmix_simd_avx2",
      "type": "static_library",
      "sources": ["src/native/simd_avx2.cc"],
      "conditions": [["target_arch=='x64' or target_arch=='ia32'", { "cflags_cc": ["-mavx2", "-mfma"] }]]
    },
    {
      "target_name": "vlmix_simd_avx512",
      "type": "static_library",
      "sources": ["src/native/simd_avx512.cc"],
      "conditions": [["target_arch=='x64' or target_arch=='ia32'", {
        "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma",
                      "-mprefer-vector-width=512"]
      }]]
    },
    {
      "target_name": "vlmix_cpu",
      "dependencies": ["vlmix_gemm_avx2", "vlmix_gemm_avx512", "vlmix_gemm_avx512bf16", "vlmix_simd_avx2", "vlmix_simd_avx512"],
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('src/native').filter(f=>f.endsWith('.cc')&&!/_avx(2|512|512bf16)\\.cc$/.test(f)).sort().map(f=>'src/native/'+f).join(' ')\")"
      ],
      "ldflags": ["-pthread"],
      "libraries": ["-ldl"]
    }
  ]
}
