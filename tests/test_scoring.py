"""minit5/evaluate.py: exact match and ROUGE against Google's rouge-score, and its command, python -m minit5.evaluate
(a model with a LoRA adapter scored on held-out pairs; every bad argument one line, before any loading).
The trainer's own evaluation is tests/test_trainer_eval.py."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rouge_score import rouge_scorer

from hf_models import build_hf_model, load_hf
from minit5 import T5, Tokenizer
from minit5.evaluate import exact_match, main, rouge_l, rouge_n, scores, words
from minit5.lora import load_adapter

ROOT = Path(__file__).resolve().parents[1]

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


# ---------------------------------------------------------------- python -m minit5.evaluate
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A random flan-T5-shaped model in Hugging Face's format with a byte tokenizer, and a peft adapter for it
    (random, non-zero B, so that it changes the answers)."""
    from peft import LoraConfig, get_peft_model
    folder = tmp_path_factory.mktemp("evaluate_base")
    build_hf_model("flan-t5", folder, vocab_size=384)
    Tokenizer.byte_level().save_pretrained(folder)
    torch.manual_seed(0)
    model = get_peft_model(load_hf("flan-t5", folder), LoraConfig(r=4, lora_alpha=8, target_modules=["q", "v", "wo"],
                                                                  task_type="SEQ_2_SEQ_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.3)
    model.save_pretrained(folder / "adapter")
    return folder


def test_evaluate_a_model_with_an_adapter(base, tmp_path):
    adapter = base / "adapter"
    model = load_adapter(T5.from_pretrained(base), adapter).eval()
    tok = Tokenizer.from_pretrained(base)
    prompts = ["Reverse apple.", "Reverse stone7."]
    ids, mask = tok.encode_batch(prompts)
    expected = [tok.decode(row[1:]) for row in model.generate(ids, mask, max_new_tokens=8)]
    data = tmp_path / "dev.jsonl"
    data.write_text("".join(json.dumps({"input": p, "target": t}) + "\n" for p, t in zip(prompts, [expected[0], "x"])))
    run = subprocess.run([sys.executable, "-m", "minit5.evaluate", "--model", str(base), "--adapter", str(adapter),
                          "--data", str(data), "--out", str(tmp_path / "eval"), "--max-new-tokens", "8"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    scores = json.loads((tmp_path / "eval" / "scores.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert [r["prediction"] for r in rows] == expected
    assert scores["exact_match"] == 0.5 and scores["examples"] == 2
    assert f"2 examples · exact_match {100 * 0.5:.2f}" in run.stdout


BAD_ARGUMENTS = [  # (arguments after --model, what the one line says after "error: ")
    (["--limit", "0"], "--limit must be at least 1, got 0"),
    (["--num-beams", "-1"], "--num-beams must be at least 1, got -1"),
    (["--out", "{tmp}/a-file"], "--out {tmp}/a-file is a file; pass a folder"),
    (["--device", "tpu"], "--device must be cpu, cuda or cuda:N, got 'tpu'"),
    (["--data", "{tmp}/dev.txt"], "cannot tell the format of {tmp}/dev.txt"),
]


@pytest.mark.parametrize("args,message", BAD_ARGUMENTS, ids=[a[0] for a, _ in BAD_ARGUMENTS])
def test_bad_arguments_are_one_line_before_loading(tmp_path, args, message):
    """The model folder's config.json is broken: the error is about the argument, so it was checked first."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{ not json")
    (tmp_path / "a-file").write_text("")
    (tmp_path / "dev.txt").write_text("a\tb\n")
    (tmp_path / "dev.jsonl").write_text('{"input": "a", "target": "b"}\n')
    argv = {"--data": str(tmp_path / "dev.jsonl"), "--out": str(tmp_path / "out")}
    for flag, value in zip(args[::2], args[1::2]):
        argv[flag] = value.format(tmp=tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["--model", str(tmp_path / "model"), *[x for pair in argv.items() for x in pair]])
    assert str(stop.value).startswith(f"error: {message.format(tmp=tmp_path)}")
    assert "\n" not in str(stop.value)


def test_a_missing_model_folder_is_one_line(tmp_path):
    (tmp_path / "dev.jsonl").write_text('{"input": "a", "target": "b"}\n')
    with pytest.raises(SystemExit) as stop:
        main(["--model", str(tmp_path / "nothing"), "--data", str(tmp_path / "dev.jsonl"), "--out", str(tmp_path)])
    assert str(stop.value) == f"error: model folder {tmp_path / 'nothing'} does not exist"
