"""Step 1: RMS norm. Compared with minit5/model.py RMSNorm and transformers' T5LayerNorm.

(PYTEST_DONT_REWRITE: a failed check shows its own message, not pytest's account of the expression.)"""

import torch
from transformers.models.t5.modeling_t5 import T5LayerNorm

from minit5.model import RMSNorm as Reference

from ._support import check_close

STEP = "step01_rmsnorm"


def inputs():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 32) * 3 + 1  # a mean far from 0, so subtracting it changes the answer
    x[1, 2] *= 1e-3  # a row of tiny values: its mean square is ~eps, so where eps goes matters
    weight = torch.rand(32) + 0.5
    return x, weight


def test_rms_norm_matches_minit5_and_transformers(impl):
    x, weight = inputs()
    norm = impl.RMSNorm(32, eps=1e-6)
    assert tuple(norm.weight.shape) == (32,), f"RMSNorm.weight should have shape (32,), got {tuple(norm.weight.shape)}"
    with torch.no_grad():
        norm.weight.copy_(weight)
        ref = Reference(32, 1e-6)
        ref.weight.copy_(weight)
        hf = T5LayerNorm(32, eps=1e-6)
        hf.weight.copy_(weight)
        expected = ref(x)
        check_close(hf(x), expected, "transformers' T5LayerNorm (sanity check of the reference)")
        ms = x.pow(2).mean(-1, keepdim=True)
        centred = x - x.mean(-1, keepdim=True)
        mistakes = [
            ("the mean is subtracted (that is LayerNorm). RMS norm only divides by the root mean square.",
             weight * centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + 1e-6)),
            ("eps is added outside the square root: use rsqrt(mean(x²) + eps), not x / (sqrt(mean(x²)) + eps).",
             weight * x / (ms.sqrt() + 1e-6)),
            ("the learned weight is not applied: multiply by self.weight at the end.", x * torch.rsqrt(ms + 1e-6)),
            ("you used x.std() or x.var(): those subtract the mean. Use the mean of x² over the last dimension.",
             weight * x * torch.rsqrt(x.var(-1, keepdim=True) + 1e-6)),
            ("the sum of squares is used instead of the mean.", weight * x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + 1e-6)),
            ("the mean of squares is taken over the wrong dimension (the positions, dim 1): take it over the last "
             "dimension, each position's own features: x.pow(2).mean(-1, keepdim=True).",
             weight * x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-6)),
            ("the mean of squares is taken over the whole tensor (no dim): take it over the last dimension, each "
             "position's own features: x.pow(2).mean(-1, keepdim=True).", weight * x * torch.rsqrt(x.pow(2).mean() + 1e-6)),
            ("the mean of squares is taken over the first dimension (the batch): take it over the last "
             "dimension, each position's own features: x.pow(2).mean(-1, keepdim=True).",
             weight * x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + 1e-6)),
        ]
        check_close(norm(x), expected, "RMSNorm(x)", mistakes=mistakes,
                    hint="See docs/architecture.md, section 2 (RMS norm: scale only).")


def test_rms_norm_uses_its_eps(impl):
    x, weight = inputs()
    for eps in (1e-2, 1e-6):  # the row of tiny values has a mean square of about 1e-5: eps decides its scale
        norm = impl.RMSNorm(32, eps=eps)
        ref = Reference(32, eps)
        with torch.no_grad():
            norm.weight.copy_(weight)
            ref.weight.copy_(weight)
            ms = x.pow(2).mean(-1, keepdim=True)
            other = 1e-6 if eps != 1e-6 else 1e-2
            check_close(norm(x), ref(x), f"RMSNorm(32, eps={eps:g})(x)",
                        mistakes=[(f"eps is not the one given: RMSNorm(32, eps={eps:g}) must add self.eps, not a "
                                   f"fixed number.", weight * x * torch.rsqrt(ms + other))],
                        hint="y = weight * x / sqrt(mean(x²) + self.eps).")


def test_rms_norm_in_float16_does_not_overflow(impl):
    torch.manual_seed(1)
    x = (torch.randn(2, 3, 32) * 400).half()  # squares reach ~10⁶, far above fp16's largest number (65504)
    norm = impl.RMSNorm(32).half()
    ref = Reference(32, 1e-6).half()
    with torch.no_grad():
        got = norm(x)
        assert got.dtype == torch.float16, (
            f"RMSNorm on float16 input with float16 weights returned {got.dtype}: cast the normalised x back to "
            f"the weight's dtype before multiplying")
        assert torch.isfinite(got).all() and got.abs().amax(-1).min() > 0.1, (
            "RMSNorm in float16 gives inf, NaN or zeros: x² overflows float16 (largest value 65504). Take the mean "
            "of squares in float32 (x.float().pow(2).mean(...)), as T5 does.")
        check_close(got, ref(x), "RMSNorm(x) in float16", atol=2e-3, rtol=2e-3)
