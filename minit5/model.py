"""minit5's T5: the whole encoder-decoder transformer in one file, in the order data flows through it.

    input_ids ──embed──► encoder: N × [self-attention, feed-forward] ──► encoder_output ─┐
    decoder_input_ids ──embed──► decoder: M × [causal self-attention, cross-attention ◄──┘, feed-forward]
                                 ──► lm_head ──► logits over the vocabulary

Shapes in comments use B = batch, S = source (encoder) length, T = target (decoder) length,
D = d_model, H = num_heads, Dh = d_kv (width of one head), F = d_ff, V = vocab_size.
Every variant of the family (T5 v1.0, v1.1, flan-T5, mT5, umT5, byT5) is this code with another T5Config.
Loading and saving Hugging Face checkpoints lives in checkpoint.py, decoding in generate.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .config import T5Config


# --------------------------------------------------------------------------------------------------
# 1. RMS norm: T5's "layer norm" scales by the root mean square. No mean subtraction, no bias.
# --------------------------------------------------------------------------------------------------
def rms_norm(x, weight, eps: float):
    """x / sqrt(mean(x²) + eps) · weight over the last axis. x: (..., D)."""
    # The statistic is taken in fp32 even when the model runs in bf16/fp16: squares overflow fp16.
    variance = x.float().pow(2).mean(-1, keepdim=True)  # (..., 1)
    x = x * torch.rsqrt(variance + eps)
    return weight * x.to(weight.dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):  # x: (B, T, D)
        return rms_norm(x, self.weight, self.eps)


# --------------------------------------------------------------------------------------------------
# 1b. Dropout while training: each activation is zeroed with probability p and the rest are scaled by
#     1/(1-p), so that the expected value is unchanged (inverted dropout, as F.dropout).
# --------------------------------------------------------------------------------------------------
def dropout(x, p: float, training: bool):
    """F.dropout, with its random numbers drawn four times more cheaply on CPU.

    torch's CPU dropout draws one random number per element (bernoulli_), and for the 12.6M attention weights of
    one flan-T5-small layer at 8 x 512 tokens that costs more than the layer's attention products. Here one
    64-bit draw gives four 16-bit numbers, one per element, and an element is dropped when its number is among
    the lowest round(p * 65536) of the 65,536 values: p is rounded to a multiple of 1/65536 (0.1 -> 0.1000061)
    and the kept elements are scaled by the exact 1/(1-p) of that rate. Forward and backward on those 12.6M
    weights: 93 ms instead of F.dropout's 139 (2 threads, 2-core Xeon with AVX512-VNNI; held to AVX2, the whole
    flan-T5-small step still gains 1.14x). Tested against F.dropout's statistics in tests/test_dropout.py;
    other devices use F.dropout (GPUs have a fused kernel)."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    dropped = round(p * 65536)  # how many of the 65,536 values of a 16-bit number drop an element
    words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-2 ** 63, 2 ** 63 - 1)  # all 64 bits random
    numbers = words.view(torch.int16)[:x.numel()].view(x.shape)  # uniform in -32768 .. 32767, one per element
    keep = numbers >= dropped - 32768
    return torch.where(keep, x, 0.0).mul_(65536 / (65536 - dropped))  # in place: one tensor fewer


class Dropout(nn.Dropout):
    """nn.Dropout (so its p can be set, and it prints as one) computed by `dropout` above."""

    def forward(self, x):
        return dropout(x, self.p, self.training)


