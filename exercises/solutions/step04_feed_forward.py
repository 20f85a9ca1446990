"""Step 4 (solution): the feed-forward network."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class FeedForward(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.gate = nn.Linear(config.d_model, config.d_ff, bias=False) if config.is_gated else None
        self.up = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.down = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.act = gelu_new if config.dense_act_fn == "gelu_new" else F.relu

    def forward(self, x):  # (B, T, D)
        if self.gate is not None:
            h = self.act(self.gate(x)) * self.up(x)  # (B, T, F)
        else:
            h = self.act(self.up(x))
        return self.down(h)  # (B, T, D)
