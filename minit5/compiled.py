"""The decoder step compiled into one program:  model.generate(..., step="compiled")

fast.py makes each decoder step do fewer, larger operations, but each of its ~300 operations per token still
goes through Python and PyTorch's dispatcher, one at a time. For a small model that is a large share of a step
(docs/performance.md measures it). torch.compile removes it: it traces the step once into a graph, and its
inductor backend writes C++ for everything between the matrix products (RMS norms, attention, activations,
residual adds, fused into a few dozen loops), calls the same matrix-product kernels as eager PyTorch, and with
`cpp_wrapper` the code that calls them all is C++ as well. The first call for a new shape takes tens of seconds to
compile (cached on disk afterwards); every later step runs without Python in the loop.

A step written for compiling differs from fast.py's in three ways, all so that every step has the same shapes and
the same program serves step 0 and step 63:
- the self-attention cache has a fixed length (the longest output, rounded up), and every step attends over all
  of it, with the positions not yet written masked out;
- the position is a tensor, not a Python int, so it selects the mask row and the cache slot inside the program;
- prompt lengths and output lengths are rounded up to a multiple of `ROUND` (padding is masked), so that a few
  compiled programs cover prompts of any length.

The numbers are the readable step's (tests/test_compiled.py compares decode_step with fast.py's and model.py's step,
uncompiled for every variant and compiled once). torch keeps up to `torch._dynamo.config.recompile_limit` (8)
programs for one function; past that it warns and runs decode_step uncompiled: same numbers, eager speed.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .fast import cross_keys_values, prepare
from .model import ACTIVATIONS, padding_mask, rms_norm

ROUND = 32  # prompt and output lengths are rounded up to a multiple of this (fewer shapes, fewer compiles)


class Spec(NamedTuple):
    """The Python numbers the step needs; the compiled program is specialised to them."""
    heads: int
    d_kv: int
    eps: float
    activation: str  # a key of model.ACTIVATIONS
    gated: bool  # act(gate(x)) * up(x), or act(up(x))
    scale_outputs: float  # 1.0, or d_model ** -0.5 for a head tied to the embedding


def attend(q, k, v, mask):
    """One query per row: q (B, H, 1, Dh) over k, v (B, H, T, Dh); mask (B or 1, H or 1, 1, T) is added to the
    scores (position bias, and a very negative number where a key is hidden). Returns (B, H, 1, Dh)."""
    scores = (q * k).sum(-1)[:, :, None, :] + mask  # (B, H, 1, T): no 1/sqrt(Dh), T5 does not scale
    probs = scores.softmax(dim=-1)  # in the compute dtype, as model.attention
    return (probs.transpose(-1, -2) * v).sum(-2, keepdim=True)  # (B, H, 1, Dh)


def decode_step(tokens, position, embed, layers, final_norm, lm_head, keys, values, cross, cross_mask, self_masks,
                spec: Spec):
    """One decoder step for every row. tokens: (B, 1) ids; position: (1,) int64, the slot they are written to.
    layers[i]: block i's fused weights (the tensors of fast.BlockWeights) and norm weights; keys[i], values[i]: (B, H, T, Dh)
    caches, written at `position`; cross[i]: encoder keys and values (B, H, S, Dh); cross_mask: (B, 1, 1, S);
    self_masks: (1, H, T, T) position bias plus the causal mask, block 0's (or every block's in umT5).
    Returns the next-token logits (B, V) in fp32."""
    batch = tokens.shape[0]
    heads, d_kv, eps = spec.heads, spec.d_kv, spec.eps
    act = ACTIVATIONS[spec.activation]
    # One row per sequence, (B, D), not (B, 1, D): a matrix product reads a (B, D) row block as it is, while a
    # (B, 1, D) one reaches it with a zero stride and gets copied first.
    x = F.embedding(tokens.view(batch), embed)  # (B, D)
    for i, w in enumerate(layers):
        if i < len(self_masks):
            self_mask = self_masks[i].index_select(2, position)  # (1, H, 1, T): this position's row
        # self-attention: q, k, v in one product; k and v written into the cache at `position`
        qkv = F.linear(rms_norm(x, w["self_attn_norm"], eps), w["qkv"])  # (B, 3*H*Dh)
        q, k, v = qkv.view(batch, 3, heads, 1, d_kv).unbind(1)  # each (B, H, 1, Dh)
        keys[i].index_copy_(2, position, k)
        values[i].index_copy_(2, position, v)
        out = attend(q, keys[i], values[i], self_mask)
        x = x + F.linear(out.reshape(batch, heads * d_kv), w["o"])
        # cross-attention over the encoder's keys and values
        q = F.linear(rms_norm(x, w["cross_attn_norm"], eps), w["cross_q"]).view(batch, heads, 1, d_kv)
        out = attend(q, cross[i][0], cross[i][1], cross_mask)
        x = x + F.linear(out.reshape(batch, heads * d_kv), w["cross_o"])
        # feed-forward: gate and up in one product
        h = F.linear(rms_norm(x, w["ffn_norm"], eps), w["gate_up"])  # (B, 2F) or (B, F)
        if spec.gated:
            gate, up = h.chunk(2, dim=-1)
            h = act(gate) * up
        else:
            h = act(h)
        x = x + F.linear(h.to(w["down"].dtype), w["down"])  # (fp16 checkpoints keep `down` in fp32)
    h = rms_norm(x, final_norm, eps) * spec.scale_outputs
    return F.linear(h, lm_head).float()  # (B, V)


_compiled = None


def compiled_step():
    """decode_step through torch.compile, made once per process (each new shape compiles, then is cached)."""
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(decode_step, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})
    return _compiled


def _round_up(n: int) -> int:
    return -(-n // ROUND) * ROUND


class CompiledDecodeState:
    """Same interface as generate.DecodeState; step() runs the compiled decode_step (or, with compile=False, the
    same function uncompiled, which is how the tests check its numbers for every variant cheaply)."""

    def __init__(self, model, encoder_output, attention_mask, max_len: int, compile: bool = True):
        if model.quantization:
            raise ValueError("step=\"compiled\" does not support int8-quantized models (minit5/quant.py); "
                             "use step=\"fast\"")
        c = model.config
        batch, src_len, _ = encoder_output.shape
        dtype, device = encoder_output.dtype, encoder_output.device
        self.batch, self.device = batch, device  # what generate reads
        self.length = 0
        max_len, padded_src = _round_up(max_len), _round_up(src_len)
        weights = prepare(model, rows=batch)
        blocks = model.decoder.blocks
        # Per block: the weight tensors of a step (cross k|v is used once, below) and the norm weights, as plain
        # tensors (the compiled program takes tensors, not modules).
        self.layers = [{**{name: fused.weight for name, fused in w._asdict().items() if name != "cross_kv"},
                        "self_attn_norm": b.self_attn_norm.weight.detach(),
                        "cross_attn_norm": b.cross_attn_norm.weight.detach(), "ffn_norm": b.ffn_norm.weight.detach()}
                       for w, b in zip(weights.blocks, blocks)]
        self.embed, self.lm_head = model.embed.weight.detach(), weights.lm_head.weight
        self.final_norm = model.decoder.final_norm.weight.detach()

        # Encoder keys/values, padded to padded_src positions and the padding masked: (B, H, S', Dh) each.
        padded = F.pad(encoder_output, (0, 0, 0, padded_src - src_len))  # (B, S', D)
        self.cross = cross_keys_values(weights, padded, c.num_heads, c.d_kv)
        self.cross_mask = padding_mask(F.pad(attention_mask, (0, padded_src - src_len)), dtype)  # (B, 1, 1, S')

        # Self-attention: cache of max_len positions per block, and per position one mask row: bias over the
        # positions so far, hidden beyond.
        self.keys = [torch.zeros(batch, c.num_heads, max_len, c.d_kv, dtype=dtype, device=device) for _ in blocks]
        self.values = [torch.zeros_like(k) for k in self.keys]
        future = torch.ones(max_len, max_len, dtype=torch.bool, device=device).triu(1)  # key after query
        owners = blocks if c.position_bias_in_every_layer else blocks[:1]
        with torch.no_grad():
            self.self_masks = [b.position_bias(max_len, max_len).to(dtype).masked_fill(future, torch.finfo(dtype).min)
                               for b in owners]  # (1, H, T, T) each
        self.positions = torch.arange(max_len, device=device)[:, None].unbind(0)  # (1,) each
        self.spec = Spec(c.num_heads, c.d_kv, float(blocks[0].self_attn_norm.eps), c.dense_act_fn, c.is_gated,
                         c.d_model ** -0.5 if c.scale_decoder_outputs else 1.0)
        self.tokens = torch.zeros(batch, 1, dtype=torch.long, device=device)  # one buffer: same strides every step
        self.run = compiled_step() if compile else decode_step

    @torch.no_grad()
    def step(self, tokens):  # tokens: (B, 1) -> logits (B, V) in fp32
        self.tokens.copy_(tokens)
        logits = self.run(self.tokens, self.positions[self.length], self.embed, self.layers,
                          self.final_norm, self.lm_head, self.keys, self.values, self.cross, self.cross_mask,
                          self.self_masks, self.spec)
        self.length += 1
        return logits

    def reorder_beams(self, rows):
        """Beam search: row i continues old row rows[i] (a beam of the same prompt)."""
        for cache in self.keys + self.values:
            cache.copy_(cache.index_select(0, rows))
