"""minit5.data: T5's span corruption (against a numpy port of T5's TensorFlow code), text-to-text files,
the resumable batch sampler, sharding and collation (the demo mixture: tests/test_demo.py)."""

import json

import numpy as np
import pytest
import torch

from minit5.data import (BatchSampler, DataError, SpanCorruptionDataset, apply_noise_mask, collate, corrupt_spans,
                         example_lengths, fetch, load_pairs, random_spans_noise_mask, read_documents, read_pairs, shard,
                         span_corruption_dataset, span_corruption_lengths, tokenize_pairs)


class ByteTokenizer:
    """ByT5's layout: pad 0, EOS 1, unk 2, byte b -> b + 3, and sentinels at the top (<extra_id_i> = 383 - i)."""
    pad_id, eos_id, unk_id = 0, 1, 2
    vocab_size = 384

    def __init__(self, num_sentinels: int = 125, vocab_size: int = 384):
        self.num_sentinels, self.vocab_size = num_sentinels, vocab_size

    def encode(self, text, add_eos=True):
        return [b + 3 for b in text.encode("utf-8")] + ([self.eos_id] if add_eos else [])

    def decode(self, ids):
        return bytes(i - 3 for i in ids if 3 <= i < 259).decode("utf-8")

    def sentinel_id(self, i):
        return self.vocab_size - 1 - i


TOK = ByteTokenizer()
SENTINELS = {TOK.sentinel_id(i) for i in range(TOK.num_sentinels)}


