"""Print a worked example of T5's span corruption, made by minit5/data.py itself.

    python docs/scripts/span_corruption_example.py [--seed 0] [--text "..."]
    python docs/scripts/span_corruption_example.py --zh     the same with Chinese labels (docs/zh/training.md)

T5 corrupts SentencePiece tokens; to keep the example readable, this uses one token per word (a tiny
word-level tokenizer defined here, with sentinels at the top of its vocabulary as in T5's). The mask, the
sentinels and the lengths are exactly what minit5.data computes for any tokenizer.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from minit5.data import apply_noise_mask, random_spans_noise_mask, span_corruption_lengths  # noqa: E402

SENTENCE = ("Ganymede is the largest moon of Jupiter and of the whole solar system . It is even larger than "
            "the planet Mercury , and it is the only moon known to have its own magnetic field . Galileo "
            "found it in 1610 .")


class WordTokenizer:
    """One id per distinct word, in order of appearance; 100 sentinels at the top, <extra_id_0> highest."""
    pad_id, eos_id, num_sentinels = 0, 1, 100

    def __init__(self, words):
        self.words = ["<pad>", "</s>", "<unk>"] + sorted(set(words), key=words.index)
        self.vocab_size = len(self.words) + self.num_sentinels

    def encode(self, text, add_eos=True):
        return [self.words.index(w) for w in text.split()] + ([self.eos_id] if add_eos else [])

    def sentinel_id(self, i):
        return self.vocab_size - 1 - i

    def show(self, ids):
        return " ".join(f"<extra_id_{self.vocab_size - 1 - i}>" if i >= len(self.words) else self.words[i]
                        for i in ids)


def worked_example(seed: int = 0, text: str = SENTENCE, zh: bool = False) -> str:
    """The worked example as a block of text (docs/training.md shows it for seed 0; zh: Chinese labels)."""
    words = text.split()
    tok = WordTokenizer(words)
    tokens = tok.encode(text, add_eos=False)
    mask = random_spans_noise_mask(len(tokens), 0.15, 3.0, np.random.default_rng(seed))
    inputs, targets = apply_noise_mask(tokens, mask, tok)
    marked = " ".join(f"[{w}]" if m else w for w, m in zip(words, mask))
    noise, spans = int(mask.sum()), len(targets) - int(mask.sum()) - 1
    if zh:
        lines = [f"原文（{len(tokens)} 个词元）：{text}",
                 f"噪声掩码：{marked}",
                 f"输入（{len(inputs)} 个词元）：{tok.show(inputs)}",
                 f"目标（{len(targets)} 个词元）：{tok.show(targets)}",
                 f"噪声：{len(tokens)} 个词元中的 {noise} 个，分成 {spans} 个片段"]
    else:
        lines = [f"original ({len(tokens)} tokens): {text}",
                 "noise mask:           " + marked,
                 f"inputs  ({len(inputs)} tokens): {tok.show(inputs)}",
                 f"targets ({len(targets)} tokens): {tok.show(targets)}",
                 f"noise: {noise} of {len(tokens)} tokens in {spans} span(s)"]
    for length in (128, 512):
        raw, target = span_corruption_lengths(length)
        if zh:
            lines.append(f"span_corruption_lengths({length}) = ({raw}, {target})：{raw} 个原始词元变成 {length} "
                         f"个输入词元和 {target} 个目标词元")
        else:
            lines.append(f"span_corruption_lengths({length}) = ({raw}, {target}): {raw} raw tokens give {length} "
                         f"inputs and {target} targets")
    return "\n".join(lines)


def markdown_block() -> str:
    """For docs/scripts/update_generated.py: the seed-0 example in a code fence."""
    return "```text\n" + worked_example() + "\n```"


def markdown_block_zh() -> str:
    return "```text\n" + worked_example(zh=True) + "\n```"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--text", default=SENTENCE)
    p.add_argument("--zh", action="store_true", help="Chinese labels, for docs/zh/training.md")
    args = p.parse_args()
    print(worked_example(args.seed, args.text, zh=args.zh))


if __name__ == "__main__":
    main()
