"""Step 3 (solution): masks and attention without 1/sqrt(d)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def padding_mask(attention_mask, dtype):
    if attention_mask is None:
        return None
    blocked = (attention_mask == 0)[:, None, None, :]  # (B, 1, 1, S)
    return torch.zeros(blocked.shape, dtype=dtype, device=blocked.device).masked_fill(blocked, torch.finfo(dtype).min)


def causal_mask(query_len: int, past: int, dtype, device):
    if query_len == 1:
        return None
    query_pos = torch.arange(past, past + query_len, device=device)[:, None]
    key_pos = torch.arange(past + query_len, device=device)[None, :]
    mask = torch.zeros(query_len, past + query_len, dtype=dtype, device=device)
    return mask.masked_fill(key_pos > query_pos, torch.finfo(dtype).min)[None, None]  # (1, 1, T, past+T)


def attention(q, k, v, bias):
    scores = torch.matmul(q, k.transpose(-1, -2))  # (B, H, T, S): no 1/sqrt(Dh)
    if bias is not None:
        scores = scores + bias
    return torch.matmul(F.softmax(scores, dim=-1), v)  # (B, H, T, Dh)


class Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_heads, self.d_kv = config.num_heads, config.d_kv
        inner = config.num_heads * config.d_kv
        self.q = nn.Linear(config.d_model, inner, bias=False)
        self.k = nn.Linear(config.d_model, inner, bias=False)
        self.v = nn.Linear(config.d_model, inner, bias=False)
        self.o = nn.Linear(inner, config.d_model, bias=False)

    def split_heads(self, x):  # (B, T, H*Dh) -> (B, H, T, Dh)
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.d_kv).transpose(1, 2)

    def forward(self, x, bias, context=None, cache=None):
        q = self.split_heads(self.q(x))
        if context is None:
            k, v = self.split_heads(self.k(x)), self.split_heads(self.v(x))
            if cache is not None:
                k, v = cache.append(k, v)
        elif cache is not None and cache.cross is not None:
            k, v = cache.cross
        else:
            k, v = self.split_heads(self.k(context)), self.split_heads(self.v(context))
            if cache is not None:
                cache.cross = (k, v)
        out = attention(q, k, v, bias)  # (B, H, T, Dh)
        return self.o(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))  # (B, T, D)
