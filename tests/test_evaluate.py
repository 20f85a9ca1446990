"""Exact match and ROUGE (minit5/evaluate.py) against Google's rouge-score, and the trainer's evaluation."""

import random

import pytest
from rouge_score import rouge_scorer

from minit5.evaluate import exact_match, rouge_l, rouge_n, scores, words

PAIRS = [
    ("the cat sat on the mat", "the cat is on the mat"),
    ("The Cat, sat!", "the cat sat"),
    ("a b c d e f", "f e d c b a"),
    ("", "something"),
    ("", ""),
    ("!!!", "???"),
    ("Ganymede orbits Jupiter.", "Jupiter"),
    ("3,000 m", "3000 m"),
    ("the the the the", "the the"),
    ("x1 y2 z3 x1 y2", "y2 x1 z3 y2 x1 q"),
    ("mixed-case WORDS and_underscores", "Mixed case words and underscores"),
]


def random_pairs(count=200, seed=0):
    """Sentences over a small vocabulary (so that they share words), with punctuation and capitals."""
    rng = random.Random(seed)
    vocab = ["the", "a", "cat", "Cat", "dog", "sat", "on", "mat", "42", "x9", "river,", "stone.", "(moon)", "it's"]
    return [(" ".join(rng.choices(vocab, k=rng.randint(0, 12))), " ".join(rng.choices(vocab, k=rng.randint(0, 12))))
            for _ in range(count)]


@pytest.mark.parametrize("pairs", [PAIRS, random_pairs()], ids=["cases", "random"])
def test_rouge_equals_rouge_score(pairs):
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    for prediction, reference in pairs:
        theirs = scorer.score(reference, prediction)  # rouge-score takes (target, prediction)
        ours = {"rouge1": rouge_n(prediction, reference, 1), "rouge2": rouge_n(prediction, reference, 2),
                "rougeL": rouge_l(prediction, reference)}
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key].fmeasure, abs=1e-12), (prediction, reference, key)


def test_chinese_counts_each_character_as_a_word():
    assert words("木卫三 orbits 木星!") == ["木", "卫", "三", "orbits", "木", "星"]
    assert rouge_n("木卫三绕木星", "木卫三绕着木星转", 1) == pytest.approx(2 * 6 / (6 + 8))
    assert rouge_l("木星", "木星") == 1.0


def test_scores_average_over_examples():
    result = scores(["Jupiter", " Saturn ", "Mars is red"], ["Jupiter", "Saturn", "Mars"])
    assert result["exact_match"] == pytest.approx(2 / 3)
    assert result["rouge1"] == pytest.approx((1 + 1 + 2 * (1 / 3) / (1 / 3 + 1)) / 3)
    assert exact_match(" a ", "a") == 1.0 and exact_match("A", "a") == 0.0
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        scores(["a", "b"], ["a"])
