"""Helpers shared by the docs scripts: load a model folder with its tokenizer, or build a random tiny model.

Run the scripts from the repository root, e.g. `python docs/scripts/trace_generation.py --random`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = "out/demo"  # where `python train.py` writes the demo model


def random_model(seed: int = 0):
    """A random, untrained T5 v1.1-style model on the byte-level tokenizer (d_model 64, 2+2 layers).

    It exists only so that the scripts can run before any model has been trained: its outputs are noise."""
    import torch

    from minit5 import T5, T5Config, Tokenizer

    tokenizer = Tokenizer.byte_level()
    config = T5Config(vocab_size=tokenizer.vocab_size, d_model=64, d_ff=128, d_kv=16, num_heads=4, num_layers=2,
                      feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0)
    torch.manual_seed(seed)
    return T5(config).eval(), tokenizer, f"a random tiny model (docs/scripts/common.py random_model, seed {seed})"


def add_model_arguments(parser, max_new_tokens: int):
    """The arguments every model-reading script takes: a prompt, --model or --random, --max-new-tokens."""
    parser.add_argument("prompt", nargs="?", default="Where is Ganymede?")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model folder or hub id (default: {DEFAULT_MODEL})")
    parser.add_argument("--random", action="store_true", help="use a random tiny model instead of --model")
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens)


def load(model: str, use_random: bool, seed: int = 0):
    """(model, tokenizer, description) for --model DIR, or the random tiny model for --random."""
    if use_random:
        return random_model(seed)
    from minit5 import T5, Tokenizer

    if not Path(model).exists():
        hint = ""
        if model == DEFAULT_MODEL:
            hint = " make it with `python train.py` (the demo, about 6 minutes on 2 CPU cores),"
        sys.exit(f"no model folder at {model}:{hint} pass --model DIR, or --random for a random tiny model")
    return T5.from_pretrained(model), Tokenizer.from_pretrained(model), f"the model in {model}"


def token_text(tokenizer, token_id: int) -> str:
    """A readable form of one token: its text, or #N (the id) when it has none on its own (e.g. one byte of a
    multi-byte UTF-8 character)."""
    text = tokenizer.decode([token_id], skip_special_tokens=False)
    return repr(text) if text else f"#{token_id}"


def need_matplotlib():
    try:
        import matplotlib
    except ImportError:
        sys.exit('this script draws with matplotlib: pip install matplotlib   (or pip install -e ".[plot]")')
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, out, note: str = "", trim: bool = False) -> None:
    """Write a docs figure at the docs' resolution (110 dpi), its folder made if needed, and say where:
    "{note}; wrote OUT" (or "wrote OUT"). trim=True cuts the margins to the drawing (bbox_inches="tight")."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, **({"bbox_inches": "tight"} if trim else {}))
    print(f"{note}; wrote {out}" if note else f"wrote {out}")
