"""Data for training minit5: T5's span corruption, text-to-text pairs, batching. (The built-in demo's tasks are
in minit5/demo.py.)

    text files ─► tokens ─► packed chunks ─► span corruption (per example, when a batch is fetched) ─┐
    JSONL / TSV pairs ─► tokenize, truncate, drop empty targets (counted) ─────────────────────────────┴► examples
    examples ─► BatchSampler (seeded, resumable) ─► shard (one share per process) ─► fetch ─► collate ─► tensors

An example is a pair of token-id lists, (input_ids, labels), both ending with EOS. A dataset is either a plain
list of examples (text-to-text pairs) or a SpanCorruptionDataset, whose examples are corrupted afresh every epoch.
Every random choice is a function of (seed, epoch, index), so a resumed run sees exactly the batches, and
exactly the noise masks, that an uninterrupted run would have seen.

The tokenizer is anything with this small interface (duck typing; minit5's tokenizer module has it):
    tok.encode(text, add_eos=True) -> list[int]      tok.pad_id, tok.eos_id  (0 and 1 in T5)
    tok.sentinel_id(i) -> id of <extra_id_i>         tok.num_sentinels, tok.vocab_size
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch

Example = tuple[list[int], list[int]]  # (input_ids, labels), each ending with EOS


class DataError(ValueError):
    """Data that cannot be used as given: a missing or empty file, a malformed line, impossible settings."""


# --------------------------------------------------------------------------------------------------
# 1. Span corruption, T5's pretraining objective. Random spans (15% of the tokens, 3 tokens long on average)
#    are cut out of the text; each is replaced by a sentinel in the input, and the target lists the cut spans:
#        original: The cute dog walks in the park
#        inputs:   The <extra_id_0> walks in <extra_id_1> park </s>
#        targets:  <extra_id_0> cute dog <extra_id_1> the </s>
#    The code follows T5's TensorFlow functions of the same names (t5/data/preprocessors.py).
# --------------------------------------------------------------------------------------------------
def span_corruption_lengths(inputs_length: int, noise_density: float = 0.15,
                            mean_noise_span_length: float = 3.0) -> tuple[int, int]:
    """T5's random_spans_helper: how many raw tokens to corrupt so that the inputs come out inputs_length long,
    and how long the targets then are. 512 -> (568, 114): 568 tokens lose 85 noise tokens in 28 spans, giving
    483 + 28 sentinels + EOS = 512 inputs and 85 + 28 + EOS = 114 targets.

    As in T5, this estimate rounds in float64 while the mask rounds in float32, so for a few lengths (172: 190 raw
    tokens) the real targets are 2 tokens longer than the estimate (40, not 38); nothing is cut, since batches
    are padded to their own length. Below inputs_length 10 the estimate ignores the mask's minimum of one span."""
    if inputs_length < 2:
        raise DataError(f"inputs_length must be at least 2 (one token and EOS), got {inputs_length}")
    if not 0.0 < noise_density < 1.0 or mean_noise_span_length <= 0:
        raise DataError(f"need 0 < noise_density < 1 and mean_noise_span_length > 0, "
                        f"got {noise_density} and {mean_noise_span_length}")

    def lengths_after_corruption(tokens_length: int) -> tuple[int, int]:
        num_noise = int(round(tokens_length * noise_density))  # Python's round: half to even, like tf.round
        num_spans = int(round(num_noise / mean_noise_span_length))
        return tokens_length - num_noise + num_spans + 1, num_noise + num_spans + 1  # one sentinel per span, EOS

    tokens_length = inputs_length - 1
    while lengths_after_corruption(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    _, targets_length = lengths_after_corruption(tokens_length)
    # T5's "minor hack": at density 0.5 the targets would be one longer than the (round-numbered) inputs.
    if noise_density == 0.5 and targets_length > inputs_length:
        tokens_length -= 1
        targets_length -= 1
    return tokens_length, targets_length


def _random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Split num_items into num_segments random positive lengths: shuffle (num_segments - 1) "a segment starts
    here" marks among the num_items - 1 gaps between items, then count the items of each segment."""
    starts = np.zeros(num_items - 1, dtype=np.int64)
    starts[: num_segments - 1] = 1
    starts = rng.permutation(starts)
    segment_id = np.cumsum(np.concatenate([[0], starts]))  # item 0 is always in segment 0
    return np.bincount(segment_id, minlength=num_segments)


def random_spans_noise_mask(length: int, noise_density: float, mean_noise_span_length: float,
                            rng: np.random.Generator) -> np.ndarray:
    """T5's random_spans_noise_mask: a boolean mask over `length` tokens, True = noise. The mask alternates
    non-noise and noise spans, always starting with non-noise and ending with noise."""
    if length < 1:
        return np.zeros(0, dtype=bool)
    padded_length = max(length, 2)  # T5 pads to 2 so that there is room for one noise and one non-noise token
    # T5 computes these in float32 (tf.to_float); rounding is half to even, as tf.round does. float32 matters:
    # 190 * 0.15 is 28.500002 in float32 (rounds to 29) but 28.499999999999996 in float64 (rounds to 28).
    num_noise = int(np.round(np.float32(padded_length) * np.float32(noise_density)))
    num_noise = min(max(num_noise, 1), padded_length - 1)  # at least one noise and one non-noise token
    num_spans = max(int(np.round(np.float32(num_noise) / np.float32(mean_noise_span_length))), 1)
    num_nonnoise = padded_length - num_noise
    if num_spans > min(num_noise, num_nonnoise):  # T5's code fails here too (its tf.stack gets unequal shapes)
        raise DataError(f"noise_density={noise_density} and mean_noise_span_length={mean_noise_span_length} ask for "
                        f"{num_spans} noise spans in {length} tokens, more than the {num_noise} noise and "
                        f"{num_nonnoise} other tokens can form")
    noise_lengths = _random_segmentation(num_noise, num_spans, rng)
    nonnoise_lengths = _random_segmentation(num_nonnoise, num_spans, rng)
    # Interleave [nonnoise_1, noise_1, nonnoise_2, noise_2, ...]; odd-numbered spans are noise.
    span_lengths = np.stack([nonnoise_lengths, noise_lengths], axis=1).reshape(-1)
    is_noise = np.arange(2 * num_spans) % 2 == 1
    return np.repeat(is_noise, span_lengths)[:length]


def _spans_to_sentinels(tokens: np.ndarray, mask: np.ndarray, tok) -> list[int]:
    """T5's noise_span_to_unique_sentinel: each run of masked tokens becomes one sentinel, <extra_id_0>,
    <extra_id_1>, ... in order; unmasked tokens are kept."""
    out, run = [], 0
    for i, token in enumerate(tokens.tolist()):
        if not mask[i]:
            out.append(token)
        elif i == 0 or not mask[i - 1]:  # the first token of a masked run
            if run >= tok.num_sentinels:
                raise DataError(f"this example needs more than the tokenizer's {tok.num_sentinels} sentinels; "
                                f"use a shorter inputs_length or a larger mean_noise_span_length")
            out.append(tok.sentinel_id(run))
            run += 1
    return out


def apply_noise_mask(tokens: Sequence[int], mask: np.ndarray, tok) -> Example:
    """Inputs: the non-noise tokens with one sentinel per noise span. Targets: T5 applies the same rule to the
    complementary mask, so each non-noise run becomes a sentinel and the noise is kept:
    [S0, noise_1.., S1, noise_2.., ...]. EOS ends both."""
    tokens = np.asarray(tokens, dtype=np.int64)
    mask = np.asarray(mask, dtype=bool)
    inputs = _spans_to_sentinels(tokens, mask, tok) + [tok.eos_id]
    targets = _spans_to_sentinels(tokens, ~mask, tok) + [tok.eos_id]
    return inputs, targets


def corrupt_spans(tokens: Sequence[int], tok, rng: np.random.Generator, noise_density: float = 0.15,
                  mean_noise_span_length: float = 3.0) -> Example:
    """Span-corrupt one chunk of tokens (no EOS in it): draw a noise mask, apply it."""
    mask = random_spans_noise_mask(len(tokens), noise_density, mean_noise_span_length, rng)
    return apply_noise_mask(tokens, mask, tok)


def read_documents(paths, one_per_file: bool = False) -> list[str]:
    """Plain-text documents: one per non-blank line, or (one_per_file) one per file. `paths` is a file, a folder
    (its files, in name order) or a list of these."""
    files = []
    for path in [paths] if isinstance(paths, (str, Path)) else list(paths):
        path = Path(path)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path} does not exist")
    if not files:
        raise DataError(f"no text files found in {paths}")
    documents = []
    for path in files:
        text = _read_text(path)
        if one_per_file:
            documents += [text.strip()] if text.strip() else []
        else:
            documents += [line.strip() for line in text.splitlines() if line.strip()]
    if not documents:
        raise DataError(f"{', '.join(map(str, files))}: no text in the file(s)")
    return documents


