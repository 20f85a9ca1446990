"""The demo's loss curve, in English or in Chinese: the picture the trainer draws as loss.png, from metrics.jsonl.

    python docs/scripts/draw_demo_loss.py              out/demo/metrics.jsonl -> docs/img/demo_loss.png
    python docs/scripts/draw_demo_loss.py --zh         Chinese labels: docs/img/zh/demo_loss.png
    python docs/scripts/draw_demo_loss.py --run DIR --out /tmp/loss.png

The trainer writes loss.png itself (minit5/trainer.py), in English; docs/training.md shows that picture as
docs/img/demo_loss.png. This script draws the same curves the same way (one training-loss point per logged step and
one held-out point per evaluation; a step logged twice, as after a resume, counts once, the later row winning) so
that docs/zh/training.md can show them with Chinese labels. Needs matplotlib, and with --zh a CJK font.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_MODEL, figure_path, in_language, need_matplotlib, use_chinese_font  # noqa: E402


def read_rows(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl; a last line still being written (no newline yet) is left out."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        sys.exit(f"no metrics at {path}: train the demo first (python train.py), or pass --run DIR")
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def curves(rows: list[dict]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(training loss, held-out loss) as (step, value) pairs in step order, one per step, the last row winning."""
    train = sorted({r["step"]: r["loss"] for r in rows if "loss" in r}.items())
    held_out = sorted({r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r}.items())
    return train, held_out


def draw(rows: list[dict], zh: bool = False):
    """The figure (not saved): log-scale cross-entropy against the step, as the trainer's loss.png."""
    plt = need_matplotlib()
    tr = in_language(zh)
    train, held_out = curves(rows)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if train:
        ax.plot(*zip(*train), label=tr("training loss", "训练损失"))
    if held_out:
        ax.plot(*zip(*held_out), "o-", label=tr("held-out loss", "留出集损失"))
    ax.set_xlabel(tr("step", "步数"))
    ax.set_ylabel(tr("cross-entropy per target token", "每个目标词元的交叉熵"))
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=DEFAULT_MODEL, help=f"the training run's folder (default {DEFAULT_MODEL})")
    p.add_argument("--zh", action="store_true", help="Chinese labels, for docs/zh/ (docs/img/zh/demo_loss.png)")
    p.add_argument("--out", help="where to draw (default docs/img/demo_loss.png; with --zh docs/img/zh/...)")
    args = p.parse_args()
    rows = read_rows(Path(args.run) / "metrics.jsonl")
    plt = need_matplotlib()
    if args.zh:
        use_chinese_font(plt)
    fig = draw(rows, zh=args.zh)
    out = Path(args.out or figure_path("demo_loss.png", args.zh))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)  # the trainer's resolution, so that both languages' pictures have the same size
    print(f"{len(rows)} rows of {Path(args.run) / 'metrics.jsonl'}; wrote {out}")


if __name__ == "__main__":
    main()
