"""The reports and the tolerance measurements shown in docs/parity.md ("Finding where two models part").

    python docs/scripts/parity_reports.py                 print the markdown (a few minutes on 2 CPU cores)
    python docs/scripts/parity_reports.py --demo DIR      the trained demo model is in DIR (default out/demo)

It makes a random flan-T5-small-shaped checkpoint (8+8 blocks, d_model 512, minit5's T5 initialisation, byte-level
tokenizer) in a temporary folder, then two copies with a deliberate fault:
  broken   encoder block 5's feed-forward has its two input matrices swapped (wi_0 <-> wi_1), a classic
           conversion mistake; reported with `python -m minit5.parity broken --against clean`
  loud     decoder block 2's feed-forward "up" matrix (wi_1) multiplied by 10^4, so that its hidden layer exceeds
           float16's range; reported with `python -m minit5.parity loud --dtype float16`
and, given the trained demo model, a copy of it with 1% noise in one cross-attention matrix (demo_broken), which
changes no token but is found at its stage; and measures, for the tolerances, the largest relative difference of any stage where nothing is wrong (fp32 against
transformers, bf16 and fp16 against fp32; on the random model and on the trained demo model, `python train.py`'s,
if it exists) and the
relative difference that a small fault (1% noise in one tensor) makes at its stage. Needs the test extra
(transformers). The numbers vary slightly from machine to machine: docs/parity.md marks them as measured.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def make_checkpoints(root: Path) -> dict:
    import torch
    from safetensors.torch import load_file, save_file

    from minit5 import T5, T5Config, Tokenizer

    torch.manual_seed(0)
    clean = root / "clean"
    T5(T5Config.flan_t5("small")).save_pretrained(clean)
    Tokenizer.byte_level().save_pretrained(clean)
    tensors = load_file(clean / "model.safetensors")

    def variant(name, change):
        folder = root / name
        folder.mkdir()
        for f in clean.iterdir():
            if f.name != "model.safetensors":
                (folder / f.name).write_bytes(f.read_bytes())
        changed = dict(tensors)
        change(changed)
        save_file(changed, folder / "model.safetensors", metadata={"format": "pt"})
        return folder

    ffn = "encoder.block.5.layer.1.DenseReluDense"
    broken = variant("broken", lambda t: t.update({f"{ffn}.wi_0.weight": t[f"{ffn}.wi_1.weight"],
                                                   f"{ffn}.wi_1.weight": t[f"{ffn}.wi_0.weight"]}))
    up = "decoder.block.2.layer.2.DenseReluDense.wi_1.weight"
    loud = variant("loud", lambda t: t.update({up: t[up] * 1e4}))
    return dict(clean=clean, broken=broken, loud=loud, tensors=tensors, variant=variant)


def tool(*argv) -> tuple[str, dict]:
    """python -m minit5.parity ARGV, in-process: (printed report, its JSON)."""
    from minit5.parity import main
    with tempfile.TemporaryDirectory() as tmp:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            main([str(a) for a in argv] + ["--json", f"{tmp}/report.json"])
        return out.getvalue(), json.loads(Path(tmp, "report.json").read_text())


def largest_rel(data) -> str:
    worst = max(data["stages"], key=lambda s: float(s["rel_diff"]))
    return f"{float(worst['rel_diff']):.1e} ({worst['name']})"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", default="out/demo", help="the trained demo model's folder (default out/demo)")
    demo = Path(p.parse_args().demo)
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        made = make_checkpoints(Path(tmp))
        clean = made["clean"]
        print("### A broken tensor: `python -m minit5.parity broken --against clean`\n")
        report, _ = tool(made["broken"], "--against", clean, "--max-new-tokens", "16")
        print("```\n" + report.replace(tmp, "/tmp") + "```\n")
        print("### Half precision: `python -m minit5.parity loud --dtype float16`\n")
        report, _ = tool(made["loud"], "--dtype", "float16", "--max-new-tokens", "16")
        print("```\n" + report.replace(tmp, "/tmp") + "```\n")

        if (demo / "config.json").exists():
            print("### A fault the tokens do not show: `python -m minit5.parity demo_broken --against demo`\n")
            quiet = Path(tmp) / "demo_broken"
            quiet.mkdir()
            for f in ("config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json"):
                if (demo / f).exists():
                    (quiet / f).write_bytes((demo / f).read_bytes())
            from safetensors.torch import load_file, save_file
            weights = load_file(demo / "model.safetensors")
            key = "decoder.block.1.layer.1.EncDecAttention.v.weight"  # 1% noise in one cross-attention matrix
            noise = torch.randn(weights[key].shape, generator=torch.Generator().manual_seed(0))
            weights[key] = weights[key] + 0.01 * weights[key].abs().mean() * noise
            save_file(weights, quiet / "model.safetensors", metadata={"format": "pt"})
            report, _ = tool(quiet, "--against", demo, "--max-new-tokens", "16")
            print("```\n" + report.replace(tmp, "/tmp").replace(str(demo), "demo") + "```\n")
        print("### Tolerances: what rounding does, what a fault does\n")
        print("| model | comparison | largest rel Δ of any stage (where) | tokens identical |")
        print("|---|---|---:|---|")
        models = [("random flan-T5-small shape", clean)]
        if (demo / "config.json").exists():
            models.append(("the trained demo model", demo))
        for label, folder in models:
            for what, argv in (("fp32, minit5 vs transformers", []), ("bfloat16 vs fp32", ["--dtype", "bfloat16"]),
                               ("float16 vs fp32", ["--dtype", "float16"])):
                _, data = tool(folder, *argv, "--max-new-tokens", "8")
                print(f"| {label} | {what} | {largest_rel(data)} | {'yes' if data['tokens_identical'] else 'no'} |")
        print()
        print("| 1% noise in one tensor (random flan-T5-small shape) | rel Δ at its stage | found at |")
        print("|---|---:|---|")
        g = torch.Generator().manual_seed(1)
        for key, stage in (("encoder.block.3.layer.0.SelfAttention.k.weight", "encoder.blocks.3.self_attn"),
                           ("encoder.block.7.layer.1.DenseReluDense.wo.weight", "encoder.blocks.7.ffn"),
                           ("decoder.block.4.layer.1.EncDecAttention.v.weight", "decoder.blocks.4.cross_attn"),
                           ("decoder.block.6.layer.2.layer_norm.weight", "decoder.blocks.6.ffn")):
            def add_noise(t, key=key):
                t[key] = t[key] + 0.01 * t[key].abs().mean() * torch.randn(t[key].shape, generator=g)
            noisy = made["variant"](f"noisy-{stage}", add_noise)
            _, data = tool(noisy, "--against", clean, "--max-new-tokens", "4")
            rel = next(float(s["rel_diff"]) for s in data["stages"] if s["name"] == stage)
            print(f"| `{key}` | {rel:.1e} | {data['first_divergence']} |")
    print(f"\n(torch {torch.__version__}; demo model: {demo if len(models) > 1 else 'not found'})")


if __name__ == "__main__":
    main()
