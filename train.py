"""Train a T5:  python train.py            the built-in demo (a tiny model, about 6 minutes on 2 CPU cores)

    python train.py --task seq2seq --data train.jsonl --eval-data dev.jsonl --init google/flan-t5-small --out out/ft
    python train.py --task span-corruption --text corpus.txt --config small --out out/pretrain
    torchrun --nproc_per_node 2 train.py ...       the same, on several processes (DistributedDataParallel)
    python train.py --resume                       continue the run in --out where it stopped
    python train.py --task seq2seq --data train.jsonl --init google/flan-t5-small --lora-r 8 --out out/lora
                                                   a LoRA adapter (peft's files) instead of all the weights

Every option is a field of minit5.trainer.TrainConfig; see docs/training.md.
"""

import argparse
import dataclasses
import os
import shlex
import sys
from pathlib import Path

from minit5.trainer import OPTIMIZERS, SCHEDULES, TASKS, TrainConfig

HELP = {
    "task": f"what to train on: {', '.join(TASKS)}",
    "data": "seq2seq training pairs: .jsonl with input/target fields, or .tsv",
    "data_format": "jsonl or tsv, for --data/--eval-data files whose name ends otherwise",
    "eval_data": "seq2seq held-out pairs (same formats)",
    "text": "span-corruption text files (one document per line)",
    "init": "start from pretrained weights and their tokenizer (folder or hub id)",
    "config": "without --init, a fresh model of this shape: tiny, small, base, large, xl, xxl, or a config.json "
              "(on the byte-level vocabulary unless --tokenizer is given)",
    "tokenizer": "without --init, a tokenizer folder (tokenizer.json or spiece.model) for the fresh model",
    "out": "run folder: checkpoints, the latest model, metrics",
    "optimizer": f"{', '.join(OPTIMIZERS)}",
    "schedule": f"{', '.join(SCHEDULES)} (after --warmup steps of linear warmup)",
    "batch_size": "examples per optimizer step, over all processes",
    "dtype": "float32, or bfloat16 autocast",
    "lora_r": "train a LoRA adapter of this rank on the frozen --init model (0: full fine-tuning)",
    "lora_alpha": "LoRA scale: the update is multiplied by lora_alpha / lora_r",
    "lora_dropout": "dropout on the LoRA adapter's input",
    "lora_targets": "layers to adapt, Hugging Face names: q,k,v,o,wi_0,wi_1,wi,wo, or all-linear",
    "merge_lora": "at the end, also write the base with the adapter merged in to --out/merged",
}


def parse_args(argv=None) -> TrainConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", help=HELP.get(f.name))
        elif f.name == "text":
            p.add_argument(flag, nargs="+", default=default, help=HELP.get(f.name))
        else:
            kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
            if f.name == "dropout":
                kind = float
            p.add_argument(flag, type=kind, default=default,
                           help=(HELP.get(f.name, "") + f" (default: {default})").strip())
    return TrainConfig(**vars(p.parse_args(argv)))


def interrupted(cfg: TrainConfig, argv) -> str:
    """What Ctrl-C leaves behind, and the command that continues from it."""
    from minit5.trainer import checkpoint_step, latest_checkpoint
    latest = latest_checkpoint(Path(cfg.out)) if Path(cfg.out).is_dir() else None
    if latest is None:
        return f"interrupted before the first checkpoint: nothing in {cfg.out} to resume; rerun with --overwrite"
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a not in ("--resume", "--overwrite")]
    command = " ".join(["python train.py", *map(shlex.quote, args), "--resume"])
    return f"interrupted; {latest} (step {checkpoint_step(latest)}) is the latest checkpoint; continue with: {command}"


def main(argv=None):
    cfg = parse_args(argv)
    from minit5.trainer import Trainer, TrainError
    trainer = None
    try:
        trainer = Trainer(cfg)
        result = trainer.train()
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
        print(f"the model is in {cfg.out}; fine-tune it with: python train.py --task seq2seq --init {cfg.out} "
              f"--data FILE.jsonl --out DIR")


if __name__ == "__main__":
    main()
