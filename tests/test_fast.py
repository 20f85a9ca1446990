"""The fast decode step (minit5/fast.py) against the readable one (model.py's decode with its cache)."""

import pytest
import torch
from hf_models import padded_batch, step_logits

from minit5 import T5
import minit5.fast as fast_module
from minit5.fast import SEVERAL_ROWS, FastDecodeState, fastest_for_rows, prepare, strategy_for, tall_linear
from minit5.generate import DecodeState


def test_fast_step_equals_readable_step(variant_model):
    input_ids, attention_mask, _ = padded_batch(variant_model.config.vocab_size, seed=4, batch=3, src_len=10)
    tokens = torch.randint(3, variant_model.config.vocab_size, (3, 9))
    tokens[:, 0] = 0
    readable = step_logits(DecodeState, variant_model, input_ids, attention_mask, tokens)
    fast = step_logits(FastDecodeState, variant_model, input_ids, attention_mask, tokens)
    assert (fast - readable).abs().max().item() <= 1e-5


@pytest.mark.parametrize("kwargs", [dict(num_beams=1), dict(num_beams=4), dict(num_beams=3, length_penalty=0.5),
                                    dict(do_sample=True, top_p=0.9)])
def test_fast_and_readable_generate_the_same_tokens(variant_model, kwargs):
    input_ids, attention_mask, _ = padded_batch(variant_model.config.vocab_size, seed=5, batch=4, src_len=10)
    runs = []
    for step in ("readable", "fast"):
        generator = torch.Generator().manual_seed(0)
        runs.append(variant_model.generate(input_ids, attention_mask, max_new_tokens=10, step=step,
                                           generator=generator, **kwargs))
    assert torch.equal(runs[0], runs[1])


def test_prepare_derives_weights_and_follows_changes_to_the_parameters(tmp_path, hf_folder):
    folder = hf_folder("flan-t5")
    model = T5.from_pretrained(folder)
    weights = prepare(model)
    block = model.decoder.blocks[0]
    inner = model.config.inner_dim
    # q, k and v side by side in a copy; the parameters keep their own memory
    assert block.self_attn.q.weight.data_ptr() != weights.blocks[0].qkv.weight.data_ptr()
    assert torch.equal(weights.blocks[0].qkv.weight[inner:2 * inner], block.self_attn.k.weight)
    assert prepare(model) is weights  # nothing changed: built once
    with torch.no_grad():
        block.self_attn.k.weight[0, 0] += 1.0  # an in-place write (as an optimizer step) bumps the version counter
    rebuilt = prepare(model)
    assert rebuilt is not weights and model.fast_weights is rebuilt
    assert rebuilt.blocks[0].qkv.weight[inner, 0] == block.self_attn.k.weight[0, 0]
    # replacing the parameters (here: loading a state dict by assignment) is noticed too
    model.load_state_dict({k: v.clone() for k, v in model.state_dict().items()}, assign=True)
    assert prepare(model) is not rebuilt
    # training and saving drop the copies; eval() keeps them
    prepare(model)
    model.eval()
    assert model.fast_weights is not None
    model.train()
    assert model.fast_weights is None
    prepare(model)
    model.save_pretrained(tmp_path / "saved")
    assert model.fast_weights is None


def test_a_layer_outside_the_contract_is_a_clear_error(hf_folder):
    folder = hf_folder("flan-t5")
    model = T5.from_pretrained(folder)

    class Odd(torch.nn.Module):  # neither an nn.Linear nor a layer with decode_weight()
        weight = model.decoder.blocks[0].self_attn.o.weight

        def forward(self, x):
            return torch.nn.functional.linear(x, self.weight)
    model.decoder.blocks[0].self_attn.o = Odd()
    with pytest.raises(TypeError, match="cannot decode with a Odd: a decoder layer must be an nn.Linear or define "
                                        "decode_weight"):
        prepare(model)


