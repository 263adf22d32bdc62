"""PyTorch reference for the kernel suite (bench/src/suites/kernels.ts): the same shapes and dtypes.
Each builder returns a closure doing one call. Reads a job spec on stdin (see common.py)."""
import math

import torch
import torch.nn.functional as F

from common import main, on_device

torch.set_grad_enabled(False)
g = torch.Generator().manual_seed(0)


def randn(*shape, requires_grad=False, dtype=torch.float32):
    t = on_device(torch.randn(*shape, generator=g, dtype=torch.float32, device="cpu").to(dtype))
    if requires_grad:
        t.requires_grad_(True)
    return t


def randint(high, shape):
    return on_device(torch.randint(0, high, shape, generator=g, device="cpu"))


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def matmul(m, k, n, dtype="float32"):
    a, b = randn(m, k, dtype=DTYPES[dtype]), randn(k, n, dtype=DTYPES[dtype])
    return lambda: torch.matmul(a, b)


def bmm(batch, m, k, n):
    a, b = randn(batch, m, k), randn(batch, k, n)
    return lambda: torch.bmm(a, b)


def _attn(q, k, v, causal, scale):
    hq, hkv = q.shape[1], k.shape[1]
    if hq != hkv:
        k = k.repeat_interleave(hq // hkv, dim=1)
        v = v.repeat_interleave(hq // hkv, dim=1)
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    if causal:
        tq, tk = q.shape[2], k.shape[2]
        mask = torch.ones(tq, tk, dtype=torch.bool, device=q.device).triu(tk - tq + 1)
        s = s.masked_fill(mask, float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1), v)


def attention(b, h, t, d, causal=True, backward=False, hkv=None):
    hkv = hkv or h
    scale = 1.0 / math.sqrt(d)
    q, k, v = randn(b, h, t, d, requires_grad=backward), randn(b, hkv, t, d, requires_grad=backward), randn(b, hkv, t, d, requires_grad=backward)
    if not backward:
        return lambda: _attn(q, k, v, causal, scale)
    dy = randn(b, h, t, d)

    def run():
        with torch.enable_grad():
            out = _attn(q, k, v, causal, scale)
            torch.autograd.grad(out, (q, k, v), dy)
    return run


def sdpa(b, h, t, d, causal=True, backward=False):
    """torch's fused attention (flash / memory-efficient kernels on a GPU): the anchor for attention on CUDA."""
    q, k, v = (randn(b, h, t, d, requires_grad=backward) for _ in range(3))
    if not backward:
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    dy = randn(b, h, t, d)

    def run():
        with torch.enable_grad():
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            torch.autograd.grad(out, (q, k, v), dy)
    return run


def layernorm(rows, cols, eps=1e-5):
    x, w, bias = randn(rows, cols), randn(cols), randn(cols)
    return lambda: F.layer_norm(x, (cols,), w, bias, eps)


def rmsnorm(rows, cols, eps=1e-6):
    # torch 1.13 has no fused RMSNorm: the usual composite (as in HF LlamaRMSNorm).
    x, w = randn(rows, cols), randn(cols)
    return lambda: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def softmax(rows, cols):
    x = randn(rows, cols)
    return lambda: torch.softmax(x, dim=-1)


def gelu(n, approximate="none"):
    x = randn(n)
    return lambda: F.gelu(x, approximate=approximate)


def softmax_ce(rows, vocab):
    x = randn(rows, vocab)
    labels = randint(vocab, (rows,))
    return lambda: F.cross_entropy(x, labels, reduction="none")


def gather(vocab, dim, n):
    table = randn(vocab, dim)
    ids = randint(vocab, (n,))
    return lambda: F.embedding(ids, table)


def scatter(vocab, dim, n):
    # The embedding gradient: dy rows summed into their token's row (tfjs UnsortedSegmentSum).
    dy = randn(n, dim)
    ids = randint(vocab, (n,))
    return lambda: torch.zeros(vocab, dim, device=dy.device).index_add_(0, ids, dy)


def adamw(size, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
    p = torch.nn.Parameter(randn(size))
    p.grad = randn(size)
    opt = torch.optim.AdamW([p], lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
    return opt.step


def overhead_add(calls):
    one = on_device(torch.ones(1))

    def run():
        x = torch.zeros(1, device=one.device)
        for _ in range(calls):
            x = torch.add(x, one)
        x.item()
    return run


if __name__ == "__main__":
    main({
        "matmul": matmul, "bmm": bmm, "attention": attention, "sdpa": sdpa, "layernorm": layernorm, "rmsnorm": rmsnorm,
        "softmax": softmax, "gelu": gelu, "softmax_ce": softmax_ce, "gather": gather, "scatter": scatter,
        "adamw": adamw, "overhead_add": overhead_add,
    })
