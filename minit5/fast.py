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

The fused matrices are not copies. `prepare(model)` moves each decoder weight into a fused tensor
and makes the nn.Linear parameter a view into it, so the readable parameters stay the model's weights (the
readable forward, training and saving see the same numbers; only the memory layout changed).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .model import ACTIVATIONS
from .quant import Int8Linear, fuse as fuse_int8, int8_product


# --------------------------------------------------------------------------------------------------
# Weights: fused, laid out for speed, shared with the readable parameters
# --------------------------------------------------------------------------------------------------
def _fuse(linears, column_major: bool):
    """One fused tensor holding these nn.Linear weights side by side; each weight becomes a view into it.
    Returns the (sum of outs, in) tensor F.linear expects, stored column-major (in memory (in, outs)) or not."""
    fused = torch.cat([linear.weight.detach() for linear in linears], dim=0)  # (outs, in), rows
    if column_major:
        fused = fused.t().contiguous().t()  # same shape and values, column-major in memory
    start = 0
    for linear in linears:
        out = linear.weight.shape[0]
        linear.weight.data = fused[start:start + out]  # (out, in) view, same values
        start += out
    return fused


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


def _is_view_of(linears, fused) -> bool:
    start = 0
    for linear in linears:
        expected = fused[start:start + linear.weight.shape[0]]
        if linear.weight.data_ptr() != expected.data_ptr() or linear.weight.stride() != expected.stride():
            return False
        start += linear.weight.shape[0]
    return True


class FastWeights:
    """Per decoder block: fused self-attention q|k|v, o, cross-attention q, o, cross k|v, FFN gate|up, down."""

    def __init__(self, model, layout: str):
        self.layout = layout
        self.groups = []  # (list of nn.Linear, fused weight)
        self.layers = []
        for block in model.decoder.blocks:
            sa, ca, ffn = block.self_attn, block.cross_attn, block.ffn
            layer = {
                "qkv": self._add([sa.q, sa.k, sa.v]),
                "o": self._add([sa.o]),
                "cross_q": self._add([ca.q]),
                "cross_o": self._add([ca.o]),
                "cross_kv": self._add([ca.k, ca.v]),
                "gate_up": self._add([ffn.gate, ffn.up] if ffn.gate is not None else [ffn.up]),
                "down": self._add([ffn.down]),
            }
            self.layers.append(layer)
        # the output layer; when tied to the embedding, the embedding lookup reads the same fused tensor
        self.lm_head = self._add([model.lm_head if model.lm_head is not None else model.embed])

    def _add(self, linears):
        if any(hasattr(linear, "merged_weight") for linear in linears):
            # A LoRA adapter is attached (minit5/lora.py): decode with W + scaling·B·A, fused into a new tensor.
            # The layers keep their own base weights, so training and saving still see W and the adapter apart.
            fused = torch.cat([linear.merged_weight() if hasattr(linear, "merged_weight") else linear.weight.detach()
                               for linear in linears], dim=0)  # (outs, in)
            return fused.t().contiguous().t() if self.layout == "column-major" else fused
        if isinstance(linears[0], Int8Linear):  # a quantized model (minit5/quant.py): int8 rows, fused the same way
            fused = fuse_int8(linears)
        else:
            fused = _fuse(linears, column_major=self.layout == "column-major")
        self.groups.append((linears, fused))
        return fused

    def still_shared(self) -> bool:
        """False once something replaced the parameters (load_state_dict(assign=True), .to(device), ...)."""
        return all(_is_view_of(linears, fused.weight if isinstance(fused, Int8Linear) else fused)
                   for linears, fused in self.groups)


def _float_weight(model):
    """The decoder weight whose dtype picks the layout: q's; in an int8 model `down`'s, which quant.py keeps
    in fp32 (the int8 layers ignore the layout)."""
    block = model.decoder.blocks[0]
    return block.ffn.down.weight if isinstance(block.self_attn.q, Int8Linear) else block.self_attn.q.weight


def prepare(model, rows: int = 1) -> FastWeights:
    """Arrange the decoder weights for decoding this many rows at a time, in the layout strategy_for picks (again
    only if that layout changes or the parameters were replaced)."""
    layout, _ = strategy_for(rows, model)
    weights = getattr(model, "_fast_weights", None)
    # With a LoRA adapter attached the fused weights are merged copies, stale as soon as the adapter trains:
    # rebuilt every call (merge_lora first to decode at full speed).
    adapted = any(hasattr(m, "merged_weight") for m in model.decoder.modules())
    if weights is None or weights.layout != layout or adapted or not weights.still_shared():
        with torch.no_grad():
            weights = FastWeights(model, layout)
        object.__setattr__(model, "_fast_weights", weights)  # a plain attribute, not a registered submodule
    return weights


def _int8_or(linear):
    """Products for a quantized model: an Int8Linear calls its kernel, an fp32 weight goes to `linear`."""
    return lambda x, w: int8_product(x, w) if isinstance(w, Int8Linear) else linear(x, w)


