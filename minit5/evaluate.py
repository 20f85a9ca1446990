"""Scoring generated answers against references: exact match and ROUGE-1, ROUGE-2, ROUGE-L; and the command that
scores a model on held-out pairs (python -m minit5.evaluate, or minit5-evaluate once installed).

    references + predictions ─► exact_match   1 if the answer is the reference (outer spaces ignored), else 0
                             ─► rouge(n)      overlap of word n-grams: precision, recall, their F1
                             ─► rouge_l       the longest common subsequence of words, as an F1
    scores() averages each over the examples; predict() makes the predictions with a model.

ROUGE here gives the numbers of Google's `rouge-score` package (`RougeScorer(["rouge1", "rouge2", "rougeL"])`,
no stemming; tests/test_scoring.py holds them together) for text in a-z and 0-9: lower-case, every run of other
characters separates words. rouge-score drops every other character, so Chinese text scores 0 there; here each
character outside ASCII that is a letter or a digit (a Chinese character, an accented letter) is a word of its
own, the usual way to score Chinese.

The command:

    python -m minit5.evaluate --model google/flan-t5-small --data dev.jsonl --out out/eval-base
    python -m minit5.evaluate --model google/flan-t5-small --adapter out/lora --data dev.jsonl --out out/eval-lora

Each input is answered greedily (or with --num-beams) and scored against its target. --out gets scores.json and
predictions.jsonl (input, target, prediction and its scores, one example per line); the scores are printed too.
--data is .jsonl with input/target fields, or .tsv, as for train.py.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

import torch

from .loading import DTYPES

WORD = re.compile(r"[a-z0-9]+|[^\x00-\x7f]")


def words(text: str) -> list[str]:
    """Lower-cased words: runs of a-z/0-9, and each non-ASCII letter or digit on its own."""
    return [w for w in WORD.findall(text.lower()) if w.isalnum()]


def exact_match(prediction: str, reference: str) -> float:
    return float(prediction.strip() == reference.strip())


def f1(overlap: int, predicted: int, reference: int) -> float:
    """F1 of precision overlap/predicted and recall overlap/reference (0 when either is 0)."""
    precision, recall = overlap / max(predicted, 1), overlap / max(reference, 1)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge_n(prediction: str, reference: str, n: int) -> float:
    """ROUGE-n F1: how many word n-grams the two share (each counted as often as it occurs in both)."""
    def ngrams(tokens):
        return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    pred, ref = ngrams(words(prediction)), ngrams(words(reference))
    overlap = sum((pred & ref).values())  # Counter & Counter keeps the smaller count of each n-gram
    return f1(overlap, sum(pred.values()), sum(ref.values()))


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: the longest common subsequence of words (in order, not necessarily adjacent)."""
    pred, ref = words(prediction), words(reference)
    if not pred or not ref:
        return 0.0
    # lcs[j] = LCS length of the reference prefix so far and pred[:j]; one row of the usual table at a time
    lcs = [0] * (len(pred) + 1)
    for r in ref:
        diagonal = 0  # the previous row's lcs[j - 1]
        for j, p in enumerate(pred, start=1):
            above = lcs[j]
            lcs[j] = diagonal + 1 if r == p else max(lcs[j], lcs[j - 1])
            diagonal = above
    return f1(lcs[-1], len(pred), len(ref))


def example_scores(prediction: str, reference: str) -> dict[str, float]:
    return {"exact_match": exact_match(prediction, reference), "rouge1": rouge_n(prediction, reference, 1),
            "rouge2": rouge_n(prediction, reference, 2), "rougeL": rouge_l(prediction, reference)}


def scores(predictions, references) -> dict[str, float]:
    """Each metric averaged over the examples, as fractions in [0, 1]."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("nothing to score: no examples")
    rows = [example_scores(p, r) for p, r in zip(predictions, references)]
    return {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]}


@torch.no_grad()
def predict(model, tokenizer, inputs, batch_size: int = 16, max_new_tokens: int = 64, num_beams: int = 1,
            max_input_length: int | None = None, step: str = "fast", progress: bool = False) -> list[str]:
    """The model's greedy (or beam) answer to each input text, in order."""
    from tqdm import tqdm
    was_training = model.training
    model.eval()
    answers = []
    # Similar lengths batch together (less padding); the answers are put back in the inputs' order.
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    by_index = {}
    for start in tqdm(range(0, len(order), batch_size), disable=not progress, desc="evaluate", unit="batch"):
        rows = order[start:start + batch_size]
        input_ids, attention_mask = tokenizer.encode_batch([inputs[i] for i in rows], max_length=max_input_length)
        out = model.generate(input_ids.to(model.device), attention_mask.to(model.device),
                             max_new_tokens=max_new_tokens, num_beams=num_beams, step=step)
        for i, row in zip(rows, out):
            by_index[i] = tokenizer.decode(row[1:].tolist())  # row[0] is the decoder's start token
    answers = [by_index[i] for i in range(len(inputs))]
    model.train(was_training)
    return answers


# --------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m minit5.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder or hub id (with --adapter: the base model)")
    p.add_argument("--adapter", help="a LoRA adapter folder (from train.py --lora-r, or from peft) to apply")
    p.add_argument("--data", required=True, help="held-out pairs: .jsonl with input/target fields, or .tsv")
    p.add_argument("--out", required=True, help="folder for scores.json and predictions.jsonl")
    p.add_argument("--limit", type=int, help="score only the first N examples")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--max-input-length", type=int, default=512, help="inputs are cut to this many tokens")
    p.add_argument("--num-beams", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    return p.parse_args(argv)


def main(argv=None):
    from .checkpoint import atomic_write, write_json
    from .data import DataError, read_pairs
    from .loading import LoadError, check_options, load_for_inference

    args = parse_args(argv)
    for flag in ("limit", "max_new_tokens", "max_input_length", "num_beams", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            sys.exit(f"error: --{flag.replace('_', '-')} must be at least 1, got {value}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        sys.exit(f"error: --out {out} is a file; pass a folder")
    try:
        check_options(args.device, args.dtype)
        pairs = read_pairs(args.data)[:args.limit]
        model, tokenizer = load_for_inference(args.model, adapter=args.adapter, dtype=args.dtype, device=args.device)
    except (DataError, LoadError) as e:
        sys.exit(f"error: {e}")

    inputs, targets = [source for source, _ in pairs], [target for _, target in pairs]
    predictions = predict(model, tokenizer, inputs, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                          num_beams=args.num_beams, max_input_length=args.max_input_length, progress=True)
    rows = [dict(input=i, target=t, prediction=p, **example_scores(p, t))
            for i, t, p in zip(inputs, targets, predictions)]
    result = {key: sum(row[key] for row in rows) / len(rows) for key in ("exact_match", "rouge1", "rouge2", "rougeL")}

    out.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write(out / "predictions.jsonl", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    write_json(out / "scores.json", dict(**result, examples=len(rows), model=args.model, adapter=args.adapter,
                                         data=args.data, num_beams=args.num_beams,
                                         max_new_tokens=args.max_new_tokens))
    print(f"{len(rows)} examples · " + " · ".join(f"{k} {100 * v:.2f}" for k, v in result.items()))
    print(f"wrote {out / 'scores.json'} and {out / 'predictions.jsonl'}")


if __name__ == "__main__":
    main()
