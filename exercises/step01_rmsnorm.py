"""Step 1 of 11: RMS norm, T5's "layer norm".                         about 15 minutes

Read first: docs/architecture.md, section 2 (RMS norm: scale only). minit5's answer: minit5/model.py RMSNorm.
Test: python -m pytest exercises -k step01

T5 normalises each position's vector by its root mean square and multiplies by a learned scale:

    y = weight * x / sqrt(mean(x², over the last dimension) + eps)

No mean is subtracted and there is no bias (that would be LayerNorm).
"""

import torch
import torch.nn as nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        """self.weight: an nn.Parameter of shape (dim,), initialised to ones. self.eps: eps.
        (The name `weight` matters: step 7 loads checkpoints by parameter name.)"""
        super().__init__()
        raise NotImplementedError("step 1: create self.weight and self.eps")

    def forward(self, x):
        """x: (..., dim) -> same shape.

        Hints:
        - torch.rsqrt(t) is 1 / sqrt(t).
        - Models run in float16 too: x² can overflow float16 (largest value 65504), so compute the mean of squares
          in float32 (x.float()), normalise, then cast back to self.weight.dtype before multiplying by the weight.
        """
        raise NotImplementedError("step 1: RMSNorm.forward")