def _rms_norm(x, norm):
    if x.dtype == norm.weight.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), norm.weight, norm.eps)
    # half precision: statistics and scaling in fp32, then cast, then the weight (as model.RMSNorm)
    return norm.weight * F.rms_norm(x.float(), (x.shape[-1],), None, norm.eps).to(norm.weight.dtype)


def cross_keys_values(weights, encoder_output, heads: int, d_kv: int):
    """Every block's cross-attention keys and values over the encoder output (B, S, D), from the fused k|v
    matrices of `weights` (FastWeights): a list of (keys, values), each (B, H, S, Dh)."""
    batch, src_len, _ = encoder_output.shape
    cross = []
    for w in weights.layers:
        kv = _int8_or(F.linear)(encoder_output, w["cross_kv"])  # (B, S, 2*H*Dh)
        k, v = kv.view(batch, src_len, 2, heads, d_kv).permute(2, 0, 3, 1, 4).unbind(0)
        cross.append((k.contiguous(), v.contiguous()))
    return cross


def cross_attention_mask(attention_mask, dtype):
    """(B, S) 1/0 mask -> (B, 1, 1, S) added to the scores: 0 where a key is seen, the dtype's most negative
    number where it is padding."""
    hidden = (attention_mask == 0)[:, None, None, :]
    return torch.zeros(hidden.shape, dtype=dtype, device=attention_mask.device).masked_fill(
        hidden, torch.finfo(dtype).min)


# --------------------------------------------------------------------------------------------------
# The decoding state: same interface as generate.DecodeState
# --------------------------------------------------------------------------------------------------
class FastDecodeState:
    def __init__(self, model, encoder_output, attention_mask, max_len: int):
        self.model, self.config = model, model.config
        c = self.config
        batch = encoder_output.shape[0]
        self.weights = prepare(model, rows=batch)
        _, self.linear = strategy_for(batch, model)  # F.linear, or W @ xᵀ where this CPU does that faster
        if getattr(model, "quantization", None):  # int8 layers run their own kernel; layers kept in fp32 as above
            self.linear = _int8_or(self.linear)
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
        self.cross_mask = cross_attention_mask(attention_mask, dtype)
        with torch.no_grad():  # (1, H, T, T) per table: block 0's, or every block's in umT5
            owners = model.decoder.blocks if c.position_bias_in_every_layer else model.decoder.blocks[:1]
            self.biases = [block.position_bias(max_len, max_len).to(dtype) for block in owners]
        self.act = ACTIVATIONS[c.dense_act_fn]

    @torch.no_grad()
    def step(self, tokens):  # tokens: (B, 1) -> logits (B, V) in fp32
        model, c, w = self.model, self.config, self.weights
        t, batch = self.length, tokens.shape[0]
        heads, d_kv = self.heads, self.d_kv
        x = F.embedding(tokens, model.embed.weight)  # (B, 1, D)
        for i, (block, lw) in enumerate(zip(model.decoder.blocks, w.layers)):
            if i < len(self.biases):
                bias = self.biases[i][:, :, t:t + 1, :t + 1]  # (1, H, 1, t+1): the new position's row only
            # self-attention: one product for q, k and v; k and v go straight into the cache
            qkv = self.linear(_rms_norm(x, block.self_attn_norm), lw["qkv"])  # (B, 1, 3*inner)
            q, k, v = qkv.view(batch, 3, heads, d_kv).unbind(1)  # each (B, H, Dh)
            self.keys[i, :, :, t] = k
            self.values[i, :, :, t] = v
            attn = F.scaled_dot_product_attention(q[:, :, None], self.keys[i, :, :, :t + 1],
                                                  self.values[i, :, :, :t + 1], attn_mask=bias, scale=1.0)
            x = x + self.linear(attn.reshape(batch, 1, -1), lw["o"])
            # cross-attention over the cached encoder keys/values
            q = self.linear(_rms_norm(x, block.cross_attn_norm), lw["cross_q"]).view(batch, heads, 1, d_kv)
            k, v = self.cross[i]
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=self.cross_mask, scale=1.0)
            x = x + self.linear(attn.reshape(batch, 1, -1), lw["cross_o"])
            # feed-forward: one product for gate and up
            h = self.linear(_rms_norm(x, block.ffn_norm), lw["gate_up"])  # (B, 1, 2F) or (B, 1, F)
            if block.ffn.gate is not None:
                gate, up = h.chunk(2, dim=-1)
                h = self.act(gate) * up
            else:
                h = self.act(h)
            x = x + self.linear(h if isinstance(lw["down"], Int8Linear) else h.to(lw["down"].dtype), lw["down"])
        self.length = t + 1
        h = _rms_norm(x, model.decoder.final_norm)
        if c.scale_decoder_outputs:
            h = h * c.d_model ** -0.5
        return self.linear(h[:, -1], w.lm_head).float()  # (B, V)

    def reorder_beams(self, rows):
        """Beam search: row i continues old row rows[i] (a beam of the same prompt)."""
        t = self.length
        self.keys[:, :, :, :t] = self.keys[:, rows, :, :t]
        self.values[:, :, :, :t] = self.values[:, rows, :, :t]
