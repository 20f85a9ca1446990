"""LoRA (minit5/lora.py) against Hugging Face peft 0.21: adapters load both ways with the same logits, merging,
trainable-parameter counts, gradient checkpointing, the fast decoder, the trainer's LoRA runs, and every bad
adapter's error."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file

from hf_models import build_hf_model, load_hf, padded_batch
from minit5 import T5
from minit5.lora import AdapterError, add_lora, load_adapter, lora_layers, merge_lora, trainable_summary
from minit5.tokenizer import Tokenizer
from minit5.trainer import TrainConfig, Trainer, TrainError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A random flan-T5-shaped model in Hugging Face's format, with a byte tokenizer (so the trainer can use it)."""
    folder = tmp_path_factory.mktemp("lora_base")
    build_hf_model("flan-t5", folder, vocab_size=384)
    Tokenizer.byte_level().save_pretrained(folder)
    return folder


def peft_adapter(base_folder, out, targets, seed=0, r=4, alpha=8, rslora=False):
    """An adapter made by peft, with random (non-zero) B so that it changes the model; saved to `out`."""
    torch.manual_seed(seed)
    model = get_peft_model(load_hf("flan-t5", base_folder),
                           LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, use_rslora=rslora,
                                      task_type="SEQ_2_SEQ_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.3)
    model.save_pretrained(out)
    return model.eval()


def logits_of(model, batch, hf=False):
    input_ids, attention_mask, labels = batch
    decoder_input_ids = labels.clamp(min=0)
    with torch.no_grad():
        if hf:
            return model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                         use_cache=False).logits
        return model(input_ids, attention_mask, decoder_input_ids=decoder_input_ids)[0]


# ---------------------------------------------------------------------------------------------- parity with peft
@pytest.mark.parametrize("targets,rslora", [(["q", "v"], False), (["k", "o", "wi_0", "wi_1", "wo"], True),
                                            (["EncDecAttention.q", "SelfAttention.v"], False)])
def test_peft_adapter_loads_with_the_same_logits(base, tmp_path, targets, rslora):
    batch = padded_batch(384)
    theirs = peft_adapter(base, tmp_path, targets, rslora=rslora)
    ours = load_adapter(T5.from_pretrained(base), tmp_path).eval()
    plain = T5.from_pretrained(base).eval()
    diff = (logits_of(theirs, batch, hf=True) - logits_of(ours, batch)).abs().max().item()
    assert diff <= 1e-5
    assert (logits_of(plain, batch) - logits_of(ours, batch)).abs().max().item() > 1e-2  # the adapter matters


def test_minit5_adapter_trained_loads_into_peft(base, tmp_path):
    """An adapter trained by minit5's trainer, then loaded by PeftModel.from_pretrained on transformers' model."""
    out = tmp_path / "run"
    trainer = Trainer(TrainConfig(**lora_settings(base, out, steps=4, lr=3e-2)), log=lambda m: None)
    trainer.train()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)
    theirs = PeftModel.from_pretrained(load_hf("flan-t5", base), out).eval()
    ours = load_adapter(T5.from_pretrained(base), out).eval()
    batch = padded_batch(384)
    assert (logits_of(theirs, batch, hf=True) - logits_of(ours, batch)).abs().max().item() <= 1e-5
    trained_B = max(layer.lora_B.weight.abs().max().item() for layer in lora_layers(ours).values())
    assert trained_B > 0  # B moved away from zero: the adapter was trained


def test_fresh_adapter_changes_nothing_and_merge_keeps_logits(base, tmp_path):
    batch = padded_batch(384)
    plain = T5.from_pretrained(base).eval()
    model = add_lora(T5.from_pretrained(base), r=4, targets=["q", "v", "wo"]).eval()
    assert torch.equal(logits_of(plain, batch), logits_of(model, batch))  # B = 0: B A x adds exact zeros
    peft_adapter(base, tmp_path, ["q", "v", "wi_1"])
    model = load_adapter(T5.from_pretrained(base), tmp_path).eval()
    before = logits_of(model, batch)
    merge_lora(model)
    assert not lora_layers(model) and not any("lora" in k for k in model.state_dict())
    assert (logits_of(model, batch) - before).abs().max().item() <= 1e-5
    model.save_pretrained(tmp_path / "merged")  # a plain checkpoint again
    assert (logits_of(T5.from_pretrained(tmp_path / "merged").eval(), batch) - before).abs().max().item() <= 1e-5


