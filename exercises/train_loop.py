"""The training loop of step 12, written for you: it trains YOUR T5 (steps 1-6) with YOUR collate and train_step
(step 12) on the demo's data, draws the loss as it falls, then asks your model where Ganymede is.

    python -m exercises.train_loop                 train with your steps (a few minutes on 2 CPU cores)
    python -m exercises.train_loop --solutions     the same with the reference solutions
    python -m exercises.train_loop --steps 300     a shorter run (it will not know the moons yet)

The data is minit5/demo.py's mixture, what `python train.py` trains on: seven small tasks asked in English and
Chinese ("Where is Ganymede?" → Jupiter, "伽尼米德在哪里？" → 木星, reversing made-up words, adding 1, ...). The
settings are RECIPE below. Everything else is minit5's trainer (minit5/trainer.py) cut down to one process, with
its arithmetic: the same starting weights (T5's initialisation), the same batches, AdamW with weight decay on the
matrices only, linear warmup then cosine decay. So your run and minit5's on the same settings give the same
losses step after step; step 12's fast test checks the first steps, and exercises/demo_model is what minit5's
trainer makes of this recipe (`python -m exercises.build_demo_model`). Read it once; nothing here needs changing.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
from functools import lru_cache
from pathlib import Path

import torch

from minit5 import demo
from minit5.config import T5Config
from minit5.data import BatchSampler, fetch, tokenize_pairs
from minit5.model import T5 as MinitT5
from minit5.tokenizer import Tokenizer

# The recipe: a T5 of half a million parameters that learns the demo's moons in a few minutes on 2 CPU cores
# (docs/exercises.md, step 12, says how it was chosen and how long it takes).
RECIPE = dict(d_model=96, d_ff=192, d_kv=24, num_heads=4, num_layers=2,  # the model (plus a 384-byte vocabulary)
              steps=2000, batch_size=64, lr=3e-3, warmup=100, weight_decay=0.01, beta2=0.98, clip=1.0, seed=0)


def recipe_config() -> T5Config:
    """The recipe's model: T5 v1.1-shaped (gated GELU, separate lm_head), on the byte vocabulary, no dropout."""
    return T5Config(vocab_size=Tokenizer.byte_level().vocab_size, d_model=RECIPE["d_model"], d_ff=RECIPE["d_ff"],
                    d_kv=RECIPE["d_kv"], num_heads=RECIPE["num_heads"], num_layers=RECIPE["num_layers"],
                    num_decoder_layers=RECIPE["num_layers"], feed_forward_proj="gated-gelu",
                    tie_word_embeddings=False, dropout_rate=0.0)


def train_command(config_json: str, out: str, steps: int | None = None) -> list[str]:
    """The same run with minit5's trainer: the arguments of train.py (config_json holds recipe_config()). --no-pack:
    one example a row, as the learner's collate lays them out (packing would give the same sums, rounded otherwise).
    --position-bias-lr-scale 1: one learning rate for every weight, as the learner's AdamW has."""
    return ["--config", config_json, "--out", out, "--no-pack", "--position-bias-lr-scale", "1",
            "--steps", str(steps or RECIPE["steps"]),
            "--batch-size", str(RECIPE["batch_size"]), "--lr", str(RECIPE["lr"]), "--warmup", str(RECIPE["warmup"]),
            "--weight-decay", str(RECIPE["weight_decay"]), "--beta2", str(RECIPE["beta2"]),
            "--clip", str(RECIPE["clip"]), "--seed", str(RECIPE["seed"]), "--schedule", "cosine"]


@lru_cache(maxsize=2)
def demo_examples(seed: int = 0) -> list:
    """The demo's training pairs as (input_ids, labels) lists of byte ids, each ending with EOS (30,000 pairs)."""
    pairs, _ = demo.demo_tasks(seed)
    examples, _ = tokenize_pairs(pairs, Tokenizer.byte_level())
    return examples


def start_model(T5, config: T5Config, seed: int):
    """Your T5 with T5's initialisation (minit5/model.py T5.init_weights), the very weights minit5's trainer starts
    from with this seed: weights are copied by name, which your model shares with minit5's."""
    torch.manual_seed(seed)
    reference = MinitT5(config)
    model = T5(config)
    model.load_state_dict(reference.state_dict())
    return model.train()


def make_optimizer(model, lr: float):
    """AdamW as minit5's trainer builds it: weight decay on the matrices, none on the norms' scales and the
    position-bias tables (they are not weights that grow to fit noise)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.dim() < 2 or "position_bias" in name else decay).append(p)
    groups = [dict(params=decay, weight_decay=RECIPE["weight_decay"]), dict(params=no_decay, weight_decay=0.0)]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, RECIPE["beta2"]), eps=1e-8, fused=True)


def lr_factor(step: int, warmup: int, steps: int) -> float:
    """The learning rate's multiplier at step `step` (0-based): linear warmup, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min((step - warmup) / max(1, steps - warmup), 1.0)))