# --------------------------------------------------------------------------------------------------
# 2. Relative position bias: T5 has no position embeddings. Instead each attention score gets a learned
#    scalar per head that depends only on the distance (key position - query position), put in buckets.
# --------------------------------------------------------------------------------------------------
def relative_position_bucket(relative_position, bidirectional: bool, num_buckets: int, max_distance: int):
    """Bucket id for each key_pos - query_pos: one bucket per distance up close, log-spaced buckets further away."""
    bucket = torch.zeros_like(relative_position)
    if bidirectional:  # encoder: half the buckets for keys after the query, half for keys before it
        num_buckets //= 2
        bucket += (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:  # decoder: keys after the query are masked anyway, so they all share bucket 0
        distance = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2  # distances 0 .. max_exact-1 get a bucket each
    # Beyond that, bucket grows with log(distance), reaching the last bucket around max_distance.
    # (log(0) = -inf for distance 0 is computed here but never selected by the `where` below.)
    log_ratio = torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
    far_bucket = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return bucket + torch.where(distance < max_exact, distance, far_bucket)


class RelativePositionBias(nn.Module):
    def __init__(self, config: T5Config, bidirectional: bool):
        super().__init__()
        self.table = nn.Embedding(config.relative_attention_num_buckets, config.num_heads)  # (buckets, H)
        self.bidirectional = bidirectional
        self.num_buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance

    def forward(self, query_len: int, key_len: int, query_offset: int = 0):
        """Bias for queries at positions offset..offset+query_len-1 over keys 0..key_len-1: (1, H, Tq, Tk).
        While decoding, query_offset = tokens already cached, so only the new position's row is computed."""
        device = self.table.weight.device
        query_pos = torch.arange(query_offset, query_offset + query_len, device=device)[:, None]  # (Tq, 1)
        key_pos = torch.arange(key_len, device=device)[None, :]  # (1, Tk)
        buckets = relative_position_bucket(key_pos - query_pos, self.bidirectional, self.num_buckets,
                                           self.max_distance)  # (Tq, Tk)
        # (Tq, Tk, H) -> (1, H, Tq, Tk); contiguous, so that adding it to (B, H, Tq, Tk) scores reads memory in order
        return self.table(buckets).permute(2, 0, 1).unsqueeze(0).contiguous()


# --------------------------------------------------------------------------------------------------
# 3. Attention. Bias-free projections and NO 1/sqrt(Dh) scaling of the scores: T5 folds that factor
#    into the initialisation of q (see T5.init_weights), so trained weights already include it.
# --------------------------------------------------------------------------------------------------
def attention(q, k, v, bias, dropout_p: float, use_sdpa: bool):
    """softmax(q·kᵀ + bias)·v per head. q: (B, H, T, Dh), k, v: (B, H, S, Dh), bias: broadcastable to (B, H, T, S)."""
    if use_sdpa:  # the same formula in one fused kernel (scale=1.0: T5 does not scale)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=1.0)
    scores = torch.matmul(q, k.transpose(-1, -2))  # (B, H, T, S)
    if bias is not None:
        scores = scores + bias  # position bias, plus a very negative number where a key is masked
    probs = dropout(F.softmax(scores, dim=-1), p=dropout_p, training=dropout_p > 0)  # softmax in the compute dtype
    return torch.matmul(probs, v)  # (B, H, T, Dh)


class LayerCache:
    """What one decoder block remembers while generating, so that each new token costs one position's work.

    Self-attention keys/values are written into buffers preallocated for max_len positions.
    Cross-attention keys/values depend only on the encoder output: computed at the first step, then reused."""

    def __init__(self, max_len: int):
        self.max_len = max_len
        self.length = 0  # positions cached so far
        self.keys = self.values = None  # (B, H, max_len, Dh)
        self.cross = None  # (keys, values) over the encoder output, each (B, H, S, Dh)

    def append(self, k, v):  # k, v: (B, H, T_new, Dh)
        if self.keys is None:
            self.keys = k.new_zeros(k.shape[0], k.shape[1], self.max_len, k.shape[3])
            self.values = torch.zeros_like(self.keys)
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"the decoder cache holds {self.max_len} positions; position {end} does not fit")
        self.keys[:, :, self.length:end] = k
        self.values[:, :, self.length:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]  # every position so far: (B, H, end, Dh)

    def select(self, rows, cross: bool = True):
        """Keep only these batch rows, in this order. Beam search reorders beams of the same prompt every step:
        their cross-attention keys/values are identical, so it passes cross=False and skips that copy."""
        if self.keys is not None:
            self.keys = self.keys.index_select(0, rows)
            self.values = self.values.index_select(0, rows)
        if cross and self.cross is not None:
            self.cross = tuple(t.index_select(0, rows) for t in self.cross)


