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

import common
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
        # float32 exponent, float64 power, float32 result: vlmix's rotaryInvFreq
        exps = torch.arange(0, self.dim, 2, dtype=torch.float32) / self.dim
        self.inv_freq = (1.0 / (base ** exps.double())).float()

    def __call__(self, x, pos):  # x [B, H, T, D], pos [T] or [B, T]
        ang = pos.float()[..., None] * self.inv_freq  # [(B,) T, dim/2]
        if ang.dim() == 3:
            ang = ang[:, None]  # [B, 1, T, dim/2]
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
    """One pre-norm layer. `expert` (optional, set by a twin) routes tokens to other projection weights."""

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
        self.expert = None

    def attn(self, x, pos, past, bias=None, route=None):
        b, t, _ = x.shape
        qkv = self.qkv(x) if route is None else route(x, self.qkv, self.expert.qkv)
        q, k, v = qkv.split([self.hq * self.d, self.hkv * self.d, self.hkv * self.d], -1)
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
        if bias is not None:
            s = s + bias
        o = torch.matmul(torch.softmax(s, -1), v).transpose(1, 2).reshape(b, t, self.hq * self.d)
        return (self.dense(o) if route is None else route(o, self.dense, self.expert.dense)), present

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

    def forward(self, x, pos, past=None, bias=None, route=None):
        a, present = self.attn(self.ln1(x), pos, past, bias, route)
        x = x + a
        h = self.ln2(x)
        return x + (self.mlp(h) if route is None else route(h, self.mlp, self.expert.mlp)), present


class Transformer(nn.Module):
    """vlmix's base transformer (pre-norm). The keyword arguments of forward() are the hook points the
    fusion twins use (twins.py): `embeds` replaces the token embedding (image tokens scattered in),
    `pos` [B, T] overrides positions (CogVLM), `bias` [B, 1, 1, Tk] is an additive padding bias, `cross`
    (layer, h) -> h runs before each layer (Flamingo), `route` sends tokens through block.expert."""

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

    def forward(self, ids, past=None, *, embeds=None, pos=None, bias=None, cross=None, route=None, logits_to_keep=0):
        """Logits [B, T, V], or of the last logits_to_keep positions (HF's logits_to_keep; vlmix's logitsToKeep)."""
        start = past[0][0].shape[2] if past else 0
        t = ids.shape[1]
        if pos is None:
            pos = torch.arange(start, start + t)
        h = self.wte(ids) if embeds is None else embeds
        if self.wpe is not None:
            h = h + self.wpe(pos)[None] if pos.dim() == 1 else h + self.wpe(pos)
        presents = []
        for i, blk in enumerate(self.blocks):
            if cross is not None:
                h = cross(i, h)
            h, pr = blk(h, pos, past[i] if past else None, bias, route)
            presents.append(pr)
        if logits_to_keep:
            h = h[:, -logits_to_keep:]
        if self.norm is not None:
            h = self.norm(h)
        logits = F.linear(h, self.wte.weight) if self.head is None else self.head(h)
        return logits, presents


def vlmix_names(cfg):
    """vlmix parameter name -> attribute path in Transformer (docs/weights.md names)."""
    out = {"transformer.word_embeddings.weight": "wte.weight"}
    if cfg["positionEmbedding"] == "learned":
        out["transformer.position_embeddings.weight"] = "wpe.weight"
    parts = {"input_layernorm": "ln1", "attention.query_key_value": "qkv", "attention.dense": "dense",
             "post_attention_layernorm": "ln2", "mlp.dense_h_to_4h": "up", "mlp.dense_4h_to_h": "down"}
    if cfg["activation"] == "swiglu":
        parts["mlp.dense_h_to_4h_gate"] = "gate"
    norm_has_bias = cfg["norm"] == "layernorm"
    for l in range(cfg["numLayers"]):
        for theirs, mine in parts.items():
            is_norm = "layernorm" in theirs
            out["transformer.layers.%d.%s.weight" % (l, theirs)] = "blocks.%d.%s.weight" % (l, mine)
            if (norm_has_bias if is_norm else cfg["bias"]):
                out["transformer.layers.%d.%s.bias" % (l, theirs)] = "blocks.%d.%s.bias" % (l, mine)
    if cfg["finalNorm"]:
        out["transformer.final_layernorm.weight"] = "norm.weight"
        if norm_has_bias:
            out["transformer.final_layernorm.bias"] = "norm.bias"
    if not cfg["tieEmbeddings"]:
        out["lm_head.weight"] = "head.weight"
    return out


def _ids(vocab, batch, seq, seed=0):
    return common.on_device(torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed), device="cpu"))


def forward(config, batch, seq, rope=None):
    model = common.on_device(Transformer(config, rope)).eval()
    ids = _ids(config["vocabSize"], batch, seq)

    def run():
        with torch.no_grad():
            model(ids)
    return run


def train(config, batch, seq, rope=None, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
    model = common.on_device(Transformer(config, rope)).train()
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
    model = common.on_device(Transformer(config, rope)).eval()
    prompt = _ids(config["vocabSize"], batch, prompt_len)

    def run():
        with torch.no_grad():
            logits, past = model(prompt, logits_to_keep=1)  # the head at the last position only, as vlmix and HF
            for step in range(new_tokens):
                tok = logits[:, -1].argmax(-1)
                tok.tolist()
                if step == new_tokens - 1:
                    break
                logits, past = model(tok[:, None], past, logits_to_keep=1)
    return run


if __name__ == "__main__":
    main({"forward": forward, "train": train, "generate": generate})
