"""The gradient of one training step, compared tensor by tensor with transformers' mean-loss gradient on the same
global batch: one process, gradient accumulation, and two processes under torchrun. Comparing losses cannot catch
a wrong gradient scale (AdamW and clipping hide a constant factor); comparing the .grad tensors does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from grad_step import gradients_of_one_step
from trainer_runs import settings
from transformers import T5ForConditionalGeneration

from minit5 import data as D
from minit5.checkpoint import hf_name

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5  # |grad - reference| / |reference| per parameter tensor (norms), fp32


def step_settings(files, out, **overrides):
    # clip 0: the gradients reach the optimizer exactly as backward left them
    return settings(files, out, clip=0.0, **overrides)


@pytest.fixture(scope="module")
def reference(files, tmp_path_factory):
    """transformers' gradient of the mean token loss over step 1's global batch, from the trainer's initial weights;
    and the single-process trainer's own gradients."""
    folder = tmp_path_factory.mktemp("grad")
    grads, trainer = gradients_of_one_step(step_settings(files, folder / "one"))
    # the weights before the step: a fresh trainer with the same seed builds the same model
    from minit5.trainer import TrainConfig, Trainer
    fresh = Trainer(TrainConfig(**step_settings(files, folder / "fresh")), log=lambda m: None)
    fresh.model.save_pretrained(folder / "initial")
    hf = T5ForConditionalGeneration.from_pretrained(folder / "initial", attn_implementation="eager")
    hf.train()  # as the trainer's model (dropout is 0 in this config)
    batch = next(D.BatchSampler(len(fresh.train_set), 8, 0))
    examples = D.fetch(fresh.train_set, batch.indices, batch.epoch)
    tensors = D.collate(examples, 0)
    hf(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"], labels=tensors["labels"],
       use_cache=False).loss.backward()
    hf_grads = dict(hf.named_parameters())
    ref = {name: hf_grads[hf_name(name, fresh.model.config)].grad for name in grads}
    return ref, grads, folder


def assert_same_gradients(grads, ref):
    assert sorted(grads) == sorted(ref) and len(ref) >= 20
    for name, expected in ref.items():
        assert expected.norm() > 0, name
        relative = ((grads[name] - expected).norm() / expected.norm()).item()
        assert relative <= TOLERANCE, (name, relative)


def test_one_process_gradient_is_transformers_mean_loss_gradient(reference):
    ref, grads, _ = reference
    assert_same_gradients(grads, ref)


def test_gradient_accumulation_gives_the_same_gradient_in_four_forward_passes(files, reference, tmp_path,
                                                                              monkeypatch):
    ref, _, _ = reference
    from minit5 import T5
    seen, forward = [], T5.forward

    def counted(self, *args, **kwargs):  # examples per forward pass (a packed row numbers its examples)
        mask = kwargs["attention_mask"]
        seen.append(int(mask.amax(dim=1).sum()) if kwargs.get("packed") else mask.shape[0])
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(T5, "forward", counted)
    grads, trainer = gradients_of_one_step(step_settings(files, tmp_path, grad_accum=4))
    assert seen == [2, 2, 2, 2]  # four micro-batches of 2 examples make the global batch of 8
    assert_same_gradients(grads, ref)


def test_two_processes_give_the_same_gradient(files, reference, tmp_path):
    """torchrun, 2 processes (gloo), each accumulating 2 micro-batches: the all-reduced gradient is the same."""
    ref, _, _ = reference
    out = tmp_path / "grads.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(ROOT / "tests" / "grad_step.py"),
                             json.dumps(step_settings(files, tmp_path / "run", grad_accum=2)), str(out)],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_gradients(torch.load(out, weights_only=True), ref)
