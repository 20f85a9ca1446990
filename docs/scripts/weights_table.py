"""The Hugging Face <-> minit5 parameter names, printed from minit5/checkpoint.py (NAME_TABLE via hf_name).

    python docs/scripts/weights_table.py        prints the markdown tables used in docs/weights.md
    python docs/scripts/weights_table.py --zh   the same in Chinese, for docs/zh/weights.md

The table is made by building flan-T5-small (and T5 v1.0-small) on the meta device and asking `hf_name` for
the Hugging Face name of every parameter, so it shows exactly what the loader does. tests/test_docs.py checks
that docs/weights.md holds this output.
"""

from __future__ import annotations

import re
import sys

import torch

from minit5 import T5, T5Config, checkpoint

skip_random_init = checkpoint.skip_random_init


def rows(config: T5Config) -> list[tuple[str, str, tuple, int]]:
    """(minit5 name, Hugging Face name, shape, how many) with block numbers written as {i}."""
    with torch.device("meta"), skip_random_init():
        model = T5(config)
    out: dict[tuple[str, str], list] = {}
    for name, param in model.state_dict().items():
        hf = checkpoint.hf_name(name, config)
        key = (re.sub(r"\.\d+\.", ".{i}.", name), re.sub(r"\.block\.\d+\.", ".block.{i}.", hf))
        out.setdefault(key, [tuple(param.shape), 0, []])
        out[key][1] += 1
        out[key][2].append(name)
    result = []
    for (ours, theirs), (shape, count, names) in out.items():
        if count == 1 and "{i}" in ours:  # a parameter of block 0 only: show the real name
            ours, theirs = names[0], checkpoint.hf_name(names[0], config)
        result.append((ours, theirs, shape, count))
    return result


def markdown_table(zh: bool = False) -> str:
    config = T5Config.flan_t5("small")
    if zh:
        lines = ["| minit5（`T5.state_dict()`） | Hugging Face（`T5ForConditionalGeneration`） "
                 "| flan-T5-small 中的形状 | 个数 |", "|---|---|---|---|"]
    else:
        lines = ["| minit5 (`T5.state_dict()`) | Hugging Face (`T5ForConditionalGeneration`) "
                 "| shape in flan-T5-small | count |", "|---|---|---|---|"]
    for ours, theirs, shape, count in rows(config):
        lines.append(f"| `{ours}` | `{theirs}` | {shape} | {count} |")
    flan = {ours: theirs for ours, theirs, _, _ in rows(config)}
    v10 = T5Config(vocab_size=32128, d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6,
                   feed_forward_proj="relu")  # t5-small
    lines.append("")
    if zh:
        lines.append("T5 v1.0（ReLU 前馈网络，输出层与嵌入共享）只有以下几行不同：")
        lines.append("")
        lines.append("| minit5 | Hugging Face，T5 v1.0 | Hugging Face，flan-T5 |")
    else:
        lines.append("T5 v1.0 (ReLU FFN, head tied to the embedding) differs only in these rows:")
        lines.append("")
        lines.append("| minit5 | Hugging Face, T5 v1.0 | Hugging Face, flan-T5 |")
    none = "（无）" if zh else "(none)"
    lines.append("|---|---|---|")
    v10_rows = {ours: theirs for ours, theirs, _, _ in rows(v10)}
    for ours in flan:
        if ours not in v10_rows:
            lines.append(f"| `{ours}` | {none} | `{flan[ours]}` |")
        elif v10_rows[ours] != flan[ours]:
            lines.append(f"| `{ours}` | `{v10_rows[ours]}` | `{flan[ours]}` |")
    return "\n".join(lines)


def markdown_table_zh() -> str:
    return markdown_table(zh=True)


if __name__ == "__main__":
    print(markdown_table(zh="--zh" in sys.argv[1:]))
