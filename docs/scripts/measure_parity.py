"""Measure how far minit5 is from transformers on the random reference models of the tests (tests/hf_models.py).

    python docs/scripts/measure_parity.py        prints the markdown table in docs/parity.md (about 10 seconds)

Needs the test extra (transformers 5.24): pip install -e ".[test]". Everything runs in fp32 on the CPU, on the
padded batch of tests/hf_models.py `padded_batch` (3 rows of different lengths). minit5 uses its default
attention ("eager", the written-out formula); transformers is loaded twice, with eager and with SDPA attention.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

try:
    from hf_models import VARIANTS, build_hf_model, load_hf, padded_batch  # noqa: E402
except ImportError as e:
    sys.exit(f'{e}: this script compares with transformers; pip install -e ".[test]"')

from minit5 import T5  # noqa: E402
from minit5.checkpoint import hf_name  # noqa: E402


def fmt(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def measure(variant: str, folder: Path) -> dict:
    hf_eager, _ = build_hf_model(variant, folder)
    hf_sdpa = load_hf(variant, folder, attn="sdpa")
    model = T5.from_pretrained(folder)
    input_ids, attention_mask, labels = padded_batch(model.config.vocab_size)
    row = {}
    with torch.no_grad():
        ref = hf_eager(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False)
        ref_sdpa = hf_sdpa(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False)
        ref_encoder = hf_eager.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits, loss = model(input_ids, attention_mask=attention_mask, labels=labels)
        row["encoder"] = (model.encode(input_ids, attention_mask) - ref_encoder).abs().max().item()
    row["logits_eager"] = (logits - ref.logits).abs().max().item()
    row["logits_sdpa"] = (logits - ref_sdpa.logits).abs().max().item()
    with torch.no_grad():  # transformers against itself: its default use_cache=True path rounds differently
        cached = hf_eager(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=True).logits
    row["hf_cache"] = (cached - ref.logits).abs().max().item()
    row["loss"] = abs(loss.item() - ref.loss.item())

    # gradients of the loss, parameter by parameter, relative to the largest reference gradient of that parameter
    hf_eager.zero_grad()
    hf_eager(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False).loss.backward()
    model(input_ids, attention_mask=attention_mask, labels=labels)[1].backward()
    hf_params = dict(hf_eager.named_parameters())
    row["grad"] = max((p.grad - hf_params[hf_name(n, model.config)].grad).abs().max().item()
                      / hf_params[hf_name(n, model.config)].grad.abs().max().item()
                      for n, p in model.named_parameters())

    # generated tokens: greedy and 4-beam search, 12 new tokens
    same = []
    for kwargs in (dict(num_beams=1), dict(num_beams=4)):
        expected = hf_eager.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=12,
                                     do_sample=False, use_cache=False, **kwargs)
        got = model.generate(input_ids, attention_mask, max_new_tokens=12, **kwargs)
        same.append(got.shape == expected.shape and torch.equal(got, expected))
    row["tokens"] = "identical" if all(same) else "DIFFERENT"
    return row


def gelu_difference() -> float:
    """torch's fused tanh GELU (minit5) against transformers' written-out gelu_new, on [-10, 10]."""
    import math
    x = torch.linspace(-10, 10, 200001)
    written_out = 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    return (torch.nn.functional.gelu(x, approximate="tanh") - written_out).abs().max().item()


def main():
    torch.set_num_threads(1)
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    print(f"<!-- measured by python docs/scripts/measure_parity.py (torch {torch.__version__}, "
          f"transformers {transformers.__version__}, fp32, CPU) -->")
    print("| variant | logits vs HF eager | logits vs HF sdpa | encoder output | loss | gradients (relative) "
          "| greedy + beam-4 tokens |")
    print("|---|---:|---:|---:|---:|---:|---|")
    cache_effect = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            r = measure(variant, Path(tmp) / variant)
            cache_effect = max(cache_effect, r["hf_cache"])
            print(f"| {variant} | {fmt(r['logits_eager'])} | {fmt(r['logits_sdpa'])} | {fmt(r['encoder'])} "
                  f"| {fmt(r['loss'])} | {fmt(r['grad'])} | {r['tokens']} |")
    print()
    print(f"- GELU: max |F.gelu(x, approximate='tanh') - gelu_new(x)| on [-10, 10] = {fmt(gelu_difference())}")
    print(f"- transformers against itself, logits with use_cache=True vs False (largest over the variants) = "
          f"{fmt(cache_effect)}")


if __name__ == "__main__":
    main()
