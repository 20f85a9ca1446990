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
  activations x to 8 bits, with one scale per call (whence "dynamic"), multiplies int8 by int8 into 32-bit
  integer sums with the CPU's integer dot-product instructions (AVX512-VNNI here), and rescales the sums to
  fp32. Of torch's CPU int8 kernels it was by far the fastest for decode-step shapes (bench/int8_kernels.py,
  docs/performance.md); weight-only int8 (`_weight_int8pack_mm`) was slower than fp32 there.

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

MODES = ("int8",)
KEEP_FP32 = ("down",)  # names of the linear layers left in fp32 by default (see the module docstring)


class Int8Linear(nn.Module):
    """nn.Linear without bias, its weight stored as int8 with one fp32 scale per output channel."""

    def __init__(self, weight_int8, scale):
        super().__init__()
        self.register_buffer("weight", weight_int8)  # (out, in) int8
        self.register_buffer("scale", scale)  # (out,) fp32
        self.use_reference = False
        self._packed = None  # the kernel's own copy of the weight, packed on first use (not saved)

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

    def reference(self, x):  # x: (..., in) fp32 -> (..., out)
        """What the layer means: the dequantized weight, an ordinary fp32 product."""
        w = self.weight.float() * self.scale[:, None]  # (out, in), each row back to its own range
        return F.linear(x.float(), w)

    def packed(self):
        if self._packed is None or self._packed[0] != self.weight.data_ptr():
            zero_points = torch.zeros(self.out_features, dtype=torch.long)
            with warnings.catch_warnings():  # torch marks its quantized tensor types deprecated (torch 2.13)
                warnings.simplefilter("ignore", UserWarning)
                q = torch._make_per_channel_quantized_tensor(self.weight, self.scale.double(), zero_points, 0)
            self._packed = (self.weight.data_ptr(), torch.ops.quantized.linear_prepack(q, None))
        return self._packed[1]

    def forward(self, x):  # x: (..., in) -> (..., out) fp32
        if self.use_reference:
            return self.reference(x)
        return int8_product(x.float(), self)


def int8_product(x, layer: Int8Linear):  # x: (..., in) fp32 -> (..., out) fp32
    """The kernel alone (minit5/fast.py calls it directly: a module call costs about as much as a small product).
    reduce_range=False: all 8 bits for the activations (safe with VNNI, whose int8 dot products don't saturate)."""
    return torch.ops.quantized.linear_dynamic(x, layer.packed(), False)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-channel"


def fuse(layers: list[Int8Linear]) -> Int8Linear:
    """One Int8Linear computing these layers side by side (q|k|v, gate|up ... for minit5/fast.py). Exact: a
    per-row scale does not change when rows are stacked. Each layer's weight becomes a view into the fused one."""
    fused = Int8Linear(torch.cat([l.weight for l in layers]), torch.cat([l.scale for l in layers]))
    start = 0
    for layer in layers:
        out = layer.out_features
        layer.weight, layer.scale = fused.weight[start:start + out], fused.scale[start:start + out]
        start += out
    return fused


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
    if hasattr(model, "_fast_weights"):  # fast.py's fused fp32 copies would keep the old weights alive
        object.__delattr__(model, "_fast_weights")
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and name not in keep_fp32:
                setattr(module, name, Int8Linear.from_linear(child))
                child.weight = None  # frees the fp32 tensor now (fast.py may hold views into fused groups)
    model.quantization = mode
    return model


def use_reference(model, enabled: bool = True):
    """Switch every Int8Linear between the reference product and the kernel (tests, teaching)."""
    for module in model.modules():
        if isinstance(module, Int8Linear):
            module.use_reference = enabled
    return model
