"""Step 3 of 11: masks, and attention without 1/sqrt(d).                 about 60 minutes

Read first: docs/architecture.md, sections 3 (Attention, without 1/√d), 6 (Cross-attention) and 8 (Masks).
minit5's answer: minit5/model.py padding_mask, causal_mask, attention and Attention.
Test: python -m pytest exercises -k step03

Masks are additive: 0 where a key may be seen, torch.finfo(dtype).min (the most negative float) where it may
not; they are added to the scores together with the position bias, so softmax gives hidden keys weight 0.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: F401


def padding_mask(attention_mask, dtype):
    """attention_mask: (B, S), 1 for a real token, 0 for padding (or None) -> additive (B, 1, 1, S) (or None).
    The mask hides padded keys from every query of every head."""
    raise NotImplementedError("step 3: padding_mask")


def causal_mask(query_len: int, past: int, dtype, device):
    """The decoder's mask: (1, 1, query_len, past + query_len); query i sits at position past + i and may see
    keys 0 .. past + i. `past` is the number of positions already in the KV cache (0 without one).
    Return None when query_len == 1: a single new token may see every position there is."""
    raise NotImplementedError("step 3: causal_mask")


def attention(q, k, v, bias):
    """softmax(q·kᵀ + bias)·v for every head. q: (B, H, T, Dh), k and v: (B, H, S, Dh),
    bias: broadcastable to (B, H, T, S), or None. Returns (B, H, T, Dh).

    T5 does NOT divide the scores by sqrt(Dh): the factor was folded into the q weights at initialisation, so a
    trained checkpoint already contains it. Dividing again makes the scores sqrt(Dh) = 8 times too small."""
    raise NotImplementedError("step 3: attention")


class Attention(nn.Module):
    def __init__(self, config):
        """Four bias-free linear maps named q, k, v, o (the names matter for step 7):
        q, k, v: d_model -> num_heads * d_kv;  o: num_heads * d_kv -> d_model.
        num_heads * d_kv need not equal d_model (the tests use 4 × 16 = 64 with d_model 32)."""
        super().__init__()
        raise NotImplementedError("step 3: Attention.__init__")

    def forward(self, x, bias, context=None, cache=None):
        """x: (B, T, D). Self-attention when context is None; cross-attention to context (B, S, D), the encoder
        output, otherwise (queries from x, keys and values from context). bias: added to the scores (position bias
        and/or mask), or None. Returns (B, T, D).

        cache (None until step 8; the tests check it already): an object with
          - cache.append(k, v): stores this call's self-attention keys and values (B, H, T, Dh) and returns all
            of them so far (B, H, past + T, Dh): attend over those;
          - cache.cross: None, or the (k, v) of the context. Cross-attention computes them once, stores them
            there, and reuses them at later steps (the encoder output does not change while generating).

        Hints: split heads with view(B, T, H, Dh).transpose(1, 2); merge back with transpose(1, 2) and
        reshape(B, T, H * Dh) before o."""
        raise NotImplementedError("step 3: Attention.forward")
