"""Step 4 of 11: the feed-forward network.                               about 20 minutes

Read first: docs/architecture.md, section 5 (The feed-forward network: gated GELU or ReLU).
minit5's answer: minit5/model.py FeedForward.
Test: python -m pytest exercises -k step04

    flan-T5, T5 v1.1 ("gated-gelu"):  down(gelu_new(gate(x)) * up(x))
    T5 v1.0 ("relu"):                 down(relu(up(x)))
"""

import math  # noqa: F401

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: F401


def gelu_new(x):
    """The tanh approximation of GELU that T5 v1.1 was trained with:
    0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). Not the exact erf GELU (F.gelu(x)), which differs by up to 5e-4."""
    raise NotImplementedError("step 4: gelu_new")


class FeedForward(nn.Module):
    def __init__(self, config):
        """Bias-free linear maps: gate (d_model -> d_ff) only when config.is_gated, else self.gate = None;
        up (d_model -> d_ff); down (d_ff -> d_model). The activation: gelu_new when config.dense_act_fn is
        "gelu_new", relu for "relu" (the two the exercises use)."""
        super().__init__()
        raise NotImplementedError("step 4: FeedForward.__init__")

    def forward(self, x):
        """x: (B, T, D) -> (B, T, D); the hidden width in between is d_ff."""
        raise NotImplementedError("step 4: FeedForward.forward")
