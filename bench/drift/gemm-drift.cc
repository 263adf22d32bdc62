// Drift probe: one process times vlmix's sgemm (n^3, default 1024) back to back and reports, per call,
// whether the pool's worker last ran on the caller's CPU (read from /proc/self/task/<tid>/stat, field 39),
// so a slow process can be told apart: both threads on one CPU, or both apart. Prints one JSON line.
// Built and run by bench/drift/run.sh against packages/backend-native/src/native (no Node involved).
#include <dirent.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gemm.h"
#include "threadpool.h"

static double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Thread ids of this process other than the caller's (the pool's workers: nothing else runs here).
static std::vector<int> other_tids() {
  std::vector<int> out;
  DIR* d = opendir("/proc/self/task");
  if (!d) return out;
  const int self = (int)gettid();
  while (dirent* e = readdir(d)) {
    int t = atoi(e->d_name);
    if (t > 0 && t != self) out.push_back(t);
  }
  closedir(d);
  return out;
}

// CPU the thread last ran on: field 39 of /proc/self/task/<tid>/stat.
static int last_cpu(int tid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
  FILE* f = fopen(path, "r");
  if (!f) return -1;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char* p = strrchr(buf, ')');
  if (!p) return -1;
  int field = 3;  // p + 2 is the start of field 3 (state)
  for (char* s = p + 2; *s; ++s) {
    if (*s == ' ' && ++field == 39) return atoi(s + 1);
  }
  return -1;
}

int main(int argc, char** argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 1024;
  const int reps = argc > 2 ? atoi(argv[2]) : 30;
  const size_t nn = (size_t)n * n;
  float* A = (float*)aligned_alloc(64, nn * 4);
  float* B = (float*)aligned_alloc(64, nn * 4);
  float* C = (float*)aligned_alloc(64, nn * 4);
  for (size_t i = 0; i < nn; i++) {
    A[i] = (float)((i * 7) % 13) * 0.1f;
    B[i] = (float)((i * 5) % 11) * 0.1f;
  }
  auto gemm = [&] { vlmix::sgemm(false, false, n, n, n, 1.f, A, n, B, n, 0.f, C, n); };
  gemm();
  gemm();
  const std::vector<int> workers = other_tids();
  std::vector<double> t;
  int same = 0;
  rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  for (int i = 0; i < reps; i++) {
    double s = now_ms();
    gemm();
    t.push_back(now_ms() - s);
    const int me = sched_getcpu();
    for (int w : workers) same += last_cpu(w) == me;
  }
  getrusage(RUSAGE_SELF, &r1);
  std::vector<double> s = t;
  std::sort(s.begin(), s.end());
  printf("{\"n\":%d,\"threads\":%d,\"median\":%.3f,\"p25\":%.3f,\"p75\":%.3f,\"min\":%.3f,\"workerOnCallerCpu\":%d,\"calls\":%d,\"involuntarySwitches\":%ld}\n",
         n, vlmix::num_threads(), s[s.size() / 2], s[s.size() / 4], s[3 * s.size() / 4], s[0], same, reps,
         r1.ru_nivcsw - r0.ru_nivcsw);
  return C[0] > 0 ? 0 : 1;
}
