"""Step 8 of 11: the KV cache and greedy decoding.                         about 45 minutes

Read first: docs/generation.md, sections 1 (The loop), 2 (The KV cache) and 3 (Greedy search and the output
layout). minit5's answer: minit5/model.py LayerCache, minit5/generate.py _greedy_or_sample.
Test: python -m pytest exercises -k step08

Your Attention (step 3) and T5.decode (step 6) already take a cache; here you write it and the loop that uses it.
"""

import torch

from .step06_model import T5  # noqa: F401  (the tests build your model through this module)


class KVCache:
    """What one decoder block remembers while generating.

    length       positions cached so far (starts at 0)
    append(k, v) store new self-attention keys/values (B, H, T_new, Dh); return all so far (B, H, length, Dh)
    cross        None, or the (keys, values) of the encoder output, set by cross-attention at the first step
    select(rows) keep only these batch rows, in this order (keys, values and cross); beam search (step 9) uses it

    Hint: preallocate (B, H, max_len, Dh) buffers at the first append and write into them, rather than
    torch.cat at every step (which copies everything each time)."""

    def __init__(self, max_len: int):
        raise NotImplementedError("step 8: KVCache.__init__")

    def append(self, k, v):
        raise NotImplementedError("step 8: KVCache.append")

    def select(self, rows):
        raise NotImplementedError("step 8: KVCache.select")


def new_cache(model, max_len: int):
    """One KVCache per decoder block."""
    raise NotImplementedError("step 8: new_cache")


@torch.no_grad()
def greedy_generate(model, input_ids, attention_mask=None, max_new_tokens: int = 20):
    """Greedy decoding as transformers' generate does it for T5. Returns (B, 1 + steps) token ids:

        [decoder_start (0), token, token, ..., EOS (1), pad (0), pad (0)]

    - attention_mask None: infer it as input_ids != pad_token_id.
    - Run the encoder once. Start every row with config.decoder_start_token_id.
    - Each step feeds only the newest token (B, 1) to model.decode with the cache, takes the argmax of the last
      position's logits.
    - A row that has produced EOS is finished: from then on it gets pad_token_id. Stop when every row is finished,
      or after max_new_tokens new tokens."""
    raise NotImplementedError("step 8: greedy_generate")
