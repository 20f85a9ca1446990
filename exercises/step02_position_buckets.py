"""Step 2 of 11: relative position buckets and the position-bias table.    about 40 minutes

Read first: docs/architecture.md, section 4 (Relative position buckets) and its bucket table.
minit5's answer: minit5/model.py relative_position_bucket and RelativePositionBias.
Test: python -m pytest exercises -k step02

T5 has no position embeddings. Each attention score gets a learned number per head that depends only on the
relative position (key position - query position), grouped into buckets: one bucket per distance up close,
log-spaced buckets further away.
"""

import math  # noqa: F401  (math.log is handy)

import torch
import torch.nn as nn


def relative_position_bucket(relative_position, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128):
    """relative_position: an integer tensor of key_pos - query_pos (any shape) -> bucket ids, same shape, long.

    Encoder (bidirectional=True): half of the buckets (num_buckets // 2) for keys at or before the query, the
    other half (offset by num_buckets // 2) for keys strictly after it; n = |relative_position|.
    Decoder (bidirectional=False): all buckets for the past; n = max(-relative_position, 0), so future keys get 0.

    With nb the buckets available (halved for the encoder) and max_exact = nb // 2:
        n < max_exact:  bucket n
        otherwise:      max_exact + log(n / max_exact) / log(max_distance / max_exact) * (nb - max_exact),
                        truncated toward zero (.long(), not round) and at most nb - 1
    plus the offset for encoder keys after the query.

    Hints:
    - torch.where(condition, a, b) picks per element; compute the log-spaced value for all n (log(0) = -inf for
      n = 0 is harmless, torch.where discards it) and select.
    - Check yourself against the table in docs/architecture.md: encoder distance +8 → bucket 24, decoder 16 → 16.
    """
    raise NotImplementedError("step 2: relative_position_bucket")


class RelativePositionBias(nn.Module):
    def __init__(self, config, bidirectional: bool):
        """self.table: nn.Embedding(config.relative_attention_num_buckets, config.num_heads): one scalar per bucket
        and head. Keep also bidirectional, the number of buckets and config.relative_attention_max_distance."""
        super().__init__()
        raise NotImplementedError("step 2: RelativePositionBias.__init__")

    def forward(self, query_len: int, key_len: int, query_offset: int = 0):
        """The bias added to the attention scores: (1, H, query_len, key_len).

        Queries sit at positions query_offset .. query_offset + query_len - 1, keys at 0 .. key_len - 1. While
        generating with a KV cache (step 8), the one new query is at position query_offset = cached positions.

        Hints: torch.arange for the positions, [:, None] and [None, :] to broadcast them into a (Tq, Tk) grid of
        key - query; self.table(buckets) is (Tq, Tk, H); permute(2, 0, 1) and unsqueeze(0) give (1, H, Tq, Tk).
        """
        raise NotImplementedError("step 2: RelativePositionBias.forward")
