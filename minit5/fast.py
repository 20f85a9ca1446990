"""The decoder step again, arranged for speed. model.py is the reference; this file computes the same numbers
with fewer, larger operations, and the tests hold the two together (tests/test_fast.py).

Generating one token runs every decoder matrix once on a single row, so a step costs (a) reading all decoder
weights from memory and (b) Python and dispatch overhead for each small operation. This file attacks both:

1. Layout, chosen by how many rows are decoded (measured with bench/layouts.py, see docs/performance.md): for
   one fp32 row, CPU matrix-vector kernels read an (in, out)-contiguous ("column-major") weight faster than
   torch's usual (out, in) rows; for several rows (beams, batches) the fastest of three ways differs between CPUs,
   so it is timed once per process (`strategy_for`); bf16 keeps the usual rows, which its kernels prefer.
2. Fewer operations: q|k|v and gate|up side by side in one matrix each, one fused kernel for RMS norm and for
   attention, keys/values written into preallocated buffers, the decoder position bias computed once per call
   for every position and sliced per step, and all layers' cross-attention keys/values from one product.

The fused weights are derived state, never the model's own weights. `prepare(model)` builds them from the layers
(a copy where fusing or the layout needs one, the parameter itself where not), keeps them on `model.fast_weights`,
and builds them again when a decoder tensor has changed since: replaced, moved, or written in place (an
optimizer step bumps each tensor's version counter). `model.train()` and `save_pretrained` drop them. So
generating never moves, re-lays out or rewrites a parameter: training, saving and DistributedDataParallel see the
model as they left it (tests/test_weights_untouched.py). The price is memory: at batch 1 in fp32 the decoder's weights and the
output layer are held twice while the copies live (docs/performance.md measures it).

What the fast steps (this file and compiled.py) expect of the model; a change to model.py must keep it or change
them too:
- Each decoder linear layer is a plain nn.Linear, whose `weight` is multiplied, or defines `decode_weight()`: the
  weight to decode with, as a float tensor (lora.LoRALinear: W + scaling·B·A) or a quant.Int8Weight
  (quant.Int8Linear). The layers of one group (q|k|v, cross k|v, gate|up) are fused side by side, so they must be
  of one kind. The output layer is lm_head, or the embedding when tied.
- The names read here: a decoder block's self_attn and cross_attn (q, k, v, o), ffn (gate or None, up, down),
  self_attn_norm, cross_attn_norm, ffn_norm, position_bias (block 0's, or every block's in umT5); decoder.final_norm;
  embed; and the config's num_heads, d_kv, dense_act_fn, is_gated, scale_decoder_outputs,
  position_bias_in_every_layer.
- The arithmetic of a step is written three times: model.py (the reference), FastDecodeState.step below, and
  compiled.decode_step. A new kind of sublayer, norm, mask or activation goes into all three, and
  tests/test_fast.py and tests/test_compiled.py compare them on every variant.
"""

from __future__ import annotations

import time
import weakref
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import ACTIVATIONS, padding_mask, rms_norm
from .quant import Int8Weight, int8_product


# --------------------------------------------------------------------------------------------------
# How to multiply: the layout of the weights and the product, chosen per CPU and number of rows
# --------------------------------------------------------------------------------------------------
def _fp32_cpu(weight) -> bool:
    return weight.dtype == torch.float32 and weight.device.type == "cpu"


def tall_linear(x, weight):
    """F.linear(x, weight) for a few rows, computed as (W @ xᵀ)ᵀ: on some CPUs (the AMD EPYC of
    docs/performance.md) a tall-skinny product runs 1.5-3x faster than the short-wide one for 2-16 rows (fp32)."""
    flat = x.reshape(-1, x.shape[-1])  # (rows, in)
    return torch.mm(weight, flat.t()).t().reshape(*x.shape[:-1], weight.shape[0])  # (..., out)