# ---------------------------------------------------------------- a reference: T5's TF code, op by op in numpy
def t5_random_spans_helper(inputs_length, noise_density, mean_noise_span_length):
    """t5.data.preprocessors.random_spans_helper with extra_tokens_per_span_{inputs,targets} = 1."""
    def _tokens_length_to_inputs_length_targets_length(tokens_length):
        num_noise_tokens = int(round(tokens_length * noise_density))
        num_nonnoise_tokens = tokens_length - num_noise_tokens
        num_noise_spans = int(round(num_noise_tokens / mean_noise_span_length))
        return num_nonnoise_tokens + num_noise_spans + 1, num_noise_tokens + num_noise_spans + 1

    tokens_length = inputs_length - 1
    while _tokens_length_to_inputs_length_targets_length(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    inputs_length, targets_length = _tokens_length_to_inputs_length_targets_length(tokens_length)
    if noise_density == 0.5 and targets_length > inputs_length:
        tokens_length -= 1
        targets_length -= 1
    return tokens_length, targets_length


def t5_random_spans_noise_mask(length, noise_density, mean_noise_span_length, rng):
    """t5.data.preprocessors.random_spans_noise_mask (random_roll=False); the TF op is named on each line.
    seqio.stateless_shuffle becomes rng.permutation (the only random step)."""
    orig_length = length
    length = max(length, 2)  # tf.maximum(length, 2)
    num_noise_tokens = int(np.round(np.float32(length) * np.float32(noise_density)))  # to_int(tf.round(to_float(.)*d))
    num_noise_tokens = min(max(num_noise_tokens, 1), length - 1)  # tf.minimum(tf.maximum(., 1), length - 1)
    num_noise_spans = int(np.round(np.float32(num_noise_tokens) / np.float32(mean_noise_span_length)))
    num_noise_spans = max(num_noise_spans, 1)
    num_nonnoise_tokens = length - num_noise_tokens

    def _random_segmentation(num_items, num_segments):
        first_in_segment = np.pad(rng.permutation((np.arange(num_items - 1) < num_segments - 1).astype(np.int32)),
                                  [[1, 0]])  # tf.pad(stateless_shuffle(to_int(tf.range(n - 1) < k - 1)), [[1, 0]])
        segment_id = np.cumsum(first_in_segment)  # tf.cumsum
        segment_length = np.zeros(segment_id[-1] + 1, dtype=np.int32)
        np.add.at(segment_length, segment_id, 1)  # tf.math.segment_sum(tf.ones_like(segment_id), segment_id)
        return segment_length

    noise_span_lengths = _random_segmentation(num_noise_tokens, num_noise_spans)
    nonnoise_span_lengths = _random_segmentation(num_nonnoise_tokens, num_noise_spans)
    interleaved_span_lengths = np.reshape(np.stack([nonnoise_span_lengths, noise_span_lengths], axis=1),
                                          [num_noise_spans * 2])
    span_starts = np.cumsum(interleaved_span_lengths)[:-1]
    span_start_indicator = np.zeros(length, dtype=np.int32)
    np.add.at(span_start_indicator, span_starts, 1)  # tf.math.unsorted_segment_sum(ones, span_starts, length)
    span_num = np.cumsum(span_start_indicator)
    is_noise = np.equal(span_num % 2, 1)
    return is_noise[:orig_length]


def t5_noise_span_to_unique_sentinel(tokens, noise_mask, vocab_size):
    """t5.data.preprocessors.noise_span_to_unique_sentinel; sentinel_id(vocabulary) = vocab_size - 1."""
    prev_token_is_noise = np.pad(noise_mask[:-1], [[1, 0]])
    first_noise_tokens = np.logical_and(noise_mask, np.logical_not(prev_token_is_noise))
    subsequent_noise_tokens = np.logical_and(noise_mask, prev_token_is_noise)
    sentinel = (vocab_size - 1) + 1 - np.cumsum(first_noise_tokens.astype(np.int64))
    tokens = np.where(first_noise_tokens, sentinel, tokens)
    return tokens[np.logical_not(subsequent_noise_tokens)].tolist()


def spans(mask):
    """(number of noise tokens, number of noise runs)."""
    starts = mask & ~np.concatenate([[False], mask[:-1]])
    return int(mask.sum()), int(starts.sum())


def reconstruct(inputs, targets):
    """Undo span corruption: replace each sentinel in the inputs by the tokens after it in the targets."""
    assert inputs[-1] == TOK.eos_id and targets[-1] == TOK.eos_id
    filling, current = {}, None
    for t in targets[:-1]:
        if t in SENTINELS:
            current = filling.setdefault(t, [])
        else:
            current.append(t)
    out = []
    for t in inputs[:-1]:
        out += filling[t] if t in SENTINELS else [t]
    return out


# ---------------------------------------------------------------- span corruption
@pytest.mark.parametrize("inputs_length, expected", [
    (512, (568, 114)), (256, (284, 58)), (1024, (1137, 229)), (128, (141, 29)),
])
def test_span_corruption_lengths_match_t5(inputs_length, expected):
    assert span_corruption_lengths(inputs_length) == expected
    assert t5_random_spans_helper(inputs_length, 0.15, 3.0) == expected


def test_span_corruption_lengths_density_half_special_case():
    # 767 raw tokens: 384 noise (383.5 rounds to even), 128 spans -> inputs 383+128+1 = 512, targets 384+128+1 = 513.
    # targets > inputs, so T5 takes one token less: 766 raw tokens, 512 targets.
    assert span_corruption_lengths(512, noise_density=0.5) == (766, 512)
    for n in (64, 100, 128, 333, 512, 1000):
        for density, mean in ((0.5, 3.0), (0.15, 3.0), (0.3, 2.0), (0.15, 8.0)):
            assert span_corruption_lengths(n, density, mean) == t5_random_spans_helper(n, density, mean)


def test_length_estimate_differs_from_the_mask_where_float32_rounds_up():
    # T5's helper rounds 190 * 0.15 = 28.5 (float64) to 28; the mask rounds 28.500002 (float32) to 29
    assert span_corruption_lengths(172) == (190, 38)
    inputs, targets = corrupt_spans(list(range(3, 193)), TOK, np.random.default_rng(0))
    assert (len(inputs), len(targets)) == (172, 40)


def test_span_corruption_lengths_rejects_bad_arguments():
    with pytest.raises(DataError, match="inputs_length"):
        span_corruption_lengths(1)
    with pytest.raises(DataError, match="noise_density"):
        span_corruption_lengths(512, noise_density=1.0)


def test_noise_mask_equals_t5_reference_on_many_seeds():
    many = ByteTokenizer(num_sentinels=1000, vocab_size=2000)  # room for the spans of mean length 1
    cases, failures = np.random.default_rng(1234), 0
    for case in range(400):
        special = [1, 2, 3, 4, 5, 7, 10, 50, 190, 350, 568, 1137]  # tiny, float32-rounding, T5's chunk lengths
        length = int(cases.choice(special) if case % 2 else cases.integers(1, 700))
        density = float(cases.choice([0.15, 0.15, 0.3, 0.5, 0.05]))
        mean = float(cases.choice([3.0, 3.0, 1.0, 2.0, 8.0]))
        seed = int(cases.integers(0, 2**31))
        try:
            reference = t5_random_spans_noise_mask(length, density, mean, np.random.default_rng(seed))
        except ValueError:  # more spans than noise or non-noise tokens: T5 fails, and so must we
            with pytest.raises(DataError, match="noise spans"):
                random_spans_noise_mask(length, density, mean, np.random.default_rng(seed))
            failures += 1
            continue
        ours = random_spans_noise_mask(length, density, mean, np.random.default_rng(seed))
        assert ours.dtype == bool and ours.shape == (length,)
        np.testing.assert_array_equal(ours, reference, err_msg=f"length={length} density={density} mean={mean}")
        tokens = cases.integers(3, 259, size=length)
        inputs, targets = apply_noise_mask(tokens, ours, many)
        assert inputs == t5_noise_span_to_unique_sentinel(tokens, ours, many.vocab_size) + [many.eos_id]
        assert targets == t5_noise_span_to_unique_sentinel(tokens, ~ours, many.vocab_size) + [many.eos_id]
    assert 0 < failures < 40


@pytest.mark.parametrize("length", [2, 3, 4, 10, 99, 568, 1000])
@pytest.mark.parametrize("density", [0.15, 0.5])
def test_noise_mask_starts_clean_ends_noisy_with_t5_counts(length, density):
    padded = max(length, 2)
    num_noise = min(max(int(np.round(np.float32(padded) * np.float32(density))), 1), padded - 1)
    num_spans = max(int(np.round(np.float32(num_noise) / np.float32(3.0))), 1)
    for seed in range(20):
        mask = random_spans_noise_mask(length, density, 3.0, np.random.default_rng(seed))
        assert not mask[0] and mask[-1]
        assert spans(mask) == (num_noise, num_spans)


def test_noise_mask_very_short_sequences():
    rng = np.random.default_rng(0)
    # length 1 is padded to 2 ([keep, noise]) and cropped back: no noise at all
    assert random_spans_noise_mask(1, 0.15, 3.0, rng).tolist() == [False]
    assert random_spans_noise_mask(2, 0.15, 3.0, rng).tolist() == [False, True]
    assert random_spans_noise_mask(3, 0.15, 3.0, rng).tolist() == [False, False, True]  # round(0.45) = 0 -> 1 noise
    assert random_spans_noise_mask(3, 0.5, 3.0, rng).tolist() == [False, True, True]  # round(1.5) = 2 noise, 1 span
    assert random_spans_noise_mask(0, 0.15, 3.0, rng).tolist() == []


def test_noise_counts_use_float32_like_tensorflow():
    # 190 * 0.15 is 28.500002 in float32 (rounds to 29) and 28.499999999999996 in float64 (rounds to 28)
    mask = random_spans_noise_mask(190, 0.15, 3.0, np.random.default_rng(0))
    assert spans(mask) == (29, 10)
    # 30 * 0.15 = 4.5 in both: half to even gives 4, then round(4 / 3) = 1 span
    assert spans(random_spans_noise_mask(30, 0.15, 3.0, np.random.default_rng(0))) == (4, 1)


def test_apply_noise_mask_worked_example():
    tokens = [10, 11, 12, 13, 14, 15, 16, 17]
    mask = np.array([0, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
    inputs, targets = apply_noise_mask(tokens, mask, TOK)
    assert inputs == [10, 383, 13, 14, 382, 16, 381, 1]
    assert targets == [383, 11, 12, 382, 15, 381, 17, 1]
    # length 1: the mask has no noise; T5's complementary rule still puts <extra_id_0> in the targets
    assert apply_noise_mask([42], np.array([False]), TOK) == ([42, 1], [383, 1])


def test_full_chunk_corrupts_to_exactly_512_inputs_and_114_targets():
    rng = np.random.default_rng(7)
    for seed in range(10):
        tokens = rng.integers(3, 259, size=568).tolist()
        inputs, targets = corrupt_spans(tokens, TOK, np.random.default_rng(seed))
        assert (len(inputs), len(targets)) == (512, 114)
        assert [t for t in inputs if t in SENTINELS] == [383 - i for i in range(28)]  # <extra_id_0..27> in order
        assert [t for t in targets if t in SENTINELS] == [383 - i for i in range(28)]
        assert reconstruct(inputs, targets) == tokens


@pytest.mark.parametrize("length", [1, 2, 3, 5, 17, 100])
@pytest.mark.parametrize("density", [0.15, 0.5])
def test_inputs_and_targets_reconstruct_the_tokens(length, density):
    for seed in range(10):
        tokens = np.random.default_rng(seed).integers(3, 259, size=length).tolist()
        inputs, targets = corrupt_spans(tokens, TOK, np.random.default_rng(seed), noise_density=density)
        assert reconstruct(inputs, targets) == tokens


def test_too_few_sentinels_is_an_error():
    with pytest.raises(DataError, match="sentinels"):
        corrupt_spans(list(range(3, 203)), ByteTokenizer(num_sentinels=5), np.random.default_rng(0))


def test_span_corruption_dataset_packs_short_documents_and_is_deterministic(tmp_path):
    docs = ["the cat sat", "on the mat", "a dog", "ran far away from home"]  # each shorter than a chunk
    (tmp_path / "corpus.txt").write_text("\n".join(docs[:2]) + "\n\n" + "\n".join(docs[2:]) + "\n")
    assert read_documents(tmp_path / "corpus.txt") == docs
    data = span_corruption_dataset(tmp_path / "corpus.txt", TOK, inputs_length=16, seed=3)
    raw_length, _ = span_corruption_lengths(16)
    assert raw_length == 17
    corpus = TOK.encode("".join(docs), add_eos=False)  # concatenated with no EOS or separator, as T5 does
    assert len(corpus) == 48 and len(data) == 3 and [len(data.chunk(i)) for i in range(3)] == [17, 17, 14]
    assert [len(data.example(i, 0)[0]) for i in range(3)] == data.lengths() == [16, 16, 14]
    assert sum((reconstruct(*data.example(i, 5)) for i in range(3)), []) == corpus
    # 17 tokens have one noise span, which is always the tail; 40 tokens have two, placed at random
    assert {tuple(data.example(1, epoch)[0]) for epoch in range(10)} == {tuple(data.example(1, 0)[0])}
    longer = SpanCorruptionDataset(docs, TOK, raw_length=40, seed=3)
    assert longer.example(0, 4) == longer.example(0, 4)  # a pure function of (seed, epoch, index)
    assert len({tuple(longer.example(0, epoch)[0]) for epoch in range(10)}) > 1  # fresh noise each epoch
    other_seed = SpanCorruptionDataset(docs, TOK, raw_length=40, seed=4)
    assert [other_seed.example(0, e) for e in range(5)] != [longer.example(0, e) for e in range(5)]


def test_span_corruption_dataset_of_one_short_document():
    data = SpanCorruptionDataset(["hi"], TOK, raw_length=568)
    inputs, targets = data.example(0, 0)
    assert (inputs, targets) == ([TOK.encode("h")[0], 383, 1], [383, TOK.encode("i")[0], 1])
    with pytest.raises(DataError, match="no tokens"):
        SpanCorruptionDataset(["", ""], TOK, raw_length=568)
    with pytest.raises(DataError, match="sentinels"):
        SpanCorruptionDataset(["x" * 600], ByteTokenizer(num_sentinels=10), raw_length=568)


def test_read_documents_one_per_file_and_errors(tmp_path):
    (tmp_path / "b.txt").write_text("second\ndocument\n")
    (tmp_path / "a.txt").write_text("first document\n")
    (tmp_path / "c.txt").write_text("\n \n")
    assert read_documents(tmp_path, one_per_file=True) == ["first document", "second\ndocument"]
    assert read_documents([tmp_path / "b.txt", tmp_path / "a.txt"]) == ["second", "document", "first document"]
    with pytest.raises(DataError, match="missing.txt does not exist"):
        read_documents(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="c.txt: no text"):
        read_documents(tmp_path / "c.txt")


# ---------------------------------------------------------------- text-to-text pairs
def test_read_jsonl_and_tsv(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"input": "Where is Io?", "target": "Jupiter", "id": 7}\n\n{"input": "a\\tb", "target": "ü"}\n')
    assert read_pairs(jsonl) == [("Where is Io?", "Jupiter"), ("a\tb", "ü")]
    tsv = tmp_path / "d.tsv"
    tsv.write_text("2 + 2\t4\r\nempty target\t\n")
    assert read_pairs(tsv) == [("2 + 2", "4"), ("empty target", "")]
    assert read_pairs(tsv, format="tsv") == read_pairs(tmp_path / "d.tsv")


@pytest.mark.parametrize("name, text, message", [
    ("bad.jsonl", '{"input": "a", "target": "b"}\n{"input": "a", "target": \n', r"bad.jsonl:2: not valid JSON"),
    ("field.jsonl", '{"input": "a", "target": "b"}\n\n{"input": "a"}\n', r"field.jsonl:3: missing field 'target'"),
    ("type.jsonl", '{"input": "a", "target": 4}\n', r"type.jsonl:1: field 'target' must be a string"),
    ("list.jsonl", '["a", "b"]\n', r"list.jsonl:1: expected a JSON object"),
    ("notab.tsv", "a\tb\nno tab here\n", r"notab.tsv:2: expected input<TAB>target, found 0 tabs"),
    ("tabs.tsv", "a\tb\tc\n", r"tabs.tsv:1: expected input<TAB>target, found 2 tabs"),
    ("empty.jsonl", "", r"empty.jsonl is empty"),
    ("blank.tsv", "\n\n", r"blank.tsv is empty"),
    ("data.csv", "a,b\n", r"cannot tell the format of .*data.csv"),
])
def test_bad_pair_files_raise_one_clear_error(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=message):
        read_pairs(tmp_path / name)


def test_missing_and_undecodable_files(tmp_path):
    with pytest.raises(DataError, match="nope.jsonl does not exist"):
        read_pairs(tmp_path / "nope.jsonl")
    (tmp_path / "latin1.tsv").write_bytes(b"caf\xe9\tx\n")
    with pytest.raises(DataError, match="latin1.tsv is not UTF-8"):
        read_pairs(tmp_path / "latin1.tsv")


def test_tokenize_pairs_truncates_keeping_eos_and_counts_drops():
    pairs = [("abcdef", "xyz"), ("ab", "uvwxyz"), ("ok", ""), ("fine", "   "), ("q", "")]
    examples, stats = tokenize_pairs(pairs, TOK, max_input_length=4, max_target_length=3)
    assert examples == [(TOK.encode("abc"), TOK.encode("xy")), (TOK.encode("ab"), TOK.encode("uv")),
                        (TOK.encode("fin"), TOK.encode("  "))]  # spaces are content; "" is not
    assert (stats.pairs, stats.kept, stats.inputs_truncated, stats.targets_truncated, stats.dropped_empty_target) == \
        (5, 3, 2, 3, 2)
    assert stats.summary() == "3 of 5 pairs kept; 2 dropped for an empty target; 2 inputs and 3 targets truncated"


def test_targets_of_only_special_tokens_are_dropped():
    class WithSpecials(ByteTokenizer):  # "<unk>" and "<extra_id_0>" encode to their special ids
        def encode(self, text, add_eos=True):
            ids = {"<unk>": [self.unk_id], "<extra_id_0>": [self.sentinel_id(0)], "</s>": [self.eos_id]}.get(text)
            return (ids or super().encode(text, add_eos=False)) + ([self.eos_id] if add_eos else [])

    pairs = [("a", "<unk>"), ("b", "<extra_id_0>"), ("c", "</s>"), ("d", "e")]
    examples, stats = tokenize_pairs(pairs, WithSpecials())
    assert examples == [([TOK.encode("d")[0], 1], [TOK.encode("e")[0], 1])]
    assert (stats.kept, stats.dropped_empty_target) == (1, 3)


def test_load_pairs(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"input": f"q{i}", "target": "" if i == 2 else f"a{i}"}) + "\n"
                            for i in range(4)))
    examples, stats = load_pairs(path, TOK, max_input_length=8, max_target_length=8)
    assert [TOK.decode(labels) for _, labels in examples] == ["a0", "a1", "a3"]
    assert stats.dropped_empty_target == 1
    path.write_text('{"input": "x", "target": ""}\n')
    with pytest.raises(DataError, match="every one of its 1 targets is empty"):
        load_pairs(path, TOK)
    with pytest.raises(DataError, match="max_target_length must be at least 2"):
        tokenize_pairs([("a", "b")], TOK, max_target_length=1)


