"""Step 10 of 11: span corruption, T5's pretraining objective.              about 45 minutes

Read first: docs/training.md, section 1 (What T5 learns from: span corruption).
minit5's answer: minit5/data.py _random_segmentation, random_spans_noise_mask and apply_noise_mask.
Test: python -m pytest exercises -k step10

    original: The cute dog walks in the park
    inputs:   The <extra_id_0> walks in <extra_id_1> park </s>
    targets:  <extra_id_0> cute dog <extra_id_1> the </s>

This step stands apart from the model: it makes the training data (numpy, no torch).
"""

import numpy as np  # noqa: F401


def random_segmentation(num_items: int, num_segments: int, rng) -> np.ndarray:
    """Split num_items into num_segments random positive lengths (an int array summing to num_items).

    Draw it as T5 does, so that your masks equal T5's draw for draw: a vector of num_items - 1 gap marks with
    num_segments - 1 ones first ("a segment starts after this item") then zeros; shuffle it with ONE call
    rng.permutation(marks); prepend a 0, cumulative-sum to get each item's segment id, count items per segment
    (np.bincount(..., minlength=num_segments))."""
    raise NotImplementedError("step 10: random_segmentation")


def random_spans_noise_mask(length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0,
                            rng=None) -> np.ndarray:
    """A bool mask over `length` tokens, True = noise (cut out).

    - work on L = max(length, 2); num_noise = round(L × noise_density), clipped to [1, L - 1];
      num_spans = max(round(num_noise / mean_noise_span_length), 1). Round as T5 does: np.round of float32
      values (half to even).
    - noise span lengths = random_segmentation(num_noise, num_spans, rng), THEN non-noise span lengths =
      random_segmentation(L - num_noise, num_spans, rng) (this order matters for matching T5's draws).
    - interleave [nonnoise_1, noise_1, nonnoise_2, noise_2, ...] (the mask starts with non-noise and ends with
      noise); np.repeat turns span lengths into the mask; keep the first `length` entries."""
    raise NotImplementedError("step 10: random_spans_noise_mask")


def spans_to_sentinels(tokens, mask, sentinel_ids) -> list:
    """Keep the tokens where mask is False; replace each run of True by ONE sentinel: the first run by
    sentinel_ids[0] (<extra_id_0>), the second by sentinel_ids[1], ... Returns a list of ints."""
    raise NotImplementedError("step 10: spans_to_sentinels")


def span_corrupt(tokens, mask, sentinel_ids, eos_id: int = 1):
    """(inputs, targets), both lists ending with eos_id. inputs = spans_to_sentinels(tokens, mask); targets: the
    same rule on the inverted mask, so they read [<extra_id_0>, noise span 1, <extra_id_1>, noise span 2, ...]."""
    raise NotImplementedError("step 10: span_corrupt")
