"""Step 5 of 11: a transformer block, encoder and decoder.                about 25 minutes

Read first: docs/architecture.md, section 7 (Blocks and stacks: encoder vs decoder).
minit5's answer: minit5/model.py Block.
Test: python -m pytest exercises -k step05

T5 is pre-norm: each sublayer reads a normalised copy of x and adds its output back to x.

    encoder block:  x = x + self_attn(self_attn_norm(x))
                    x = x + ffn(ffn_norm(x))
    decoder block:  x = x + self_attn(self_attn_norm(x))                 (causal: the mask is in the bias)
                    x = x + cross_attn(cross_attn_norm(x), encoder output)
                    x = x + ffn(ffn_norm(x))

(minit5 applies dropout to each sublayer's output while training; the exercises leave dropout out.)
"""

import torch.nn as nn  # noqa: F401

from .step01_rmsnorm import RMSNorm  # noqa: F401
from .step02_position_buckets import RelativePositionBias  # noqa: F401
from .step03_attention import Attention  # noqa: F401
from .step04_feed_forward import FeedForward  # noqa: F401


class Block(nn.Module):
    def __init__(self, config, is_decoder: bool, has_position_bias: bool):
        """Attributes, with these names (step 7 maps them to checkpoint names):
            position_bias    RelativePositionBias(config, bidirectional=not is_decoder) if has_position_bias,
                             else None (only block 0 of each stack owns the table)
            self_attn_norm, self_attn
            cross_attn_norm, cross_attn     decoder blocks only
            ffn_norm, ffn
        Every norm is RMSNorm(config.d_model, config.layer_norm_epsilon)."""
        super().__init__()
        raise NotImplementedError("step 5: Block.__init__")

    def forward(self, x, self_bias, context=None, cross_bias=None, cache=None):
        """x: (B, T, D) -> (B, T, D). self_bias: position bias + mask for self-attention (the stack computes it
        once, from block 0's table, and passes it to every block). context: the encoder output (B, S, D) in a
        decoder, None in an encoder; cross_bias: the encoder's padding mask. cache: handed to both attentions."""
        raise NotImplementedError("step 5: Block.forward")