# ---------------------------------------------------------------- batching
def take(sampler, n):
    return [next(sampler) for _ in range(n)]


def test_sampler_epochs_are_seeded_permutations():
    sampler = BatchSampler(10, batch_size=3, seed=1)
    assert sampler.batches_per_epoch == 3 and sampler.dropped_per_epoch == 1
    batches = take(sampler, 7)
    assert [b.epoch for b in batches] == [0, 0, 0, 1, 1, 1, 2]
    for epoch in (0, 1):
        seen = sum((b.indices for b in batches[3 * epoch: 3 * epoch + 3]), [])
        assert len(seen) == 9 and len(set(seen)) == 9 and set(seen) <= set(range(10))
    assert batches[:3] != batches[3:6]  # reshuffled each epoch
    assert take(BatchSampler(10, batch_size=3, seed=1), 7) == batches  # same seed, same batches
    assert take(BatchSampler(10, batch_size=3, seed=2), 7) != batches
    keep_all = BatchSampler(10, batch_size=3, seed=1, drop_last=False)
    assert [len(b.indices) for b in take(keep_all, 5)] == [3, 3, 3, 1, 3]
    assert keep_all.batches_per_epoch == 4 and keep_all.dropped_per_epoch == 0


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("stop", [0, 1, 5, 6, 7, 13, 20])
def test_sampler_resumes_exactly_without_replaying(group, stop):
    lengths = [(i * 7) % 23 + 1 for i in range(40)]
    make = lambda: BatchSampler(40, 6, seed=5, lengths=lengths if group else None, bucket_batches=2)  # noqa: E731
    straight = take(make(), 25)
    first = make()
    take(first, stop)
    state = json.loads(json.dumps(first.state_dict()))  # survives a round trip through a checkpoint file
    resumed, computed = make(), []
    real = resumed.epoch_batches
    resumed.epoch_batches = lambda epoch: computed.append(epoch) or real(epoch)  # record which epochs are built
    resumed.load_state_dict(state)
    assert take(resumed, 25 - stop) == straight[stop:]
    assert computed == sorted({b.epoch for b in straight[stop:]})  # nothing before the resume point is replayed


