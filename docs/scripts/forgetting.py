"""Forgetting: teach the trained demo model a new task, fully and with LoRA, and measure what it still knows.

    python docs/scripts/forgetting.py                       the demo model `python train.py` wrote to out/demo
    python docs/scripts/forgetting.py --model out/demo --lr-full 1e-4 3e-4 --lr-lora 1e-3 3e-3

The new task is unit conversion, made up here and never seen by the demo: "How many centimetres in 7 metres?" →
"700" (metres→centimetres, kilometres→metres, centimetres→millimetres: the digits, then 2, 3 or 1 zeros). Its
held-out split uses numbers that never occur in its training split. The script fine-tunes the demo model on the new
task alone for --steps steps, each run from the same start: every weight (full fine-tuning, at each --lr-full), a
LoRA adapter on q and v (peft's default for T5) and one on every linear layer (at each --lr-lora). It prints, for
each, the new task's held-out exact match and the demo's own held-out exact match, before and after, as a Markdown
table (docs/training.md), and the base model's scores once more after the LoRA runs (they never write it).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CONVERSIONS = [("metres", "centimetres", 100), ("kilometres", "metres", 1000), ("centimetres", "millimetres", 10)]
TEMPLATES = ["How many {small} in {n} {big}?", "Convert {n} {big} to {small}.", "{n} {big} in {small}?"]


def default_model() -> str:
    return "out/demo"  # what `python train.py` writes


def conversion_task(seed: int = 0, train_size: int = 3000, held_out_size: int = 150):
    """(train_pairs, held_out_pairs) of the unit-conversion task; held-out numbers never appear in training."""
    rng = random.Random(seed)
    numbers = list(range(1, 1000))
    rng.shuffle(numbers)
    held_numbers, train_numbers = numbers[:150], numbers[150:]

    def pairs(pool, count):
        out = []
        for _ in range(count):
            n, (big, small, factor) = rng.choice(pool), rng.choice(CONVERSIONS)
            out.append((rng.choice(TEMPLATES).format(n=n, big=big, small=small), str(n * factor)))
        return out

    train = pairs(train_numbers, train_size)
    seen = {source for source, _ in train}
    held_out = list(dict(p for p in pairs(held_numbers, 4 * held_out_size) if p[0] not in seen).items())
    return train, held_out[:held_out_size]


def write_jsonl(path: Path, pairs):
    path.write_text("".join(json.dumps({"input": i, "target": t}) + "\n" for i, t in pairs), encoding="utf-8")


def exact_match(model, tokenizer, pairs) -> float:
    from minit5.evaluate import predict, scores
    predictions = predict(model, tokenizer, [i for i, _ in pairs], batch_size=64, max_new_tokens=16)
    return scores(predictions, [t for _, t in pairs])["exact_match"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=default_model(), help="the trained demo model (default: %(default)s)")
    p.add_argument("--work", default="out/forgetting", help="folder for the runs (replaced)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr-full", type=float, nargs="+", default=[1e-4], help="learning rate(s) of full fine-tuning")
    p.add_argument("--lr-lora", type=float, nargs="+", default=[1e-3], help="learning rate(s) of the LoRA runs")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = p.parse_args()
    if not (Path(args.model) / "config.json").exists():
        sys.exit(f"no model at {args.model}: train the demo first (python train.py --out DIR) and pass --model DIR")

    import torch

    from minit5 import T5, Tokenizer
    from minit5.demo import demo_tasks
    from minit5.lora import load_adapter, trainable_summary
    from minit5.trainer import TrainConfig, Trainer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    run_file = Path(args.model) / "run.json"
    demo_seed = json.loads(run_file.read_text())["settings"].get("seed", 0) if run_file.exists() else 0
    _, demo_held_out = demo_tasks(demo_seed)
    train, held_out = conversion_task(args.seed)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    write_jsonl(work / "train.jsonl", train)
    write_jsonl(work / "held_out.jsonl", held_out)
    tokenizer = Tokenizer.from_pretrained(args.model)
    base = T5.from_pretrained(args.model)
    print(f"model {args.model} · new task: {len(train)} training pairs, {len(held_out)} held-out "
          f"(e.g. {held_out[0][0]!r} → {held_out[0][1]!r}) · demo held-out: {len(demo_held_out)} pairs")
    before = (exact_match(base, tokenizer, held_out), exact_match(base, tokenizer, demo_held_out))
    rows = [("none: the demo model", "—", "—", *before, "—")]

    runs = [("full", f"full-{lr:g}", dict(lr=lr)) for lr in args.lr_full]
    for targets, label in (("q,v", "qv"), ("all-linear", "all")):
        runs += [(f"LoRA r={args.lora_r} on {targets}", f"lora-{label}-{lr:g}",
                  dict(lr=lr, lora_r=args.lora_r, lora_targets=targets)) for lr in args.lr_lora]
    for name, folder, overrides in runs:
        out = work / folder
        cfg = TrainConfig(task="seq2seq", data=str(work / "train.jsonl"), init=args.model, out=str(out),
                          overwrite=out.exists(), steps=args.steps, batch_size=args.batch_size, warmup=20,
                          schedule="constant", eval_every=10 ** 9, save_every=args.steps, log_every=50,
                          seed=args.seed, lora_alpha=2.0 * args.lora_r, **overrides)
        start = time.perf_counter()
        trainer = Trainer(cfg, log=lambda m: None)
        trained = trainer.model
        count = trainable_summary(trained).split(" || ")[0].removeprefix("trainable params: ")
        trainer.train()
        seconds = time.perf_counter() - start
        if cfg.lora_r:  # as a user would: the base again, plus the adapter files the run wrote
            model = load_adapter(T5.from_pretrained(args.model), out)
        else:
            model = T5.from_pretrained(out)
        rows.append((name, f"{overrides['lr']:g}", count, exact_match(model, tokenizer, held_out),
                     exact_match(model, tokenizer, demo_held_out), f"{seconds:.0f} s"))
    # The LoRA runs never wrote the base: load it again and check that it still knows everything it knew.
    base = T5.from_pretrained(args.model)
    rows.append(("LoRA runs, adapter removed (the base file)", "—", "—", exact_match(base, tokenizer, held_out),
                 exact_match(base, tokenizer, demo_held_out), "—"))

    print(f"\n{args.steps} steps of {args.batch_size} examples on the new task alone (warmup 20, then constant "
          f"learning rate; LoRA alpha = 2r); exact match on held-out pairs:\n")
    print("| fine-tuning | learning rate | trained parameters | new task (unit conversion) | demo tasks | time |")
    print("|---|---|---|---|---|---|")
    for name, lr, count, new, demo, seconds in rows:
        print(f"| {name} | {lr} | {count} | {100 * new:.1f}% | {100 * demo:.1f}% | {seconds} |")


if __name__ == "__main__":
    main()