def run_training(T5, collate, train_step, steps=None, say=print, progress: bool = True):
    """Train a fresh T5 (your class) on the demo's data with your collate and train_step. Returns (model, the loss
    of every step). say: where the curve is drawn; progress: show a tqdm bar."""
    from tqdm import tqdm
    steps = steps or RECIPE["steps"]
    model = start_model(T5, recipe_config(), RECIPE["seed"])
    examples = demo_examples(RECIPE["seed"])
    optimizer = make_optimizer(model, RECIPE["lr"])
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, RECIPE["warmup"], steps))
    batches = BatchSampler(len(examples), RECIPE["batch_size"], RECIPE["seed"])  # a shuffled order per epoch
    say(f"training your T5 ({sum(p.numel() for p in model.parameters()):,} parameters) on the demo's "
        f"{len(examples):,} pairs: {steps} steps of {RECIPE['batch_size']} examples")
    losses, curve_every = [], max(1, steps // 10)
    bar = tqdm(total=steps, desc="train", dynamic_ncols=True, disable=not progress, file=sys.stdout)
    start = time.perf_counter()
    for step in range(steps):
        batch_indices = next(batches)
        batch = collate(fetch(examples, batch_indices.indices, batch_indices.epoch), 0)
        losses.append(train_step(model, optimizer, batch, RECIPE["clip"]))  # your step
        schedule.step()
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if (step + 1) % curve_every == 0 or step + 1 == steps:
            line = f"step {step + 1:5d}  loss {sum(losses[-curve_every:]) / len(losses[-curve_every:]):.3f}  " \
                   f"{sparkline(losses)}"
            if progress:
                bar.write(line)
            else:
                say(line)
    bar.close()
    say(f"{steps} steps in {time.perf_counter() - start:.0f} s\n{loss_chart(losses)}")
    return model.eval(), losses


BARS = "▁▂▃▄▅▆▇█"


def sparkline(losses, width: int = 50) -> str:
    """The loss so far in one line of block characters (log scale), left = first step."""
    means = [sum(chunk) / len(chunk) for chunk in _chunks(losses, width)]
    low, high = math.log(min(means)), math.log(max(means))
    return "".join(BARS[round((math.log(m) - low) / max(high - low, 1e-9) * (len(BARS) - 1))] for m in means)


def loss_chart(losses, width: int = 60, height: int = 10) -> str:
    """The whole curve as a small text chart: loss (log scale) against step."""
    means = [sum(chunk) / len(chunk) for chunk in _chunks(losses, width)]
    low, high = math.log(min(means)), math.log(max(means))
    rows = [[" "] * len(means) for _ in range(height)]
    for x, m in enumerate(means):
        rows[height - 1 - round((math.log(m) - low) / max(high - low, 1e-9) * (height - 1))][x] = "•"
    labels = [f"{math.exp(high - (high - low) * i / (height - 1)):7.3f} │" for i in range(height)]
    lines = [label + "".join(row) for label, row in zip(labels, rows)]
    lines.append(" " * 8 + "└" + "─" * len(means))
    lines.append(" " * 9 + f"step 1{' ' * max(1, len(means) - 6 - len(str(len(losses))))}{len(losses)}")
    return "loss (log scale)\n" + "\n".join(lines)


def _chunks(values, parts: int):
    parts = min(parts, len(values))
    return [values[len(values) * i // parts: len(values) * (i + 1) // parts] for i in range(parts)]


def draw_png(losses, path: Path):
    """loss.png, if matplotlib is installed (it is optional: the text chart says the same)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(losses) + 1), losses, linewidth=0.8)
    ax.set(xlabel="step", ylabel="loss (cross-entropy per target token)", yscale="log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--solutions", action="store_true", help="train with the reference solutions instead of yours")
    p.add_argument("--steps", type=int, default=RECIPE["steps"], help=f"training steps (default {RECIPE['steps']})")
    p.add_argument("--out", default="out/exercises/yours",
                   help="where your trained model is written, with your step 7 names (default out/exercises/yours)")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error(f"--steps must be at least 1, got {args.steps}")
    package = "exercises.solutions" if args.solutions else "exercises"
    try:
        training = importlib.import_module(f"{package}.step12_train")
        loading = importlib.import_module(f"{package}.step07_load_checkpoint")
        answering = importlib.import_module(f"{package}.step11_answer")
        torch.set_num_threads(min(2, torch.get_num_threads()))
        model, losses = training.train(steps=args.steps)
    except NotImplementedError as e:
        sys.exit(f"not yet: {e} (python -m pytest exercises -k step12 shows what each function must do)")
    from ._support import QUESTIONS, save_hf_checkpoint
    save_hf_checkpoint(model, args.out, loading.hf_name)
    png = draw_png(losses, Path(args.out) / "loss.png")
    print(f"wrote {args.out}" + (f" and its curve {png}" if png else ""))
    for question, expected in QUESTIONS.items():
        got = answering.answer(args.out, question)
        print(f"  {question} → {got}" + ("" if expected in got else f"   (expected {expected})"))


if __name__ == "__main__":
    main()
