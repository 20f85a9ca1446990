"""The compiled decode step (minit5/compiled.py) against the fast and readable ones.

decode_step is plain PyTorch: run uncompiled, it is checked on every variant in a fraction of a second. One test
compiles it for real (torch.compile with inductor, ~10-20 s on 2 cores) and checks that the compiled program gives
the same tokens, and that prompts and outputs of lengths rounded to the same multiple reuse one program."""

import pytest
import torch
from hf_models import padded_batch, save_byte_model, step_logits

import minit5.compiled as compiled
from minit5 import T5
from minit5.compiled import CompiledDecodeState
from minit5.fast import FastDecodeState
from minit5.generate import DecodeState
from minit5.quant import quantize


def uncompiled(variant_model, encoded, attention_mask, max_len):
    return CompiledDecodeState(variant_model, encoded, attention_mask, max_len, compile=False)


def test_step_equals_readable_and_fast_step(variant_model):
    input_ids, attention_mask, _ = padded_batch(variant_model.config.vocab_size, seed=4, batch=3, src_len=10)
    tokens = torch.randint(3, variant_model.config.vocab_size, (3, 9))
    tokens[:, 0] = 0
    readable = step_logits(DecodeState, variant_model, input_ids, attention_mask, tokens)
    fast = step_logits(FastDecodeState, variant_model, input_ids, attention_mask, tokens)
    ours = step_logits(uncompiled, variant_model, input_ids, attention_mask, tokens)
    assert (ours - readable).abs().max().item() <= 1e-5
    assert (ours - fast).abs().max().item() <= 1e-5


@pytest.mark.parametrize("kwargs", [dict(num_beams=1), dict(num_beams=4), dict(num_beams=3, length_penalty=0.5),
                                    dict(do_sample=True, top_p=0.9)])
def test_generate_gives_the_readable_tokens(variant_model, kwargs, monkeypatch):
    # generate(step="compiled") with the step left uncompiled: the state, padding and beam reordering are the same
    monkeypatch.setattr(compiled, "compiled_step", lambda: compiled.decode_step)
    input_ids, attention_mask, _ = padded_batch(variant_model.config.vocab_size, seed=5, batch=4, src_len=10)
    runs = []
    for options in (dict(step="readable"), dict(step="compiled")):
        generator = torch.Generator().manual_seed(0)
        runs.append(variant_model.generate(input_ids, attention_mask, max_new_tokens=10, generator=generator,
                                           **kwargs, **options))
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_step_is_close_to_readable(dtype, hf_folder):
    folder = hf_folder("flan-t5")
    model = T5.from_pretrained(folder, dtype=dtype)  # float16 keeps `down` in fp32, as the hub's fp16 files
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, seed=6, batch=2, src_len=8)
    tokens = torch.randint(3, model.config.vocab_size, (2, 6))
    readable = step_logits(DecodeState, model, input_ids, attention_mask, tokens)
    ours = step_logits(uncompiled, model, input_ids, attention_mask, tokens)
    # bf16 keeps 8 bits of mantissa: the two orders of summation differ by a few steps of the logits' size
    assert (ours - readable).abs().max().item() <= 0.05 * readable.abs().max().item()


def test_lengths_are_rounded_and_padding_is_masked(hf_folder):
    folder = hf_folder("flan-t5")
    model = T5.from_pretrained(folder)
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, seed=7, batch=2, src_len=5)
    with torch.no_grad():
        state = uncompiled(model, model.encode(input_ids, attention_mask), attention_mask, 7)
    assert state.keys[0].shape[2] == compiled.ROUND and state.cross[0][0].shape[2] == compiled.ROUND
    hidden = state.cross_mask[:, 0, 0, :] < -1e30  # (B, S'): the prompt's padding and the rounding's
    assert torch.equal(hidden[:, :5], attention_mask == 0) and hidden[:, 5:].all()


def test_int8_model_is_refused_with_a_sentence(hf_folder):
    folder = hf_folder("flan-t5")
    model = quantize(T5.from_pretrained(folder), "int8")
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size)
    with pytest.raises(ValueError, match="int8-quantized"):
        model.generate(input_ids, attention_mask, step="compiled")


def test_compiled_program_gives_the_same_tokens_and_is_reused(hf_folder):
    """The real thing: inductor compiles decode_step once per shape; prompts of 6 and 9 tokens and outputs of 5
    and 8 tokens round to the same shapes, so the second call compiles nothing."""
    from torch._dynamo.utils import counters
    folder = hf_folder("flan-t5", eos_likely=True)
    model = T5.from_pretrained(folder)
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, seed=8, batch=2, src_len=9)
    torch._dynamo.reset()
    compiled._compiled = None
    graphs = counters["stats"]["unique_graphs"]
    for num_beams in (1, 2):  # batch 2 and batch 4: two programs
        expected = model.generate(input_ids, attention_mask, max_new_tokens=8, num_beams=num_beams)
        assert torch.equal(model.generate(input_ids, attention_mask, max_new_tokens=8, num_beams=num_beams,
                                          step="compiled"), expected)
    assert counters["stats"]["unique_graphs"] - graphs == 2
    short = model.generate(input_ids[:, :6], attention_mask[:, :6], max_new_tokens=5, step="compiled")
    assert torch.equal(short, model.generate(input_ids[:, :6], attention_mask[:, :6], max_new_tokens=5))
    assert counters["stats"]["unique_graphs"] - graphs == 2  # nothing new compiled


def test_generate_cli_compile(tmp_path):
    """python generate.py --compile prints what the uncompiled command prints; --compile with --quantize is refused
    in one line before loading."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    save_byte_model(tmp_path)

    def run(*args):
        return subprocess.run([sys.executable, str(root / "generate.py"), "--model", str(tmp_path),
                               "--max-new-tokens", "8", *args], capture_output=True, text=True, timeout=300)
    plain, fast = run("hello", "2 + 2 ="), run("--compile", "hello", "2 + 2 =")
    assert plain.returncode == 0 and fast.returncode == 0, fast.stderr
    assert fast.stdout == plain.stdout and plain.stdout.strip()
    assert fast.stderr.startswith("compiling the decoder step") and not plain.stderr
    bad = run("--compile", "--quantize", "int8", "hi")
    assert bad.returncode != 0 and bad.stderr == "error: --compile does not support --quantize int8; choose one of the two\n"
