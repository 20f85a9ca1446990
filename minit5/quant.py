"""int8 weights for decoding on a CPU:  model = quantize(T5.from_pretrained(...), "int8")

Generating one token reads every decoder weight once, so on a CPU a decode step is bound by how many bytes of
weights it streams from memory. Storing them as 8-bit integers instead of 32-bit floats reads 4x fewer bytes.

How a weight matrix W (out, in) becomes int8, one output channel (row) at a time:

    scale[o] = max |W[o, :]| / 127          the row's largest magnitude maps to ±127
    Q[o, i]  = round(W[o, i] / scale[o])    an integer in -127..127, one byte
    W[o, i] ≈ Q[o, i] * scale[o]            off by at most scale[o] / 2 (the rounding)

One scale per row ("per output channel") rather than one for the whole matrix: rows differ in size, and a single
scale set by the largest row would leave small rows only a few integer levels. Each output y[o] = Σᵢ W[o, i] x[i]
uses one row, so its error depends on that row's scale alone.

Two ways to compute y = x Wᵀ with Q and scale, tested against each other (tests/test_quant.py):
- the reference, `Int8Linear.reference`: dequantize (Q * scale) and multiply in fp32. Four lines, and slow, since
  it rebuilds the fp32 matrix each call.
- the fast path, torch's fbgemm kernel `quantized.linear_dynamic` ("dynamic quantization"): it also rounds the
  activations x to 8 bits, with one scale per call (whence "dynamic"), multiplies integers by integers into
  32-bit sums with the CPU's integer dot-product instructions, and rescales the sums to fp32. Of torch's CPU int8
  kernels it was by far the fastest for decode-step shapes on the Intel Xeon of docs/performance.md
  (bench/int8_kernels.py); weight-only int8 (`_weight_int8pack_mm`) was slower than fp32 there.

Which instructions, and so how many bits the activations may use, depends on the CPU (`reduce_range_for`). With
AVX512-VNNI, products of 8-bit pairs are summed straight into 32 bits. Without it (AVX2 only: many laptops, the
AMD EPYC of docs/performance.md), fbgemm sums each pair of u8·s8 products into a *saturating 16-bit* integer
first: 255·127·2 = 64,770 does not fit in 32,767, so large activations are silently clipped and the answers are
wrong. Rounding the activations to 7 bits (0..127, fbgemm's `reduce_range`) keeps every pair sum within range
(127·127·2 = 32,258), at the price of twice the rounding step. PyTorch's own quantization settings make the same
choice (torch.ao.quantization reads `avx512_vnni` too).

What stays in fp32: the embeddings (a lookup reads one row per token, nothing to gain), the norms and position
biases (tiny), and by default the feed-forward output projections (`down`, transformers' `wo`): its input, the
gated GELU's output, has the largest outliers in T5, and a per-call activation scale set by an outlier rounds
every other entry coarsely (measured by docs/scripts/int8_quality.py; transformers keeps `wo` out of 8-bit too).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from .flops import cpu_flags

MODES = ("int8",)
KEEP_FP32 = ("down",)  # names of the linear layers left in fp32 by default (see the module docstring)


def reduce_range_for(flags: dict) -> bool:
    """True where fbgemm's int8 products would saturate 8-bit activations: on CPUs without AVX512-VNNI.
    flags: torch.cpu.get_capabilities()'s answer (or any dict of flag names), so tests can ask for any CPU."""
    return not flags.get("avx512_vnni", False)


REDUCE_RANGE = reduce_range_for(cpu_flags())  # 7-bit activations on this CPU? Decided once, from its flags.


class Int8Weight:
    """A weight matrix as int8 rows and one fp32 scale per row, plus the kernel's packed copy (made on first use,
    never saved). What an Int8Linear multiplies by, and what minit5/fast.py fuses (q|k|v side by side)."""

    def __init__(self, q, scale):
        self.q, self.scale = q, scale  # (out, in) int8, (out,) fp32
        self._packed = None

    @classmethod
    def cat(cls, weights: list["Int8Weight"]) -> "Int8Weight":
        """These weights side by side, one under the other: exact, since each row keeps its own scale."""
        return cls(torch.cat([w.q for w in weights]), torch.cat([w.scale for w in weights]))

    def packed(self):
        if self._packed is None:
            zero_points = torch.zeros(self.q.shape[0], dtype=torch.long)
            with warnings.catch_warnings():  # torch marks its quantized tensor types deprecated (torch 2.13)
                warnings.simplefilter("ignore", UserWarning)
                q = torch._make_per_channel_quantized_tensor(self.q, self.scale.double(), zero_points, 0)
            self._packed = torch.ops.quantized.linear_prepack(q, None)
        return self._packed