# How to multiply several fp32 rows: (weight layout, product). Which is fastest depends on the CPU's matrix
# library: for 4 rows by the output layer, W @ xᵀ on rows took 3.5 ms on an AMD EPYC against 7.6-10.6 ms for the
# others, while on an Intel Xeon it was the slowest (2.6 ms) and column-major F.linear the fastest (1.9 ms)
# (bench/layouts.py, docs/performance.md). So it is measured once per process and row count.
SEVERAL_ROWS = {"tall": ("rows", tall_linear), "rows": ("rows", F.linear), "column-major": ("column-major", F.linear)}
_measured: dict = {}  # (rows, out, in) -> a key of SEVERAL_ROWS


def fastest_for_rows(rows: int, out: int, inp: int) -> str:
    """The SEVERAL_ROWS entry that multiplies `rows` rows by an (out, in) fp32 matrix fastest here (best of 3)."""
    key = (rows, out, inp)
    if key not in _measured:
        weight = torch.empty(out, inp).fill_(0.01)  # values do not matter for timing
        column_major = weight.t().contiguous().t()
        x = torch.full((rows, 1, inp), 0.01)
        times = {}
        for name, (layout, product) in SEVERAL_ROWS.items():
            w = column_major if layout == "column-major" else weight
            product(x, w)  # warm-up
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                product(x, w)
                best = min(best, time.perf_counter() - start)
            times[name] = best
        _measured[key] = min(times, key=times.get)
    return _measured[key]


def strategy_for(rows: int, model) -> tuple[str, object]:
    """(weight layout, product function) for decoding this many rows at a time. One fp32 row on CPU: column-major
    weights, which matrix-vector kernels read fastest (measured on both CPUs of docs/performance.md); several
    fp32 rows: measured, above, on a matrix shaped like the output layer, the largest one a step reads; bf16 and
    fp16 kernels, and GPUs, prefer torch's usual rows."""
    weight = _float_weight(model)
    if not _fp32_cpu(weight):
        return "rows", F.linear
    if rows == 1:
        return "column-major", F.linear
    return SEVERAL_ROWS[fastest_for_rows(rows, model.config.vocab_size, model.config.d_model)]


# --------------------------------------------------------------------------------------------------
# The fused weights: derived from the layers, rebuilt when they change
# --------------------------------------------------------------------------------------------------
def decode_weight(layer):
    """The weight a decoder step multiplies by for this layer (the contract in the opening comment)."""
    if type(layer) in (nn.Linear, nn.Embedding):  # plain layers: their own weight, nothing to compute
        return layer.weight.detach()
    if not hasattr(layer, "decode_weight"):
        raise TypeError(f"minit5/fast.py cannot decode with a {type(layer).__name__}: a decoder layer must be an "
                        f"nn.Linear or define decode_weight() (see fast.py's opening comment)")
    return layer.decode_weight()


class Fused:
    """Some decoder linear layers side by side in one weight (q|k|v, gate|up, or one layer alone) and the product
    that multiplies by it: fused(x) is every layer's output at once, (..., in) -> (..., sum of outs)."""

    def __init__(self, layers, layout: str, product):
        weights = [decode_weight(layer) for layer in layers]
        if all(isinstance(w, Int8Weight) for w in weights):  # int8 rows: their own kernel, whatever the layout
            weight = weights[0] if len(weights) == 1 else Int8Weight.cat(weights)  # one layer: its own, packed once
            self.weight, self.product, self.dtype = weight, int8_product, torch.float32
            return
        if any(isinstance(w, Int8Weight) for w in weights):
            raise TypeError("minit5/fast.py fuses the layers of a group side by side; these mix int8 and float")
        weight = weights[0] if len(weights) == 1 else torch.cat(weights)  # (outs, in): a copy if several
        if layout == "column-major" and weight.stride()[0] != 1:
            weight = weight.t().contiguous().t()  # same shape and values, column-major in memory: a copy
        self.weight, self.product, self.dtype = weight, product, weight.dtype  # dtype: what inputs are cast to

    def __call__(self, x):
        return self.product(x, self.weight)