class SpanCorruptionDataset:
    """Documents tokenized and concatenated (as T5's reduce_concat_tokens: no EOS or separator between them), cut
    into chunks of raw_length tokens (the last chunk may be shorter, as in T5's split_tokens), and corrupted when
    an example is fetched. The noise mask of chunk i in epoch e comes from an RNG seeded with (seed, e, i): each
    epoch sees fresh corruption of the same text, and a resumed run reproduces it without storing anything.

    T5 first takes one random piece of at most 65,536 tokens from each document (select_random_chunk) and
    concatenates batches of 128 shuffled documents; here every document is used whole and the corpus is
    concatenated in file order, which differs only in where chunk boundaries fall (the BatchSampler shuffles)."""

    def __init__(self, documents: Sequence[str], tok, raw_length: int, seed: int = 0,
                 noise_density: float = 0.15, mean_noise_span_length: float = 3.0):
        if seed < 0:
            raise DataError(f"seed must be a non-negative integer, got {seed}")
        ids = [np.asarray(tok.encode(doc, add_eos=False), dtype=np.int32) for doc in documents]
        self.tokens = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32)  # the whole corpus, one array
        if len(self.tokens) == 0:
            raise DataError("the documents contain no tokens")
        self.tok, self.raw_length, self.seed = tok, raw_length, seed
        self.noise_density, self.mean_noise_span_length = noise_density, mean_noise_span_length
        spans = self._num_spans(min(raw_length, len(self.tokens)))
        if spans > tok.num_sentinels:
            raise DataError(f"chunks of {raw_length} tokens get {spans} noise spans, but the tokenizer has only "
                            f"{tok.num_sentinels} sentinels; use a shorter inputs_length")

    def _num_spans(self, length: int) -> int:
        """Noise spans in a chunk of this length (the count does not depend on the RNG)."""
        mask = random_spans_noise_mask(length, self.noise_density, self.mean_noise_span_length,
                                       np.random.default_rng(0))
        return int(np.sum(mask & ~np.concatenate([[False], mask[:-1]])))  # noise tokens that start a run

    def __len__(self) -> int:
        return -(-len(self.tokens) // self.raw_length)  # ceil: the last chunk may be short

    def chunk(self, index: int) -> np.ndarray:
        return self.tokens[index * self.raw_length: (index + 1) * self.raw_length]

    def example(self, index: int, epoch: int) -> Example:
        rng = np.random.default_rng([self.seed, epoch, index])
        return corrupt_spans(self.chunk(index), self.tok, rng, self.noise_density, self.mean_noise_span_length)

    def lengths(self) -> list[int]:
        """The input length of every example (the mask decides which tokens are noise, not how many)."""
        full = len(self.example(0, 0)[0])
        last = len(self.example(len(self) - 1, 0)[0])
        return [full] * (len(self) - 1) + [last]


def span_corruption_dataset(paths, tok, inputs_length: int = 512, noise_density: float = 0.15,
                            mean_noise_span_length: float = 3.0, seed: int = 0,
                            one_document_per_file: bool = False) -> SpanCorruptionDataset:
    """Text files -> a SpanCorruptionDataset whose full chunks corrupt to exactly inputs_length input tokens."""
    raw_length, _ = span_corruption_lengths(inputs_length, noise_density, mean_noise_span_length)
    documents = read_documents(paths, one_per_file=one_document_per_file)
    return SpanCorruptionDataset(documents, tok, raw_length, seed, noise_density, mean_noise_span_length)


class Subset:
    """Some of a SpanCorruptionDataset's chunks, with its interface (example(index, epoch), lengths()): the
    trainer holds the first chunks out for evaluation and trains on the others."""

    def __init__(self, dataset: SpanCorruptionDataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def example(self, index: int, epoch: int) -> Example:
        return self.dataset.example(self.indices[index], epoch)

    def lengths(self) -> list[int]:
        lengths = self.dataset.lengths()
        return [lengths[i] for i in self.indices]


# --------------------------------------------------------------------------------------------------
# 2. Text-to-text pairs: JSONL lines {"input": ..., "target": ...} or TSV lines input<TAB>target.
# --------------------------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark at the start is not text
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a file") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.start})") from None


def read_pairs(path, format: str | None = None) -> list[tuple[str, str]]:
    """(input, target) strings from a .jsonl or .tsv file (or format="jsonl"/"tsv"). Blank lines are skipped;
    anything else that is not a well-formed pair raises DataError naming file:line."""
    path = Path(path)
    format = format or {".jsonl": "jsonl", ".tsv": "tsv"}.get(path.suffix.lower())
    if format not in ("jsonl", "tsv"):
        raise DataError(f"cannot tell the format of {path}: name it .jsonl or .tsv, or pass format='jsonl' or 'tsv'")
    pairs = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        if format == "tsv":
            fields = line.split("\t")
            if len(fields) != 2:
                raise DataError(f"{where}: expected input<TAB>target, found {len(fields) - 1} tabs")
            pairs.append((fields[0], fields[1]))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object with 'input' and 'target', got a {type(record).__name__}")
        for key in ("input", "target"):
            if key not in record:
                raise DataError(f"{where}: missing field '{key}'")
            if not isinstance(record[key], str):
                raise DataError(f"{where}: field '{key}' must be a string, got {type(record[key]).__name__}")
        pairs.append((record["input"], record["target"]))
    if not pairs:
        raise DataError(f"{path} is empty: no examples in it")
    return pairs


@dataclass
class PairStats:
    """What happened to the pairs on their way to examples (the trainer logs summary())."""
    pairs: int = 0  # pairs read
    kept: int = 0  # examples made
    inputs_truncated: int = 0  # kept examples whose input was cut to max_input_length
    targets_truncated: int = 0  # kept examples whose target was cut to max_target_length
    dropped_empty_target: int = 0  # pairs dropped: the target had no tokens other than special ones

    def summary(self) -> str:
        return (f"{self.kept} of {self.pairs} pairs kept; {self.dropped_empty_target} dropped for an empty target; "
                f"{self.inputs_truncated} inputs and {self.targets_truncated} targets truncated")


def _special_ids(tok) -> set[int]:
    """Ids that carry no content of their own: pad, EOS, unknown, sentinels."""
    special = {tok.pad_id, tok.eos_id} | {tok.sentinel_id(i) for i in range(tok.num_sentinels)}
    if getattr(tok, "unk_id", None) is not None:
        special.add(tok.unk_id)
    return special


def tokenize_pairs(pairs: Sequence[tuple[str, str]], tok, max_input_length: int = 512,
                   max_target_length: int = 128) -> tuple[list[Example], PairStats]:
    """Pairs of strings -> examples, truncated to the maximum lengths with EOS kept last. Pairs whose target has
    no content token are dropped and counted in the returned PairStats."""
    for name, value in (("max_input_length", max_input_length), ("max_target_length", max_target_length)):
        if value < 2:
            raise DataError(f"{name} must be at least 2 (one token and EOS), got {value}")
    special = _special_ids(tok)
    stats, examples = PairStats(pairs=len(pairs)), []
    for source, target in pairs:
        input_ids, labels = tok.encode(source, add_eos=False), tok.encode(target, add_eos=False)
        if all(t in special for t in labels):
            stats.dropped_empty_target += 1
            continue
        stats.inputs_truncated += len(input_ids) > max_input_length - 1
        stats.targets_truncated += len(labels) > max_target_length - 1
        examples.append((input_ids[: max_input_length - 1] + [tok.eos_id],
                         labels[: max_target_length - 1] + [tok.eos_id]))
    stats.kept = len(examples)
    return examples, stats


def load_pairs(path, tok, max_input_length: int = 512, max_target_length: int = 128,
               format: str | None = None) -> tuple[list[Example], PairStats]:
    """read_pairs + tokenize_pairs. Raises DataError if no example survives."""
    examples, stats = tokenize_pairs(read_pairs(path, format), tok, max_input_length, max_target_length)
    if not examples:
        raise DataError(f"{path}: every one of its {stats.pairs} targets is empty, so there is nothing to train on")
    return examples, stats


# --------------------------------------------------------------------------------------------------
# 3. Batching. The sampler deals out global batches of example indices; with several processes each takes
#    its share (shard); fetch turns indices into examples for this epoch; collate pads them into tensors.
# --------------------------------------------------------------------------------------------------
class IndexBatch(NamedTuple):
    epoch: int  # the epoch the batch belongs to (span corruption seeds its masks with it)
    indices: list[int]  # example indices of the whole global batch


class BatchSampler:
    """Infinite, seeded, resumable stream of global batches of example indices.

    Every epoch is a fresh permutation drawn from (seed, epoch). With `lengths`, batches are grouped by length
    (as Hugging Face's group_by_length): the permutation is cut into buckets of bucket_batches batches, each
    bucket sorted longest first and cut into batches, and the batches shuffled, so a batch holds similar
    lengths (little padding) while the order stays random. With drop_last (the default), the last
    num_examples % batch_size examples of each epoch's order are left out; they differ every epoch, and
    `dropped_per_epoch` says how many. state_dict() is (epoch, position): loading it recomputes that epoch's
    order and continues from the position, so no earlier batch is replayed."""

    def __init__(self, num_examples: int, batch_size: int, seed: int = 0, lengths: Sequence[int] | None = None,
                 bucket_batches: int = 50, drop_last: bool = True):
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        if seed < 0:
            raise DataError(f"seed must be a non-negative integer, got {seed}")
        if num_examples < (batch_size if drop_last else 1):
            raise DataError(f"the dataset has {num_examples} examples, fewer than one batch of {batch_size}; "
                            f"use a smaller batch_size")
        if lengths is not None and len(lengths) != num_examples:
            raise DataError(f"lengths has {len(lengths)} entries for {num_examples} examples")
        self.num_examples, self.batch_size, self.seed = num_examples, batch_size, seed
        self.lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
        self.bucket_batches, self.drop_last = bucket_batches, drop_last
        self.dropped_per_epoch = num_examples % batch_size if drop_last else 0
        self.epoch, self.position = 0, 0  # the next batch is batch `position` of epoch `epoch`
        self._batches, self._batches_epoch = None, None  # the current epoch's batches, computed once

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Every batch of one epoch, in order: a pure function of (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.num_examples)
        if self.lengths is not None:
            bucket = self.bucket_batches * self.batch_size  # a whole number of batches: none straddles buckets
            buckets = [order[i: i + bucket] for i in range(0, len(order), bucket)]
            # Stable sort, longest first: equal lengths keep their random order.
            order = np.concatenate([b[np.argsort(-self.lengths[b], kind="stable")] for b in buckets])
        batches = [order[i: i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        if self.drop_last and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.lengths is not None:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    @property
    def batches_per_epoch(self) -> int:
        full, rest = divmod(self.num_examples, self.batch_size)
        return full + (rest > 0 and not self.drop_last)

    def __iter__(self):
        return self

    def __next__(self) -> IndexBatch:
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        if self._batches_epoch != self.epoch:
            self._batches, self._batches_epoch = self.epoch_batches(self.epoch), self.epoch
        batch = IndexBatch(self.epoch, self._batches[self.position])
        self.position += 1
        return batch

    def _settings(self) -> dict:
        lengths = None if self.lengths is None else zlib.crc32(self.lengths.tobytes())
        return dict(num_examples=self.num_examples, batch_size=self.batch_size, seed=self.seed,
                    lengths_crc32=lengths, bucket_batches=self.bucket_batches, drop_last=self.drop_last)

    def state_dict(self) -> dict:
        return dict(epoch=self.epoch, position=self.position, **self._settings())

    def load_state_dict(self, state: dict):
        """Continue where `state` was saved. The settings must match, or the batches would differ."""
        for key, value in self._settings().items():
            if state.get(key) != value:
                raise DataError(f"the saved batch order used {key}={state.get(key)!r} but this run has {value!r}, "
                                f"so it cannot resume the same batches")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def shard(indices: Sequence[int], rank: int, world_size: int) -> list[int]:
    """This process's share of a global batch: indices rank, rank + world_size, ... (shares differ by at most one)."""
    if not 0 <= rank < world_size:
        raise DataError(f"rank must be in 0..{world_size - 1}, got {rank}")
    return list(indices[rank::world_size])


def fetch(dataset, indices: Sequence[int], epoch: int) -> list[Example]:
    """The examples at these indices. A list is indexed; a SpanCorruptionDataset corrupts them for this epoch."""
    if hasattr(dataset, "example"):
        return [dataset.example(i, epoch) for i in indices]
    return [dataset[i] for i in indices]


def example_lengths(dataset) -> list[int]:
    """Input length of every example, for BatchSampler(lengths=...)."""
    if hasattr(dataset, "lengths"):
        return dataset.lengths()
    return [len(input_ids) for input_ids, _ in dataset]


def lay_out(examples: Sequence[Example], rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """The tensors of examples laid out in rows (rows[r]: the positions of row r's examples, in order), end to
    end and padded to the longest row: input_ids with pad_id and labels with -100 there; attention_mask and
    decoder_attention_mask hold each token's example number in its row (1, 2, ...) and 0 for padding."""
    max_in = max(sum(len(examples[i][0]) for i in row) for row in rows)
    max_out = max(sum(len(examples[i][1]) for i in row) for row in rows)
    input_ids = torch.full((len(rows), max_in), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), max_in), dtype=torch.long)
    labels = torch.full((len(rows), max_out), -100, dtype=torch.long)
    decoder_attention_mask = torch.zeros((len(rows), max_out), dtype=torch.long)
    for r, row in enumerate(rows):
        s = t = 0  # where the next example starts in the row's input and target
        for number, i in enumerate(row, start=1):
            source, target = examples[i]
            input_ids[r, s: s + len(source)] = torch.tensor(source, dtype=torch.long)
            attention_mask[r, s: s + len(source)] = number
            labels[r, t: t + len(target)] = torch.tensor(target, dtype=torch.long)
            decoder_attention_mask[r, t: t + len(target)] = number
            s, t = s + len(source), t + len(target)
    return dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                decoder_attention_mask=decoder_attention_mask)


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch to its own longest input and target: input_ids with pad_id (attention_mask 0 there),
    labels with -100, which the loss ignores. Returns LongTensors (B, S) and (B, T)."""
    if not examples:
        raise DataError("collate got no examples (a batch needs at least one)")
    batch = lay_out(examples, [[i] for i in range(len(examples))], pad_id)  # one example a row
    del batch["decoder_attention_mask"]  # a row's one example needs no numbering: the model masks the padding
    return batch


def pack_rows(input_lengths: Sequence[int], target_lengths: Sequence[int], input_capacity: int,
              target_capacity: int) -> list[list[int]]:
    """Which examples share a row: first fit, longest input first, no row over either capacity (an example longer
    than a capacity gets a row of its own). Returns example positions per row."""
    rows, inputs, targets = [], [], []  # per row: its examples, its input tokens, its target tokens
    for i in sorted(range(len(input_lengths)), key=lambda i: (-input_lengths[i], i)):
        fits = (r for r in range(len(rows)) if inputs[r] + input_lengths[i] <= input_capacity
                and targets[r] + target_lengths[i] <= target_capacity)
        r = next(fits, None)
        if r is None:  # no row has room: open a new one
            rows.append([])
            inputs.append(0)
            targets.append(0)
            r = len(rows) - 1
        rows[r].append(i)
        inputs[r] += input_lengths[i]
        targets[r] += target_lengths[i]
    return rows


def collate_packed(examples: Sequence[Example], pad_id: int, growth: float = 1.5) -> dict[str, torch.Tensor]:
    """Several short examples to a row, so that little padding is computed (T5's own training packed them).
    A row holds up to growth times the batch's longest input and longest target. In attention_mask and
    decoder_attention_mask a token holds its example's number in the row (1, 2, ...; 0 = padding): the model,
    called with packed=True, lets each token see only its own example (model.example_mask). The loss is the
    same sum over the same target tokens as collate's."""
    if not examples:
        raise DataError("collate_packed got no examples (a batch needs at least one)")
    input_lengths, target_lengths = [len(source) for source, _ in examples], [len(target) for _, target in examples]
    rows = pack_rows(input_lengths, target_lengths, int(growth * max(input_lengths)), int(growth * max(target_lengths)))
    return lay_out(examples, rows, pad_id)

