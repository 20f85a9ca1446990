"""The run folder (--out): what it holds, which run it is, and how each file is written so that a kill at any
moment loses nothing. The training loop (minit5/trainer.py) calls this module; only rank 0 writes here (under --fsdp,
every process also writes its shards into the checkpoint's sharded/ folder, through torch.distributed.checkpoint).

    config.json, model.safetensors, tokenizer files   the latest model, for generate.py and transformers
    checkpoints/step-00001000/                         a resumable checkpoint: model + trainer_state.pt
                                                       (--fsdp: + sharded/, each process's shards)
    checkpoints/latest                                 the name of the newest complete checkpoint
    run.json                                           the settings and model config of this run
    metrics.jsonl, loss.png                            the log, one JSON object per line; the curve

A LoRA run writes adapter_config.json and adapter_model.safetensors (peft's files) in place of the model files.
A checkpoint is written to a temporary folder, flushed to disk, and renamed into place, so a kill at any moment
leaves the previous checkpoint intact; `latest` is replaced the same way.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .checkpoint import atomic_write, write_json
from .train_config import (MAY_CHANGE, RESUME_MAY_CHANGE, RUN_IDENTITY, TrainConfig, TrainError, flag, resolved,
                           settings_where)

# config.json keys that describe a file, not the model (transformers and minit5 write the weights' dtype)
NOT_MODEL_KEYS = ("dtype", "torch_dtype", "transformers_version")


# --------------------------------------------------------------------------------------------------
# Checkpoint names
# --------------------------------------------------------------------------------------------------
def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def checkpoint_step(folder: Path) -> int:
    return int(folder.name.removeprefix("step-"))


def latest_checkpoint(out: Path) -> Path | None:
    pointer = out / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    path = out / "checkpoints" / pointer.read_text().strip()
    return path if (path / "trainer_state.pt").exists() else None


# --------------------------------------------------------------------------------------------------
# Which run is in --out, and what to do with it (before anything is loaded)
# --------------------------------------------------------------------------------------------------
def check_out_dir(cfg: TrainConfig, run_info: dict) -> str:
    """What to do with --out: "fresh", "resume", or "done" (the same run already finished). run_info is the
    run.json this run would write; a folder holding another run, or changed settings, is refused."""
    out = Path(cfg.out)
    if not out.exists() or not any(out.iterdir()):
        if cfg.resume:
            raise TrainError(f"--resume: {out} holds no run to resume")
        return "fresh"
    before = read_run_file(out, cfg.overwrite)
    if cfg.overwrite:
        shutil.rmtree(out)
        return "fresh"
    now = dict(settings=run_info["settings"], model_config=model_keys(run_info["model_config"]))
    refuse_another_run(cfg, before, now)
    changed = changed_settings(before, now)
    latest = latest_checkpoint(out)
    if latest is None:  # killed before its first checkpoint: nothing can be resumed
        raise TrainError(f"{out} holds a run that stopped before its first checkpoint, so there is nothing to "
                         f"resume; --overwrite starts it again")
    if cfg.resume:
        if changed:
            free = ", ".join(flag(n) for n in settings_where(lambda m: m["resume"] == MAY_CHANGE))
            raise TrainError(f"--resume: {describe(changed, before, now)}; an exact resume needs the settings the "
                             f"run started with (only {free} may change), so pass the old values, or --overwrite "
                             f"to start again")
        return "done" if checkpoint_step(latest) >= cfg.steps else "resume"
    if not changed and checkpoint_step(latest) >= cfg.steps:  # the name says the step: no optimizer state read
        return "done"
    raise TrainError(f"{out} already holds a run; pass --resume to continue it, --overwrite to start again, "
                     f"or choose another --out")


def read_run_file(out: Path, overwrite: bool) -> dict:
    """The run.json in --out, as {"settings": ..., "model_config": ...}; a folder without one is not a run."""
    run_file = out / "run.json"
    if not run_file.exists():
        if overwrite:
            raise TrainError(f"{out} holds files that are not a minit5 run; --overwrite only replaces a minit5 run, "
                             f"so choose another --out")
        raise TrainError(f"{out} already holds files that are not a minit5 run; choose another --out")
    try:
        previous = json.loads(run_file.read_text(encoding="utf-8"))
        # runs written before --position-bias-lr-scale existed trained the position-bias tables at --lr
        settings = {"position_bias_lr_scale": 1.0, **previous["settings"]}
        return dict(settings=settings, model_config=model_keys(previous["model_config"]))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
        raise TrainError(f"{run_file} is not a valid run.json ({e}); remove {out} or choose another --out") from None


def model_keys(model_config: dict) -> dict:
    return {k: v for k, v in model_config.items() if k not in NOT_MODEL_KEYS}


def differs(name: str, before: dict, now: dict) -> bool:
    return resolved(name, before["settings"].get(name)) != resolved(name, now["settings"].get(name))


def describe(names, before: dict, now: dict) -> str:
    return "; ".join(f"{flag(n)} was {before['settings'].get(n)}, now {now['settings'].get(n)}" for n in names)


def refuse_another_run(cfg: TrainConfig, before: dict, now: dict):
    """Another task, data, init, config or model shape is another run, which --out may not be reused for."""
    other_run = [n for n in RUN_IDENTITY if differs(n, before, now)]
    old_model, new_model = before["model_config"], now["model_config"]
    model_changes = sorted(k for k in set(old_model) | set(new_model) if old_model.get(k) != new_model.get(k)
                           and k != "dropout_rate")  # a setting (--dropout), checked with the others
    if other_run or model_changes:
        what = "; ".join(([describe(other_run, before, now)] if other_run else []) +
                         ([f"model config differs in {', '.join(model_changes)}"] if model_changes else []))
        hint = " (--out defaults to out/demo, the demo's folder)" if Path(cfg.out) == Path("out/demo") else ""
        raise TrainError(f"{Path(cfg.out)} holds another run ({what}); choose another --out{hint}, "
                         f"or --overwrite to replace it")


def changed_settings(before: dict, now: dict) -> list[str]:
    """The settings an exact resume needs unchanged that did change (the model config's dropout rate counts as
    --dropout)."""
    names = sorted(set(before["settings"]) | set(now["settings"]))
    changed = [n for n in names if n not in RESUME_MAY_CHANGE and differs(n, before, now)]
    if before["model_config"].get("dropout_rate") != now["model_config"].get("dropout_rate") \
            and "dropout" not in changed:
        changed.append("dropout")  # the config file's rate changed
    return changed


# --------------------------------------------------------------------------------------------------
# Writing the run
# --------------------------------------------------------------------------------------------------
class RunFolder:
    """--out as the trainer writes it (rank 0 only): the record, the log, the checkpoints, the curve."""

    def __init__(self, out):
        self.path = Path(out)
        self.checkpoints = self.path / "checkpoints"

    def start(self, run_info: dict, resumed_at: int | None = None):
        """The folder and its run.json; after a resume, the log loses the steps the interrupted run did past
        its checkpoint (they are done again)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / "run.json", run_info, sort_keys=False)
        if resumed_at is not None:
            keep_metrics_up_to(self.path / "metrics.jsonl", resumed_at)

    def record(self, entry: dict):
        """One line of metrics.jsonl, in one write: a reader never sees half of it as the last line."""
        fd = os.open(self.path / "metrics.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, (json.dumps(entry) + "\n").encode("utf-8"))
        finally:
            os.close(fd)

    def temporary_checkpoint(self, step: int) -> Path:
        """Where the checkpoint of `step` is written before it is committed (every process can name it)."""
        return self.checkpoints / f".tmp-{checkpoint_name(step)}"

    def new_checkpoint(self, step: int) -> Path:
        """A new, empty temporary folder for the checkpoint of `step`: fill it, then pass it to commit_checkpoint.
        (A temporary folder left by a run killed while saving is removed first.)"""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        for stale in self.checkpoints.glob(".tmp-step-*"):
            shutil.rmtree(stale)
        tmp = self.temporary_checkpoint(step)
        tmp.mkdir()
        return tmp

    def commit_checkpoint(self, tmp: Path, keep: int):
        """The filled temporary folder becomes checkpoints/step-N, whole or not at all: flushed to disk, renamed
        into place, then pointed at by `latest`; the model is published at the top of the run folder, and only
        the newest `keep` checkpoints stay."""
        fsync_tree(tmp)
        final = self.checkpoints / tmp.name.removeprefix(".tmp-")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)  # the checkpoint appears whole, or not at all
        atomic_write(self.checkpoints / "latest", lambda p: p.write_text(final.name + "\n"))
        self.publish(final)
        kept = sorted(p for p in self.checkpoints.iterdir() if p.is_dir() and p.name.startswith("step-"))
        for old in kept[:-keep]:
            shutil.rmtree(old)

    def publish(self, checkpoint: Path):
        """The checkpoint's model at the top of the run folder, for generate.py: hard links to its files (no
        second copy on disk), each renamed into place."""
        for file in checkpoint.iterdir():
            if file.name != "trainer_state.pt" and file.is_file():  # not sharded/ either: it is for --resume
                link = self.path / f".{file.name}.tmp"
                try:
                    os.link(file, link)
                except OSError:
                    shutil.copy2(file, link)
                os.replace(link, self.path / file.name)

    def plot(self):
        plot_metrics(self.path)


def fsync_tree(folder: Path):
    """Flush a folder's files, its subfolders (sharded/) and the folder itself to disk (before it is renamed
    into place)."""
    for path in folder.iterdir():
        if path.is_dir():
            fsync_tree(path)
            continue
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# The log: metrics.jsonl and loss.png
# --------------------------------------------------------------------------------------------------
def read_metrics(path: Path) -> list[dict]:
    """The rows of metrics.jsonl; a last line without its newline (being written right now) is left out."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def keep_metrics_up_to(path: Path, step: int):
    """After a resume from `step`: drop the rows logged past it by the interrupted run (they are redone)."""
    if path.exists():
        rows = [row for row in read_metrics(path) if row["step"] <= step]
        atomic_write(path, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"))


def plot_metrics(out: Path):
    """loss.png from metrics.jsonl, when matplotlib is installed (an optional dependency)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = read_metrics(out / "metrics.jsonl")
    # one point per step (the latest row wins), in step order, even in a log a resume has repeated steps in
    train = sorted({r["step"]: r["loss"] for r in rows if "loss" in r}.items())
    evals = sorted({r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r}.items())
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if train:
        ax.plot(*zip(*train), label="training loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="held-out loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy per target token")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=120)
    plt.close(fig)
