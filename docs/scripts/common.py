"""Helpers shared by the docs scripts: load a model folder with its tokenizer, or build a random tiny model.

Run the scripts from the repository root, e.g. `python docs/scripts/trace_generation.py --random`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # minit5 from this clone, installed or not
from minit5.loading import DEFAULT_MODEL  # noqa: E402  (out/demo, where `python train.py` writes the demo model)


def memory_status(field: str) -> int:
    """A memory field of this process's /proc/self/status in bytes (Linux): VmRSS, resident now; VmHWM, the peak
    resident since the process started (or since /proc/self/clear_refs was given "5")."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


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
    """(model, tokenizer, description) for --model DIR_OR_HUB_ID (as generate.py loads it: minit5/loading.py
    load_for_inference), or the random tiny model for --random."""
    if use_random:
        return random_model(seed)
    from minit5.loading import LoadError, load_for_inference

    try:
        loaded, tokenizer = load_for_inference(model)
    except LoadError as e:
        sys.exit(f"error: {e}; or pass --random for a random tiny model")
    return loaded, tokenizer, f"the model in {model}"


def description_zh(model: str, use_random: bool) -> str:
    """load()'s description in Chinese, for the titles of the Chinese figures."""
    return "一个随机初始化的小模型" if use_random else f"{model} 中的模型"


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


# Chinese variants of the figures: docs/img/zh/NAME.png beside docs/img/NAME.png, shown by docs/zh/ pages.
# The pictures in docs/img/zh/ were drawn with WenQuanYi Micro Hei (Debian's fonts-wqy-microhei). matplotlib lists
# only the first face of a .ttc collection, which in a Noto CJK collection may be the Japanese one (it has the
# Chinese characters too, with Japanese shapes for a few): hence "JP", last.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
             "Noto Sans CJK JP")


def figure_path(name: str, zh: bool = False) -> Path:
    """Where a docs figure goes: docs/img/NAME, or docs/img/zh/NAME for its Chinese variant."""
    return ROOT / "docs" / "img" / ("zh" if zh else "") / name


def in_language(zh: bool):
    """tr(english, chinese) -> the label in the figure's language, so one drawing function makes both figures."""
    return lambda english, chinese: chinese if zh else english


def use_chinese_font(plt) -> None:
    """Let matplotlib draw Chinese labels: DejaVu Sans (matplotlib's own font) for Latin letters, digits and
    symbols, as in the English figures, and a CJK font for the Chinese characters (matplotlib falls back glyph by
    glyph). Without a CJK font the characters would be drawn as empty boxes, so stop with a readable message."""
    from matplotlib import font_manager

    manager = font_manager.fontManager
    known = {font.fname for font in manager.ttflist}
    for path in font_manager.findSystemFonts():  # fonts installed after matplotlib cached its font list
        if path not in known:
            try:
                manager.addfont(path)
            except (OSError, RuntimeError, ValueError):
                pass  # a font file matplotlib cannot read: not one we need
    installed = {font.name for font in manager.ttflist}
    cjk = next((name for name in CJK_FONTS if name in installed), None)
    if cjk is None:
        sys.exit("the Chinese figures (--zh) need a CJK font, and matplotlib finds none of "
                 f"{', '.join(CJK_FONTS)}: install one (Debian: apt-get install fonts-noto-cjk or fonts-wqy-microhei)")
    plt.rcParams["font.family"] = ["DejaVu Sans", cjk]  # named fonts, not "sans-serif": only a list falls back
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # bold text: "no bold CJK font" is noise


def save_figure(fig, out, note: str = "", trim: bool = False) -> None:
    """Write a docs figure at the docs' resolution (110 dpi), its folder made if needed, and say where:
    "{note}; wrote OUT" (or "wrote OUT"). trim=True cuts the margins to the drawing (bbox_inches="tight")."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, **({"bbox_inches": "tight"} if trim else {}))
    print(f"{note}; wrote {out}" if note else f"wrote {out}")
