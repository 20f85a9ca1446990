"""Exact match of a trained demo model on the held-out demo split, task by task.

    python docs/scripts/demo_report.py                 # the model `python train.py` wrote to out/demo
    python docs/scripts/demo_report.py --model DIR --seed 0 --errors 3
    python docs/scripts/demo_report.py --table         # only the demo's tasks (no model needed)
    python docs/scripts/demo_report.py --table --zh    # the same with Chinese column names (docs/zh/training.md)

The held-out split is the one the trainer evaluates (minit5.data.demo_tasks with the run's seed); answers are
greedy, as in the trainer's evaluation. Prints a Markdown table (used in docs/training.md) and a few mistakes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from minit5 import T5, Tokenizer
from minit5.data import collate, demo_table, demo_tasks, tokenize_pairs


def markdown_table() -> str:
    """The demo's tasks, phrasings and sizes (for docs/scripts/update_generated.py)."""
    return demo_table()


ZH_COLUMNS = {"task": "任务", "training phrasings": "训练用的问法", "held-out phrasing": "留出的问法",
              "example": "示例", "train": "训练", "eval": "评估", "language": "语言"}


def markdown_table_zh() -> str:
    """markdown_table() with its column names in Chinese (the tasks' phrasings are data and stay as they are)."""
    header, *rest = markdown_table().split("\n")
    cells = [c.strip() for c in header.strip().strip("|").split("|")]
    return "\n".join(["| " + " | ".join(ZH_COLUMNS.get(c, c) for c in cells) + " |", *rest])


def report(model_dir: str, seed: int | None = None, errors: int = 3) -> str:
    model, tokenizer = T5.from_pretrained(model_dir).eval(), Tokenizer.from_pretrained(model_dir)
    if seed is None:  # the seed the run was trained with, when the folder holds the trainer's run.json
        run = Path(model_dir) / "run.json"
        seed = json.loads(run.read_text())["settings"]["seed"] if run.exists() else 0
    _, evaluation = demo_tasks(seed, by_task=True)
    rows, mistakes, right, total = [], [], 0, 0
    for task, pairs in evaluation.items():
        examples, _ = tokenize_pairs(pairs, tokenizer, 512, 128)
        batch = collate(examples, tokenizer.pad_id)
        with torch.no_grad():
            out = model.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=32)
        answers = [tokenizer.decode(row[1:]).strip() for row in out]
        correct = [a == t for a, (_, t) in zip(answers, pairs)]
        mistakes += [f"{task}: {s!r} -> {a!r} (expected {t!r})"
                     for a, (s, t), ok in zip(answers, pairs, correct) if not ok][:errors]
        rows.append(f"| {task} | {len(pairs)} | {sum(correct) / len(pairs):.1%} |")
        right, total = right + sum(correct), total + len(pairs)
    table = ["| task | held-out examples | exact match |", "|---|---|---|", *rows,
             f"| **all** | {total} | **{right / total:.1%}** |"]
    return "\n".join(table + ([""] + mistakes if mistakes else []))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="out/demo")
    parser.add_argument("--seed", type=int, default=None, help="the demo's seed (default: the run's)")
    parser.add_argument("--errors", type=int, default=3, help="mistakes to show per task")
    parser.add_argument("--table", action="store_true", help="print the demo's task table and stop")
    parser.add_argument("--zh", action="store_true", help="with --table: Chinese column names")
    args = parser.parse_args()
    if args.table:
        raise SystemExit(print(markdown_table_zh() if args.zh else markdown_table()))
    if not Path(args.model).exists():
        raise SystemExit(f"no model folder at {args.model}: train one with `python train.py`")
    print(report(args.model, args.seed, args.errors))
