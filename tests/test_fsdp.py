"""Several processes under torchrun (gloo on CPU): DistributedDataParallel and FSDP (--fsdp) against one process.

Starting torchrun and importing torch in each process costs more than a tiny run, so the 2-process runs of this
file share one launch: tests/fsdp_runs.py runs them one after another in the same two processes, the last one
SIGKILLed while it saves. The other launches are the ones a test is about: that run's resume on two "nodes" (two
torchrun launchers on 127.0.0.1 meeting through the c10d rendezvous), and a resume on one process instead of two.
Ports are free ones (--standalone, or one found free for the rendezvous): other test runs may share the machine."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from trainer_runs import cli, losses, settings

from minit5 import T5Config
from minit5.run_folder import read_metrics
from minit5.trainer import TrainConfig, Trainer, TrainError

ROOT = Path(__file__).resolve().parents[1]
BF16 = 0.02  # relative, bf16 against fp32 (bf16 keeps 8 significant bits: a rounding of up to 0.4% per number)
TOLERANCE = 1e-5  # relative, fp32: per logged loss and grad norm, and per weight tensor (norm of the difference)
# a step that clips (the logged grad norms are 2-3), with gradient accumulation, and an evaluation with generate
COMMON = dict(steps=4, save_every=2, grad_accum=2, clip=0.05, eval_every=4)


def torchrun(*args, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_same_weights(a_file, b_file, tolerance=TOLERANCE):
    a, b = load_file(str(a_file)), load_file(str(b_file))
    assert sorted(a) == sorted(b) and a
    for key in a:
        assert a[key].dtype == b[key].dtype == torch.float32, key
        relative = ((a[key] - b[key]).norm() / a[key].norm()).item()
        assert relative <= tolerance, (key, relative)


def assert_same_log(a_out, b_out, tolerance=TOLERANCE):
    a, b = read_metrics(Path(a_out) / "metrics.jsonl"), read_metrics(Path(b_out) / "metrics.jsonl")
    assert [sorted(r) for r in a] == [sorted(r) for r in b] and a
    for row_a, row_b in zip(a, b):
        for key in ("loss", "grad_norm", "eval_loss", "exact_match", "rougeL"):
            if key in row_a:
                assert abs(row_a[key] - row_b[key]) <= tolerance * max(abs(row_a[key]), 1e-3), (row_a, row_b)


@pytest.fixture(scope="module")
def runs(files, tmp_path_factory):
    """One process, in this one; then DDP and FSDP, 2 processes each, in one torchrun launch that ends with a
    run killed while saving (resumed by test_killed_while_saving_then_resumed_on_two_nodes_is_bit_identical)."""
    out = tmp_path_factory.mktemp("processes")
    T5Config(vocab_size=384, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=2,
             feed_forward_proj="relu", tie_word_embeddings=True, dropout_rate=0.0).save(out / "tied.json")
    dev = str(files / "dev.jsonl")
    lora = dict(init=str(out / "single"), config="tiny", lora_r=4, lora_alpha=8, lora_targets="q,v,wo", lr=1e-2,
                merge_lora=True, steps=3, save_every=3)
    once = dict(COMMON, save_every=1000)  # one checkpoint, at the end
    single = [settings(files, out / "single", eval_data=dev, **COMMON),
              settings(files, out / "tied", config=str(out / "tied.json"), **once),
              settings(files, out / "lora", grad_accum=2, clip=0.05, **lora)]  # its base: the "single" run
    for chosen in single:
        Trainer(TrainConfig(**chosen), log=lambda m: None).train()

    sharded = [
        dict(settings=settings(files, out / "ddp", eval_data=dev, **COMMON)),
        dict(settings=settings(files, out / "fsdp", eval_data=dev, fsdp=True, **COMMON)),
        # T5 v1.0's shape (tied embedding, ReLU), with gradient checkpointing (which changes no number)
        dict(settings=settings(files, out / "fsdp-tied", config=str(out / "tied.json"), fsdp=True,
                               gradient_checkpointing=True, **once)),
        dict(settings=settings(files, out / "fsdp-lora", fsdp=True, grad_accum=2, clip=0.05, **lora)),
        dict(settings=settings(files, out / "fsdp-bf16", dtype="bfloat16", fsdp=True, **once),
             record_dtypes=str(out / "bf16-dtypes.json")),
        # a straight run, and the same run SIGKILLed in its step-4 checkpoint, after writing its shards
        dict(settings=random_settings(files, out / "fsdp-dropout")),
        dict(settings=random_settings(files, out / "killed"), die_at_save=4),
    ]
    result = torchrun("--standalone", "--nproc_per_node", 2, ROOT / "tests" / "fsdp_runs.py", json.dumps(sharded))
    assert result.returncode != 0 and "Signal 9 (SIGKILL)" in result.stderr, result.stderr[-4000:]
    assert (out / "fsdp-dropout" / "model.safetensors").exists()  # every run before the killed one finished
    return out


def random_settings(files, out, **overrides):
    """Dropout: each process draws its own masks, so an exact resume must restore every process's generator."""
    return settings(files, out, fsdp=True, dropout=0.1, steps=4, save_every=2, grad_accum=2, **overrides)


