"""What the trainer tests share: the settings of a tiny seq2seq run on conftest.py's `files`, as keyword
arguments (settings), as command-line flags (cli), run in this process (run_in_process), and its logged losses."""

from pathlib import Path

from minit5.run_folder import read_metrics
from minit5.trainer import TrainConfig, Trainer


def settings(files, out, **overrides):
    base = dict(task="seq2seq", data=str(files / "pairs.jsonl"), config=str(files / "tiny.json"), out=str(out),
                steps=6, batch_size=8, lr=3e-3, warmup=2, eval_every=1000, save_every=1000, log_every=1,
                eval_examples=8)
    base.update(overrides)
    return base


def cli(args: dict) -> list[str]:
    out = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, list):
            out += [flag, *map(str, value)]
        elif value is not None and value is not False:
            out += [flag, str(value)]
    return out


def losses(out) -> dict:
    """{step: loss} from metrics.jsonl; safe while the trainer writes it (a line not yet ended is left out)."""
    return {r["step"]: r["loss"] for r in read_metrics(Path(out) / "metrics.jsonl") if "loss" in r}


def run_in_process(files, out, **overrides):
    trainer = Trainer(TrainConfig(**settings(files, out, **overrides)), log=lambda m: None)
    return trainer, trainer.train()