class BlockWeights(NamedTuple):
    """One decoder block's products, each a Fused."""
    qkv: Fused  # self-attention q|k|v
    o: Fused
    cross_q: Fused
    cross_o: Fused
    cross_kv: Fused  # cross-attention k|v, used once per call on the encoder output
    gate_up: Fused  # gate|up, or up alone (T5 v1.0)
    down: Fused


def _tensors(model) -> list:
    """Every tensor the fused weights are made from: the decoder's, the embedding's, the output layer's."""
    modules = [model.decoder, model.embed] + ([model.lm_head] if model.lm_head is not None else [])
    return [t for m in modules for t in (*m.parameters(), *m.buffers())]


def _sources(model) -> list:
    """Each such tensor as (who, where its memory is, how often written), without keeping it alive."""
    return [(weakref.ref(t), t.data_ptr(), t._version) for t in _tensors(model)]


def _unchanged(sources, model) -> bool:
    now = _tensors(model)
    return len(now) == len(sources) and all(ref() is t and ptr == t.data_ptr() and version == t._version
                                            for (ref, ptr, version), t in zip(sources, now))


class FastWeights:
    """Every decoder block's weights fused in one arrangement (layout and product), and the output layer's."""

    def __init__(self, model, layout: str, product):
        self.layout, self.product = layout, product
        self.sources = _sources(model)

        def fused(*layers):
            return Fused(layers, layout, product)
        self.blocks = []
        for block in model.decoder.blocks:
            sa, ca, ffn = block.self_attn, block.cross_attn, block.ffn
            gate_up = fused(ffn.gate, ffn.up) if ffn.gate is not None else fused(ffn.up)
            self.blocks.append(BlockWeights(fused(sa.q, sa.k, sa.v), fused(sa.o), fused(ca.q), fused(ca.o),
                                            fused(ca.k, ca.v), gate_up, fused(ffn.down)))
        self.lm_head = fused(model.lm_head if model.lm_head is not None else model.embed)

    def per_step(self) -> list[Fused]:
        """The products one decode step runs, in order: all but cross k|v (once per call), and the output layer."""
        return [fused for block in self.blocks for name, fused in block._asdict().items() if name != "cross_kv"] + \
            [self.lm_head]

    def serve(self, model, layout: str, product) -> bool:
        """Whether these weights can decode `model` in this arrangement: same arrangement, nothing changed."""
        return self.layout == layout and self.product is product and _unchanged(self.sources, model)


def _float_weight(model):
    """The decoder weight whose dtype picks the layout: q's; in an int8 model `down`'s, which quant.py keeps as
    a float layer (the int8 layers ignore the layout)."""
    block = model.decoder.blocks[0]
    q = block.self_attn.q.weight
    return q if q.is_floating_point() else block.ffn.down.weight


def prepare(model, rows: int = 1) -> FastWeights:
    """The decoder weights fused for decoding this many rows at a time, in the arrangement strategy_for picks:
    the ones on model.fast_weights if they still serve, else new ones (which replace them)."""
    layout, product = strategy_for(rows, model)
    weights = model.fast_weights
    if weights is None or not weights.serve(model, layout, product):
        model.fast_weights = None  # let the old copies go before making new ones
        with torch.no_grad():
            weights = FastWeights(model, layout, product)
        model.fast_weights = weights
    return weights


def norm(x, module):
    """model.RMSNorm's numbers: in fp32 through torch's fused kernel (one operation instead of five)."""
    if x.dtype == module.weight.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), module.weight, module.eps)
    return rms_norm(x, module.weight, module.eps)


def cross_keys_values(weights, encoder_output, heads: int, d_kv: int):
    """Every block's cross-attention keys and values over the encoder output (B, S, D), from the fused k|v
    matrices of `weights` (FastWeights): a list of (keys, values), each (B, H, S, Dh)."""
    batch, src_len, _ = encoder_output.shape
    cross = []
    for w in weights.blocks:
        kv = w.cross_kv(encoder_output)  # (B, S, 2*H*Dh)
        k, v = kv.view(batch, src_len, 2, heads, d_kv).permute(2, 0, 3, 1, 4).unbind(0)
        cross.append((k.contiguous(), v.contiguous()))
    return cross