@pytest.mark.parametrize("targets", [["q", "v"], ["q", "k", "v", "o"], ["wi_0", "wi_1", "wo"], "all-linear",
                                     ["EncDecAttention.k"], r".*decoder.*SelfAttention\.(q|o)"])
def test_trainable_parameter_counts_match_peft(base, targets):
    theirs = get_peft_model(load_hf("flan-t5", base), LoraConfig(r=8, target_modules=targets))
    ours = add_lora(T5.from_pretrained(base), r=8, targets=targets)
    trainable, total = theirs.get_nb_trainable_parameters()
    assert trainable_summary(ours) == (f"trainable params: {trainable:,} || all params: {total:,} || "
                                       f"trainable%: {100 * trainable / total:.4f}")
    assert sorted(n.replace(".default", "") for n, p in theirs.named_parameters() if p.requires_grad) == \
        sorted(load_file_keys(ours))


def load_file_keys(model):
    from minit5.lora import adapter_state
    return list(adapter_state(model))


def test_gradient_checkpointing_gives_the_same_gradients(base):
    batch = padded_batch(384)

    def grads(checkpointing):
        torch.manual_seed(0)
        model = add_lora(T5.from_pretrained(base), r=4, targets=["q", "v", "wo"]).train()
        with torch.no_grad():
            for layer in lora_layers(model).values():
                layer.lora_B.weight.normal_(std=0.1)  # non-zero B, so that A gets a gradient too
        model.set_gradient_checkpointing(checkpointing)
        _, loss = model(batch[0], batch[1], labels=batch[2])
        loss.backward()
        return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}

    plain, checkpointed = grads(False), grads(True)
    assert sorted(plain) == sorted(checkpointed) and all(n.endswith(("lora_A.weight", "lora_B.weight")) for n in plain)
    for name in plain:
        assert plain[name] is not None and plain[name].abs().max() > 0, name
        assert torch.allclose(plain[name], checkpointed[name], rtol=0, atol=1e-7), name


def test_fast_decoder_gives_the_same_tokens_with_an_adapter(base, tmp_path):
    peft_adapter(base, tmp_path, ["q", "k", "v", "o", "wi_0", "wi_1", "wo"])
    model = load_adapter(T5.from_pretrained(base), tmp_path).eval()
    plain = T5.from_pretrained(base).eval()
    input_ids, attention_mask, _ = padded_batch(384)
    kwargs = dict(max_new_tokens=12)
    readable = model.generate(input_ids, attention_mask, step="readable", **kwargs)
    assert torch.equal(model.generate(input_ids, attention_mask, step="fast", **kwargs), readable)
    assert torch.equal(model.generate(input_ids[:1], attention_mask[:1], step="fast", **kwargs),
                       model.generate(input_ids[:1], attention_mask[:1], step="readable", **kwargs))  # 1 row layout
    assert not torch.equal(plain.generate(input_ids, attention_mask, **kwargs), readable)  # the adapter matters
    merge_lora(model)
    assert torch.equal(model.generate(input_ids, attention_mask, step="fast", **kwargs), readable)


