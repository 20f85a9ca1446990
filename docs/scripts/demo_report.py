"""Exact match of a trained demo model on the held-out demo split, task by task, in each language.

    python docs/scripts/demo_report.py                 # the model `python train.py` wrote to out/demo
    python docs/scripts/demo_report.py --model DIR --seed 0 --errors 3
    python docs/scripts/demo_report.py --table         # only the demo's tasks (no model needed)
    python docs/scripts/demo_report.py --table --zh    # the same with Chinese column names (docs/zh/training.md)
    python docs/scripts/demo_report.py --tokens [--zh] # tokens per training step, English-only vs bilingual

The held-out split is the one the trainer evaluates (minit5.demo.demo_tasks with the run's seed); answers are
greedy, as in the trainer's evaluation. Prints a Markdown table (used in docs/training.md and README.md), one row
per task and a pair of columns per language, then a few mistakes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from minit5 import T5, Tokenizer
from minit5.data import BatchSampler, collate, collate_packed, tokenize_pairs
from minit5.demo import LANGUAGES, demo_table, demo_tasks

LANGUAGE_NAMES = {"en": "English", "zh": "Chinese"}


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


def slots(tensors) -> int:
    """Tokens a step computes, padding included."""
    return tensors["input_ids"].numel() + tensors["labels"].numel()


def tokens_table(batches: int = 200) -> str:
    """Tokens per training step (64 examples, the trainer's default batch) of the English-only and the bilingual
    mixture, averaged over the first batches the trainer draws with seed 0: what a step costs."""
    tokenizer = Tokenizer.byte_level()
    rows = ["| mixture | training pairs | input tokens per example | tokens per step | padded tokens per step "
            "| packed tokens per step |", "|---|---|---|---|---|---|"]
    for name, languages in (("English only", ["en"]), ("English and Chinese (the demo)", list(LANGUAGES))):
        examples, _ = tokenize_pairs(demo_tasks(0, languages=languages)[0], tokenizer)
        sampler = BatchSampler(len(examples), 64, seed=0)
        real = padded = packed = 0
        for _ in range(batches):
            batch = [examples[i] for i in next(sampler).indices]
            real += sum(len(source) + len(target) for source, target in batch)
            padded += slots(collate(batch, tokenizer.pad_id))  # one example a row (--no-pack)
            packed += slots(collate_packed(batch, tokenizer.pad_id))  # the trainer's default
        per_example = sum(len(source) for source, _ in examples) / len(examples)
        rows.append(f"| {name} | {len(examples):,} | {per_example:.1f} | {real / batches:,.0f} | "
                    f"{padded / batches:,.0f} | {packed / batches:,.0f} |")
    return "\n".join(rows)

TOKENS_ZH = {"mixture": "数据组合", "training pairs": "训练样本对数", "input tokens per example": "每个样本的输入词元数",
             "tokens per step": "每步词元数", "padded tokens per step": "每步词元数（含填充）",
             "packed tokens per step": "每步词元数（打包后）",
             "English only": "只有英文", "English and Chinese (the demo)": "英文和中文（演示）"}


def tokens_table_zh() -> str:
    """tokens_table() with its column and row names in Chinese."""
    lines = tokens_table().split("\n")
    cells = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]
    return "\n".join(["| " + " | ".join(TOKENS_ZH.get(c, c) for c in cells(line)) + " |" if i != 1 else line
                      for i, line in enumerate(lines)])


def report(model_dir: str, seed: int | None = None, errors: int = 3) -> str:
    model, tokenizer = T5.from_pretrained(model_dir).eval(), Tokenizer.from_pretrained(model_dir)
    if seed is None:  # the seed the run was trained with, when the folder holds the trainer's run.json
        run = Path(model_dir) / "run.json"
        seed = json.loads(run.read_text())["settings"]["seed"] if run.exists() else 0
    _, evaluation = demo_tasks(seed, by_task=True)
    scores, mistakes = {}, []  # scores[(language, task)] = (right, total)
    for lang, tasks in evaluation.items():
        for task, pairs in tasks.items():
            examples, _ = tokenize_pairs(pairs, tokenizer, 512, 128)
            batch = collate(examples, tokenizer.pad_id)
            with torch.no_grad():
                out = model.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=32)
            answers = [tokenizer.decode(row[1:]).strip() for row in out]
            correct = [a == t for a, (_, t) in zip(answers, pairs)]
            scores[lang, task] = sum(correct), len(pairs)
            mistakes += [f"{lang} {task}: {s!r} -> {a!r} (expected {t!r})"
                         for a, (s, t), ok in zip(answers, pairs, correct) if not ok][:errors]
    return "\n".join(markdown_scores(scores) + ([""] + mistakes if mistakes else []))


def markdown_scores(scores: dict) -> list[str]:
    """Rows of the report table: per task, each language's held-out count and exact match; then the totals."""
    languages = [lang for lang in LANGUAGES if any(key[0] == lang for key in scores)]
    tasks = list(dict.fromkeys(task for _, task in scores))
    names = [LANGUAGE_NAMES.get(lang, lang) for lang in languages]
    rows = ["| task | " + " | ".join(f"{name} held-out | {name} exact match" for name in names) + " |",
            "|---|" + "---|---|" * len(languages)]
    for task in tasks:
        cells = [f"{scores[lang, task][1]} | {scores[lang, task][0] / scores[lang, task][1]:.1%}" for lang in languages]
        rows.append(f"| {task} | " + " | ".join(cells) + " |")
    totals = []
    for lang in languages:
        right = sum(scores[lang, task][0] for task in tasks)
        total = sum(scores[lang, task][1] for task in tasks)
        totals.append(f"{total} | **{right / total:.1%}** ({right} of {total})")
    rows.append("| **all** | " + " | ".join(totals) + " |")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="out/demo")
    parser.add_argument("--seed", type=int, default=None, help="the demo's seed (default: the run's)")
    parser.add_argument("--errors", type=int, default=3, help="mistakes to show per task")
    parser.add_argument("--table", action="store_true", help="print the demo's task table and stop")
    parser.add_argument("--zh", action="store_true", help="with --table or --tokens: Chinese names")
    parser.add_argument("--tokens", action="store_true", help="print the tokens per training step and stop")
    args = parser.parse_args()
    if args.table:
        raise SystemExit(print(markdown_table_zh() if args.zh else markdown_table()))
    if args.tokens:
        raise SystemExit(print(tokens_table_zh() if args.zh else tokens_table()))
    if not Path(args.model).exists():
        raise SystemExit(f"no model folder at {args.model}: train one with `python train.py`")
    print(report(args.model, args.seed, args.errors))
