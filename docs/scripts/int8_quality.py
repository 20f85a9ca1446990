"""How much int8 weights (minit5/quant.py) change a model's answers, measured two ways.

    python docs/scripts/int8_quality.py --model out/demo      # the demo model `python train.py` writes
    python docs/scripts/int8_quality.py --skip-demo           # only the random flan-T5-small-shaped model

1. The demo model on its held-out split (the one the trainer evaluates: minit5.data.demo_tasks with the run's
   seed), greedy, fp32 against int8: exact match per language (an input with Chinese characters counts as zh),
   and greedy token agreement with fp32 (share of answers identical token for token; share of fp32's answer
   tokens that int8 reproduces at the same position).
2. A random flan-T5-small-shaped model, teacher-forced on random tokens: top-1 agreement of the int8 logits with
   fp32's and the relative logit error ||int8 - fp32|| / ||fp32||.
Both for the default (feed-forward `down` kept in fp32) and with every linear layer in int8, the measurement
behind the default. Prints Markdown tables (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from minit5 import T5, T5Config, Tokenizer
from minit5.data import collate, tokenize_pairs
from minit5.quant import KEEP_FP32, quantize

try:  # the demo's tasks: minit5/demo.py (bilingual demo) or, before it, minit5/data.py
    from minit5.demo import demo_tasks
except ImportError:
    from minit5.data import demo_tasks

VARIANTS = {"int8, `down` in fp32 (default)": KEEP_FP32, "int8 everywhere": ()}
CJK = re.compile(r"[\u3400-\u9fff]")


def language(text: str) -> str:
    return "zh" if CJK.search(text) else "en"


def greedy(model, tokenizer, pairs, batch_size=64):
    outputs = []
    for start in range(0, len(pairs), batch_size):
        examples, _ = tokenize_pairs(pairs[start:start + batch_size], tokenizer, 512, 128)
        batch = collate(examples, tokenizer.pad_id)
        with torch.no_grad():
            out = model.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=32)
        for row in out:  # the answer's tokens up to and including EOS
            ids = row[1:].tolist()
            outputs.append(ids[:ids.index(1) + 1] if 1 in ids else ids)
    return outputs


def demo_quality(model_dir: str, seed: int | None) -> str:
    tokenizer = Tokenizer.from_pretrained(model_dir)
    if seed is None:
        run = Path(model_dir) / "run.json"
        seed = json.loads(run.read_text())["settings"]["seed"] if run.exists() else 0
    _, pairs = demo_tasks(seed)
    langs = sorted({language(s) for s, _ in pairs})
    fp32 = greedy(T5.from_pretrained(model_dir).eval(), tokenizer, pairs)

    def exact(outputs):
        right = {lang: [] for lang in langs}
        for ids, (source, target) in zip(outputs, pairs):
            right[language(source)].append(tokenizer.decode(ids).strip() == target)
        return " | ".join(f"{sum(r) / len(r):.1%}" for r in right.values())

    counts = {lang: sum(language(s) == lang for s, _ in pairs) for lang in langs}
    lines = [f"Demo model {Path(model_dir).name}, held-out split (seed {seed}), greedy, "
             + ", ".join(f"{n} {lang}" for lang, n in counts.items()) + " examples", "",
             "| weights | " + " | ".join(f"exact match {lang}" for lang in langs)
             + " | answers identical to fp32 | fp32 tokens reproduced |",
             "|---|" + "---:|" * (len(langs) + 2),
             f"| fp32 | {exact(fp32)} | 100% | 100% |"]
    for name, keep in VARIANTS.items():
        out = greedy(quantize(T5.from_pretrained(model_dir).eval(), "int8", keep_fp32=keep), tokenizer, pairs)
        same = sum(a == b for a, b in zip(out, fp32)) / len(fp32)
        tokens = sum(sum(x == y for x, y in zip(a, b)) for a, b in zip(out, fp32)) / sum(len(b) for b in fp32)
        lines.append(f"| {name} | {exact(out)} | {same:.1%} | {tokens:.1%} |")
    return "\n".join(lines)


def random_quality(size: str = "small", seed: int = 0) -> str:
    config = T5Config.flan_t5(size)
    torch.manual_seed(seed)
    fp32 = T5(config).eval()
    state = {k: v.clone() for k, v in fp32.state_dict().items()}
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(3, 32000, (4, 64), generator=g)
    labels = torch.randint(3, 32000, (4, 32), generator=g)
    with torch.no_grad():
        expected = fp32(ids, labels=labels)[0]  # (B, T, V)
    del fp32
    lines = [f"Random flan-T5-{size}-shaped model (minit5's initialisation, seed {seed}), teacher-forced, "
             f"4 x 64 input tokens, 4 x 32 target positions", "",
             "| weights | top-1 agreement with fp32 | relative logit error |", "|---|---:|---:|"]
    for name, keep in VARIANTS.items():
        model = T5(config)
        model.load_state_dict(state)
        model = quantize(model.eval(), "int8", keep_fp32=keep)
        with torch.no_grad():
            got = model(ids, labels=labels)[0]
        agree = (got.argmax(-1) == expected.argmax(-1)).float().mean().item()
        error = ((got - expected).norm() / expected.norm()).item()
        lines.append(f"| {name} | {agree:.1%} | {error:.2%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="out/demo", help="a trained demo model folder")
    parser.add_argument("--seed", type=int, default=None, help="the demo's seed (default: the run's)")
    parser.add_argument("--skip-demo", action="store_true", help="only the random flan-T5-small-shaped model")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_demo:
        if not Path(args.model).exists():
            raise SystemExit(f"error: no model folder at {args.model}: train one with `python train.py`, "
                             f"or pass --skip-demo")
        print(demo_quality(args.model, args.seed), end="\n\n")
    print(random_quality())
