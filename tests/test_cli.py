"""The command-line front ends: generate.py answers from a model folder, and every error is one line; a
non-editable install gives every command."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from hf_models import save_byte_model

from minit5 import T5, Tokenizer, generate_cli  # generate_cli.main: python generate.py, in this process

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_byte_model(tmp_path_factory.mktemp("cli_model"))


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
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    from_file = run("--model", str(model_dir), "--max-new-tokens", "8", "--file", str(tmp_path / "prompts.txt"))
    assert from_file.stdout == expected


def test_blank_lines_get_blank_answers_so_outputs_line_up(model_dir, tmp_path, capsys):
    lines = ["", "first question", "   ", "second question", ""]
    answers = expected_answers(model_dir, ["first question", "second question"]).splitlines()
    (tmp_path / "prompts.txt").write_text("\n".join(lines) + "\n")
    for batch_size in ("1", "2", "8"):
        generate_cli.main(["--model", str(model_dir), "--max-new-tokens", "8", "--batch-size", batch_size,
                           "--file", str(tmp_path / "prompts.txt")])
        out = capsys.readouterr().out
        assert out.split("\n")[:-1] == ["", answers[0], "", answers[1], ""], batch_size


def test_file_that_is_not_utf8(model_dir, tmp_path):
    (tmp_path / "latin1.txt").write_bytes("first\nCaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(SystemExit, match=r"^error: --file .*latin1.txt is not UTF-8 text \(line 2, byte 9\)"):
        generate_cli.main(["--model", str(model_dir), "--file", str(tmp_path / "latin1.txt")])


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
    (["--temperature", "0", "hi"], "error: --temperature must be > 0, got 0.0"),
    (["--top-p", "2", "hi"], r"error: --top-p must be in (0, 1], got 2.0"),
    (["--num-beams", "0", "hi"], "error: --num-beams must be at least 1, got 0"),
    (["--file", "/nonexistent/prompts.txt"], "error: cannot read --file /nonexistent/prompts.txt"),
])
def test_errors_are_one_line(model_dir, args, message):
    result = run("--model", str(model_dir), *args)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line, no traceback
    assert result.stderr.strip().startswith(message)


BAD_ARGUMENTS = [
    (["--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
    (["--top-p", "0"], "--top-p must be in (0, 1], got 0.0"),
    (["--temperature", "-1"], "--temperature must be > 0, got -1.0"),
    (["--temperature", "0"], "--temperature must be > 0, got 0.0"),
    (["--top-k", "-3"], "--top-k must be >= 0 (0 = off), got -3"),
    (["--num-beams", "0"], "--num-beams must be at least 1, got 0"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1, got 0"),
    (["--num-beams", "4", "--top-p", "0.9"], "sampling (--temperature/--top-k/--top-p) and beam search"),
    (["--max-new-tokens", "5", "--min-new-tokens", "6"], "--min-new-tokens must be between 0 and --max-new-tokens (5)"),
    (["--min-new-tokens", "-1"], "--min-new-tokens must be between 0 and --max-new-tokens"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--batch-size", "-2"], "--batch-size must be at least 1, got -2"),
    (["--stream", "--num-beams", "3"], "--stream prints tokens as greedy search or sampling picks them"),
    (["--device", "tpu"], "--device must be cpu, cuda or cuda:N, got 'tpu'"),
    (["--device", "cuda"], "--device cuda was asked for, but torch sees no CUDA GPU"),
    (["--file", "x.txt"], "give prompts as arguments or with --file, not both"),
]


@pytest.mark.parametrize("args,message", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_arguments_are_named_before_the_model_is_loaded(args, message, tmp_path, monkeypatch):
    """The model folder here would fail to load (its config.json is broken): the error must still be about the
    argument, which proves the check ran first."""
    (tmp_path / "config.json").write_text("{ not json")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as raised:
        generate_cli.main(["--model", str(tmp_path), *args, "hi"])
    assert str(raised.value).startswith(f"error: {message}")
    assert "\n" not in str(raised.value)


def test_broken_model_folder_is_reported_when_the_arguments_are_fine(tmp_path):
    (tmp_path / "config.json").write_text("{ not json")
    with pytest.raises(SystemExit, match="config.json is not valid JSON"):
        generate_cli.main(["--model", str(tmp_path), "hi"])


def test_missing_model_folder(tmp_path):
    result = run("--model", str(tmp_path / "nothing"), "hi")
    assert result.returncode != 0
    assert result.stderr.strip() == f"error: model folder {tmp_path / 'nothing'} does not exist"


def test_default_model_missing_says_how_to_make_it(tmp_path):
    result = run("Where is Ganymede?", cwd=tmp_path)
    assert result.returncode != 0
    assert "no model at out/demo; make one with `python train.py`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def run_check_real_weights(folder, monkeypatch, capsys):
    """docs/scripts/check_real_weights.py is a thin call of python -m minit5.parity: (exit status, stderr)."""
    spec = importlib.util.spec_from_file_location("check_real_weights", ROOT / "docs/scripts/check_real_weights.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(sys, "argv", ["check_real_weights.py", "--model", str(folder)])
    status = script.main()
    return status, capsys.readouterr().err


def test_check_real_weights_on_a_folder_without_a_checkpoint(tmp_path, monkeypatch, capsys):
    status, err = run_check_real_weights(tmp_path, monkeypatch, capsys)
    assert status == 2 and err.strip().splitlines() == [f"error: MODEL {tmp_path} is not a T5 checkpoint: it has no config.json"]


def test_check_real_weights_on_a_spiece_only_folder(tmp_path, monkeypatch, capsys):
    from tokenizer_vocab import train_spiece
    (tmp_path / "spiece.model").write_bytes(train_spiece())
    status, err = run_check_real_weights(tmp_path, monkeypatch, capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_check_real_weights_checks_its_arguments_before_downloading(monkeypatch):
    spec = importlib.util.spec_from_file_location("check_real_weights", ROOT / "docs/scripts/check_real_weights.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "fetch", lambda hub_id: pytest.fail("downloaded before checking the arguments"))
    monkeypatch.setattr(sys, "argv", ["check_real_weights.py", "--max-new-tokens", "0"])
    with pytest.raises(SystemExit) as raised:
        script.main()
    assert str(raised.value) == "error: --max-new-tokens must be at least 1, got 0"


# ---------------------------------------------------------------- the commands of an installed minit5
CHECK_INSTALLED = """
import contextlib, importlib.metadata, io, json, sys
import minit5
dist = importlib.metadata.distribution("minit5")  # the first on sys.path: the installed one
helps = {}
for ep in dist.entry_points:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        ep.load()(["--help"])
    helps[ep.name] = out.getvalue()