class Attention(nn.Module):
    def __init__(self, config: T5Config):
        super().__init__()
        self.num_heads, self.d_kv = config.num_heads, config.d_kv
        self.q = nn.Linear(config.d_model, config.inner_dim, bias=False)
        self.k = nn.Linear(config.d_model, config.inner_dim, bias=False)
        self.v = nn.Linear(config.d_model, config.inner_dim, bias=False)
        self.o = nn.Linear(config.inner_dim, config.d_model, bias=False)
        self.dropout = config.dropout_rate
        self.use_sdpa = False  # T5.set_attention("sdpa") switches to the fused kernel

    def split_heads(self, x):  # (B, T, H*Dh) -> (B, H, T, Dh)
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.d_kv).transpose(1, 2)

    def forward(self, x, bias, context=None, cache: LayerCache | None = None):
        """x: (B, T, D) attends to itself (context=None) or to context: (B, S, D), the encoder output."""
        q = self.split_heads(self.q(x))  # (B, H, T, Dh)
        if context is None:  # self-attention: keys and values come from the same positions
            k, v = self.split_heads(self.k(x)), self.split_heads(self.v(x))
            if cache is not None:
                k, v = cache.append(k, v)  # now covering every position generated so far
        elif cache is not None and cache.cross is not None:
            k, v = cache.cross  # cross-attention while generating: computed at the first step
        else:
            k, v = self.split_heads(self.k(context)), self.split_heads(self.v(context))  # (B, H, S, Dh)
            if cache is not None:
                cache.cross = (k, v)
        out = attention(q, k, v, bias, self.dropout if self.training else 0.0, self.use_sdpa)  # (B, H, T, Dh)
        out = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)  # merge heads: (B, T, H*Dh)
        return self.o(out)  # (B, T, D)


# --------------------------------------------------------------------------------------------------
# 4. Feed-forward network: ReLU (T5 v1.0) or gated, act(gate(x)) * up(x) (v1.1, flan-T5 and later).
# --------------------------------------------------------------------------------------------------
ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact (erf) GELU
    # "gelu_new" is the tanh approximation of GELU that T5 v1.1 was trained with. Hugging Face writes the
    # formula out, which rounds differently from torch's fused kernel by at most 5e-7.
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "swish": F.silu,
}


class FeedForward(nn.Module):
    def __init__(self, config: T5Config):
        super().__init__()
        self.gate = nn.Linear(config.d_model, config.d_ff, bias=False) if config.is_gated else None
        self.up = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.down = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.act = ACTIVATIONS[config.dense_act_fn]
        self.dropout = Dropout(config.dropout_rate)

    def forward(self, x):  # x: (B, T, D)
        if self.gate is not None:
            h = self.act(self.gate(x)) * self.up(x)  # (B, T, F)
        else:
            h = self.act(self.up(x))  # (B, T, F)
        h = self.dropout(h)
        # In float16 checkpoints `down` stays in fp32 (its outputs overflow fp16), so cast to its dtype; an int8
        # `down` (minit5/quant.py) takes the float input as it is.
        return self.down(h.to(self.down.weight.dtype) if self.down.weight.is_floating_point() else h)  # (B, T, D)