# ---------------------------------------------------------------------------------------------- the same numbers
def test_ddp_and_fsdp_match_one_process(runs):
    """The same losses, gradient norms (before clipping at 0.05: the gradient's scale), evaluation (held-out loss
    and greedy answers, generated under FSDP with the root's weights gathered) and final weights."""
    for name in ("ddp", "fsdp"):
        assert_same_log(runs / "single", runs / name)
        assert_same_weights(runs / "single" / "model.safetensors", runs / name / "model.safetensors")
    assert sorted(losses(runs / "fsdp")) == [1, 2, 3, 4]
    assert all(r["grad_norm"] > 40 * 0.05 for r in read_metrics(runs / "fsdp" / "metrics.jsonl") if "loss" in r)
    # rank 0 alone wrote the log: 4 steps and one evaluation
    assert len((runs / "fsdp" / "metrics.jsonl").read_text().splitlines()) == 5


def test_fsdp_checkpoint_is_the_single_process_folder_plus_shards(runs):
    from transformers import T5ForConditionalGeneration
    checkpoint = runs / "fsdp" / "checkpoints" / "step-00000004"
    single = runs / "single" / "checkpoints" / "step-00000004"
    assert sorted(p.name for p in checkpoint.iterdir()) == sorted([p.name for p in single.iterdir()] + ["sharded"])
    assert sorted(p.name for p in (checkpoint / "sharded").iterdir()) == [".metadata", "__0_0.distcp",
                                                                          "__1_0.distcp"]
    assert "optimizer" not in torch.load(checkpoint / "trainer_state.pt", weights_only=True)  # it is sharded
    assert not (runs / "fsdp" / "sharded").exists()  # the top of the run folder is for people, not for --resume
    ours = dict(T5ForConditionalGeneration.from_pretrained(runs / "fsdp").named_parameters())
    theirs = dict(T5ForConditionalGeneration.from_pretrained(runs / "single").named_parameters())
    assert sorted(ours) == sorted(theirs)
    for name, p in ours.items():
        assert ((p - theirs[name]).norm() / theirs[name].norm()).item() <= TOLERANCE, name


def test_tied_embedding_survives_sharding(runs):
    """T5 v1.0: one matrix is the embedding and the output layer. The FSDP run trains it as one (the same numbers
    as one process), saves it once, and transformers ties it again."""
    from transformers import T5ForConditionalGeneration
    assert_same_log(runs / "tied", runs / "fsdp-tied")
    assert_same_weights(runs / "tied" / "model.safetensors", runs / "fsdp-tied" / "model.safetensors")
    with safe_open(str(runs / "fsdp-tied" / "model.safetensors"), "pt") as f:
        assert "shared.weight" in f.keys() and "lm_head.weight" not in f.keys()
    hf = T5ForConditionalGeneration.from_pretrained(runs / "fsdp-tied")
    assert hf.lm_head.weight.data_ptr() == hf.shared.weight.data_ptr()


def test_lora_adapter_trains_sharded(runs):
    """--fsdp with --lora-r: the adapters are sharded with their block; the adapter file and the merged model
    are the single-process run's, and the checkpoint's shards hold the adapter and its optimizer state alone."""
    assert_same_log(runs / "lora", runs / "fsdp-lora")
    assert_same_weights(runs / "lora" / "adapter_model.safetensors", runs / "fsdp-lora" / "adapter_model.safetensors")
    assert_same_weights(runs / "lora" / "merged" / "model.safetensors",
                        runs / "fsdp-lora" / "merged" / "model.safetensors")
    assert not (runs / "fsdp-lora" / "model.safetensors").exists()
    from torch.distributed.checkpoint import FileSystemReader
    shards = FileSystemReader(runs / "fsdp-lora" / "checkpoints" / "step-00000003" / "sharded").read_metadata()
    weights = [k for k in shards.state_dict_metadata if k.startswith("model.")]
    moments = [k for k in shards.state_dict_metadata if k.startswith("optimizer.state.")]
    assert len(weights) == 2 * (2 * 3 + 2 * 5) and all(".lora_" in k for k in weights + moments)  # no base
    assert len(moments) == 3 * len(weights)  # AdamW's step, exp_avg, exp_avg_sq


