"""Tensor shapes through flan-T5-small, recorded by running minit5 on the meta device (shapes only, no memory).

    python docs/scripts/shapes.py          prints the markdown table used in docs/architecture.md
    python docs/scripts/shapes.py --zh     the same in Chinese, for docs/zh/architecture.md

Example: batch 2, source 12 tokens, target 5 tokens, flan-T5-small (d_model 512, 6 heads of 64, d_ff 1024,
8 encoder + 8 decoder blocks, vocabulary 32128).
"""

from __future__ import annotations

import sys

import torch

from minit5 import T5, T5Config
from minit5 import checkpoint

# nn.Linear fills itself with random numbers even on the meta device (slow and useless here); the loader skips it
skip_random_init = checkpoint.skip_random_init

BATCH, SOURCE, TARGET = 2, 12, 5


def record_shapes() -> list[tuple[str, str, tuple]]:
    """(what, module or function, shape) in the order data flows through the model."""
    from minit5.model import causal_mask, padding_mask

    with torch.device("meta"), skip_random_init():
        model = T5(T5Config.flan_t5("small")).eval()
    enc0, dec0 = model.encoder.blocks[0], model.decoder.blocks[0]
    modules = {  # what -> the module whose output is recorded (block 0 stands for every block)
        "encoder position bias (block 0, reused by blocks 1-7)": enc0.position_bias,
        "RMS norm of the residual stream": enc0.self_attn_norm,
        "queries (all heads side by side)": enc0.self_attn.q,
        "self-attention output": enc0.self_attn,
        "FFN gate projection, gate(x)": enc0.ffn.gate,
        "FFN output (after down)": enc0.ffn,
        "encoder output": model.encoder,
        "decoder position bias (causal buckets)": dec0.position_bias,
        "cross-attention queries (from the decoder)": dec0.cross_attn.q,
        "cross-attention keys (from the encoder output)": dec0.cross_attn.k,
        "cross-attention output": dec0.cross_attn,
        "decoder output": model.decoder,
    }
    names = {module: name for name, module in model.named_modules()}
    shapes = {}

    def recorder(what):
        def hook(module, args, output):  # returns None: the output passes through unchanged
            shapes.setdefault(what, tuple(output.shape))
        return hook

    handles = [module.register_forward_hook(recorder(what)) for what, module in modules.items()]
    input_ids = torch.zeros(BATCH, SOURCE, dtype=torch.long, device="meta")
    attention_mask = torch.ones(BATCH, SOURCE, dtype=torch.long, device="meta")
    decoder_input_ids = torch.zeros(BATCH, TARGET, dtype=torch.long, device="meta")
    with torch.no_grad():
        logits, _ = model(input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
        embedded = model.embed(input_ids)
        pad_mask = padding_mask(attention_mask, torch.float32)
        causal = causal_mask(TARGET, 0, torch.float32, "meta")
    for handle in handles:
        handle.remove()

    def module_row(what):
        module = modules[what]
        return what, f"{names[module]} ({type(module).__name__})", shapes[what]

    encoder_rows = [module_row(w) for w in list(modules)[:7]]
    decoder_rows = [module_row(w) for w in list(modules)[7:]]
    return ([("token embeddings (shared table)", "embed (Embedding)", tuple(embedded.shape)),
             ("encoder padding mask (additive)", "padding_mask()", tuple(pad_mask.shape))]
            + encoder_rows
            + [("decoder causal mask (additive)", "causal_mask()", tuple(causal.shape))]
            + decoder_rows
            + [("logits over the vocabulary", "T5.project()", tuple(logits.shape))])


ZH = {  # the same table in Chinese, for docs/zh/architecture.md
    "token embeddings (shared table)": "词元嵌入（共享嵌入表）",
    "encoder padding mask (additive)": "编码器填充掩码（加性）",
    "encoder position bias (block 0, reused by blocks 1-7)": "编码器位置偏置（第 0 块计算，第 1–7 块复用）",
    "RMS norm of the residual stream": "残差流的 RMS 归一化",
    "queries (all heads side by side)": "查询（所有头并排）",
    "self-attention output": "自注意力输出",
    "FFN gate projection, gate(x)": "FFN 门控投影 gate(x)",
    "FFN output (after down)": "FFN 输出（经过 down）",
    "encoder output": "编码器输出",
    "decoder causal mask (additive)": "解码器因果掩码（加性）",
    "decoder position bias (causal buckets)": "解码器位置偏置（因果分桶）",
    "cross-attention queries (from the decoder)": "交叉注意力查询（来自解码器）",
    "cross-attention keys (from the encoder output)": "交叉注意力键（来自编码器输出）",
    "cross-attention output": "交叉注意力输出",
    "decoder output": "解码器输出",
    "logits over the vocabulary": "词表上的 logits",
}


def markdown_table(zh: bool = False) -> str:
    if zh:
        lines = ["| 步骤 | 模块（`model.named_modules()` 中的名字）或函数 | 形状 |", "|---|---|---|"]
    else:
        lines = ["| step | module (in `model.named_modules()`) or function | shape |", "|---|---|---|"]
    for what, code, shape in record_shapes():
        lines.append(f"| {ZH[what] if zh else what} | `{code}` | ({', '.join(map(str, shape))}) |")
    return "\n".join(lines)


def markdown_table_zh() -> str:
    return markdown_table(zh=True)


if __name__ == "__main__":
    print(markdown_table(zh="--zh" in sys.argv[1:]))