# --------------------------------------------------------------------------------------------------
# 5. A block: pre-norm residual sublayers. Encoder: self-attention, FFN. Decoder: causal self-attention,
#    cross-attention over the encoder output, FFN. Block 0 of each stack owns the position-bias table
#    (umT5: every block owns one) and the bias it computes is shared by the later blocks.
# --------------------------------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, config: T5Config, is_decoder: bool, has_position_bias: bool):
        super().__init__()
        self.position_bias = RelativePositionBias(config, bidirectional=not is_decoder) if has_position_bias else None
        self.self_attn_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.self_attn = Attention(config)
        if is_decoder:
            self.cross_attn_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
            self.cross_attn = Attention(config)
        self.ffn_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.ffn = FeedForward(config)
        self.dropout = Dropout(config.dropout_rate)

    def forward(self, x, self_bias, context=None, cross_bias=None, cache: LayerCache | None = None):
        x = x + self.dropout(self.self_attn(self.self_attn_norm(x), self_bias, cache=cache))  # (B, T, D)
        if context is not None:
            x = x + self.dropout(self.cross_attn(self.cross_attn_norm(x), cross_bias, context, cache=cache))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class Stack(nn.Module):
    """The encoder or the decoder: dropout on the embeddings, the blocks, a final norm."""

    def __init__(self, config: T5Config, is_decoder: bool):
        super().__init__()
        depth = config.num_decoder_layers if is_decoder else config.num_layers
        self.blocks = nn.ModuleList(
            Block(config, is_decoder, has_position_bias=(i == 0 or config.position_bias_in_every_layer))
            for i in range(depth))
        self.final_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.dropout = Dropout(config.dropout_rate)
        self.gradient_checkpointing = False  # recompute each block in the backward pass to save memory

    def forward(self, x, mask=None, context=None, cross_mask=None, cache: list[LayerCache] | None = None):
        """x: (B, T, D) embedded tokens. mask: additive, broadcastable to (B, 1, T, past+T); cross_mask: (B, 1, 1, S),
        or (B, 1, T, S) for packed rows."""
        past = cache[0].length if cache else 0  # positions already cached while generating
        x = self.dropout(x)
        bias = None
        for i, block in enumerate(self.blocks):
            if block.position_bias is not None:
                bias = block.position_bias(x.shape[1], past + x.shape[1], query_offset=past)  # (1, H, T, past+T)
                if mask is not None:
                    bias = bias + mask  # (B, H, T, past+T): position bias and mask, added to the scores once
            layer_cache = cache[i] if cache else None
            if self.gradient_checkpointing and self.training:
                x = checkpoint(block, x, bias, context, cross_mask, layer_cache, use_reentrant=False)
            else:
                x = block(x, bias, context, cross_mask, layer_cache)
        return self.dropout(self.final_norm(x))


# --------------------------------------------------------------------------------------------------
# 6. Masks: 0 where attention may look, the most negative float where it may not (softmax gives it 0).
# --------------------------------------------------------------------------------------------------
def additive(blocked, dtype):
    """True where attention may not look -> the most negative float there, 0 elsewhere (added to the scores)."""
    return torch.zeros(blocked.shape, dtype=dtype, device=blocked.device).masked_fill(blocked, torch.finfo(dtype).min)


def padding_mask(attention_mask, dtype):
    """(B, S) with 1 = real token, 0 = padding  ->  additive (B, 1, 1, S), or None when nothing is masked."""
    if attention_mask is None:
        return None
    return additive((attention_mask == 0)[:, None, None, :], dtype)


def example_mask(query_examples, key_examples, dtype):
    """Packed rows, where several short examples share one row to save padding (the trainer's --pack).
    (B, T) and (B, S) example numbers (1, 2, ... within a row; 0 = padding) -> additive (B, 1, T, S): each
    query sees only the keys of its own example. Examples lie in contiguous runs, so the relative positions
    inside one example are what they would be in a row of its own."""
    blocked = (query_examples[:, :, None] != key_examples[:, None, :]) | (key_examples == 0)[:, None, :]
    return additive(blocked[:, None], dtype)  # (B, 1, T, S): the same for every head


def causal_mask(query_len: int, past: int, dtype, device):
    """Query i (at position past+i) may see keys 0..past+i: additive (1, 1, T, past+T), None for one new token."""
    if query_len == 1:
        return None
    query_pos = torch.arange(past, past + query_len, device=device)[:, None]
    key_pos = torch.arange(past + query_len, device=device)[None, :]
    return additive(key_pos > query_pos, dtype)[None, None]


