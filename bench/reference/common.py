"""Shared by kernels.py and models.py: the job loop and the same measurement policy as bench/src/timer.ts.

stdin:  {"threads": N, "policy": {"warmup", "repeats", "min_sample_ms", "max_inner", "max_case_ms"}, "jobs": [{"id", "kind", "params", "inner"?}]}
stdout: {"torch": version, "threads": N, "results": [{"id", "samples_ms": [...], "inner"} | {"id", "error"}]}
"""
import json
import math
import sys
import time
import traceback

import torch


def measure(run, policy, fixed_inner=None):
    """warmup calls (>= 1; the last one's time t calibrates), inner = clamp(ceil(min_sample_ms / t), 1, max_inner);
    if t * repeats > max_case_ms, repeats = max(3, floor(max_case_ms / t)) (never more than asked); then
    `repeats` samples of `inner` back-to-back calls. Returns per-call ms samples."""
    last = 0.0
    for _ in range(max(1, int(policy["warmup"]))):
        t0 = time.perf_counter()
        run()
        last = (time.perf_counter() - t0) * 1000.0
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


def main(builders):
    spec = json.load(sys.stdin)
    threads = int(spec.get("threads") or 1)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)
    policy = spec["policy"]
    results = []
    for job in spec["jobs"]:
        try:
            build = builders.get(job["kind"])
            if build is None:
                raise ValueError("unknown job kind %r; known: %s" % (job["kind"], ", ".join(sorted(builders))))
            run = build(**job["params"])
            samples, inner = measure(run, policy, job.get("inner"))
            results.append({"id": job["id"], "samples_ms": samples, "inner": inner})
        except Exception as e:  # report and go on with the other jobs
            results.append({"id": job["id"], "error": "%s: %s" % (type(e).__name__, e),
                            "trace": traceback.format_exc(limit=3)})
        sys.stderr.write("torch %s done\n" % job["id"])
        sys.stderr.flush()
    json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, sys.stdout)
