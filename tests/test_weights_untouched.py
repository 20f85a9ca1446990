"""generate leaves the model as it found it: every parameter's and buffer's memory, strides and values, in every
decoding mode (the fast paths decode with copies of their own, minit5/fast.py); and so a training step after a
generate is bit for bit the step without one: plain, with LoRA adapters, and under DistributedDataParallel."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hf_models import padded_batch

import minit5.compiled as compiled
from minit5 import T5
from minit5.generate import STEPS
from minit5.lora import add_lora
from minit5.quant import quantize

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent


def snapshot(model) -> dict:
    tensors = [*model.named_parameters(), *model.named_buffers()]
    return {name: (t.data_ptr(), t.stride(), t.detach().clone()) for name, t in tensors}


def assert_untouched(model, before: dict):
    now = dict([*model.named_parameters(), *model.named_buffers()])
    assert now.keys() == before.keys()
    for name, t in now.items():
        ptr, stride, values = before[name]
        assert t.data_ptr() == ptr, f"{name} moved"
        assert t.stride() == stride, f"{name} has new strides {t.stride()}, was {stride}"
        assert torch.equal(t, values), f"{name} changed"


@pytest.fixture(scope="module", params=["flan-t5", "t5-v1.0"])  # untied head, and the head tied to the embedding
def folder(request, hf_folder):
    return hf_folder(request.param)


def model_of(folder, kind: str):
    model = T5.from_pretrained(folder).eval()
    if kind == "lora":
        add_lora(model, r=4, alpha=8, targets=("q", "v", "wo"))
        with torch.no_grad():  # a trained adapter: B is no longer zero
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(std=0.1, generator=torch.Generator().manual_seed(len(name)))
    elif kind == "int8":
        quantize(model)
    return model


# every kind of model with every step, but int8 with "compiled", which refuses int8 models (test_compiled.py)
CASES = [(kind, step) for kind in ("fp32", "bf16", "lora", "int8") for step in STEPS
         if (kind, step) != ("int8", "compiled")]


@pytest.mark.parametrize("kind,step", CASES)
def test_generate_leaves_every_parameter_as_it_was(folder, kind, step, monkeypatch):
    monkeypatch.setattr(compiled, "compiled_step", lambda: compiled.decode_step)  # same program, not compiled
    model = model_of(folder, kind)
    if kind == "bf16":
        model = model.to(torch.bfloat16)
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, seed=3, batch=3, src_len=8)
    before = snapshot(model)
    for kwargs in (dict(), dict(num_beams=3), dict(do_sample=True)):
        model.generate(input_ids[:1], attention_mask[:1], max_new_tokens=5, step=step, **kwargs)  # one row
        model.generate(input_ids, attention_mask, max_new_tokens=5, step=step, **kwargs)  # several rows
    assert_untouched(model, before)


def train(model, batches, lr=1e-2):
    """A few AdamW steps on (input_ids, attention_mask, labels) batches."""
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for input_ids, attention_mask, labels in batches:
        _, loss = model(input_ids, attention_mask=attention_mask, labels=labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("kind", ["fp32", "lora"])
def test_training_after_generate_is_bit_identical(folder, kind):
    model = model_of(folder, kind)
    twin = copy.deepcopy(model)
    batches = [padded_batch(model.config.vocab_size, seed=seed, batch=4, src_len=8) for seed in (1, 2, 3)]
    train(model, batches[:1])
    train(twin, batches[:1])
    model.eval()
    before = snapshot(model)
    model.generate(batches[0][0][:1], max_new_tokens=4)  # fast step, batch 1: column-major copies
    model.generate(batches[0][0], batches[0][1], max_new_tokens=4, num_beams=2)  # several rows: another layout
    assert_untouched(model, before)
    train(model, batches[1:])
    train(twin, batches[1:])
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(a, b), name


def test_generate_after_training_sees_the_new_weights(folder):
    """The copies follow the parameters: after optimizer steps (in-place writes), the fast step decodes with the
    trained weights, exactly as the readable step does."""
    model = model_of(folder, "lora")
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, seed=3, batch=2, src_len=8)
    model.eval()
    model.generate(input_ids, attention_mask, max_new_tokens=5)  # builds the copies
    train(model, [padded_batch(model.config.vocab_size, seed=4, batch=4, src_len=8)], lr=0.5)
    model.eval()
    for rows in (slice(0, 1), slice(0, 2)):
        fast = model.generate(input_ids[rows], attention_mask[rows], max_new_tokens=6, min_new_tokens=6)
        readable = model.generate(input_ids[rows], attention_mask[rows], max_new_tokens=6, min_new_tokens=6,
                                  step="readable")
        assert torch.equal(fast, readable)


def test_distributed_data_parallel_training_after_generate_is_bit_identical(tmp_path):
    out = tmp_path / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(HERE / "ddp_generate_step.py"), str(out)],  # --standalone: a free port
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(out.read_text()) == {"memory_untouched": True, "bit_identical": True}