def test_sampler_rejects_a_state_from_other_settings():
    state = BatchSampler(40, 6, seed=5).state_dict()
    with pytest.raises(DataError, match="batch_size=6 but this run has 8"):
        BatchSampler(40, 8, seed=5).load_state_dict(state)
    with pytest.raises(DataError, match="lengths_crc32"):
        BatchSampler(40, 6, seed=5, lengths=[1] * 40).load_state_dict(state)


def test_sampler_groups_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=1000).tolist()
    grouped = BatchSampler(1000, 10, seed=0, lengths=lengths, bucket_batches=20).epoch_batches(0)
    plain = BatchSampler(1000, 10, seed=0).epoch_batches(0)

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    assert sorted(sum(grouped, [])) == list(range(1000))
    assert padding(grouped) < padding(plain) / 5
    # batches come from random buckets in random order: the first batches are not simply the longest
    assert max(lengths[i] for i in grouped[0]) < max(lengths) or max(lengths[i] for i in grouped[1]) < max(lengths)
    assert grouped != BatchSampler(1000, 10, seed=0, lengths=lengths, bucket_batches=20).epoch_batches(1)


def test_sampler_rejects_bad_settings():
    with pytest.raises(DataError, match="3 examples, fewer than one batch of 4"):
        BatchSampler(3, 4)
    assert len(next(BatchSampler(3, 4, drop_last=False)).indices) == 3
    with pytest.raises(DataError, match="lengths has 2 entries for 3 examples"):
        BatchSampler(3, 1, lengths=[1, 2])