# ---------------------------------------------------------------------------------------------- bad adapters
def test_bad_adapters_are_named_errors(base, tmp_path):
    good = tmp_path / "good"
    peft_adapter(base, good, ["q", "v"])
    config = json.loads((good / "adapter_config.json").read_text())
    tensors = load_file(str(good / "adapter_model.safetensors"))

    def variant(name, config_changes=None, tensors_change=None, raw_config=None):
        folder = tmp_path / name
        folder.mkdir()
        text = raw_config if raw_config is not None else json.dumps({**config, **(config_changes or {})})
        (folder / "adapter_config.json").write_text(text)
        save_file(tensors_change(dict(tensors)) if tensors_change else tensors, str(folder / "adapter_model.safetensors"))
        return folder

    key = "base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"
    cases = [
        (tmp_path / "nowhere", "adapter folder .*nowhere does not exist"),
        (tmp_path, "has no adapter_config.json"),
        (variant("json", raw_config="{not json"), r"adapter_config.json is not valid JSON"),
        (variant("dora", dict(use_dora=True)), r"use_dora = true; minit5's LoRA does not support DoRA"),
        (variant("bias", dict(bias="all")), r"bias = \"all\".*trained biases"),
        (variant("save", dict(modules_to_save=["lm_head"])), r"modules_to_save.*not support"),
        (variant("rank", dict(rank_pattern={"q": 2})), r"rank_pattern.*a rank per layer"),
        (variant("ia3", dict(peft_type="IA3")), r"peft_type is 'IA3'; minit5 loads LoRA adapters only"),
        (variant("target", dict(target_modules=["q", "query"])), r"target 'query' matches no layer.*wi_0"),
        (variant("missing", tensors_change=lambda t: {k: v for k, v in t.items() if k != key}),
         r"adapter_model.safetensors lacks " + key.replace(".", r"\.")),
        (variant("unexpected", tensors_change=lambda t: {**t, key.replace(".q.", ".k."): t[key].clone()}),
         r"holds base_model\.model\.encoder\.block\.0\.layer\.0\.SelfAttention\.k\.lora_A\.weight, which"),
        (variant("shape", tensors_change=lambda t: {**t, key: torch.zeros(4, 64)}),
         r"lora_A\.weight has shape \[4, 64\], but this model with r=4 needs \[4, 32\]"),
        (variant("rconfig", dict(r=8)), r"has shape \[4, 32\], but this model with r=8 needs \[8, 32\]"),
    ]
    corrupt = variant("corrupt")
    (corrupt / "adapter_model.safetensors").write_bytes(b"\x00" * 10)
    cases.append((corrupt, "not a readable safetensors file"))
    for folder, message in cases:
        model = T5.from_pretrained(base)
        with pytest.raises(AdapterError, match=message):
            load_adapter(model, folder)
        assert not lora_layers(model)  # checked before the model was touched

    with pytest.raises(AdapterError, match="already has LoRA adapters"):
        load_adapter(load_adapter(T5.from_pretrained(base), good), good)
    with pytest.raises(AdapterError, match=r"target\(s\) 'query' match no layer"):
        add_lora(T5.from_pretrained(base), targets=["query"])


# ---------------------------------------------------------------------------------------------- the trainer
def lora_settings(base, out, **overrides):
    words = ["apple", "river", "stone", "cloud", "maple", "tiger", "lemon", "ocean"]
    data = Path(base) / "pairs.jsonl"
    if not data.exists():
        data.write_text("".join(json.dumps({"input": f"Reverse {w}{i}.", "target": f"{w}{i}"[::-1]}) + "\n"
                                for i, w in enumerate(words * 4)))
    settings = dict(task="seq2seq", data=str(data), init=str(base), out=str(out), steps=6, batch_size=8, lr=1e-2,
                    warmup=0, schedule="constant", eval_every=1000, save_every=1000, log_every=1, lora_r=4,
                    lora_alpha=8, lora_targets="q,v,wo")
    settings.update(overrides)
    return settings


def test_lora_run_trains_only_the_adapter_and_resumes_bit_identically(base, tmp_path):
    messages = []
    straight = tmp_path / "straight"
    trainer = Trainer(TrainConfig(**lora_settings(base, straight, eval_data=str(Path(base) / "pairs.jsonl"),
                                                  eval_examples=4, merge_lora=True)), log=messages.append)
    result = trainer.train()
    assert set(result) == {"eval_loss", "exact_match", "rouge1", "rouge2", "rougeL"}
    summary = trainable_summary(add_lora(T5.from_pretrained(base), r=4, targets=["q", "v", "wo"]))
    assert any(summary in m for m in messages), messages
    # only the adapter is in the optimizer, and only what changes is written
    adapter = load_file(str(straight / "adapter_model.safetensors"))
    assert len(adapter) == 2 * (2 * 3 + 2 * 5)  # A and B of q, v, wo: 3 layers per encoder block, 5 per decoder block
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(adapter)
    checkpoint = straight / "checkpoints" / "step-00000006"
    assert sorted(p.name for p in checkpoint.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                            "trainer_state.pt"]
    assert not (straight / "model.safetensors").exists() and (straight / "adapter_model.safetensors").exists()
    # the base did not move: the merged model differs from it exactly by scaling * B A
    merged, original = load_file(str(straight / "merged" / "model.safetensors")), load_file(str(base / "model.safetensors"))
    for name in original:
        if ".SelfAttention.k." in name or "lm_head" in name:
            assert torch.equal(merged[name], original[name]), name
    q = "encoder.block.1.layer.0.SelfAttention.q"
    delta = adapter[f"base_model.model.{q}.lora_B.weight"] @ adapter[f"base_model.model.{q}.lora_A.weight"] * 2.0
    assert delta.abs().max() > 0
    assert torch.allclose(merged[q + ".weight"], original[q + ".weight"] + delta, atol=1e-6)

    halted = tmp_path / "halted"
    Trainer(TrainConfig(**lora_settings(base, halted, steps=3, save_every=3)), log=lambda m: None).train()
    Trainer(TrainConfig(**lora_settings(base, halted, steps=6, save_every=3, resume=True)), log=lambda m: None).train()
    a, b = load_file(str(straight / "adapter_model.safetensors")), load_file(str(halted / "adapter_model.safetensors"))
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("overrides", [dict(gradient_checkpointing=True, dtype="bfloat16", lora_dropout=0.1),
                                       dict(task="span-corruption", data=None, inputs_length=24)])