# --------------------------------------------------------------------------------------------------
# 7. The model.
# --------------------------------------------------------------------------------------------------
class T5(nn.Module):
    def __init__(self, config: T5Config):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)  # shared by encoder and decoder
        self.encoder = Stack(config, is_decoder=False)
        self.decoder = Stack(config, is_decoder=True)
        # T5 v1.0 reuses the embedding matrix as the output layer; v1.1 and later learn a separate one.
        self.lm_head = None if config.tie_word_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        # Set by other files, plain attributes (not weights, not saved):
        self.quantization = None  # "int8" once minit5/quant.py has quantized the layers
        self.lora_config = None  # the adapters' settings (r, alpha, targets...) while minit5/lora.py's are attached
        self.fast_weights = None  # minit5/fast.py's decoding copies of the decoder weights, built by generate
        if self.embed.weight.device.type != "meta":  # on "meta" (used while loading) there is nothing to fill
            self.init_weights()

    @torch.no_grad()
    def init_weights(self):
        """T5's initialisation: normal with std 1/sqrt(fan_in), and q also divided by sqrt(d_kv), which stands in
        for the 1/sqrt(d_kv) score scaling that T5 does not do. Embeddings: std 1. Norm weights: 1."""
        c, f = self.config, self.config.initializer_factor
        nn.init.normal_(self.embed.weight, std=f * 1.0)
        if self.lm_head is not None:  # as Mesh TensorFlow's output layer (Hugging Face uses std 1 here)
            nn.init.normal_(self.lm_head.weight, std=f * c.d_model ** -0.5)
        for module in self.modules():
            if isinstance(module, Attention):
                nn.init.normal_(module.q.weight, std=f * (c.d_model * c.d_kv) ** -0.5)
                nn.init.normal_(module.k.weight, std=f * c.d_model ** -0.5)
                nn.init.normal_(module.v.weight, std=f * c.d_model ** -0.5)
                nn.init.normal_(module.o.weight, std=f * c.inner_dim ** -0.5)
            elif isinstance(module, FeedForward):
                for linear in (module.gate, module.up):
                    if linear is not None:
                        nn.init.normal_(linear.weight, std=f * c.d_model ** -0.5)
                nn.init.normal_(module.down.weight, std=f * c.d_ff ** -0.5)
            elif isinstance(module, RelativePositionBias):
                nn.init.normal_(module.table.weight, std=f * c.d_model ** -0.5)
            elif isinstance(module, RMSNorm):
                nn.init.constant_(module.weight, f * 1.0)

    # -- the two halves, usable on their own (the sampler encodes once, then decodes step by step) --
    def encode(self, input_ids, attention_mask=None, packed: bool = False):
        """input_ids: (B, S) -> encoder output (B, S, D). attention_mask: (B, S), 0 marks padding; packed=True:
        it numbers the examples sharing a row (see example_mask)."""
        x = self.embed(input_ids)  # (B, S, D); no position embedding, no sqrt(D) scaling
        if packed:
            return self.encoder(x, example_mask(attention_mask, attention_mask, x.dtype))  # mask (B, 1, S, S)
        return self.encoder(x, padding_mask(attention_mask, x.dtype))  # mask (B, 1, 1, S)

    def decode(self, decoder_input_ids, encoder_output, attention_mask=None, decoder_attention_mask=None,
               cache: list[LayerCache] | None = None, packed: bool = False):
        """decoder_input_ids: (B, T), encoder_output: (B, S, D) -> logits (B, T, V).
        attention_mask is the encoder's (B, S); with a cache, T is the new tokens only. packed=True: both masks
        number the examples sharing a row (training only, no cache)."""
        x = self.embed(decoder_input_ids)  # (B, T, D)
        past = cache[0].length if cache else 0
        mask = causal_mask(x.shape[1], past, x.dtype, x.device)  # (1, 1, T, past+T) or None
        if packed:  # the example's own earlier tokens only; its own encoder tokens only
            own = example_mask(decoder_attention_mask, decoder_attention_mask, x.dtype)  # (B, 1, T, T)
            cross_mask = example_mask(decoder_attention_mask, attention_mask, encoder_output.dtype)  # (B, 1, T, S)
        else:  # decoder_attention_mask (B, past+T), if given, also hides padded decoder positions
            own = padding_mask(decoder_attention_mask, x.dtype)  # (B, 1, 1, past+T) or None
            cross_mask = padding_mask(attention_mask, encoder_output.dtype)  # (B, 1, 1, S)
        if own is not None:
            mask = own if mask is None else (mask + own).clamp(min=torch.finfo(x.dtype).min)  # (B, 1, T, past+T)
        h = self.decoder(x, mask, encoder_output, cross_mask, cache)  # (B, T, D)
        return self.project(h)

    def project(self, h):
        """Decoder output (B, T, D) -> logits (B, T, V)."""
        if self.config.scale_decoder_outputs:  # T5 v1.0: tied weights, so rescale the output to d_model**-0.5
            h = h * self.config.d_model ** -0.5
        return F.linear(h, self.embed.weight) if self.lm_head is None else self.lm_head(h)

    def new_cache(self, max_len: int) -> list[LayerCache]:
        return [LayerCache(max_len) for _ in self.decoder.blocks]

    def shift_right(self, labels, examples=None):
        """Teacher forcing: the decoder sees [start, y1, ..., y_{T-1}] and predicts [y1, ..., yT].
        examples: (B, T) example numbers of a packed row; each example starts with its own start token."""
        start = torch.full_like(labels[:, :1], self.config.decoder_start_token_id)
        shifted = torch.cat([start, labels[:, :-1]], dim=1)
        if examples is not None:
            starts = torch.ones_like(examples, dtype=torch.bool)
            starts[:, 1:] = examples[:, 1:] != examples[:, :-1]  # (B, T): where an example's first token is
            shifted = shifted.masked_fill(starts, self.config.decoder_start_token_id)
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)  # -100 = "ignore" in labels

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, labels=None,
                decoder_attention_mask=None, encoder_outputs=None, packed: bool = False):
        """Returns (logits (B, T, V), loss or None). Keyword names follow Hugging Face's T5ForConditionalGeneration.
        packed=True: rows hold several examples, numbered by attention_mask and decoder_attention_mask."""
        if packed and (attention_mask is None or decoder_attention_mask is None):
            raise ValueError("T5.forward(packed=True) needs attention_mask and decoder_attention_mask numbering "
                             "the examples of each row")
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("T5.forward needs decoder_input_ids or labels (labels are shifted right to make them)")
            decoder_input_ids = self.shift_right(labels, decoder_attention_mask if packed else None)
        if encoder_outputs is None:
            if input_ids is None:
                raise ValueError("T5.forward needs input_ids (or encoder_outputs from T5.encode)")
            encoder_outputs = self.encode(input_ids, attention_mask, packed)
        logits = self.decode(decoder_input_ids, encoder_outputs, attention_mask, decoder_attention_mask,
                             packed=packed)
        loss = None
        if labels is not None:  # mean over every label that is not -100, across the whole batch
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        return logits, loss

    # -- conveniences -------------------------------------------------------------------------------
    def train(self, mode: bool = True):
        if mode:  # weights about to change: fast.py's copies would be stale (it rebuilds them when needed)
            self.fast_weights = None
        return super().train(mode)

    def __getstate__(self):  # pickling or deep-copying the model leaves fast.py's derived copies behind
        return {**self.__dict__, "fast_weights": None}

    def set_attention(self, kind: str):
        """"eager" (the written-out formula, bitwise Hugging Face's eager) or "sdpa" (one fused kernel)."""
        if kind not in ("eager", "sdpa"):
            raise ValueError(f"attention kind must be 'eager' or 'sdpa', got {kind!r}")
        for module in self.modules():
            if isinstance(module, Attention):
                module.use_sdpa = kind == "sdpa"
        return self

    def set_gradient_checkpointing(self, enabled: bool = True):
        self.encoder.gradient_checkpointing = self.decoder.gradient_checkpointing = enabled
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self):
        return self.embed.weight.device

    @property
    def dtype(self):
        return self.embed.weight.dtype

    @classmethod
    def from_pretrained(cls, path, dtype=torch.float32, device="cpu") -> "T5":
        """Load a Hugging Face-format folder (config.json + safetensors or pytorch_model.bin) or a hub id."""
        from .checkpoint import load_model
        return load_model(path, dtype=dtype, device=device)

    def generate(self, input_ids, attention_mask=None, **kwargs):
        """Greedy search, sampling or beam search; see minit5/generate.py for the arguments."""
        from .generate import generate
        return generate(self, input_ids, attention_mask, **kwargs)

    def save_pretrained(self, out_dir, max_shard_size: str | int = "5GB"):
        """Write config.json + model.safetensors (sharded above max_shard_size) that transformers can load."""
        from .checkpoint import save_model
        if self.quantization:  # minit5/quant.py: int8 tensors under fp32 names would load wrong
            raise ValueError(f"this model is quantized ({self.quantization}) and cannot be saved; save the fp32 "
                             f"model and quantize it after loading")
        self.fast_weights = None  # free fast.py's copies before writing
        save_model(self, out_dir, max_shard_size=max_shard_size)
