"""Step 10: span corruption, T5's pretraining objective. Compared with minit5/data.py."""

import numpy as np

from minit5 import data as reference


STEP = "step10_span_corruption"
SENTINELS = [99 - i for i in range(20)]  # <extra_id_0> = 99, <extra_id_1> = 98, ...


class ByteTok:  # what minit5's apply_noise_mask needs to know about a tokenizer
    eos_id, num_sentinels = 1, len(SENTINELS)

    def sentinel_id(self, i):
        return SENTINELS[i]


def test_random_segmentation(impl):
    for num_items, num_segments in [(10, 3), (5, 5), (7, 1), (30, 4)]:
        lengths = impl.random_segmentation(num_items, num_segments, np.random.default_rng(0))
        lengths = np.asarray(lengths)
        assert len(lengths) == num_segments and lengths.sum() == num_items and (lengths > 0).all(), (
            f"random_segmentation({num_items}, {num_segments}) gave {lengths.tolist()}: it must give {num_segments} "
            f"positive lengths summing to {num_items}")
        expected = reference._random_segmentation(num_items, num_segments, np.random.default_rng(0))
        assert lengths.tolist() == expected.tolist(), (
            f"random_segmentation({num_items}, {num_segments}) gave {lengths.tolist()}, a valid split, but not the "
            f"reference's {expected.tolist()} for the same random generator: draw exactly as the docstring says "
            f"(one rng.permutation of the {num_items - 1} gap marks), so that your masks equal T5's draw for draw.")


def test_noise_mask(impl):
    for length in (1, 2, 10, 37, 100, 512):
        mask = np.asarray(impl.random_spans_noise_mask(length, 0.15, 3.0, np.random.default_rng(length)))
        assert mask.dtype == bool and mask.shape == (length,), \
            f"random_spans_noise_mask({length}, ...) should return a bool array of shape ({length},)"
        num_noise = min(max(int(round(max(length, 2) * 0.15)), 1), max(length, 2) - 1)
        expected_noise = reference.random_spans_noise_mask(length, 0.15, 3.0, np.random.default_rng(length))
        if length > 1:
            assert mask.sum() == num_noise, (
                f"length {length}: {mask.sum()} noise tokens, expected round({length} × 0.15) = {num_noise} "
                f"(at least 1, and at least one token left)")
            assert not mask[0] and mask[-1], (
                f"length {length}: the mask must start with a non-noise span and end with a noise span "
                f"(interleave [nonnoise_1, noise_1, nonnoise_2, noise_2, ...])")
            spans = int((mask[1:] & ~mask[:-1]).sum() + mask[0])
            expected_spans = max(int(round(num_noise / 3.0)), 1)
            assert spans == expected_spans, f"length {length}: {spans} noise spans, expected round({num_noise} / 3) = {expected_spans}"
        assert mask.tolist() == expected_noise.tolist(), (
            f"length {length}: a valid mask, but not the one T5 draws with this generator: segment the noise tokens "
            f"first, then the non-noise tokens, each with random_segmentation.")


def test_sentinels(impl):
    tokens = list(range(10, 22))
    mask = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 1], dtype=bool)
    expected = reference.apply_noise_mask(tokens, mask, ByteTok())
    got = impl.span_corrupt(tokens, mask, SENTINELS, eos_id=1)
    inputs, targets = (list(map(int, got[0])), list(map(int, got[1])))
    if (inputs, targets) == expected:
        return
    lines = [f"span_corrupt({tokens}, mask {mask.astype(int).tolist()}) gave\n  inputs  {inputs}\n  targets {targets}\n"
             f"expected\n  inputs  {expected[0]}\n  targets {expected[1]}"]
    if inputs[-1:] != [1] or targets[-1:] != [1]:
        lines.append("Both end with EOS (1).")
    if targets[:1] != [SENTINELS[0]]:
        lines.append("The targets start with <extra_id_0>: T5 builds them with the same rule on the inverted mask.")
    sentinels_in_inputs = sum(t in SENTINELS for t in inputs)
    if sentinels_in_inputs == int(mask.sum()):
        lines.append("Each masked token became a sentinel: a masked span becomes ONE sentinel in the inputs, and the "
                     "rest of the span is dropped.")
    elif any(t in inputs for t, m in zip(tokens, mask) if m):
        lines.append("Masked tokens appear in the inputs: they must be cut out (the targets hold them).")
    raise AssertionError("\n".join(lines))
