"""The trainer counts its work (minit5/flops.py): FLOPs a step and in all in run.json, FLOP/s and MFU in
metrics.jsonl, the expected time after the first steps, and a warning where bf16 would be slow."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import minit5.trainer as trainer_module
from minit5 import data as D
from minit5.flops import training_flops
from minit5.run_folder import read_metrics
from minit5.trainer import EXPECT_AFTER, TrainConfig, Trainer, minutes_and_seconds
from trainer_runs import cli, settings

ROOT = Path(__file__).resolve().parents[1]


def test_run_json_and_metrics_count_the_work(files, tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(TrainConfig(**settings(files, out, steps=4)), log=lambda m: None)
    trainer.train()
    work = json.loads((out / "run.json").read_text())["work"]
    examples = D.fetch(trainer.train_set, range(len(trainer.train_set)), 0)
    every = training_flops(trainer.model.config, [len(s) for s, _ in examples], [len(t) for _, t in examples])
    mean_step = every / len(examples) * trainer.cfg.batch_size  # over the whole training set
    assert abs(work["flops_per_step"] - mean_step) <= 0.05 * mean_step  # estimated from 256 spread examples
    assert work["flops_to_do"] == work["flops_per_step"] * 4 and work["matmul_peak_flops_per_s"] > 1e8
    lines = [r for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert len(lines) == 4
    for line in lines:
        assert line["gflops_per_s"] > 0 and 0 < line["mfu"] < 2
        # MFU is FLOP/s over the measured peak: the two figures of a line agree
        assert abs(line["mfu"] - line["gflops_per_s"] * 1e9 / work["matmul_peak_flops_per_s"]) <= 1e-3


def test_the_command_says_the_work_and_the_expected_time(files, tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "train.py"),
                          *cli(settings(files, tmp_path / "run", steps=EXPECT_AFTER + 2))],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    said = run.stdout + run.stderr
    assert "GFLOP a step" in said and "TFLOP in all" in said and "GFLOP/s a process" in said
    assert "for the other 2 steps on this machine" in said


def test_bf16_on_a_cpu_without_bf16_arithmetic_is_said_to_be_slower(files, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "cpu_flags", lambda: {"avx2": True})  # an AVX2-only CPU
    said = []
    Trainer(TrainConfig(**settings(files, tmp_path / "run", steps=1, dtype="bfloat16")), log=said.append).train()
    assert any(line.startswith("warning: this CPU has no bf16 arithmetic") for line in said)
    monkeypatch.setattr(trainer_module, "cpu_flags", lambda: {"avx2": True, "amx_bf16": True})
    said.clear()
    Trainer(TrainConfig(**settings(files, tmp_path / "run2", steps=1, dtype="bfloat16")), log=said.append).train()
    assert not any("bf16 arithmetic" in line for line in said)


@pytest.mark.parametrize("seconds, said", [(159.4, "2 min 39 s"), (219, "3 min 39 s"), (59.6, "1 min 0 s"),
                                           (3.2, "0 min 3 s")])
def test_the_expected_time_reads_as_minutes_and_seconds(seconds, said):
    assert minutes_and_seconds(seconds) == said