def test_bf16_mixed_precision_on_cpu(runs):
    """gloo moves bf16 on CPU: under --fsdp --dtype bfloat16 each block computes with its weights gathered in
    bf16 (FSDP's MixedPrecisionPolicy) while the shards, gradient sums and optimizer stay fp32 (and are saved
    so). Not the numbers of fp32, nor of one process's bf16 autocast (which casts per operation), but close."""
    assert json.loads((runs / "bf16-dtypes.json").read_text()) == ["torch.bfloat16"]
    sharded, single = losses(runs / "fsdp-bf16"), losses(runs / "single")
    assert sharded != single and all(abs(sharded[s] - single[s]) <= BF16 * single[s] for s in single)
    assert_same_weights(runs / "single" / "model.safetensors", runs / "fsdp-bf16" / "model.safetensors", BF16)


# ---------------------------------------------------------------------------------------------- resume
def test_killed_while_saving_then_resumed_on_two_nodes_is_bit_identical(files, runs):
    """SIGKILL in the middle of step 4's checkpoint (its shards written, its model files not), then --resume on
    two "nodes": two torchrun launchers of one process each, meeting at a c10d rendezvous on 127.0.0.1."""
    killed = runs / "killed"
    assert (killed / "checkpoints" / "latest").read_text().strip() == "step-00000002"
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == [".tmp-step-00000004", "latest",
                                                                          "step-00000002"]
    assert sorted(p.name for p in (killed / "checkpoints" / ".tmp-step-00000004").iterdir()) == ["sharded"]

    port, command = free_port(), [ROOT / "train.py", *cli(random_settings(files, killed, resume=True))]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", f"test-{os.getpid()}"]
    nodes = [subprocess.Popen([*launcher, *map(str, command)], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}) for _ in range(2)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert all(node.returncode == 0 for node in nodes), [err[-3000:] for _, err in outputs]
    assert any(f"resumed from {killed / 'checkpoints' / 'step-00000002'} at step 2" in out for out, _ in outputs)
    straight = runs / "fsdp-dropout"
    a, b = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert sorted(a) == sorted(b) and all(torch.equal(a[key], b[key]) for key in a)
    assert losses(killed) == losses(straight)  # every step, the two resumed ones included, bit for bit
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["latest", "step-00000002", "step-00000004"]


def test_resume_on_another_number_of_processes(files, runs, tmp_path):
    """A 2-process FSDP run resumed from its step-2 checkpoint on 1 process: torch.distributed.checkpoint cuts the
    saved shards anew; the run ends where the unbroken runs end (to rounding, not bit for bit, and it says so)."""
    rewound = tmp_path / "rewound"
    shutil.copytree(runs / "fsdp", rewound)  # as if killed after step 2's checkpoint
    shutil.rmtree(rewound / "checkpoints" / "step-00000004")
    (rewound / "checkpoints" / "latest").write_text("step-00000002\n")
    chosen = settings(files, rewound, eval_data=str(files / "dev.jsonl"), fsdp=True, resume=True, **COMMON)
    result = torchrun("--standalone", "--nproc_per_node", 1, ROOT / "train.py", *cli(chosen))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the run was on 2 process(es), now 1" in result.stdout
    assert_same_log(runs / "single", rewound)
    assert_same_weights(runs / "single" / "model.safetensors", rewound / "model.safetensors")


def test_fsdp_run_resumed_without_fsdp_is_refused(files, runs):
    chosen = settings(files, runs / "fsdp", eval_data=str(files / "dev.jsonl"), resume=True, **{**COMMON, "steps": 6})
    with pytest.raises(TrainError, match=r"^--resume: --fsdp was True, now False; an exact resume needs the settings"):
        Trainer(TrainConfig(**chosen))


@pytest.mark.parametrize("overrides,message", [
    (dict(fsdp=True), r"^--fsdp shards the model over the processes torchrun starts: run torchrun"),
    (dict(fsdp=True, optimizer="adafactor"), r"^--optimizer adafactor does not work with --fsdp"),
])
def test_fsdp_settings_that_cannot_work(files, tmp_path, overrides, message, monkeypatch):
    if overrides.get("optimizer"):
        monkeypatch.setenv("RANK", "0")  # as under torchrun (refused before the process group is joined)
    with pytest.raises(TrainError, match=message):
        Trainer(TrainConfig(**settings(files, tmp_path / "out", **overrides)))
