"""Train exercises/demo_model again:  python -m exercises.build_demo_model [--out DIR] [--run DIR]

The small trained T5 that steps 7 and 11 load (517,504 parameters, 2.0 MiB) is minit5's trainer run on step 12's
recipe (exercises/train_loop.py RECIPE): the demo's data, 2,000 steps of 64 examples, a few minutes on 2 CPU
cores. This writes the recipe's config.json beside --run, runs

    python train.py --config RUN-config.json --out RUN --no-pack --position-bias-lr-scale 1 --steps 2000 --batch-size 64 --lr 0.003 ... --overwrite

and copies the three files a model folder needs (config.json, model.safetensors, tokenizer_config.json) into
--out, after checking that the model answers "Where is Ganymede?" with Jupiter and "伽尼米德在哪里？" with 木星.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from . import train_loop
from ._support import DEMO_MODEL, QUESTIONS

FILES = ("config.json", "model.safetensors", "tokenizer_config.json")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(DEMO_MODEL), help=f"where the model goes (default {DEMO_MODEL})")
    p.add_argument("--run", default="out/exercises-demo", help="the training run's folder (default out/exercises-demo)")
    args = p.parse_args(argv)
    from minit5 import train_cli  # what the repository's train.py runs

    run = Path(args.run)
    config_json = run.with_name(run.name + "-config.json")  # beside the run: train.py wants --out for itself
    config_json.parent.mkdir(parents=True, exist_ok=True)
    train_loop.recipe_config().save(config_json)
    command = train_loop.train_command(str(config_json), str(run)) + ["--overwrite"]
    print("python train.py " + " ".join(command))
    train_cli.main(command)

    import torch
    from minit5.model import T5
    from minit5.tokenizer import Tokenizer
    model, tok = T5.from_pretrained(run), Tokenizer.from_pretrained(run)
    for question, expected in QUESTIONS.items():
        out = model.generate(torch.tensor([tok.encode(question)]), max_new_tokens=16, step="readable")
        answer = tok.decode(out[0].tolist())
        print(f"  {question} → {answer}")
        if answer != expected:
            sys.exit(f"error: the model answers {answer!r}, not {expected!r}; {args.out} is left as it was")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(run / name, out / name)
    size = sum((out / name).stat().st_size for name in FILES)
    print(f"wrote {', '.join(FILES)} to {out} ({size / 2 ** 20:.1f} MiB)")


if __name__ == "__main__":
    main()
