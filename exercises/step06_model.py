"""Step 6 of 11: the encoder and decoder stacks, and the whole model.       about 60 minutes

Read first: docs/architecture.md, sections 1 (Embeddings), 7 (Blocks and stacks), 8 (Masks) and
9 (The output layer, tying, and the loss). minit5's answer: minit5/model.py Stack and T5.
Test: python -m pytest exercises -k step06

    input_ids ─embed─► encoder stack ─► encoder_output ─┐
    decoder_input_ids ─embed─► decoder stack (causal self-attention, cross-attention ◄─┘) ─► lm_head ─► logits

The parameter names must be minit5's (embed, encoder.blocks.0.self_attn.q, ..., lm_head): the tests copy
minit5's weights into your model, and step 7 maps the names to Hugging Face's.
"""

import torch  # noqa: F401
import torch.nn as nn
import torch.nn.functional as F  # noqa: F401

from .step01_rmsnorm import RMSNorm  # noqa: F401
from .step03_attention import causal_mask, padding_mask  # noqa: F401
from .step05_block import Block  # noqa: F401


class Stack(nn.Module):
    def __init__(self, config, is_decoder: bool):
        """self.blocks: nn.ModuleList of config.num_decoder_layers (decoder) or config.num_layers (encoder)
        Blocks; only block 0 has a position bias. self.final_norm: RMSNorm."""
        super().__init__()
        raise NotImplementedError("step 6: Stack.__init__")

    def forward(self, x, mask=None, context=None, cross_mask=None, cache=None):
        """x: (B, T, D) embedded tokens -> (B, T, D).

        mask: additive mask for self-attention (padding for the encoder, causal for the decoder) or None.
        context, cross_mask: the encoder output and its padding mask (decoder only).
        cache: None, or a list with one cache per block (step 8). With a cache, past = cache[0].length positions
        are already cached: the T new queries sit at positions past .. past + T - 1 over past + T keys.

        Compute the bias once with block 0's position_bias (query_offset = past), add the mask, give it to every
        block; finish with final_norm."""
        raise NotImplementedError("step 6: Stack.forward")


class T5(nn.Module):
    def __init__(self, config):
        """self.config; self.embed: nn.Embedding(vocab_size, d_model), shared by encoder and decoder;
        self.encoder, self.decoder: Stacks; self.lm_head: nn.Linear(d_model, vocab_size, bias=False), or None when
        config.tie_word_embeddings (T5 v1.0 reuses the embedding matrix as the output layer)."""
        super().__init__()
        raise NotImplementedError("step 6: T5.__init__")

    def encode(self, input_ids, attention_mask=None):
        """(B, S) token ids -> encoder output (B, S, D). No position embeddings, no sqrt(d_model) scaling."""
        raise NotImplementedError("step 6: T5.encode")

    def decode(self, decoder_input_ids, encoder_output, attention_mask=None, cache=None):
        """(B, T) decoder token ids -> logits (B, T, V). attention_mask is the ENCODER's (B, S): it becomes the
        cross-attention mask. The self-attention mask is causal_mask(T, past, ...), past = cache[0].length with a
        cache, else 0."""
        raise NotImplementedError("step 6: T5.decode")

    def project(self, h):
        """Decoder output (B, T, D) -> logits (B, T, V), through lm_head or (tied) the embedding matrix.
        If config.scale_decoder_outputs (T5 v1.0), multiply h by d_model ** -0.5 first. F.linear helps."""
        raise NotImplementedError("step 6: T5.project")

    def shift_right(self, labels):
        """Teacher forcing: labels (B, T) -> decoder inputs (B, T) = [start, y1, ..., y(T-1)]: prepend
        config.decoder_start_token_id, drop the last label, replace -100 ("ignore") by config.pad_token_id."""
        raise NotImplementedError("step 6: T5.shift_right")

    def forward(self, input_ids, attention_mask=None, decoder_input_ids=None, labels=None):
        """Returns (logits (B, T, V), loss or None). Without decoder_input_ids they are shift_right(labels).
        The loss is one cross-entropy mean over every label that is not -100, across the whole batch
        (ignore_index=-100)."""
        raise NotImplementedError("step 6: T5.forward")
