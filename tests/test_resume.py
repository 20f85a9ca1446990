"""Resume where randomness matters: dropout, span corruption, bf16 autocast and gradient accumulation at once, with
the run killed in the middle of a save. Without the restore of the random number generators, the dropout masks
after the resume differ and so do the weights: this test fails (tried by removing set_rng_state)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trainer_runs import losses, run_in_process, settings

import minit5.run_folder as run_folder
from minit5.run_folder import read_metrics
from minit5.trainer import TrainConfig, Trainer


def random_settings(files, out, **overrides):
    chosen = dict(task="span-corruption", data=None, text=[str(files / "corpus.txt")], inputs_length=24, dropout=0.2,
                  dtype="bfloat16", grad_accum=2, steps=4, save_every=2, batch_size=4)
    return settings(files, out, **{**chosen, **overrides})


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not caught by `except Exception`)."""


def test_kill_during_a_save_then_resume_is_bit_identical(files, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    Trainer(TrainConfig(**random_settings(files, straight)), log=lambda m: None).train()

    # the run dies inside its second save (step 4): the temporary folder is written, not yet renamed
    killed = tmp_path / "killed"
    saves = {"n": 0}
    fsync_tree = run_folder.fsync_tree

    def die_in_second_save(folder):
        saves["n"] += 1
        if saves["n"] == 2:
            raise Killed
        fsync_tree(folder)

    monkeypatch.setattr(run_folder, "fsync_tree", die_in_second_save)
    with pytest.raises(Killed):
        Trainer(TrainConfig(**random_settings(files, killed)), log=lambda m: None).train()
    monkeypatch.setattr(run_folder, "fsync_tree", fsync_tree)
    assert (killed / "checkpoints" / ".tmp-step-00000004" / "trainer_state.pt").exists()
    assert (killed / "checkpoints" / "latest").read_text().strip() == "step-00000002"
    assert [r["step"] for r in read_metrics(killed / "metrics.jsonl") if "loss" in r] == [1, 2, 3, 4]

    logged = []
    resumed = Trainer(TrainConfig(**random_settings(files, killed, resume=True)), log=logged.append)
    assert resumed.step == 2
    assert f"resumed from {killed / 'checkpoints' / 'step-00000002'} at step 2" in logged
    resumed.train()

    a, b = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert sorted(a) == sorted(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the log holds each step once, with the straight run's losses; the stale temporary folder is gone
    rows = [r for r in read_metrics(killed / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["loss"] for r in rows] == [r["loss"] for r in read_metrics(straight / "metrics.jsonl") if "loss" in r]
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["latest", "step-00000002", "step-00000004"]


def test_bf16_autocast_is_active_in_the_matrix_products(files, tmp_path, monkeypatch):
    seen = []
    linear = torch.nn.functional.linear

    def recording(x, weight, *args, **kwargs):
        out = linear(x, weight, *args, **kwargs)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.functional, "linear", recording)
    trainer = Trainer(TrainConfig(**random_settings(files, tmp_path, steps=1)), log=lambda m: None)
    trainer.train_step()
    assert seen and all(dtype == torch.bfloat16 for dtype in seen), set(seen)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # the weights stay fp32


def test_metrics_reader_never_returns_half_a_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"step": 1, "loss": 2.5}) + "\n" + '{"step": 2, "lo')  # a write in progress
    assert read_metrics(path) == [{"step": 1, "loss": 2.5}]
    assert read_metrics(tmp_path / "missing.jsonl") == []


def test_loss_plot_draws_each_step_once(tmp_path, monkeypatch):
    rows = [dict(step=s, loss=1.0 / s) for s in (1, 2, 3, 2, 3, 4)]  # a log with steps 2 and 3 repeated
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    import matplotlib.axes
    drawn = []
    plot = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", lambda self, *a, **k: drawn.append(a) or plot(self, *a, **k))
    run_folder.plot_metrics(Path(tmp_path))
    assert list(drawn[0][0]) == [1, 2, 3, 4]


def test_compile_smoke(files, tmp_path, monkeypatch):
    """--compile wraps the model in torch.compile; the run gives the uncompiled losses and a normal saved model.
    The test compiles with the aot_eager backend (graph capture and autograd, no C++ code generation), which keeps
    it fast and independent of a compiler on the machine; the inductor default is timed by
    docs/scripts/compile_speed.py."""
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compile_(model, backend="aot_eager", **kw))
    run_in_process(files, tmp_path / "plain", steps=2)
    trainer, _ = run_in_process(files, tmp_path / "compiled", steps=2, compile=True)
    assert hasattr(trainer.wrapped, "_orig_mod")  # really compiled
    plain, compiled = losses(tmp_path / "plain"), losses(tmp_path / "compiled")
    assert all(abs(plain[s] - compiled[s]) <= 1e-5 for s in plain)
    assert sorted(load_file(tmp_path / "compiled" / "model.safetensors")) == \
        sorted(load_file(tmp_path / "plain" / "model.safetensors"))
