"""Scoring generated answers against references: exact match and ROUGE-1, ROUGE-2, ROUGE-L.

    references + predictions ─► exact_match   1 if the answer is the reference (outer spaces ignored), else 0
                             ─► rouge(n)      overlap of word n-grams: precision, recall, their F1
                             ─► rouge_l       the longest common subsequence of words, as an F1
    scores() averages each over the examples; predict() makes the predictions with a model.

ROUGE here gives the numbers of Google's `rouge-score` package (`RougeScorer(["rouge1", "rouge2", "rougeL"])`,
no stemming; tests/test_evaluate.py holds them together) for text in a-z and 0-9: lower-case, every run of other
characters separates words. rouge-score drops every other character, so Chinese text scores 0 there; here each
character outside ASCII that is a letter or a digit (a Chinese character, an accented letter) is a word of its
own, the usual way to score Chinese.
"""

from __future__ import annotations

import re
from collections import Counter

import torch

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
