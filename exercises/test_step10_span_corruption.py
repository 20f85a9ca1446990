"""Step 10: span corruption, T5's pretraining objective. Compared with minit5/data.py.

(PYTEST_DONT_REWRITE: a failed check shows its own message, not pytest's account of the expression.)"""

import numpy as np

from minit5 import data as reference


STEP = "step10_span_corruption"
SENTINELS = [99 - i for i in range(20)]  # <extra_id_0> = 99, <extra_id_1> = 98, ...


class ByteTok:  # what minit5's apply_noise_mask needs to know about a tokenizer
    num_sentinels = len(SENTINELS)

    def __init__(self, eos_id=1):
        self.eos_id = eos_id

    def sentinel_id(self, i):
        return SENTINELS[i]


def segmentation(impl, num_items, num_segments, rng):
    try:
        return np.asarray(impl.random_segmentation(num_items, num_segments, rng))
    except TypeError as e:
        if "cast" not in str(e):
            raise
        raise AssertionError(
            f"random_segmentation({num_items}, {num_segments}, rng) raised {e!r}. With one item (or as many segments "
            f"as items) the marks are an empty list, and np.array([]) (or np.concatenate with it) is float64, which "
            f"np.bincount refuses: build the marks with dtype=np.int64.") from None


def test_random_segmentation(impl):
    for num_items, num_segments in [(10, 3), (5, 5), (7, 1), (30, 4), (1, 1)]:
        lengths = segmentation(impl, num_items, num_segments, np.random.default_rng(0))
        assert len(lengths) == num_segments and lengths.sum() == num_items and (lengths > 0).all(), (
            f"random_segmentation({num_items}, {num_segments}) gave {lengths.tolist()}: it must give {num_segments} "
            f"positive lengths summing to {num_items}")
        expected = reference._random_segmentation(num_items, num_segments, np.random.default_rng(0))
        assert lengths.tolist() == expected.tolist(), (
            f"random_segmentation({num_items}, {num_segments}) gave {lengths.tolist()}, a valid split, but not the "
            f"reference's {expected.tolist()} for the same random generator: draw exactly as the docstring says "
            f"(one rng.permutation of the {num_items - 1} gap marks), so that your masks equal T5's draw for draw.")


def test_noise_mask(impl):
    # T5's settings (15% noise, spans of 3 on average), then others: both arguments must be the ones given.
    for noise_density, mean_span in [(0.15, 3.0), (0.3, 3.0), (0.15, 2.0), (0.5, 5.0)]:
        settings = f"noise_density={noise_density}, mean_noise_span_length={mean_span}"
        for length in (1, 2, 10, 37, 100, 512):
            mask = np.asarray(impl.random_spans_noise_mask(length, noise_density, mean_span,
                                                           np.random.default_rng(length)))
            assert mask.dtype == bool and mask.shape == (length,), \
                f"random_spans_noise_mask({length}, ...) should return a bool array of shape ({length},)"
            padded = max(length, 2)
            num_noise = min(max(int(np.round(np.float32(padded) * np.float32(noise_density))), 1), padded - 1)
            expected_noise = reference.random_spans_noise_mask(length, noise_density, mean_span,
                                                               np.random.default_rng(length))
            if length > 1:
                assert mask.sum() == num_noise, (
                    f"length {length}, {settings}: {mask.sum()} noise tokens, expected round({length} × "
                    f"{noise_density}) = {num_noise} (at least 1, and at least one token left); use the "
                    f"noise_density given")
                assert not mask[0] and mask[-1], (
                    f"length {length}: the mask must start with a non-noise span and end with a noise span "
                    f"(interleave [nonnoise_1, noise_1, nonnoise_2, noise_2, ...])")
                spans = int((mask[1:] & ~mask[:-1]).sum() + mask[0])
                expected_spans = max(int(np.round(np.float32(num_noise) / np.float32(mean_span))), 1)
                assert spans == expected_spans, (
                    f"length {length}, {settings}: {spans} noise spans, expected round({num_noise} / {mean_span}) = "
                    f"{expected_spans}; use the mean_noise_span_length given")
            assert mask.tolist() == expected_noise.tolist(), (
                f"length {length}, {settings}: a valid mask, but not the one T5 draws with this generator: segment "
                f"the noise tokens first, then the non-noise tokens, each with random_segmentation.")


def test_spans_to_sentinels(impl):
    tokens = list(range(10, 22))
    # a mask that starts and ends with noise: the first run must get its sentinel too
    mask = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 1], dtype=bool)
    expected = [SENTINELS[0], 12, 13, SENTINELS[1], 15, 16, 17, SENTINELS[2], 20, SENTINELS[3]]
    got = [int(t) for t in impl.spans_to_sentinels(tokens, mask, SENTINELS)]
    if got == expected:
        return
    lines = [f"spans_to_sentinels({tokens}, mask {mask.astype(int).tolist()}) gave {got}, expected {expected}."]
    if got[:1] != [SENTINELS[0]]:
        lines.append("The first token is noise, so the output starts with <extra_id_0>. (Careful with mask[i - 1] "
                     "at i = 0: in Python it reads the LAST entry, mask[-1].)")
    raise AssertionError("\n".join(lines))


def test_sentinels(impl):
    tokens = list(range(10, 22))
    for mask, eos_id in [(np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 1], dtype=bool), 1),
                         (np.array([1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0], dtype=bool), 2)]:
        expected = reference.apply_noise_mask(tokens, mask, ByteTok(eos_id))
        got = impl.span_corrupt(tokens, mask, SENTINELS, eos_id=eos_id)
        inputs, targets = (list(map(int, got[0])), list(map(int, got[1])))
        if (inputs, targets) == expected:
            continue
        lines = [f"span_corrupt({tokens}, mask {mask.astype(int).tolist()}, eos_id={eos_id}) gave\n  inputs  "
                 f"{inputs}\n  targets {targets}\nexpected\n  inputs  {expected[0]}\n  targets {expected[1]}"]
        if inputs[-1:] != [eos_id] or targets[-1:] != [eos_id]:
            lines.append(f"Both end with EOS, the eos_id given ({eos_id} here).")
        if targets[:1] != [SENTINELS[0]]:
            lines.append("The targets start with <extra_id_0>: T5 builds them with the same rule on the inverted "
                         "mask.")
        sentinels_in_inputs = sum(t in SENTINELS for t in inputs)
        if sentinels_in_inputs == int(mask.sum()):
            lines.append("Each masked token became a sentinel: a masked span becomes ONE sentinel in the inputs, and "
                         "the rest of the span is dropped.")
        elif any(t in inputs for t, m in zip(tokens, mask) if m):
            lines.append("Masked tokens appear in the inputs: they must be cut out (the targets hold them).")
        raise AssertionError("\n".join(lines))
