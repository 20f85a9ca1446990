"""The trainer on tiny models: exact resume after SIGKILL, gradient accumulation, the objectives, the schedules,
and clear errors before training starts. (torchrun, DDP and FSDP against one process: tests/test_fsdp.py.)"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from minit5 import T5, T5Config
from minit5.demo import language
from minit5.trainer import TrainConfig, Trainer, TrainError, lr_factor, parameter_groups
from trainer_runs import cli, losses, run_in_process, settings

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- resume
def test_sigkill_then_resume_is_bit_identical_to_a_straight_run(files, tmp_path):
    steps, half = 40, 20
    straight = tmp_path / "straight"
    run_in_process(files, straight, steps=steps, save_every=half)

    killed = tmp_path / "killed"
    command = [sys.executable, str(ROOT / "train.py"), *cli(settings(files, killed, steps=steps, save_every=half))]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics, deadline = killed / "metrics.jsonl", time.time() + 120
    while time.time() < deadline and child.poll() is None:
        if metrics.exists() and max(losses(killed) or {0: 0}) > half:  # past the checkpoint, mid-run
            break
        time.sleep(0.002)
    assert child.poll() is None, "the run ended before it could be killed; the test needs a slower run"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert (killed / "checkpoints" / "latest").read_text().strip() == f"step-{half:08d}"
    assert not (killed / "checkpoints" / f"step-{steps:08d}").exists()

    resumed = subprocess.run([sys.executable, str(ROOT / "train.py"),
                              *cli(settings(files, killed, steps=steps, save_every=half, resume=True))],
                             cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert sorted(a) == sorted(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # and the losses logged after the resume are those of the straight run
    assert all(losses(killed)[s] == losses(straight)[s] for s in range(half + 1, steps + 1))


def test_resume_refuses_a_different_model_config(files, tmp_path):
    run_in_process(files, tmp_path, steps=2)
    other = T5Config.from_json_file(files / "tiny.json")
    other.d_ff = 96
    other.save(tmp_path.parent / "other.json")
    with pytest.raises(TrainError, match=r"holds another run \(--config was .*tiny.json, now .*other.json; "
                                         r"model config differs in d_ff\)"):
        Trainer(TrainConfig(**settings(files, tmp_path, steps=4, resume=True,
                                       config=str(tmp_path.parent / "other.json"))))


def test_finished_run_is_not_redone_and_unfinished_needs_resume(files, tmp_path):
    run_in_process(files, tmp_path, steps=2)
    trainer, result = run_in_process(files, tmp_path, steps=2)
    assert trainer.mode == "done" and result == {}
    with pytest.raises(TrainError, match="already holds a run; pass --resume"):
        Trainer(TrainConfig(**settings(files, tmp_path, steps=4, lr=1e-3)))
    trainer, _ = run_in_process(files, tmp_path, steps=4, resume=True)
    assert trainer.step == 4


# ---------------------------------------------------------------------------------------------- micro-batches
def test_gradient_accumulation_gives_the_same_steps(files, tmp_path):
    run_in_process(files, tmp_path / "a", steps=4)
    run_in_process(files, tmp_path / "b", steps=4, grad_accum=4)
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert all(abs(a[s] - b[s]) <= 1e-5 for s in a)


# ---------------------------------------------------------------------------------------------- objectives
def test_seq2seq_learns_and_saves_a_model_transformers_loads(files, tmp_path):
    trainer, result = run_in_process(files, tmp_path, steps=30, eval_data=str(files / "dev.jsonl"), eval_every=30)
    curve = losses(tmp_path)
    assert curve[30] < 0.6 * curve[1]
    assert set(result) == {"eval_loss", "exact_match", "rouge1", "rouge2", "rougeL"}
    assert 0 <= result["exact_match"] <= 1
    from transformers import T5ForConditionalGeneration
    hf = T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    ours = T5.from_pretrained(tmp_path)
    ids = torch.tensor([[50, 60, 70, 1]])
    with torch.no_grad():
        diff = (hf(input_ids=ids, decoder_input_ids=ids, use_cache=False).logits - ours(ids, decoder_input_ids=ids)[0])
    assert diff.abs().max().item() <= 1e-4
    assert (tmp_path / "tokenizer_config.json").exists() and (tmp_path / "run.json").exists()


def test_span_corruption_trains(files, tmp_path):
    trainer, result = run_in_process(files, tmp_path, task="span-corruption", data=None,
                                     text=[str(files / "corpus.txt")], inputs_length=32, steps=8, eval_every=8)
    curve = losses(tmp_path)
    assert curve[8] < curve[1]
    assert "eval_loss" in result and "exact_match" not in result


def test_demo_trains_and_reports_exact_match_per_language(files, tmp_path):
    """The demo task through the trainer (a tiny model, 2 steps). To check the per-language bookkeeping, the
    model's generate is replaced by one that answers every English question right and every Chinese one wrong."""
    trainer = Trainer(TrainConfig(**settings(files, tmp_path, task="demo", data=None, steps=2, eval_every=2)),
                      log=lambda m: None)
    answers = {tuple(source): target for source, target in trainer.eval_set}  # input ids -> target ids
    english = {tuple(source) for (source, _), lang in zip(trainer.eval_set, trainer.eval_groups) if lang == "en"}
    assert 0 < len(english) < len(trainer.eval_set) == len(trainer.eval_groups) == 8  # eval_examples=8
    assert all(group == language(text) for group, (text, _) in zip(trainer.eval_groups, trainer.eval_pairs))

    def generate(input_ids, attention_mask, **options):
        rows = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
            source = tuple(i for i, m in zip(ids, mask) if m)
            rows.append([0] + (answers[source] if source in english else [trainer.tokenizer.eos_id]))
        width = max(map(len, rows))
        return torch.tensor([row + [0] * (width - len(row)) for row in rows])

    trainer.model.generate = generate
    result = trainer.train()
    assert result["exact_match_en"] == 1.0 and result["exact_match_zh"] == 0.0
    assert result["exact_match"] == pytest.approx(len(english) / 8)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"exact_match_en", "exact_match_zh"} <= set(logged[-1])


