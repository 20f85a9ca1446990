"""Step 2 (solution): relative position buckets and the position-bias table."""

import math

import torch
import torch.nn as nn


def relative_position_bucket(relative_position, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128):
    bucket = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket += (relative_position > 0).long() * num_buckets  # keys after the query: the upper half
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)  # future keys: distance 0, bucket 0
    max_exact = num_buckets // 2
    log_ratio = torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
    far = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return bucket + torch.where(distance < max_exact, distance, far)


class RelativePositionBias(nn.Module):
    def __init__(self, config, bidirectional: bool):
        super().__init__()
        self.table = nn.Embedding(config.relative_attention_num_buckets, config.num_heads)
        self.bidirectional = bidirectional
        self.num_buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance

    def forward(self, query_len: int, key_len: int, query_offset: int = 0):
        device = self.table.weight.device
        query_pos = torch.arange(query_offset, query_offset + query_len, device=device)[:, None]  # (Tq, 1)
        key_pos = torch.arange(key_len, device=device)[None, :]  # (1, Tk)
        buckets = relative_position_bucket(key_pos - query_pos, self.bidirectional, self.num_buckets,
                                           self.max_distance)  # (Tq, Tk)
        return self.table(buckets).permute(2, 0, 1).unsqueeze(0)  # (Tq, Tk, H) -> (1, H, Tq, Tk)