def test_shard_splits_a_global_batch_among_ranks():
    batch = list(range(100, 111))
    shares = [shard(batch, rank, 4) for rank in range(4)]
    assert shares[0] == [100, 104, 108] and shares[3] == [103, 107]
    assert sorted(sum(shares, [])) == batch
    with pytest.raises(DataError, match="rank must be in 0..3"):
        shard(batch, 4, 4)


def test_collate_pads_dynamically():
    batch = collate([([5, 6, 1], [7, 1]), ([8, 1], [9, 10, 11, 1])], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 1], [8, 1, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[7, 1, -100, -100], [9, 10, 11, 1]]
    assert all(t.dtype == torch.long for t in batch.values())
    with pytest.raises(DataError, match="no examples"):
        collate([], pad_id=0)


def test_span_corruption_batches_resume_exactly():
    data = SpanCorruptionDataset(["lorem ipsum dolor sit amet " * 40], TOK, raw_length=30, seed=9)
    make = lambda: BatchSampler(len(data), 4, seed=2, lengths=example_lengths(data))  # noqa: E731

    def run(sampler, steps):
        return [collate(fetch(data, shard(b.indices, 1, 2), b.epoch), TOK.pad_id) for b in take(sampler, steps)]

    straight = run(make(), 20)
    first = make()
    run(first, 11)
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    for a, b in zip(run(resumed, 9), straight[11:]):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert example_lengths([([1, 2, 1], [1]), ([1], [3, 1])]) == [3, 1]
