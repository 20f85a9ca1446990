"""Step 6 (solution): the stacks and the whole model."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .step01_rmsnorm import RMSNorm
from .step03_attention import causal_mask, padding_mask
from .step05_block import Block


class Stack(nn.Module):
    def __init__(self, config, is_decoder: bool):
        super().__init__()
        depth = config.num_decoder_layers if is_decoder else config.num_layers
        self.blocks = nn.ModuleList(Block(config, is_decoder, has_position_bias=(i == 0)) for i in range(depth))
        self.final_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)

    def forward(self, x, mask=None, context=None, cross_mask=None, cache=None):
        past = cache[0].length if cache else 0
        bias = self.blocks[0].position_bias(x.shape[1], past + x.shape[1], query_offset=past)  # (1, H, T, past+T)
        if mask is not None:
            bias = bias + mask
        for i, block in enumerate(self.blocks):
            x = block(x, bias, context, cross_mask, cache[i] if cache else None)
        return self.final_norm(x)


class T5(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = Stack(config, is_decoder=False)
        self.decoder = Stack(config, is_decoder=True)
        self.lm_head = None if config.tie_word_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)

    def encode(self, input_ids, attention_mask=None):
        x = self.embed(input_ids)  # (B, S, D)
        return self.encoder(x, padding_mask(attention_mask, x.dtype))

    def decode(self, decoder_input_ids, encoder_output, attention_mask=None, cache=None):
        x = self.embed(decoder_input_ids)  # (B, T, D)
        past = cache[0].length if cache else 0
        mask = causal_mask(x.shape[1], past, x.dtype, x.device)
        h = self.decoder(x, mask, encoder_output, padding_mask(attention_mask, x.dtype), cache)
        return self.project(h)

    def project(self, h):
        if self.config.scale_decoder_outputs:
            h = h * self.config.d_model ** -0.5
        return F.linear(h, self.embed.weight if self.lm_head is None else self.lm_head.weight)

    def shift_right(self, labels):
        start = torch.full_like(labels[:, :1], self.config.decoder_start_token_id)
        shifted = torch.cat([start, labels[:, :-1]], dim=1)
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)

    def forward(self, input_ids, attention_mask=None, decoder_input_ids=None, labels=None):
        if decoder_input_ids is None:
            decoder_input_ids = self.shift_right(labels)
        logits = self.decode(decoder_input_ids, self.encode(input_ids, attention_mask), attention_mask)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        return logits, loss
