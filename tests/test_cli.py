"""The command-line front ends: generate.py answers from a model folder, and every error is one line."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minit5 import T5, T5Config, Tokenizer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_model")
    torch.manual_seed(0)
    T5(T5Config(vocab_size=384, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=1,
                feed_forward_proj="gated-gelu", tie_word_embeddings=False)).save_pretrained(folder)
    Tokenizer.byte_level().save_pretrained(folder)
    return folder


def run(*args, stdin=None, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "generate.py"), *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120)


def expected_answers(model_dir, prompts, **kwargs):
    model, tok = T5.from_pretrained(model_dir), Tokenizer.from_pretrained(model_dir)
    ids, mask = tok.encode_batch(prompts)
    out = model.generate(ids, mask, max_new_tokens=8, **kwargs)
    return "".join(tok.decode(row[1:]) + "\n" for row in out)  # one answer per line, as printed


def test_prompts_from_arguments(model_dir):
    result = run("--model", str(model_dir), "--max-new-tokens", "8", "Where is Ganymede?", "2 + 2 =")
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected_answers(model_dir, ["Where is Ganymede?", "2 + 2 ="])


def test_prompts_from_stdin_and_file(model_dir, tmp_path):
    prompts = ["first question", "second question"]
    expected = expected_answers(model_dir, prompts)
    piped = run("--model", str(model_dir), "--max-new-tokens", "8", stdin="\n".join(prompts) + "\n")
    assert piped.stdout == expected
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n\n")
    from_file = run("--model", str(model_dir), "--max-new-tokens", "8", "--file", str(tmp_path / "prompts.txt"))
    assert from_file.stdout == expected


def test_stream_prints_the_same_answer(model_dir):
    streamed = run("--model", str(model_dir), "--max-new-tokens", "8", "--stream", "Where is Ganymede?")
    assert streamed.stdout == expected_answers(model_dir, ["Where is Ganymede?"])


def test_beam_and_sampling_options(model_dir):
    beam = run("--model", str(model_dir), "--max-new-tokens", "8", "--num-beams", "3", "hello")
    assert beam.stdout == expected_answers(model_dir, ["hello"], num_beams=3)
    sampled = [run("--model", str(model_dir), "--max-new-tokens", "8", "--top-p", "0.9", "--seed", "5", "hello")
               for _ in range(2)]
    assert sampled[0].returncode == 0 and sampled[0].stdout == sampled[1].stdout


@pytest.mark.parametrize("args,message", [
    (["--temperature", "0", "hi"], "error: temperature must be > 0 when sampling, got 0.0"),
    (["--top-p", "2", "hi"], r"error: top_p must be in (0, 1], got 2.0"),
    (["--num-beams", "0", "hi"], "error: num_beams must be an integer >= 1, got 0"),
    (["--file", "/nonexistent/prompts.txt"], "error: cannot read --file /nonexistent/prompts.txt"),
])
def test_errors_are_one_line(model_dir, args, message):
    result = run("--model", str(model_dir), *args)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line, no traceback
    assert result.stderr.strip().startswith(message)


def test_missing_model_folder(tmp_path):
    result = run("--model", str(tmp_path / "nothing"), "hi")
    assert result.returncode != 0
    assert result.stderr.strip() == f"error: model folder {tmp_path / 'nothing'} does not exist"


def test_default_model_missing_says_how_to_make_it(tmp_path):
    result = run("Where is Ganymede?", cwd=tmp_path)
    assert result.returncode != 0
    assert "no model at out/demo; make one with `python train.py`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
