"""train.py as a new user meets it: bad input refused in one line before any work, the run folder compared by
what it holds (not how its path is spelled), --resume refusing changed settings, Ctrl-C, and closing lines."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from trainer_runs import cli, losses, run_in_process, settings

from minit5.trainer import TrainConfig, Trainer, TrainError

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("train_cli", ROOT / "train.py")
train_cli = importlib.util.module_from_spec(spec)  # train.py, imported to run main() in this process
spec.loader.exec_module(train_cli)


def argv(files, out, **overrides):
    return cli(settings(files, out, **overrides))


def refused(files, out, **overrides) -> str:
    with pytest.raises(TrainError) as raised:
        Trainer(TrainConfig(**settings(files, out, **overrides)), log=lambda m: None)
    return str(raised.value)


# ---------------------------------------------------------------------------------------------- bad input
def test_out_that_is_a_file(files, tmp_path):
    (tmp_path / "model.txt").write_text("not a folder")
    with pytest.raises(SystemExit) as raised:
        train_cli.main(argv(files, tmp_path / "model.txt"))
    assert str(raised.value) == f"error: --out {tmp_path / 'model.txt'} is a file; the run needs a folder " \
                                f"(a new one, or a run to --resume)"


@pytest.mark.parametrize("overrides,message", [
    (dict(max_input_length=1), "--max-input-length must be at least 2 (one token and EOS), got 1"),
    (dict(max_target_length=0), "--max-target-length must be at least 2"),
    (dict(seed=-1), "--seed must be >= 0"),
    (dict(eval_examples=0), "--eval-examples must be at least 1"),
    (dict(device="tpu"), "--device must be cpu, cuda or cuda:N, got 'tpu'"),
    (dict(init="/nonexistent/model", config="tiny"), "--init folder /nonexistent/model does not exist"),
    (dict(tokenizer="/nonexistent/tok"), "--tokenizer folder /nonexistent/tok does not exist"),
    (dict(init="google/flan-t5-small", config="small"),
     "--config small describes a fresh model, but --init google/flan-t5-small brings its own config.json"),
    (dict(data_format="csv"), "--data-format must be jsonl or tsv, got 'csv'"),
])
def test_more_bad_settings_fail_before_training(files, tmp_path, overrides, message):
    assert refused(files, tmp_path / "out", **overrides).startswith(message)
    assert not (tmp_path / "out").exists()


def test_data_file_of_unknown_format_needs_data_format(files, tmp_path):
    (tmp_path / "pairs.txt").write_text((files / "pairs.jsonl").read_text())
    message = refused(files, tmp_path / "out", data=str(tmp_path / "pairs.txt"))
    assert message == f"--data {tmp_path / 'pairs.txt'}: cannot tell its format from the name; call it .jsonl or " \
                      f".tsv, or pass --data-format jsonl (or tsv)"
    trainer, _ = run_in_process(files, tmp_path / "out", data=str(tmp_path / "pairs.txt"), data_format="jsonl", steps=1)
    assert trainer.step == 1


def test_data_errors_name_command_line_flags(files, tmp_path):
    message = refused(files, tmp_path / "out", task="span-corruption", data=None, text=[str(files / "corpus.txt")],
                      inputs_length=3000)
    assert message.endswith("use a shorter --inputs-length"), message


def test_config_size_without_init_says_what_it_builds(files, tmp_path):
    logged = []
    Trainer(TrainConfig(**settings(files, tmp_path / "out", config="small")), log=logged.append)
    note = next(m for m in logged if m.startswith("--config small without --init"))
    assert "44M parameters on the byte-level vocabulary (384 ids)" in note and "--tokenizer DIR" in note


def test_tokenizer_gives_a_fresh_model_its_vocabulary(files, tmp_path):
    from tokenizer_vocab import train_spiece

    from minit5 import Tokenizer
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "spiece.model").write_bytes(train_spiece())
    trainer, _ = run_in_process(files, tmp_path / "out", config="tiny", tokenizer=str(folder), steps=2)
    assert trainer.model.config.vocab_size == Tokenizer.from_pretrained(folder).vocab_size != 384
    assert Tokenizer.from_pretrained(tmp_path / "out").vocab_size == trainer.model.config.vocab_size


# ---------------------------------------------------------------------------------------------- the run folder
def test_the_same_run_whatever_the_spelling_of_its_path(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_in_process(files, "runs/a", steps=2)
    for spelling in ("./runs/a", "runs/a/", str(tmp_path / "runs" / "a"), "runs/../runs/a"):
        assert run_in_process(files, spelling, steps=2)[0].mode == "done", spelling
    shutil.copytree("runs/a", "copy")  # a copied run folder is the same run
    assert run_in_process(files, "copy", steps=2)[0].mode == "done"
    # and relative data paths compare resolved too
    relative = dict(data=str(Path("..") / tmp_path.name / (files / "pairs.jsonl").relative_to(tmp_path.parent)))
    if (tmp_path / relative["data"]).resolve() == (files / "pairs.jsonl").resolve():
        assert run_in_process(files, "runs/a", steps=2, **relative)[0].mode == "done"


def test_a_stored_dtype_is_not_a_model_difference(files, tmp_path):
    run_in_process(files, tmp_path, steps=2)
    run_file = tmp_path / "run.json"
    info = json.loads(run_file.read_text())
    info["model_config"]["dtype"] = "float32"  # what a config.json saved by minit5 or transformers carries
    run_file.write_text(json.dumps(info))
    assert run_in_process(files, tmp_path, steps=2)[0].mode == "done"


def test_fine_tuning_onto_another_run_names_the_real_difference(files, tmp_path):
    run_in_process(files, tmp_path / "first", steps=2)
    # fine-tune the first run's model (its config.json carries "dtype") into the first run's own folder
    message = refused(files, tmp_path / "first", init=str(tmp_path / "first"), config="tiny", steps=2)
    assert message.startswith(f"{tmp_path / 'first'} holds another run (--init was None, now {tmp_path / 'first'}")
    assert "dtype" not in message and "--overwrite" in message
    message = refused(files, tmp_path / "first", task="span-corruption", data=None, text=[str(files / "corpus.txt")])
    assert "--task was seq2seq, now span-corruption" in message


def test_resume_refuses_changed_settings_and_names_them(files, tmp_path):
    run_in_process(files, tmp_path, steps=2)
    message = refused(files, tmp_path, steps=4, resume=True, lr=1e-3)
    assert message.startswith("--resume: --lr was 0.003, now 0.001; an exact resume needs the settings")
    assert "--steps" in message
    other = tmp_path.parent / "other.jsonl"
    other.write_text((files / "pairs.jsonl").read_text())
    assert "--data was" in refused(files, tmp_path, steps=4, resume=True, data=str(other))
    for name, value in (("grad_accum", 2), ("dtype", "bfloat16"), ("dropout", 0.1), ("seed", 1)):
        assert f"--{name.replace('_', '-')} was" in refused(files, tmp_path, steps=4, resume=True, **{name: value})
    # what does not change the training arithmetic may change
    trainer, _ = run_in_process(files, tmp_path, steps=4, resume=True, eval_data=str(files / "dev.jsonl"),
                                log_every=2, keep_checkpoints=3)
    assert trainer.step == 4
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["settings"]["lr"] == 3e-3 and info["settings"]["eval_data"] == str(files / "dev.jsonl")


def test_killed_before_the_first_checkpoint_both_ways_say_overwrite(files, tmp_path):
    run_in_process(files, tmp_path, steps=2)
    shutil.rmtree(tmp_path / "checkpoints")  # as a kill before the first save leaves it
    expected = f"{tmp_path} holds a run that stopped before its first checkpoint, so there is nothing to resume; " \
               f"--overwrite starts it again"
    assert refused(files, tmp_path, steps=2) == expected
    assert refused(files, tmp_path, steps=2, resume=True) == expected
    assert run_in_process(files, tmp_path, steps=2, overwrite=True)[0].step == 2


def test_overwrite_replaces_the_run(files, tmp_path):
    run_in_process(files, tmp_path, steps=1, lr=1e-3)
    (tmp_path / "checkpoints" / "marker").write_text("from the old run")
    trainer, _ = run_in_process(files, tmp_path, steps=2, overwrite=True)
    assert trainer.mode == "fresh" and sorted(losses(tmp_path)) == [1, 2]
    assert not (tmp_path / "checkpoints" / "marker").exists()
    assert json.loads((tmp_path / "run.json").read_text())["settings"]["lr"] == 3e-3


def test_keep_checkpoints_prunes_the_oldest(files, tmp_path):
    run_in_process(files, tmp_path, steps=3, save_every=1, keep_checkpoints=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step-00000002",
                                                                           "step-00000003"]


# ---------------------------------------------------------------------------------------------- Ctrl-C, closing
def test_ctrl_c_names_the_surviving_checkpoint_and_the_resume_command(files, tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    original = Trainer.train_step

    def interrupted_at_step_4(self):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted_at_step_4)
    args = argv(files, tmp_path, steps=6, save_every=2)
    with pytest.raises(SystemExit) as raised:
        train_cli.main(args)
    assert raised.value.code == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    command = "python train.py " + " ".join(args) + " --resume"
    assert last == f"interrupted; {tmp_path / 'checkpoints' / 'step-00000002'} (step 2) is the latest checkpoint; " \
                   f"continue with: {command}"
    monkeypatch.setattr(Trainer, "train_step", original)
    train_cli.main(command.split()[2:])  # the printed command works
    assert sorted(losses(tmp_path)) == [1, 2, 3, 4, 5, 6]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # the interrupted step 3 is logged once
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"the model is in {tmp_path}")


def test_ctrl_c_before_any_checkpoint(files, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Trainer, "train_step", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(SystemExit):
        train_cli.main(argv(files, tmp_path, steps=3))
    assert capsys.readouterr().err.strip().endswith(
        f"interrupted before the first checkpoint: nothing in {tmp_path} to resume; rerun with --overwrite")


def test_closing_lines(files, tmp_path, capsys):
    train_cli.main(argv(files, tmp_path, steps=2))
    assert capsys.readouterr().out.strip().splitlines()[-1] == \
        f'the model is in {tmp_path}; ask it: python generate.py --model {tmp_path} "..."'
    train_cli.main(argv(files, tmp_path, steps=2, resume=True))
    assert capsys.readouterr().out.strip().splitlines()[-1] == \
        f"{tmp_path} already holds this run, finished at step 2: nothing left to do (--resume with a larger " \
        f"--steps continues it, --overwrite starts again)"


# ---------------------------------------------------------------------------------------------- the installed command
def test_minit5_train_is_the_same_command(files, tmp_path, monkeypatch):
    """pyproject.toml's console script minit5-train (what a non-editable pip install gives) runs the main that
    train.py runs, and its resume hint names it."""
    import importlib
    import re
    import sys
    entry = re.search(r'^minit5-train = "([\w.]+):(\w+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert entry, "pyproject.toml [project.scripts] should define minit5-train"
    assert getattr(importlib.import_module(entry.group(1)), entry.group(2)) is train_cli.main
    run_in_process(files, tmp_path, steps=1)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/minit5-train", "--out", str(tmp_path)])
    from minit5.train_cli import interrupted, parse_args
    assert interrupted(parse_args(), None).endswith(f"continue with: minit5-train --out {tmp_path} --resume")