@pytest.mark.parametrize("overrides", [dict(optimizer="adafactor", lr=1e-2), dict(dtype="bfloat16"),
                                       dict(gradient_checkpointing=True), dict(schedule="inverse-sqrt"),
                                       dict(group_by_length=True)])
def test_options_run_and_learn(files, tmp_path, overrides):
    run_in_process(files, tmp_path, steps=8, **overrides)
    curve = losses(tmp_path)
    assert curve[8] < curve[1], overrides


def test_gradient_checkpointing_changes_nothing(files, tmp_path):
    run_in_process(files, tmp_path / "plain", steps=3)
    run_in_process(files, tmp_path / "ckpt", steps=3, gradient_checkpointing=True)
    assert losses(tmp_path / "plain") == losses(tmp_path / "ckpt")


# ---------------------------------------------------------------------------------------------- pieces
def test_schedules():
    cfg = TrainConfig(steps=100, warmup=10, schedule="cosine")
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0) and lr_factor(55, cfg) == pytest.approx(0.5)
    assert lr_factor(100, cfg) == pytest.approx(0.0, abs=1e-12)
    cfg.schedule = "linear"
    assert lr_factor(55, cfg) == pytest.approx(0.5)
    cfg.schedule = "constant"
    assert lr_factor(99, cfg) == 1.0
    cfg.schedule = "inverse-sqrt"  # T5: 1/sqrt(max(step, warmup)), normalised to 1 at the end of warmup
    assert lr_factor(9, cfg) == pytest.approx(1.0) and lr_factor(39, cfg) == pytest.approx(0.5)


def test_weight_decay_skips_norms_and_position_biases():
    model = T5(T5Config(vocab_size=40, d_model=16, d_ff=32, d_kv=4, num_heads=4, num_layers=1,
                        feed_forward_proj="gated-gelu", tie_word_embeddings=False))
    decay, no_decay = parameter_groups(model, 0.1, lr=1e-3)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.dim() == 2 and "position_bias" not in names[id(p)] for p in decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} == {
        n for n, p in model.named_parameters() if "norm" in n or "position_bias" in n}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0


def test_position_bias_tables_get_their_own_learning_rate():
    model = T5(T5Config(vocab_size=40, d_model=16, d_ff=32, d_kv=4, num_heads=4, num_layers=1,
                        feed_forward_proj="gated-gelu", tie_word_embeddings=False))
    decay, no_decay, tables = parameter_groups(model, 0.1, lr=1e-3, position_bias_lr_scale=30)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in tables["params"]} == {n for n in names.values() if "position_bias" in n} != set()
    assert tables["lr"] == pytest.approx(0.03) and tables["weight_decay"] == 0.0
    assert not any("position_bias" in names[id(p)] for p in decay["params"] + no_decay["params"])
    assert "lr" not in decay and "lr" not in no_decay  # the optimizer's --lr


