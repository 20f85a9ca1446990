"""Step 5 (solution): a block."""

import torch.nn as nn

from .step01_rmsnorm import RMSNorm
from .step02_position_buckets import RelativePositionBias
from .step03_attention import Attention
from .step04_feed_forward import FeedForward


class Block(nn.Module):
    def __init__(self, config, is_decoder: bool, has_position_bias: bool):
        super().__init__()
        self.position_bias = RelativePositionBias(config, bidirectional=not is_decoder) if has_position_bias else None
        self.self_attn_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.self_attn = Attention(config)
        if is_decoder:
            self.cross_attn_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
            self.cross_attn = Attention(config)
        self.ffn_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.ffn = FeedForward(config)

    def forward(self, x, self_bias, context=None, cross_bias=None, cache=None):
        x = x + self.self_attn(self.self_attn_norm(x), self_bias, cache=cache)
        if context is not None:
            x = x + self.cross_attn(self.cross_attn_norm(x), cross_bias, context, cache=cache)
        return x + self.ffn(self.ffn_norm(x))