def test_layouts_switch_without_changing_values(monkeypatch, hf_folder):
    folder = hf_folder("flan-t5")
    model = T5.from_pretrained(folder)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert strategy_for(1, model)[0] == "column-major"
    several = SEVERAL_ROWS[fastest_for_rows(4, model.config.vocab_size, model.config.d_model)]
    assert strategy_for(4, model) == several  # measured once, then remembered
    columns = prepare(model, rows=1)
    assert columns.layout == "column-major"
    assert columns.blocks[0].qkv.weight.stride()[0] == 1  # (outs, in) with outs contiguous
    monkeypatch.setitem(fast_module._measured, (4, model.config.vocab_size, model.config.d_model), "rows")
    rows = prepare(model, rows=4)
    assert rows.layout == "rows"
    assert rows is not columns and rows.blocks[0].qkv.weight.is_contiguous()
    monkeypatch.setitem(fast_module._measured, (16, model.config.vocab_size, model.config.d_model), "rows")
    assert prepare(model, rows=16) is rows  # the same layout and product: nothing to redo
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name


@pytest.mark.parametrize("rows", [1, 4, 16])
def test_tall_linear_is_linear(rows):
    torch.manual_seed(rows)
    x, weight = torch.randn(rows, 1, 96), torch.randn(200, 96)
    torch.testing.assert_close(tall_linear(x, weight), torch.nn.functional.linear(x, weight), atol=1e-5, rtol=1e-5)


def test_readable_forward_and_saving_unchanged_after_prepare(tmp_path, hf_folder):
    folder = hf_folder("flan-t5")
    model = T5.from_pretrained(folder)
    input_ids, attention_mask, labels = padded_batch(model.config.vocab_size, seed=6)
    with torch.no_grad():
        before = model(input_ids, attention_mask=attention_mask, labels=labels)[0]
        prepare(model)
        after = model(input_ids, attention_mask=attention_mask, labels=labels)[0]
    assert torch.equal(before, after)  # the parameters were not touched, so not a bit changes
    model.save_pretrained(tmp_path / "out")
    reloaded = T5.from_pretrained(tmp_path / "out")
    for (name, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fast_half_precision_close_to_readable(dtype, hf_folder):
    folder = hf_folder("flan-t5", eos_likely=True)
    model = T5.from_pretrained(folder, dtype=dtype)
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, seed=4, batch=3, src_len=10)
    tokens = torch.randint(3, model.config.vocab_size, (3, 6))
    tokens[:, 0] = 0
    readable = step_logits(DecodeState, model, input_ids, attention_mask, tokens)
    fast = step_logits(FastDecodeState, model, input_ids, attention_mask, tokens)
    full = step_logits(DecodeState, T5.from_pretrained(folder), input_ids, attention_mask, tokens)
    # both half-precision paths stay as close to each other as half precision is to fp32
    assert (fast - readable).abs().max().item() <= (readable - full).abs().max().item() + 1e-2


@pytest.mark.parametrize("choice", list(SEVERAL_ROWS))
def test_every_several_rows_strategy_equals_the_readable_step(monkeypatch, choice, hf_folder):
    """Which strategy runs for beams and batches is measured per CPU, so each one is tested here, forced."""
    folder = hf_folder("flan-t5")
    model = T5.from_pretrained(folder)
    monkeypatch.setitem(fast_module._measured, (3, model.config.vocab_size, model.config.d_model), choice)
    assert strategy_for(3, model) == SEVERAL_ROWS[choice]
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, seed=4, batch=3, src_len=10)
    tokens = torch.randint(3, model.config.vocab_size, (3, 6))
    readable = step_logits(DecodeState, model, input_ids, attention_mask, tokens)
    ours = step_logits(FastDecodeState, model, input_ids, attention_mask, tokens)
    assert prepare(model, rows=3).layout == SEVERAL_ROWS[choice][0]
    assert (ours - readable).abs().max().item() <= 1e-5


def test_half_precision_keeps_rows_and_f_linear(hf_folder):
    folder = hf_folder("flan-t5")
    model = T5.from_pretrained(folder, dtype=torch.bfloat16)
    assert strategy_for(1, model) == strategy_for(4, model) == ("rows", torch.nn.functional.linear)
