"""Step 8 (solution): the KV cache and greedy decoding."""

import torch

from .step06_model import T5  # noqa: F401  (the tests build your model through this module)


class KVCache:
    def __init__(self, max_len: int):
        self.max_len = max_len
        self.length = 0
        self.keys = self.values = None  # (B, H, max_len, Dh)
        self.cross = None

    def append(self, k, v):  # (B, H, T_new, Dh)
        if self.keys is None:
            self.keys = k.new_zeros(k.shape[0], k.shape[1], self.max_len, k.shape[3])
            self.values = torch.zeros_like(self.keys)
        end = self.length + k.shape[2]
        self.keys[:, :, self.length:end] = k
        self.values[:, :, self.length:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def select(self, rows):
        if self.keys is not None:
            self.keys = self.keys.index_select(0, rows)
            self.values = self.values.index_select(0, rows)
        if self.cross is not None:
            self.cross = tuple(t.index_select(0, rows) for t in self.cross)


def new_cache(model, max_len: int):
    return [KVCache(max_len) for _ in model.decoder.blocks]


@torch.no_grad()
def greedy_generate(model, input_ids, attention_mask=None, max_new_tokens: int = 20):
    config = model.config
    if attention_mask is None:
        attention_mask = (input_ids != config.pad_token_id).long()
    encoder_output = model.encode(input_ids, attention_mask)  # (B, S, D), once
    cache = new_cache(model, max_new_tokens)
    tokens = torch.full((input_ids.shape[0], 1), config.decoder_start_token_id, dtype=torch.long)
    out = [tokens[:, 0]]
    finished = torch.zeros(input_ids.shape[0], dtype=torch.bool)
    for _ in range(max_new_tokens):
        logits = model.decode(tokens, encoder_output, attention_mask, cache=cache)[:, -1]  # (B, V)
        next_tokens = logits.argmax(dim=-1).masked_fill(finished, config.pad_token_id)
        out.append(next_tokens)
        finished |= next_tokens == config.eos_token_id
        if finished.all():
            break
        tokens = next_tokens[:, None]
    return torch.stack(out, dim=1)  # (B, 1 + steps)
