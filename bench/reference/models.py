"""PyTorch reference models for the architecture and scaling suites.

Built from a vlmix TransformerConfig (passed in the job spec as `config`, plus `rope` when the preset has
a rotary mixin): GPT-2 style (LayerNorm, GELU, learned positions, biases, tied embeddings) and LLaMA style
(RMSNorm, SwiGLU, RoPE, grouped-query attention, no biases) are the same module configured differently,
mirroring vlmix's base transformer (fused qkv projection with rows [q | k | v], pre-norm residual blocks,
final norm, head = word embeddings when tied). Reads a job spec on stdin (see common.py).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import main


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(cfg):
    if cfg["norm"] == "rmsnorm":
        return RMSNorm(cfg["hiddenSize"], cfg["normEps"])
    return nn.LayerNorm(cfg["hiddenSize"], eps=cfg["normEps"])


class Rotary:
    def __init__(self, head_dim, base, style, dim):
        self.dim = dim or head_dim
        self.style = style
        self.inv_freq = 1.0 / (base ** (torch.arange(0, self.dim, 2, dtype=torch.float32) / self.dim))

    def __call__(self, x, pos):  # x [B, H, T, D], pos [T]
        ang = pos.float()[:, None] * self.inv_freq[None, :]  # [T, dim/2]
        rot, rest = x[..., : self.dim], x[..., self.dim:]
        if self.style == "interleaved":
            cos, sin = ang.cos(), ang.sin()
            even, odd = rot[..., 0::2], rot[..., 1::2]
            out = torch.stack([even * cos - odd * sin, even * sin + odd * cos], -1).flatten(-2)
        else:
            full = torch.cat([ang, ang], -1)
            half = self.dim // 2
            rotated = torch.cat([-rot[..., half:], rot[..., :half]], -1)
            out = rot * full.cos() + rotated * full.sin()
        return torch.cat([out, rest], -1) if rest.shape[-1] else out


class Block(nn.Module):
    def __init__(self, cfg, rotary):
        super().__init__()
        c, d, hq, hkv = cfg["hiddenSize"], cfg["headDim"], cfg["numHeads"], cfg["numKvHeads"]
        self.hq, self.hkv, self.d = hq, hkv, d
        self.rotary = rotary
        self.act = cfg["activation"]
        bias = cfg["bias"]
        self.ln1, self.ln2 = make_norm(cfg), make_norm(cfg)
        self.qkv = nn.Linear(c, (hq + 2 * hkv) * d, bias=bias)
        self.dense = nn.Linear(hq * d, c, bias=bias)
        self.up = nn.Linear(c, cfg["intermediateSize"], bias=bias)
        self.gate = nn.Linear(c, cfg["intermediateSize"], bias=bias) if self.act == "swiglu" else None
        self.down = nn.Linear(cfg["intermediateSize"], c, bias=bias)

    def attn(self, x, pos, past):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).split([self.hq * self.d, self.hkv * self.d, self.hkv * self.d], -1)
        q = q.view(b, t, self.hq, self.d).transpose(1, 2)
        k = k.view(b, t, self.hkv, self.d).transpose(1, 2)
        v = v.view(b, t, self.hkv, self.d).transpose(1, 2)
        if self.rotary is not None:
            q, k = self.rotary(q, pos), self.rotary(k, pos)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        present = (k, v)
        if self.hq != self.hkv:
            k = k.repeat_interleave(self.hq // self.hkv, dim=1)
            v = v.repeat_interleave(self.hq // self.hkv, dim=1)
        tk = k.shape[2]
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.d)
        if t > 1:
            mask = torch.ones(t, tk, dtype=torch.bool).triu(tk - t + 1)
            s = s.masked_fill(mask, float("-inf"))
        o = torch.matmul(torch.softmax(s, -1), v).transpose(1, 2).reshape(b, t, self.hq * self.d)
        return self.dense(o), present

    def mlp(self, x):
        u = self.up(x)
        if self.act == "swiglu":
            a = F.silu(self.gate(x)) * u
        elif self.act == "gelu":
            a = F.gelu(u)
        elif self.act == "gelu_tanh":
            a = F.gelu(u, approximate="tanh")
        else:
            a = F.relu(u)
        return self.down(a)

    def forward(self, x, pos, past=None):
        a, present = self.attn(self.ln1(x), pos, past)
        x = x + a
        return x + self.mlp(self.ln2(x)), present


class Transformer(nn.Module):
    def __init__(self, cfg, rope=None):
        super().__init__()
        if cfg.get("normOrder", "pre") != "pre":
            raise ValueError("reference model supports normOrder 'pre' only, got %r" % cfg["normOrder"])
        c = cfg["hiddenSize"]
        self.cfg = cfg
        self.wte = nn.Embedding(cfg["vocabSize"], c)
        self.wpe = nn.Embedding(cfg["maxSeqLen"], c) if cfg["positionEmbedding"] == "learned" else None
        rotary = Rotary(cfg["headDim"], rope.get("base", 10000), rope.get("style", "half"), rope.get("dim")) if rope else None
        self.blocks = nn.ModuleList([Block(cfg, rotary) for _ in range(cfg["numLayers"])])
        self.norm = make_norm(cfg) if cfg["finalNorm"] else None
        self.head = None if cfg["tieEmbeddings"] else nn.Linear(c, cfg["vocabSize"], bias=False)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=cfg.get("initStd", 0.02))

    def forward(self, ids, past=None):
        start = past[0][0].shape[2] if past else 0
        t = ids.shape[1]
        pos = torch.arange(start, start + t)
        h = self.wte(ids)
        if self.wpe is not None:
            h = h + self.wpe(pos)[None]
        presents = []
        for i, blk in enumerate(self.blocks):
            h, pr = blk(h, pos, past[i] if past else None)
            presents.append(pr)
        if self.norm is not None:
            h = self.norm(h)
        logits = F.linear(h, self.wte.weight) if self.head is None else self.head(h)
        return logits, presents


def _ids(vocab, batch, seq, seed=0):
    return torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


def forward(config, batch, seq, rope=None):
    model = Transformer(config, rope).eval()
    ids = _ids(config["vocabSize"], batch, seq)

    def run():
        with torch.no_grad():
            model(ids)
    return run


def train(config, batch, seq, rope=None, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
    model = Transformer(config, rope).train()
    ids = _ids(config["vocabSize"], batch, seq)
    labels = _ids(config["vocabSize"], batch, seq, seed=1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)

    def run():
        opt.zero_grad(set_to_none=True)
        logits, _ = model(ids)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        loss.backward()
        opt.step()
        loss.item()
    return run


def generate(config, prompt_len, new_tokens, batch=1, rope=None):
    """Greedy decoding with a KV cache: one prefill and new_tokens - 1 incremental steps, argmax read back
    each step (as vlmix's generate, which produces new_tokens tokens from new_tokens forward passes)."""
    model = Transformer(config, rope).eval()
    prompt = _ids(config["vocabSize"], batch, prompt_len)

    def run():
        with torch.no_grad():
            logits, past = model(prompt)
            for step in range(new_tokens):
                tok = logits[:, -1].argmax(-1)
                tok.tolist()
                if step == new_tokens - 1:
                    break
                logits, past = model(tok[:, None], past)
    return run


if __name__ == "__main__":
    main({"forward": forward, "train": train, "generate": generate})
