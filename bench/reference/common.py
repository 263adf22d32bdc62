"""Shared by kernels.py, models.py and twins.py: the job loop and the same measurement policy as
bench/src/timer.ts, plus what makes the anchor checkable (the BLAS torch really uses) and memory.

stdin:  {"threads": N, "policy": {"warmup", "min_warmup_ms" (optional), "repeats", "min_sample_ms", "max_inner", "max_case_ms"},
         "memory": bool, "jobs": [{"id", "kind", "params", "inner"?}]}
stdout: {"torch": version, "threads": N, "blas": {...}, "results": [{"id", "samples_ms": [...], "inner",
         "memory"?: {"rssPeakDeltaBytes", "allocPeakDeltaBytes"}} | {"id", "error"}]}
"""
import ctypes
import json
import math
import os
import sys
import time
import traceback

import torch
from torch.autograd import profiler

# Where the jobs run: "cpu" (default) or "cuda" (the GPU run, bench/device). Set by main() from the spec
# before any builder runs; builders put their tensors and modules on it with on_device().
DEVICE = torch.device("cpu")


def on_device(x):
    """A tensor or module moved to DEVICE (builders create random data with a CPU generator first, so
    the values are the same on every device)."""
    return x.to(DEVICE)


def _use_device(spec):
    """spec["device"] "cuda": jobs on the GPU; spec["tf32"]: TF32 tensor-core matmuls (else strict FP32).
    Factory calls without a device (torch.zeros(...) inside a model) follow torch.set_default_device."""
    global DEVICE
    dev = spec.get("device") or "cpu"
    if dev not in ("cpu", "cuda"):
        raise ValueError("device: expected cpu or cuda, got %r" % dev)
    if dev == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device cuda requested but torch.cuda.is_available() is False")
        DEVICE = torch.device("cuda")
        tf32 = bool(spec.get("tf32"))
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        if hasattr(torch, "set_default_device"):
            torch.set_default_device("cuda")


def _synchronized(run):
    """On the GPU a call is timed until its kernels finish (vlmix's side reads its result back likewise)."""
    if DEVICE.type != "cuda":
        return run

    def call():
        run()
        torch.cuda.synchronize()
    return call


def measure(run, policy, fixed_inner=None):
    """warmup calls (>= 1), continued until they have taken min_warmup_ms (however many calls; the last one's
    time t calibrates), inner = clamp(ceil(min_sample_ms / t), 1, max_inner);
    if t * repeats > max_case_ms, repeats = max(3, floor(max_case_ms / t)) (never more than asked); then
    `repeats` samples of `inner` back-to-back calls. Returns per-call ms samples."""
    last = 0.0
    start = time.perf_counter()
    min_warmup_ms = float(policy.get("min_warmup_ms", 0))
    w = 0
    while w < max(1, int(policy["warmup"])) or (time.perf_counter() - start) * 1000.0 < min_warmup_ms:
        t0 = time.perf_counter()
        run()
        last = (time.perf_counter() - t0) * 1000.0
        w += 1
    if fixed_inner:
        inner = int(fixed_inner)
    else:
        inner = min(int(policy["max_inner"]), max(1, math.ceil(policy["min_sample_ms"] / max(last, 1e-3))))
    repeats = int(policy["repeats"])
    if last * repeats > policy["max_case_ms"]:
        repeats = min(repeats, max(3, int(policy["max_case_ms"] // max(last, 1e-3))))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            run()
        samples.append((time.perf_counter() - t0) * 1000.0 / inner)
    return samples, inner


def blas_info():
    """The BLAS library this process loaded (torch's matmul goes through it) and, for OpenBLAS, the core it
    picked (openblas_get_corename), its thread count and build config, next to the variables that steer it."""
    torch.matmul(torch.ones(8, 8), torch.ones(8, 8))  # make sure the BLAS is loaded
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({ln.split()[-1] for ln in f if "blas" in ln.lower() and ln.split()[-1].startswith("/")})
    except OSError:
        libs = []
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            core, config = lib.openblas_get_corename, lib.openblas_get_config
        except (OSError, AttributeError):
            continue
        core.restype = config.restype = ctypes.c_char_p
        return {"library": path, "openblas": True, "corename": core().decode(), "threads": int(lib.openblas_get_num_threads()),
                "config": config().decode(), "env": env}
    return {"library": ", ".join(libs) or None, "openblas": False, "corename": None, "threads": None,
            "config": "no OpenBLAS loaded (torch.__config__ BLAS_INFO: %s)" % _blas_build_info(), "env": env}


def _blas_build_info():
    cfg = torch.__config__.show()
    i = cfg.find("BLAS_INFO=")
    return cfg[i + 10:].split(",")[0] if i >= 0 else "unknown"


def _status_kb(key):
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith(key + ":"):
                return int(ln.split()[1]) * 1024
    return None


def memory(run):
    """One more call, outside timing: the rise of the peak resident set over the call (VmHWM reset through
    /proc/self/clear_refs), and the allocator's peak of live bytes over the call from the profiler's memory
    events (allocations and frees made inside one op are netted there)."""
    out = {"rssPeakDeltaBytes": None, "allocPeakDeltaBytes": None}
    if DEVICE.type == "cuda":  # the caching allocator's peak over one call
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run()
        out["allocPeakDeltaBytes"] = torch.cuda.max_memory_allocated() - base
        return out
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kb("VmRSS")
        run()
        out["rssPeakDeltaBytes"] = _status_kb("VmHWM") - before
    except OSError:
        pass
    with profiler.profile(profile_memory=True) as prof:
        run()
    pts = []
    for e in prof.function_events:
        b = e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage
        if b:
            pts.append((e.time_range.start if b > 0 else e.time_range.end, b))
    cur = peak = 0
    for _, b in sorted(pts):
        cur += b
        peak = max(peak, cur)
    out["allocPeakDeltaBytes"] = peak
    return out


def main(builders):
    spec = json.load(sys.stdin)
    threads = int(spec.get("threads") or 1)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)
    _use_device(spec)
    policy = spec["policy"]
    results = []
    for job in spec["jobs"]:
        try:
            build = builders.get(job["kind"])
            if build is None:
                raise ValueError("unknown job kind %r; known: %s" % (job["kind"], ", ".join(sorted(builders))))
            run = _synchronized(build(**job["params"]))
            samples, inner = measure(run, policy, job.get("inner"))
            res = {"id": job["id"], "samples_ms": samples, "inner": inner}
            if spec.get("memory"):
                res["memory"] = memory(run)
            results.append(res)
        except Exception as e:  # report and go on with the other jobs
            results.append({"id": job["id"], "error": "%s: %s" % (type(e).__name__, e),
                            "trace": traceback.format_exc(limit=3)})
        sys.stderr.write("torch %s done\n" % job["id"])
        sys.stderr.flush()
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas_info(), "device": DEVICE.type, "results": results}
    if DEVICE.type == "cuda":
        out["gpu"] = {"name": torch.cuda.get_device_name(0), "cuda": torch.version.cuda, "tf32": torch.backends.cuda.matmul.allow_tf32}
    json.dump(out, sys.stdout)
