"""PyTorch twins of vlmix's fusion presets (typeA-tiny ... typeD-tiny, typeC-qformer-tiny, lm-tiny).

A twin is the same model written independently in PyTorch: the base transformer of models.py plus one
small module per vlmix mixin, with the math of packages/mixins (each class names its vlmix source). It
is built from a directory written by bench/src/twins/export.ts:

  spec.json             preset, fusion type, the base config and each mixin's options, the training
                        recipe, and (when exported with training) vlmix's per-step loss, lr, grad norm
  weights.safetensors   the vlmix model's state dict, by vlmix names (all parameters, frozen ones too)
  batches.safetensors   b<i>.inputs.<name> (input_ids, attention_mask, token_types, position_ids ...),
                        b<i>.media.<name> (pixels ...), b<i>.targets: vlmix's encoded batches

Host-computed routing is recomputed here from the token ids / token types (text_time = cumsum of
media tokens, CogVLM expert mask and position ids) and checked against vlmix's when the export has it.

Used by bench/test/twins.test.ts (`python3 twins.py check DIR`: the first N training losses next to
vlmix's) and by the bench's arch suite (job kinds vlm_forward, vlm_train, vlm_generate via common.main).
"""
import contextlib
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import common
from common import main
from models import Transformer, vlmix_names

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "fixtures"))
import st  # noqa: E402  (pure-Python safetensors reader shared with the fixture scripts)

MASK = -1e9  # vlmix's additive mask value (core/src/masks.ts)


def sdpa(q, k, v, scale, bias=None):
    """Non-causal attention, q [B, H, Tq, D], k/v [B, H, Tk, D] (vlmix ops.attention without causal)."""
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    if bias is not None:
        s = s + bias
    return torch.matmul(torch.softmax(s, -1), v)