def int8_product(x, weight: Int8Weight, reduce_range: bool | None = None):  # x: (..., in) -> (..., out) fp32
    """The kernel alone (minit5/fast.py calls it directly: a module call costs about as much as a small product).
    reduce_range: 7-bit activations; by default what this CPU needs (REDUCE_RANGE, above)."""
    reduce_range = REDUCE_RANGE if reduce_range is None else reduce_range
    return torch.ops.quantized.linear_dynamic(x.float(), weight.packed(), reduce_range)


class Int8Linear(nn.Module):
    """nn.Linear without bias, its weight stored as int8 with one fp32 scale per output channel."""

    def __init__(self, weight_int8, scale):
        super().__init__()
        self.register_buffer("weight", weight_int8)  # (out, in) int8
        self.register_buffer("scale", scale)  # (out,) fp32
        self.use_reference = False
        self._int8 = None  # Int8Weight over the two buffers, with the kernel's packed copy

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int8Linear":
        w = linear.weight.detach().float()  # (out, in)
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127  # (out,): each row's largest magnitude -> 127
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)  # (out, in)
        return cls(q, scale)

    @property
    def in_features(self):
        return self.weight.shape[1]

    @property
    def out_features(self):
        return self.weight.shape[0]

    def decode_weight(self) -> Int8Weight:
        """What minit5/fast.py multiplies by (its contract with the layers): the integer rows and their scales."""
        if self._int8 is None or self._int8.q is not self.weight or self._int8.scale is not self.scale:
            self._int8 = Int8Weight(self.weight, self.scale)  # (again after .to() or load_state_dict)
        return self._int8

    def reference(self, x):  # x: (..., in) fp32 -> (..., out)
        """What the layer means: the dequantized weight, an ordinary fp32 product."""
        w = self.weight.float() * self.scale[:, None]  # (out, in), each row back to its own range
        return F.linear(x.float(), w)

    def forward(self, x):  # x: (..., in) -> (..., out) fp32
        if self.use_reference:
            return self.reference(x)
        return int8_product(x, self.decode_weight())

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-channel"


def _check(model, mode):
    if mode not in MODES:
        raise ValueError(f"unknown quantization mode {mode!r}; choose one of: {', '.join(MODES)}")
    if model.device.type != "cpu" or model.dtype != torch.float32:
        raise ValueError(f"int8 quantization runs on CPU from a float32 model; this one is "
                         f"{str(model.dtype).replace('torch.', '')} on {model.device.type} "
                         f"(load it with dtype=torch.float32, device='cpu')")
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        raise ValueError("this torch build has no CPU int8 kernels (fbgemm/x86 quantized engine)")


@torch.no_grad()
def quantize(model, mode: str = "int8", keep_fp32=KEEP_FP32):
    """Replace the model's linear layers (encoder, decoder, lm_head) by Int8Linear, in place; returns the model.
    Layers whose attribute name is in keep_fp32 stay fp32. One layer at a time: each fp32 weight is freed as soon
    as its int8 copy exists, so memory never holds more than the one fp32 model being converted."""
    _check(model, mode)
    model.fast_weights = None  # fast.py's fp32 decoding copies would stay in memory beside the int8 weights
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and name not in keep_fp32:
                setattr(module, name, Int8Linear.from_linear(child))
                child.weight = None  # frees the fp32 tensor now
    model.quantization = mode
    return model


def use_reference(model, enabled: bool = True):
    """Switch every Int8Linear between the reference product and the kernel (tests, teaching)."""
    for module in model.modules():
        if isinstance(module, Int8Linear):
            module.use_reference = enabled
    return model