# --------------------------------------------------------------------------------------------------
# The decoding state: same interface as generate.DecodeState
# --------------------------------------------------------------------------------------------------
class FastDecodeState:
    def __init__(self, model, encoder_output, attention_mask, max_len: int):
        self.model, self.config = model, model.config
        c = self.config
        batch = encoder_output.shape[0]
        self.weights = prepare(model, rows=batch)
        self.heads, self.d_kv = c.num_heads, c.d_kv
        layers = len(model.decoder.blocks)
        self.length = 0
        self.batch, self.device = batch, encoder_output.device
        dtype, device = encoder_output.dtype, encoder_output.device
        # Self-attention keys/values for every position this call can produce: (layers, B, H, max_len, Dh).
        self.keys = torch.zeros(layers, batch, self.heads, max_len, self.d_kv, dtype=dtype, device=device)
        self.values = torch.zeros_like(self.keys)
        self.cross = cross_keys_values(self.weights, encoder_output, self.heads, self.d_kv)
        # Additive masks and the decoder position bias for all max_len positions, sliced row by row later.
        self.cross_mask = padding_mask(attention_mask, dtype)  # (B, 1, 1, S)
        with torch.no_grad():  # (1, H, T, T) per table: block 0's, or every block's in umT5
            owners = model.decoder.blocks if c.position_bias_in_every_layer else model.decoder.blocks[:1]
            self.biases = [block.position_bias(max_len, max_len).to(dtype) for block in owners]
        self.act = ACTIVATIONS[c.dense_act_fn]

    @torch.no_grad()
    def step(self, tokens):  # tokens: (B, 1) -> logits (B, V) in fp32
        model, c = self.model, self.config
        t, batch = self.length, tokens.shape[0]
        heads, d_kv = self.heads, self.d_kv
        x = F.embedding(tokens, model.embed.weight)  # (B, 1, D)
        for i, (block, w) in enumerate(zip(model.decoder.blocks, self.weights.blocks)):
            if i < len(self.biases):
                bias = self.biases[i][:, :, t:t + 1, :t + 1]  # (1, H, 1, t+1): the new position's row only
            # self-attention: one product for q, k and v; k and v go straight into the cache
            qkv = w.qkv(norm(x, block.self_attn_norm))  # (B, 1, 3*inner)
            q, k, v = qkv.view(batch, 3, heads, d_kv).unbind(1)  # each (B, H, Dh)
            self.keys[i, :, :, t] = k
            self.values[i, :, :, t] = v
            attn = F.scaled_dot_product_attention(q[:, :, None], self.keys[i, :, :, :t + 1],
                                                  self.values[i, :, :, :t + 1], attn_mask=bias, scale=1.0)
            x = x + w.o(attn.reshape(batch, 1, -1))
            # cross-attention over the cached encoder keys/values
            q = w.cross_q(norm(x, block.cross_attn_norm)).view(batch, heads, 1, d_kv)
            k, v = self.cross[i]
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=self.cross_mask, scale=1.0)
            x = x + w.cross_o(attn.reshape(batch, 1, -1))
            # feed-forward: one product for gate and up
            h = w.gate_up(norm(x, block.ffn_norm))  # (B, 1, 2F) or (B, 1, F)
            if block.ffn.gate is not None:
                gate, up = h.chunk(2, dim=-1)
                h = self.act(gate) * up
            else:
                h = self.act(h)
            x = x + w.down(h.to(w.down.dtype))  # (fp16 checkpoints keep `down` in fp32)
        self.length = t + 1
        h = norm(x, model.decoder.final_norm)
        if c.scale_decoder_outputs:
            h = h * c.d_model ** -0.5
        return self.weights.lm_head(h[:, -1]).float()  # (B, V)

    def reorder_beams(self, rows):
        """Beam search: row i continues old row rows[i] (a beam of the same prompt)."""
        t = self.length
        self.keys[:, :, :, :t] = self.keys[:, rows, :, :t]
        self.values[:, :, :, :t] = self.values[:, rows, :, :t]