def test_lora_runs_with_options_and_span_corruption(base, tmp_path, overrides):
    if overrides.get("task") == "span-corruption":
        (tmp_path / "corpus.txt").write_text("\n".join(f"The river number {i} ran by the stone." for i in range(40)))
        overrides = dict(overrides, text=[str(tmp_path / "corpus.txt")])
    Trainer(TrainConfig(**lora_settings(base, tmp_path / "run", steps=5, **overrides)), log=lambda m: None).train()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < losses[0]


def test_grad_norm_is_logged_before_clipping(base, tmp_path):
    def norms(out, clip):
        Trainer(TrainConfig(**lora_settings(base, out, steps=3, clip=clip)), log=lambda m: None).train()
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return [r["grad_norm"] for r in rows if "loss" in r]

    unclipped, clipped = norms(tmp_path / "a", 0.0), norms(tmp_path / "b", 1e-4)
    assert len(unclipped) == len(clipped) == 3
    assert unclipped[0] == clipped[0] > 1e-3  # step 1: the same gradient, reported before clipping
    assert unclipped[1] != clipped[1]  # clipping did act on step 1's update


@pytest.mark.parametrize("overrides,message", [
    (dict(init=None), "--lora-r trains an adapter on pretrained weights: it needs --init"),
    (dict(lora_r=-1), "--lora-r must be 0"),
    (dict(lora_alpha=0.0), "--lora-alpha must be a positive number"),
    (dict(lora_dropout=1.0), r"--lora-dropout must be in \[0, 1\)"),
    (dict(lora_targets=" , "), "--lora-targets names no layer"),
    (dict(lora_targets="q,query"), r"target\(s\) 'query' match no layer"),
    (dict(lora_r=0, merge_lora=True), "--merge-lora merges a LoRA adapter; it needs --lora-r"),
])
def test_bad_lora_settings(base, tmp_path, overrides, message):
    with pytest.raises(TrainError, match=message):
        Trainer(TrainConfig(**lora_settings(base, tmp_path / "run", **overrides)), log=lambda m: None)


# ---------------------------------------------------------------------------------------------- command lines
def test_generate_with_an_adapter(base, tmp_path):  # python -m minit5.evaluate: tests/test_scoring.py
    adapter = tmp_path / "adapter"
    peft_adapter(base, adapter, ["q", "v", "wo"])
    model = load_adapter(T5.from_pretrained(base), adapter).eval()
    tok = Tokenizer.from_pretrained(base)
    prompts = ["Reverse apple.", "Reverse stone7."]
    ids, mask = tok.encode_batch(prompts)
    expected = [tok.decode(row[1:]) for row in model.generate(ids, mask, max_new_tokens=8)]

    run = subprocess.run([sys.executable, str(ROOT / "generate.py"), "--model", str(base), "--adapter", str(adapter),
                          "--max-new-tokens", "8", *prompts], cwd=ROOT, capture_output=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode() == "".join(answer + "\n" for answer in expected)  # bytes: answers may hold "\r"

    bad = subprocess.run([sys.executable, str(ROOT / "generate.py"), "--model", str(base), "--adapter",
                          str(tmp_path / "nowhere"), "hi"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: adapter folder")
    assert len(bad.stderr.strip().splitlines()) == 1