def heads(x, h):
    b, t, c = x.shape
    return x.view(b, t, h, c // h).transpose(1, 2)


def merge(x):
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class Params(nn.Module):
    """Parameters by vlmix name (dots are not allowed in module attribute names, so they are mapped)."""

    def __init__(self, tensors):
        super().__init__()
        self.names = list(tensors)
        for n, t in tensors.items():
            self.register_parameter(n.replace(".", "\u00b7"), nn.Parameter(t.clone().float()))

    def __getitem__(self, name):
        return getattr(self, name.replace(".", "\u00b7"))

    def __contains__(self, name):
        return hasattr(self, name.replace(".", "\u00b7"))


def linear(P, name, x, bias=True):
    return F.linear(x, P[name + ".weight"], P[name + ".bias"] if bias and (name + ".bias") in P else None)


def layer_norm(P, name, x, eps):
    return F.layer_norm(x, (x.shape[-1],), P[name + ".weight"], P[name + ".bias"], eps)


def activation(x, kind):
    if kind == "quick_gelu":
        return x * torch.sigmoid(1.702 * x)
    return F.gelu(x, approximate="tanh" if kind == "gelu_tanh" else "none")


# ------------------------------------------------------------------------------------------ vision
class Vit(nn.Module):
    """mixins/src/vision/vit.ts VitEncoder + VisionEncoderMixin.features (HF CLIP vision math)."""

    def __init__(self, P, prefix, o):
        super().__init__()
        self.P, self.pre, self.o = P, prefix, o

    def forward(self, pixels):
        P, p, o = self.P, self.pre, self.o
        x = F.conv2d(pixels, P[p + "embeddings.patch_embedding.weight"],
                     P[p + "embeddings.patch_embedding.bias"] if o["patchBias"] else None, stride=o["patchSize"])
        x = x.flatten(2).transpose(1, 2)  # [B, N, C]
        if o["classToken"]:
            cls = P[p + "embeddings.class_embedding"].view(1, 1, -1).expand(x.shape[0], 1, -1)
            x = torch.cat([cls, x], 1)
        x = x + P[p + "embeddings.position_embedding.weight"]
        eps = o["layerNormEps"]
        if o["preLayerNorm"]:
            x = layer_norm(P, p + "pre_layrnorm", x, eps)
        for l in range(o["featureLayer"]):
            q = p + "encoder.layers.%d." % l
            h = layer_norm(P, q + "layer_norm1", x, eps)
            a = sdpa(*(heads(linear(P, q + "self_attn.%s_proj" % n, h), o["numHeads"]) for n in "qkv"),
                     scale=(o["hiddenSize"] // o["numHeads"]) ** -0.5)
            x = x + linear(P, q + "self_attn.out_proj", merge(a))
            m = activation(linear(P, q + "mlp.fc1", layer_norm(P, q + "layer_norm2", x, eps)), o["activation"])
            x = x + linear(P, q + "mlp.fc2", m)
        if o["selectFeature"] == "patch" and o["classToken"]:
            x = x[:, 1:]
        if o["postNorm"]:
            x = layer_norm(P, p + "post_layernorm", x, eps)
        return x


# ------------------------------------------------------------------------------------------ connectors
def projector(P, prefix, o, x):
    """mixins/src/connectors/projectors.ts VisualProjector.project (LLaVA linear / mlpNx_gelu)."""
    if o["kind"] == "linear":
        return linear(P, prefix + "mm_projector", x)
    if o["kind"] != "mlp":
        raise ValueError("twin: projector kind %r has no twin" % o["kind"])
    for i in range(o["mlpDepth"]):
        if i > 0:
            x = F.gelu(x)
        x = linear(P, prefix + "mm_projector.%d" % (2 * i), x)
    return x


def qformer(P, prefix, o, feats):
    """mixins/src/connectors/qformer.ts QFormer.forward (HF Blip2QFormerModel query path + language_projection)."""
    eps, h = o["layerNormEps"], o["numHeads"]
    scale = (o["hiddenSize"] // h) ** -0.5

    def block(base, x, kv):
        a = sdpa(heads(linear(P, base + "attention.query", x), h), heads(linear(P, base + "attention.key", kv), h),
                 heads(linear(P, base + "attention.value", kv), h), scale)
        return layer_norm(P, base + "output.LayerNorm", linear(P, base + "output.dense", merge(a)) + x, eps)

    q = P[prefix + "query_tokens"].expand(feats.shape[0], -1, -1)
    x = layer_norm(P, prefix + "qformer.layernorm", q, eps)
    for l in range(o["numLayers"]):
        pre = prefix + "qformer.encoder.layer.%d." % l
        x = block(pre + "attention.", x, x)
        if l % o["crossAttentionFrequency"] == 0:
            x = block(pre + "crossattention.", x, feats)
        inter = F.gelu(linear(P, pre + "intermediate_query.dense", x))
        x = layer_norm(P, pre + "output_query.LayerNorm", linear(P, pre + "output_query.dense", inter) + x, eps)
    return linear(P, prefix + "language_projection", x)


def perceiver(P, prefix, o, feats):
    """mixins/src/connectors/perceiver.ts perceiverResample for [B, N, D] features (one media, one frame)."""
    b, _, d = feats.shape
    h, dh, eps = o["heads"], o["dimHead"], o["eps"]
    inner = h * dh
    lat = P[prefix + "latents"][None].expand(b, -1, -1)
    for i in range(o["depth"]):
        a, f = prefix + "layers.%d.0." % i, prefix + "layers.%d.1." % i
        xm = layer_norm(P, a + "norm_media", feats, eps)
        ln = layer_norm(P, a + "norm_latents", lat, eps)
        q = heads(F.linear(ln, P[a + "to_q.weight"]), h)
        k, v = F.linear(torch.cat([xm, ln], 1), P[a + "to_kv.weight"]).split([inner, inner], -1)
        ctx = sdpa(q, heads(k, h), heads(v, h), dh ** -0.5)
        lat = F.linear(merge(ctx), P[a + "to_out.weight"]) + lat
        fn = layer_norm(P, f + "0", lat, eps)
        lat = F.linear(F.gelu(F.linear(fn, P[f + "1.weight"])), P[f + "3.weight"]) + lat
    return layer_norm(P, prefix + "norm", lat, eps)[:, None]  # [B, T_img = 1, n, D]


def scatter_image_tokens(emb, ids, tokens, image_id):
    """mixins/src/connectors/projectors.ts scatterImageTokens: row b's k-th placeholder gets tokens[b, k]."""
    mask = ids == image_id
    counts = mask.sum(1)
    if tokens.shape[0] != ids.shape[0]:
        raise ValueError("twin: %d rows of ids but image tokens for %d images" % (ids.shape[0], tokens.shape[0]))
    if not bool((counts == tokens.shape[1]).all()):
        raise ValueError("twin: rows hold %s image placeholders, %d image tokens were projected" % (counts.tolist(), tokens.shape[1]))
    return emb.masked_scatter(mask[..., None], tokens.reshape(-1, emb.shape[-1]).to(emb.dtype))


# ------------------------------------------------------------------------------------------ deep fusion
def gated_xattn(P, prefix, o, x, media, text_time):
    """mixins/src/deep/gated-cross-attention.ts gatedCrossAttentionBlock (open_flamingo GatedCrossAttentionBlock)."""
    b, t, _ = x.shape
    h, dh, eps = o["heads"], o["dimHead"], o["eps"]
    inner = h * dh
    _, t_img, n, dv = media.shape
    xn = layer_norm(P, prefix + "attn.norm", x, eps)
    q = heads(F.linear(xn, P[prefix + "attn.to_q.weight"]), h)
    k, v = F.linear(media.reshape(b, t_img * n, dv), P[prefix + "attn.to_kv.weight"]).split([inner, inner], -1)
    media_time = torch.arange(t_img * n) // n + 1
    tt = text_time[:, None, :, None]
    allowed = (tt == media_time) if o["onlyAttendImmediateMedia"] else (tt >= media_time)  # [B, 1, T, M]
    bias = torch.where(allowed, torch.zeros(()), torch.full((), MASK))
    keep = allowed.any(-1, keepdim=True).float()  # text that sees no media gets a zero attention output
    ctx = sdpa(q, heads(k, h), heads(v, h), dh ** -0.5, bias) * keep
    x = F.linear(merge(ctx), P[prefix + "attn.to_out.weight"]) * torch.tanh(P[prefix + "attn_gate"]) + x
    ff = F.linear(F.gelu(F.linear(layer_norm(P, prefix + "ff.0", x, eps), P[prefix + "ff.1.weight"])), P[prefix + "ff.3.weight"])
    return ff * torch.tanh(P[prefix + "ff_gate"]) + x


def expert_mask(tt):
    """CogVLM get_expert_mask: the vision expert runs where this and the next token are vision tokens."""
    m = torch.zeros_like(tt, dtype=torch.bool)
    m[:, :-1] = (tt[:, :-1] == 1) & (tt[:, 1:] == 1)
    return m


def cogvlm_positions(tt):
    """CogVLM build_position_ids: boi/eoi count as text; interior image tokens share one position."""
    x = tt.clone()
    edge = torch.zeros_like(x, dtype=torch.bool)
    edge[:, 1:] |= (x[:, 1:] == 1) & (x[:, :-1] == 0)
    edge[:, 0] |= x[:, 0] == 1
    edge[:, :-1] |= (x[:, :-1] == 1) & (x[:, 1:] == 0)
    edge[:, -1] |= x[:, -1] == 1
    x[edge] = 0
    y = torch.zeros_like(x, dtype=torch.long)
    y[:, 1:] = (x[:, 1:] == 0) | ((x[:, 1:] == 1) & (x[:, :-1] == 0))
    return y.cumsum(-1)


class Router:
    """Sends the vision-routed rows of [B, T, C] through f_vis and the others through f_lang (visual-expert.ts routed)."""

    def __init__(self, mask):
        flat = mask.flatten()
        self.vi = flat.nonzero().flatten()
        self.li = (~flat).nonzero().flatten()
        self.inv = torch.argsort(torch.cat([self.vi, self.li]))

    def __call__(self, x, f_lang, f_vis):
        b, t, c = x.shape
        flat = x.reshape(b * t, c)
        y = torch.cat([f_vis(flat[self.vi]), f_lang(flat[self.li])])[self.inv]
        return y.view(b, t, -1)


class VisionExpert(nn.Module):
    """The vision copies of one layer's QKV, dense and MLP (CogVLM VisionExpertAttention / VisionExpertMLP)."""

    def __init__(self, P, layer, act):
        super().__init__()
        base = "transformer.layers.%d." % layer
        lin = lambda n: (lambda x: linear(P, base + n, x))  # noqa: E731
        self.qkv = lin("attention.vision_expert_query_key_value")
        self.dense = lin("attention.vision_expert_dense")
        up, gate, down = lin("mlp.vision_mlp.dense_h_to_4h"), lin("mlp.vision_mlp.dense_h_to_4h_gate"), lin("mlp.vision_mlp.dense_4h_to_h")
        if act != "swiglu":
            raise ValueError("twin: the visual expert twin supports the SwiGLU base only, got %r" % act)
        self.mlp = lambda x: down(F.silu(gate(x)) * up(x))


# ------------------------------------------------------------------------------------------ the twin
class Twin(nn.Module):
    """A fusion preset in PyTorch. forward(batch) -> logits; generate(batch, n) greedy with a KV cache."""

    KNOWN = {"rope", "vision", "projector", "qformer", "perceiver", "xattn", "expert", "vq-tokens", "vq-encoder"}

    def __init__(self, spec, weights):
        super().__init__()
        self.spec = spec
        unknown = [m["name"] for m in spec["mixins"] if m["kind"] not in self.KNOWN]
        if unknown:
            raise ValueError("twin: no PyTorch twin for mixin(s) %s" % ", ".join(unknown))
        self.mix = {m["kind"]: m for m in spec["mixins"]}
        cfg = spec["config"]
        rope = self.mix.get("rope")
        self.lm = Transformer(cfg, rope["options"] if rope else None)
        base = vlmix_names(cfg)
        missing = [n for n in base if n not in weights]
        if missing:
            raise ValueError("twin: the export lacks base weights %s" % ", ".join(missing[:5]))
        with torch.no_grad():
            for theirs, mine in base.items():
                self.lm.get_parameter(mine).copy_(weights[theirs])
        # Everything else (mixins) by vlmix name.
        self.P = Params({n: t for n, t in weights.items() if n not in base})
        self.names = dict(base)  # vlmix name -> torch parameter (for the optimizer's decay rule and trainability)
        for n in self.P.names:
            self.names[n] = None
        if "expert" in self.mix:
            for l, blk in enumerate(self.lm.blocks):
                blk.expert = VisionExpert(self.P, l, cfg["activation"])
        self.vit = Vit(self.P, self.mix["vision"]["prefix"], self.mix["vision"]["options"]) if "vision" in self.mix else None

    def param(self, name):
        mine = self.names[name]
        return self.lm.get_parameter(mine) if mine is not None else self.P[name]

    # -- pieces of one forward pass
    def image_tokens(self, pixels):
        feats = self.vit(pixels)
        if "projector" in self.mix:
            m = self.mix["projector"]
            return projector(self.P, m["prefix"], m["options"], feats)
        if "qformer" in self.mix:
            m = self.mix["qformer"]
            return qformer(self.P, m["prefix"], m["options"], feats)
        return feats

    def forward(self, inputs, media, past=None, state=None, logits_to_keep=0):
        """Logits [B, T, V] (and the KV cache). `state` carries what a decode step reuses from the prompt."""
        ids = inputs["input_ids"].long()
        b, t = ids.shape
        start = past[0][0].shape[2] if past else 0
        state = state if state is not None else {}
        mask = inputs.get("attention_mask")
        bias = None
        if mask is not None:
            bias = ((1.0 - mask.float()) * MASK).view(b, 1, 1, -1)
        embeds, pos, cross, route = None, None, None, None
        pixels = media.get("pixels") if start == 0 else None
        if pixels is not None and ("projector" in self.mix or "qformer" in self.mix):
            image_id = self.mix.get("projector", self.mix.get("qformer"))["imageTokenId"]
            embeds = scatter_image_tokens(self.lm.wte(ids), ids, self.image_tokens(pixels), image_id)
        if "xattn" in self.mix:
            x = self.mix["xattn"]
            if pixels is not None:
                p = self.mix["perceiver"]
                state["latents"] = perceiver(self.P, p["prefix"], p["options"], self.vit(pixels))
            run = state.get("mediaCount", torch.zeros(b, dtype=torch.long))
            text_time = run[:, None] + torch.cumsum((ids == x["mediaTokenId"]).long(), 1)
            state["mediaCount"] = text_time[:, -1]
            check(inputs, "text_time", text_time)
            latents = state.get("latents")
            every, o = x["everyN"], x["options"]

            def cross(l, h):
                if (l + 1) % every != 0:
                    return h
                blk = x["prefix"] + "gated_cross_attn_layers.%d." % l
                if latents is None:  # no media at all: the gated feed-forward still applies
                    ff = F.linear(F.gelu(F.linear(layer_norm(self.P, blk + "ff.0", h, o["eps"]), self.P[blk + "ff.1.weight"])), self.P[blk + "ff.3.weight"])
                    return ff * torch.tanh(self.P[blk + "ff_gate"]) + h
                return gated_xattn(self.P, blk, o, h, latents, text_time)
        if "expert" in self.mix:
            tt = inputs.get("token_types")
            tt = torch.zeros_like(ids) if tt is None else tt.long()
            vmask = expert_mask(tt)
            check(inputs, "expert_mask", vmask)
            route = Router(vmask) if bool(vmask.any()) else None
            if self.mix["expert"]["options"]["cogvlmPositions"]:
                offset = state["lastPosition"] + 1 if "lastPosition" in state else torch.zeros(b, dtype=torch.long)
                pos = offset[:, None] + cogvlm_positions(tt)
                state["lastPosition"] = pos[:, -1]
                check(inputs, "position_ids", pos)
        if pos is None and "position_ids" in inputs:
            pos = inputs["position_ids"].long()
        if pos is None:
            pos = torch.arange(start, start + t)[None].expand(b, t)
        logits, presents = self.lm(ids, past, embeds=embeds, pos=pos, bias=bias, cross=cross, route=route, logits_to_keep=logits_to_keep)
        return logits, presents, state

    def loss(self, batch):
        logits, _, _ = self.forward(batch["inputs"], batch["media"])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["targets"].long().reshape(-1), ignore_index=-1)

    def vq_table(self):
        """mixins/src/tokenizers/vq.ts VqTokenMixin (inference): the [3, V] additive rows of its logits mask, by the
        class of the position: 0 outside an image span, 1 codes only, 2 <eoi> only."""
        m = self.mix["vq-tokens"]
        v = m["options"]["vocab"]
        if v.get("eolId") is not None:
            raise NotImplementedError("twin: the VQ mask with <eol> rows (vocab.eolId) is not mirrored here")
        vocab_size = self.spec["config"]["vocabSize"]
        code = torch.zeros(vocab_size, dtype=torch.bool)
        code[v["codeOffset"]:v["codeOffset"] + v["codebookSize"]] = True
        eoi = torch.zeros(vocab_size, dtype=torch.bool)
        eoi[v["eoiId"]] = True
        outside = (code | eoi) if m["options"]["maskOutside"] else torch.zeros(vocab_size, dtype=torch.bool)
        return torch.where(torch.stack([outside, ~code, ~eoi]), torch.full((), MASK), torch.zeros(()))

    def vq_classes(self, row, span):
        """The mask class after each token of `row`, continuing `span` ([open, codes so far], updated in place)."""
        m = self.mix["vq-tokens"]
        v = m["options"]["vocab"]
        out = []
        for tok in row:
            if tok == v["boiId"]:
                span[:] = [True, 0]
            elif tok == v["eoiId"]:
                span[0] = False
            elif span[0]:
                span[1] += 1
            out.append(0 if not span[0] else 1 if span[1] < m["options"]["tokensPerImage"] else 2)
        return out

    def vq_forward_mask(self, ids):
        """VqTokenMixin.finalForward over every position of a forward pass: the class of each position, found on
        the host as vlmix's host stage does, and the table it indexes. Returns (classes [B, T] long, table)."""
        classes = [self.vq_classes(row, [False, 0]) for row in ids.tolist()]
        return torch.tensor(classes, dtype=torch.long), self.vq_table()

    @torch.no_grad()
    def generate(self, prompt, media, token_types, new_tokens, margins=None):
        """Greedy decoding with a KV cache, as core/src/generate.ts: one prefill, then one token per step.
        `margins` (a list) receives each step's gap between the two largest logits of row 0."""
        seqs = [list(map(int, row)) for row in prompt.tolist()]
        inputs = {"input_ids": prompt}
        if token_types is not None:
            inputs["token_types"] = token_types
        past, state = None, None
        span = [[False, 0] for _ in seqs]
        vq = self.vq_table() if "vq-tokens" in self.mix else None
        fed = 0
        for step in range(new_tokens):
            logits, past, state = self.forward(inputs, media, past, state, logits_to_keep=1)  # as vlmix's generate
            last = logits[:, -1]
            if vq is not None:  # the class after each row's newest token
                last = last + vq[[self.vq_classes(s[fed:], span[r])[-1] for r, s in enumerate(seqs)]]
            fed = len(seqs[0])
            if margins is not None:
                top = last[0].topk(2).values
                margins.append(float(top[0] - top[1]))
            tok = last.argmax(-1)
            for r, x in enumerate(tok.tolist()):
                seqs[r].append(x)
            inputs = {"input_ids": tok[:, None]}
            if token_types is not None:
                inputs["token_types"] = torch.zeros_like(tok[:, None])
        return [s[prompt.shape[1]:] for s in seqs]


def check(inputs, name, mine):
    """When vlmix exported a host-computed tensor, it must equal ours."""
    theirs = inputs.get("vlmix." + name)
    if theirs is not None and not torch.equal(theirs.long(), mine.long()):
        bad = (theirs.long() != mine.long()).nonzero()[:3].tolist()
        raise AssertionError("twin: %s differs from vlmix's at %s" % (name, bad))


# ------------------------------------------------------------------------------------------ loading
def load(dir_):
    with open(os.path.join(dir_, "spec.json")) as f:
        spec = json.load(f)
    _, weights = st.load(os.path.join(dir_, "weights.safetensors"))
    _, raw = st.load(os.path.join(dir_, "batches.safetensors"))
    batches = []
    for i in range(spec["batches"]):
        pre = "b%d." % i
        mine = {k[len(pre):]: v for k, v in raw.items() if k.startswith(pre)}
        batches.append({
            "inputs": {k[len("inputs."):]: v for k, v in mine.items() if k.startswith("inputs.")},
            "media": {k[len("media."):]: v for k, v in mine.items() if k.startswith("media.")},
            "targets": mine["targets"],
        })
    if common.DEVICE.type != "cpu":  # the GPU run: weights and batches on the device
        weights = {k: common.on_device(v) for k, v in weights.items()}
        batches = [{g: ({k: common.on_device(v) for k, v in b[g].items()} if isinstance(b[g], dict) else common.on_device(b[g]))
                    for g in b} for b in batches]
    return spec, weights, batches


def vq_codes(spec, weights, pixels):
    """mixins/src/tokenizers/vq.ts VqVae.encode: strided convs + ReLU, quant_conv, nearest code."""
    v = next(m for m in spec["mixins"] if m["kind"] == "vq-tokens")["options"]["vae"]
    p = v["prefix"]
    x = pixels
    for i in range(len(v["hidden"])):
        x = F.relu(F.conv2d(x, weights[p + "encoder.down.%d.conv.weight" % i], weights[p + "encoder.down.%d.conv.bias" % i], stride=2, padding=1))
    z = F.conv2d(x, weights[p + "quant_conv.weight"], weights[p + "quant_conv.bias"]).permute(0, 2, 3, 1)
    flat = z.reshape(-1, z.shape[-1])
    e = weights[p + "quantize.embedding.weight"]
    dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None]
    return dist.argmin(1).view(z.shape[:3])


# ------------------------------------------------------------------------------------------ training
def nanogpt_lr(it, s):
    """train/src/optim.ts warmupCosine (nanoGPT get_lr)."""
    lr, warm, total, min_lr = s["lr"], s["warmupSteps"], s["totalSteps"], s["minLr"]
    if it < warm:
        return lr * it / warm
    if it > total or total == warm:
        return lr if it == warm else min_lr
    coeff = 0.5 * (1 + math.cos(math.pi * (it - warm) / (total - warm)))
    return min_lr + coeff * (lr - min_lr)


def make_optimizer(twin, recipe):
    """AdamW over the trainable parameters; weight decay on rank >= 2 only (train/src/optim.ts defaultNoDecay)."""
    params = [twin.param(n) for n in recipe["trainable"]]
    trainable = set(map(id, params))
    for p in twin.parameters():
        p.requires_grad_(id(p) in trainable)
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    o = recipe["optimizer"]
    groups = [{"params": decay, "weight_decay": o["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"]), params


def train_steps(twin, batches, recipe, steps):
    """The vlmix Trainer's step: loss, backward, clip_grad_norm_, AdamW at the scheduled lr."""
    opt, params = make_optimizer(twin, recipe)
    out = []
    for s in range(steps):
        lr = nanogpt_lr(s, recipe["schedule"])
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss = twin.loss(batches[s % len(batches)])
        loss.backward()
        with_grad = [p for p in params if p.grad is not None]
        if recipe.get("clipNorm"):
            norm = float(torch.nn.utils.clip_grad_norm_(with_grad, recipe["clipNorm"]))
        else:
            norm = float(torch.sqrt(sum(p.grad.pow(2).sum() for p in with_grad)))
        opt.step()
        out.append({"loss": float(loss), "lr": lr, "gradNorm": norm})
    return out


def grad_norms(twin, batch, names):
    """L2 norm of each named parameter's gradient of the batch's loss (export.ts gradNorms)."""
    params = [twin.param(n) for n in names]
    for p in twin.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    grads = torch.autograd.grad(twin.loss(batch), params, allow_unused=True)
    return {n: float(g.norm()) for n, g in zip(names, grads) if g is not None}


def check_dir(dir_):
    """JSON: this twin's per-step records and per-parameter gradient norms next to vlmix's, and the VQ
    code check for type D."""
    spec, weights, batches = load(dir_)
    torch.manual_seed(0)
    twin = Twin(spec, weights)
    res = {"preset": spec["preset"]}
    if "vlmixGenerate" in spec:
        b = batches[0]
        margins = []
        res["generate"] = twin.generate(b["inputs"]["prompt_ids"], {"pixels": b["media"]["prompt_pixels"]} if "prompt_pixels" in b["media"] else {},
                                        b["inputs"].get("prompt_token_types"), len(spec["vlmixGenerate"]), margins)[0]
        res["generateMargins"] = margins
    if "vlmixForwardArgmax" in spec:  # the inference forward, type D's logits masked as vlmix's
        b = batches[0]
        with torch.no_grad():
            logits, _, _ = twin.forward(b["inputs"], b["media"])
            if "vq-tokens" in twin.mix:
                classes, table = twin.vq_forward_mask(b["inputs"]["input_ids"])
                logits = logits + table[classes]
        top = logits.topk(2, -1).values
        sure = (top[..., 0] - top[..., 1]) >= 1e-4  # a near-tie may break either way
        arg = logits.argmax(-1)
        mine = torch.tensor(spec["vlmixForwardArgmax"], dtype=arg.dtype)
        res["forwardArgmax"] = {"mismatched": int(((arg != mine) & sure).sum()), "unsure": int((~sure).sum()), "total": arg.numel()}
    res["gradNorms"] = grad_norms(twin, batches[0], spec["recipe"]["trainable"])
    res["steps"] = train_steps(twin, batches, spec["recipe"], spec["recipe"]["steps"])
    res["vlmix"] = spec.get("vlmix")
    if "vq-tokens" in {m["kind"] for m in spec["mixins"]}:
        v = next(m for m in spec["mixins"] if m["kind"] == "vq-tokens")["options"]
        mism, total = 0, 0
        for b in batches:
            codes = vq_codes(spec, weights, b["media"]["vq_pixels"])
            ids = b["inputs"]["input_ids"].long()
            image = (ids >= v["vocab"]["codeOffset"]) & (ids < v["vocab"]["codeOffset"] + v["vocab"]["codebookSize"])
            theirs = ids[image].view(codes.shape[0], -1) - v["vocab"]["codeOffset"]
            mism += int((theirs != codes.view(codes.shape[0], -1)).sum())
            total += codes.numel()
        res["vqCodes"] = {"mismatched": mism, "total": total}
    return res


# ------------------------------------------------------------------------------------------ bench jobs
def _bench_twin(dir_):
    spec, weights, batches = load(dir_)
    return Twin(spec, weights), spec, batches[0]


def _precision(precision):
    """fp32, or PyTorch's CPU autocast to bf16 (the comparison for vlmix's --precision bf16)."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError("precision: expected fp32 or bf16, got %r" % (precision,))
    return contextlib.nullcontext()


def vlm_forward(dir, precision="fp32"):  # noqa: A002  (job params are keyword arguments)
    twin, _, b = _bench_twin(dir)
    twin.eval()
    # vlmix's inference forward masks type D's logits (VqTokenMixin); its classes come from the host stage,
    # done when the batch is encoded, so here too they are found outside the timed call
    vq = twin.vq_forward_mask(b["inputs"]["input_ids"]) if "vq-tokens" in twin.mix else None
    if vq is not None:
        vq = tuple(common.on_device(t) for t in vq)

    def run():
        with torch.no_grad(), _precision(precision):
            logits, _, _ = twin.forward(b["inputs"], b["media"])
            if vq is not None:
                logits + vq[1][vq[0]]
    return run


def vlm_train(dir, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, precision="fp32"):  # noqa: A002
    """The bench's training step (bench/src/tfutil.ts makeTrainer): loss, backward, AdamW on every trainable parameter."""
    twin, spec, b = _bench_twin(dir)
    params = [twin.param(n) for n in spec["recipe"]["trainable"]]
    keep = set(map(id, params))
    for p in twin.parameters():
        p.requires_grad_(id(p) in keep)
    opt = torch.optim.AdamW(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)

    def run():
        opt.zero_grad(set_to_none=True)
        with _precision(precision):
            loss = twin.loss(b)
        loss.backward()
        opt.step()
        loss.item()
    return run


def vlm_generate(dir, new_tokens):  # noqa: A002
    twin, _, b = _bench_twin(dir)
    twin.eval()
    prompt = b["inputs"]["prompt_ids"]
    tt = b["inputs"].get("prompt_token_types")
    media = {"pixels": b["media"]["prompt_pixels"]} if "prompt_pixels" in b["media"] else {}

    def run():
        out = twin.generate(prompt, media, tt, new_tokens)
        if len(out[0]) != new_tokens:
            raise RuntimeError("generated %d tokens, expected %d" % (len(out[0]), new_tokens))
    return run


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "check":
        torch.set_num_threads(int(os.environ.get("VLMIX_TWIN_THREADS", "1")))
        out = []
        for d in sys.argv[2:]:
            try:
                out.append(check_dir(d))
            except Exception as e:  # report per directory, go on with the others
                out.append({"dir": d, "error": "%s: %s" % (type(e).__name__, e)})
        json.dump(out, sys.stdout)
    else:
        main({"vlm_forward": vlm_forward, "vlm_train": vlm_train, "vlm_generate": vlm_generate})