print(json.dumps(dict(file=minit5.__file__, helps=helps)))
"""


def test_a_non_editable_install_gives_every_command(tmp_path):
    """pip install . (not -e) of the package alone, as a user gets it: a command for each [project.scripts] entry
    that prints its help, run from a folder without the repository, with the installed minit5 (not this clone's)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"minit5-generate", "minit5-evaluate", "minit5-parity", "minit5-explore"} <= set(scripts)
    source = tmp_path / "source"  # a copy, so that the build writes nothing into the repository
    shutil.copytree(ROOT / "minit5", source / "minit5", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    site = tmp_path / "installed"  # --target: into a folder of its own (--prefix would uninstall this venv's minit5)
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                              "--no-build-isolation", "--no-warn-script-location", "--target", str(site),
                              str(source)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    assert (site / "minit5" / "explore_static" / "index.html").is_file()  # the page ships in the package
    assert all((site / "bin" / name).is_file() for name in scripts)
    env = {**os.environ, "PYTHONPATH": str(site)}
    # every entry point in one process (each imports torch), and one installed command as a user runs it
    command = subprocess.Popen([str(site / "bin" / "minit5-generate"), "--help"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checked = subprocess.run([sys.executable, "-c", CHECK_INSTALLED], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr
    found = json.loads(checked.stdout.strip().splitlines()[-1])
    assert Path(found["file"]).is_relative_to(site)
    assert set(found["helps"]) == set(scripts)
    for name, text in found["helps"].items():
        assert text.startswith("usage:") and "--help" in text, (name, text[:300])
    out, err = command.communicate(timeout=120)
    assert command.returncode == 0 and out.startswith("usage: minit5-generate") and "--num-beams" in out, err
