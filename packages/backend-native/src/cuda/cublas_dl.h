// The few cuBLAS entry points vlmix-cuda uses, declared here and resolved with dlopen at first use,
// so the addon builds without the cuBLAS headers and loads without libcublas (matmul then uses the
// built-in tiled kernel). Search order: $VLMIX_CUBLAS_PATH, libcublas.so.13, libcublas.so.12.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

namespace vlmix_cuda {

typedef struct cublasContext* cublasHandle_t;
typedef int cublasStatus_t;  // CUBLAS_STATUS_SUCCESS = 0
enum CublasOp : int { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum CublasMath : int { CUBLAS_DEFAULT_MATH = 0, CUBLAS_PEDANTIC_MATH = 2, CUBLAS_TF32_TENSOR_OP_MATH = 3 };

struct CublasApi {
  cublasStatus_t (*create)(cublasHandle_t*);
  cublasStatus_t (*destroy)(cublasHandle_t);
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
  cublasStatus_t (*set_math_mode)(cublasHandle_t, int);
  cublasStatus_t (*get_version)(cublasHandle_t, int*);
  cublasStatus_t (*sgemm_strided_batched)(cublasHandle_t, int transa, int transb, int m, int n, int k,
                                          const float* alpha, const float* A, int lda, long long strideA,
                                          const float* B, int ldb, long long strideB, const float* beta, float* C,
                                          int ldc, long long strideC, int batchCount);
};

// Loads libcublas once; returns null (and sets why) when it cannot be loaded.
const CublasApi* cublas_api(std::string* why);
// Which library was loaded (path or soname), or "" if none.
const std::string& cublas_library();

}  // namespace vlmix_cuda
