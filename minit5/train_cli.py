"""Train a T5:  python train.py            the built-in demo (a tiny model, about 6 minutes on 2 CPU cores)

    python train.py --task seq2seq --data train.jsonl --eval-data dev.jsonl --init google/flan-t5-small --out out/ft
    python train.py --task span-corruption --text corpus.txt --config small --out out/pretrain
    torchrun --nproc_per_node 2 train.py ...       the same, on several processes (DistributedDataParallel)
    torchrun --nproc_per_node 4 train.py --fsdp ... weights, gradients and optimizer state sharded over them (FSDP)
    python train.py --resume                       continue the run in --out where it stopped
    python train.py --task seq2seq --data train.jsonl --init google/flan-t5-small --lora-r 8 --out out/lora
                                                   a LoRA adapter (peft's files) instead of all the weights

Installed with pip, the same command is `minit5-train`. Every option is a field of minit5.train_config.TrainConfig,
which holds its help; see docs/training.md.
"""

import argparse
import dataclasses
import os
import shlex
import sys
from pathlib import Path

from .train_config import TrainConfig, flag


def parse_args(argv=None) -> TrainConfig:
    """The command line as a TrainConfig: one flag per field, its help and type from the field."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(TrainConfig):
        text = f.metadata["help"]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if f.type == "bool":  # on by default: --name and --no-name
            action = argparse.BooleanOptionalAction if default else "store_true"
            p.add_argument(flag(f.name), action=action, default=default, help=text)
        elif f.type == "list[str]":
            p.add_argument(flag(f.name), nargs="+", default=default, help=text)
        else:
            kind = {"int": int, "float": float}.get(f.type.split(" ")[0], str)  # "float | None" parses as float
            p.add_argument(flag(f.name), type=kind, default=default, help=f"{text} (default: {default})")
    return TrainConfig(**vars(p.parse_args(argv)))


def command_name() -> str:
    return "minit5-train" if Path(sys.argv[0]).name == "minit5-train" else "python train.py"


def interrupted(cfg: TrainConfig, argv) -> str:
    """What Ctrl-C leaves behind, and the command that continues from it."""
    from .run_folder import checkpoint_step, latest_checkpoint
    latest = latest_checkpoint(Path(cfg.out)) if Path(cfg.out).is_dir() else None
    if latest is None:
        return f"interrupted before the first checkpoint: nothing in {cfg.out} to resume; rerun with --overwrite"
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a not in ("--resume", "--overwrite")]
    command = " ".join([command_name(), *map(shlex.quote, args), "--resume"])
    return f"interrupted; {latest} (step {checkpoint_step(latest)}) is the latest checkpoint; continue with: {command}"


def main(argv=None):
    cfg = parse_args(argv)
    from .trainer import Trainer, TrainError
    trainer = None
    try:
        trainer = Trainer(cfg)
        result = trainer.train()
        trainer.close()
    except TrainError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one process speaks
            print(f"\n{interrupted(cfg, argv)}", file=sys.stderr)
        sys.exit(130)
    if not trainer.is_main or trainer.mode == "done":  # the trainer said there was nothing to do
        return
    if result:
        print("final: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
    if cfg.task == "demo":
        ask = "python generate.py" + ("" if cfg.out == TrainConfig.out else f" --model {cfg.out}")
        print(f'now ask it: {ask} "Where is Ganymede?"   or in Chinese: {ask} "伽尼米德在哪里？"')
    elif cfg.task == "seq2seq":
        print(f'the model is in {cfg.out}; ask it: python generate.py --model {cfg.out} "..."')
    else:
        print(f"the model is in {cfg.out}; fine-tune it with: {command_name()} --task seq2seq --init {cfg.out} "
              f"--data FILE.jsonl --out DIR")


if __name__ == "__main__":
    main()
