"""Step 7 (solution): loading a Hugging Face checkpoint."""

import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from minit5.config import T5Config

from .step06_model import T5


def hf_name(name: str, config) -> str:
    if name in ("embed.weight", "lm_head.weight"):
        return {"embed.weight": "shared.weight", "lm_head.weight": "lm_head.weight"}[name]
    if re.fullmatch(r"(encoder|decoder)\.final_norm\.weight", name):
        return name.split(".")[0] + ".final_layer_norm.weight"
    stack, _, i, module, *rest = name.split(".")  # e.g. decoder . blocks . 3 . ffn . up . weight
    ffn_layer = 2 if stack == "decoder" else 1  # the decoder has cross-attention as its layer 1
    if module == "position_bias":
        return f"{stack}.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight"
    if module == "self_attn_norm":
        return f"{stack}.block.{i}.layer.0.layer_norm.weight"
    if module == "self_attn":
        return f"{stack}.block.{i}.layer.0.SelfAttention.{rest[0]}.weight"
    if module == "cross_attn_norm":
        return f"{stack}.block.{i}.layer.1.layer_norm.weight"
    if module == "cross_attn":
        return f"{stack}.block.{i}.layer.1.EncDecAttention.{rest[0]}.weight"
    if module == "ffn_norm":
        return f"{stack}.block.{i}.layer.{ffn_layer}.layer_norm.weight"
    if module == "ffn":
        hf = {"gate": "wi_0", "up": "wi_1", "down": "wo"} if config.is_gated else {"up": "wi", "down": "wo"}
        return f"{stack}.block.{i}.layer.{ffn_layer}.DenseReluDense.{hf[rest[0]]}.weight"
    raise KeyError(f"no Hugging Face name for {name!r}")


def load_hf_checkpoint(folder) -> T5:
    folder = Path(folder)
    config = T5Config.from_json_file(folder / "config.json")
    tensors = load_file(str(folder / "model.safetensors"))
    # Tied or not is decided by the file: no lm_head, or one equal to the embedding, means tied.
    untied = "lm_head.weight" in tensors and not torch.equal(tensors["lm_head.weight"], tensors["shared.weight"])
    config.tie_word_embeddings = not untied
    model = T5(config)
    state = {name: tensors[hf_name(name, config)] for name in model.state_dict()}
    model.load_state_dict(state, strict=True)
    return model.eval()