def test_the_trainer_keeps_the_position_bias_ratio_through_the_schedule(files, tmp_path):
    trainer, _ = run_in_process(files, tmp_path, steps=3, schedule="constant")  # a fresh model: 30x by default
    matrices, norms, tables = trainer.optimizer.param_groups
    assert trainer.cfg.position_bias_lr_scale == 30.0 and len(tables["params"]) == 2  # encoder's and decoder's
    assert tables["lr"] == pytest.approx(30 * matrices["lr"]) and matrices["lr"] == norms["lr"] > 0
    assert json.loads((tmp_path / "run.json").read_text())["settings"]["position_bias_lr_scale"] == 30.0


def test_a_run_from_before_the_position_bias_setting_resumes_at_scale_1(files, tmp_path):
    run_in_process(files, tmp_path, steps=2, position_bias_lr_scale=1.0)
    info = json.loads((tmp_path / "run.json").read_text())
    del info["settings"]["position_bias_lr_scale"]  # run.json as minit5 wrote it before the setting existed
    (tmp_path / "run.json").write_text(json.dumps(info))
    with pytest.raises(TrainError, match=r"--position-bias-lr-scale was 1.0, now 30.0"):
        Trainer(TrainConfig(**settings(files, tmp_path, steps=4, resume=True)))
    trainer, _ = run_in_process(files, tmp_path, steps=4, resume=True, position_bias_lr_scale=1.0)
    assert trainer.step == 4 and len(trainer.optimizer.param_groups) == 2


@pytest.mark.parametrize("init,given,expected", [(None, None, 30.0), ("some/model", None, 1.0), (None, 5.0, 5.0),
                                                 ("some/model", 5.0, 5.0)])
def test_position_bias_lr_scale_default_depends_on_init(init, given, expected):
    from minit5.train_config import filled_in
    assert filled_in(TrainConfig(init=init, position_bias_lr_scale=given)).position_bias_lr_scale == expected


# ---------------------------------------------------------------------------------------------- bad settings
@pytest.mark.parametrize("overrides,message", [
    (dict(batch_size=0), "--batch-size must be at least 1"),
    (dict(lr=0.0), "--lr must be a positive number"),
    (dict(lr=-1e-3), "--lr must be a positive number"),
    (dict(position_bias_lr_scale=0.0), "--position-bias-lr-scale must be a positive number"),
    (dict(steps=0), "--steps must be at least 1"),
    (dict(optimizer="sgd"), "--optimizer must be one of adamw, adafactor"),
    (dict(schedule="wobbly"), "--schedule must be one of"),
    (dict(data=None), "--task seq2seq needs --data"),
    (dict(data="/nonexistent/pairs.jsonl"), "data file /nonexistent/pairs.jsonl does not exist"),
    (dict(task="span-corruption", data=None), "--task span-corruption needs --text"),
    (dict(task="demo", init="some/model"), "the demo trains a fresh model"),
    (dict(config="huge"), "--config 'huge' is not a known model size"),
    (dict(dtype="float16"), "--dtype must be float32 or bfloat16"),
    (dict(resume=True), "holds no run to resume"),
])
def test_bad_settings_fail_before_training(files, tmp_path, overrides, message):
    with pytest.raises(TrainError, match=message):
        Trainer(TrainConfig(**settings(files, tmp_path / "out", **overrides)))
    assert not (tmp_path / "out" / "metrics.jsonl").exists()


def test_out_dir_with_unrelated_files(files, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TrainError, match="already holds files that are not a minit5 run"):
        Trainer(TrainConfig(**settings(files, tmp_path)))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_malformed_jsonl_names_file_and_line(files, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "a", "target": "b"}\n{"input": "c", "target": \n')
    with pytest.raises(TrainError, match=r"bad.jsonl:2"):
        Trainer(TrainConfig(**settings(files, tmp_path / "out", data=str(bad))))


def test_command_line_errors_are_one_line(files, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), "--batch-size", "0", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip() == "error: --batch-size must be at least 1, got 0"
