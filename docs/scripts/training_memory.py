"""What the benchmark's training step keeps for backward, computed from T5Config (docs/performance.md).

    python docs/scripts/training_memory.py         the markdown block in docs/performance.md
    python docs/scripts/training_memory.py --zh    the same in Chinese, for docs/zh/performance.md

bench/run.py trains on a flan-T5-small-shaped model, 8 examples of 512 input and 114 target tokens, fp32, with
flan-T5's dropout 0.1. The shapes here come from `T5Config.flan_t5("small")` (not typed in by hand), so they
cannot drift from the model the benchmark measures. MiB = 2^20 bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from minit5 import T5Config  # noqa: E402

BATCH, SOURCE, TARGET = 8, 512, 114  # bench/run.py's training step
MIB = 2**20


def facts(size: str = "small") -> dict:
    c = T5Config.flan_t5(size)
    probs = {  # attention probabilities of one block: (B, H, queries, keys)
        "enc": (BATCH, c.num_heads, SOURCE, SOURCE),
        "dec_self": (BATCH, c.num_heads, TARGET, TARGET),
        "dec_cross": (BATCH, c.num_heads, TARGET, SOURCE),
    }
    ffn = {"enc": (BATCH, SOURCE, c.d_ff), "dec": (BATCH, TARGET, c.d_ff)}
    n = {k: _numel(s) for k, s in {**probs, **{"ffn_" + k: s for k, s in ffn.items()}}.items()}
    # Per attention probability, backward keeps softmax's fp32 output, dropout's fp32 output and its 1-byte mask.
    kept_enc = n["enc"] * (4 + 4 + 1)
    random_enc = n["enc"] * c.num_layers  # dropout needs one random number per probability
    random_dec = (n["dec_self"] + n["dec_cross"]) * c.num_decoder_layers
    return dict(c=c, probs=probs, ffn=ffn, n=n, kept_enc=kept_enc, random_enc=random_enc,
                random_all=random_enc + random_dec)


def _numel(shape) -> int:
    total = 1
    for s in shape:
        total *= s
    return total


def _shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def markdown_block(zh: bool = False) -> str:
    f = facts()
    c, n = f["c"], f["n"]
    if zh:
        head = (f"基准的训练步（`T5Config.flan_t5(\"small\")`：d_model {c.d_model}，{c.num_heads} 个头，"
                f"d_ff {c.d_ff}，编码器 {c.num_layers} 块 + 解码器 {c.num_decoder_layers} 块；"
                f"{BATCH} × ({SOURCE} 输入 + {TARGET} 目标) 个词元，fp32）中，每一块的大张量：")
        rows = [("| 张量（每块一个） | 形状 | 元素数 | fp32 大小 |", "|---|---|---:|---:|"),
                ("编码器自注意力概率", f["probs"]["enc"], n["enc"]),
                ("解码器自注意力概率", f["probs"]["dec_self"], n["dec_self"]),
                ("解码器交叉注意力概率", f["probs"]["dec_cross"], n["dec_cross"]),
                ("编码器 FFN 隐层激活（gate、GELU、up 各一个这样的张量）", f["ffn"]["enc"], n["ffn_enc"]),
                ("解码器 FFN 隐层激活（同上）", f["ffn"]["dec"], n["ffn_dec"])]
        tail = (f"反向传播要为每个注意力概率保留 softmax 的输出、dropout 的输出（都是 fp32）和 dropout 的 1 字节掩码："
                f"每个编码器块 **{f['kept_enc'] / MIB:.0f} MiB**。dropout 要为每个概率准备一个随机数："
                f"每步仅编码器就要 **{f['random_enc'] / 1e8:.2f} 亿**个（{f['random_enc']:,}），"
                f"加上解码器共 {f['random_all'] / 1e8:.2f} 亿个。minit5 的 dropout 一次抽 64 位，"
                f"当作 4 个 16 位的随机数用（`minit5/model.py` 的 `dropout`），所以只抽 "
                f"{f['random_all'] / 4 / 1e4:.0f} 万次。")
    else:
        head = (f"The benchmark's training step (`T5Config.flan_t5(\"small\")`: d_model {c.d_model}, {c.num_heads} "
                f"heads, d_ff {c.d_ff}, {c.num_layers} encoder + {c.num_decoder_layers} decoder blocks; "
                f"{BATCH} × ({SOURCE} input + {TARGET} target) tokens, fp32), its large tensors per block:")
        rows = [("| tensor (one per block) | shape | elements | fp32 size |", "|---|---|---:|---:|"),
                ("encoder self-attention probabilities", f["probs"]["enc"], n["enc"]),
                ("decoder self-attention probabilities", f["probs"]["dec_self"], n["dec_self"]),
                ("decoder cross-attention probabilities", f["probs"]["dec_cross"], n["dec_cross"]),
                ("encoder FFN hidden activation (gate, GELU and up: one of this shape each)", f["ffn"]["enc"], n["ffn_enc"]),
                ("decoder FFN hidden activation (the same)", f["ffn"]["dec"], n["ffn_dec"])]
        tail = (f"For each attention probability, backward keeps softmax's output and dropout's output (fp32 both) "
                f"and dropout's 1-byte mask: **{f['kept_enc'] / MIB:.0f} MiB** per encoder block. Dropout needs one "
                f"random number per probability: **{f['random_enc'] / 1e6:.0f} million** per step in the encoder "
                f"alone ({f['random_enc']:,}), {f['random_all'] / 1e6:.0f} million with the decoder's; minit5's "
                f"dropout (`minit5/model.py` `dropout`) takes four 16-bit numbers from each 64-bit draw, so it "
                f"draws {f['random_all'] / 4 / 1e6:.0f} million times.")
    lines = [head, "", *rows[0]]
    for name, shape, count in rows[1:]:
        lines.append(f"| {name} | {_shape(shape)} | {count:,} | {4 * count / MIB:.1f} MiB |")
    return "\n".join(lines + ["", tail])


def markdown_block_zh() -> str:
    return markdown_block(zh=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zh", action="store_true", help="in Chinese, for docs/zh/performance.md")
    print(markdown_block(zh=p.parse_args().zh))
