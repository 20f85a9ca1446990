"""Step 10 (solution): span corruption."""

import numpy as np


def random_segmentation(num_items: int, num_segments: int, rng) -> np.ndarray:
    starts = np.zeros(num_items - 1, dtype=np.int64)
    starts[: num_segments - 1] = 1
    starts = rng.permutation(starts)
    segment_id = np.cumsum(np.concatenate([[0], starts]))
    return np.bincount(segment_id, minlength=num_segments)


def random_spans_noise_mask(length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0,
                            rng=None) -> np.ndarray:
    padded = max(length, 2)
    num_noise = int(np.round(np.float32(padded) * np.float32(noise_density)))
    num_noise = min(max(num_noise, 1), padded - 1)
    num_spans = max(int(np.round(np.float32(num_noise) / np.float32(mean_noise_span_length))), 1)
    noise_lengths = random_segmentation(num_noise, num_spans, rng)
    nonnoise_lengths = random_segmentation(padded - num_noise, num_spans, rng)
    span_lengths = np.stack([nonnoise_lengths, noise_lengths], axis=1).reshape(-1)
    return np.repeat(np.arange(2 * num_spans) % 2 == 1, span_lengths)[:length]


def spans_to_sentinels(tokens, mask, sentinel_ids) -> list:
    out, run = [], 0
    for i, token in enumerate(tokens):
        if not mask[i]:
            out.append(int(token))
        elif i == 0 or not mask[i - 1]:
            out.append(sentinel_ids[run])
            run += 1
    return out


def span_corrupt(tokens, mask, sentinel_ids, eos_id: int = 1):
    mask = np.asarray(mask, dtype=bool)
    return spans_to_sentinels(tokens, mask, sentinel_ids) + [eos_id], spans_to_sentinels(tokens, ~mask, sentinel_ids) + [eos_id]
