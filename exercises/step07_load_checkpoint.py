"""Step 7 of 11: loading a Hugging Face checkpoint.                        about 45 minutes

Read first: docs/weights.md, sections "Names: minit5's and Hugging Face's" and "Tied or untied: decided by the
weights". minit5's answer: minit5/checkpoint.py NAME_TABLE, hf_name and load_model.
Test: python -m pytest exercises -k step07

A Hugging Face T5 folder holds config.json and model.safetensors, with names by position:
    encoder.block.0.layer.0.SelfAttention.q.weight        your encoder.blocks.0.self_attn.q.weight
    decoder.block.1.layer.2.DenseReluDense.wi_0.weight    your decoder.blocks.1.ffn.gate.weight
"""

import re  # noqa: F401
from pathlib import Path  # noqa: F401

import torch  # noqa: F401
from safetensors.torch import load_file  # noqa: F401  (load_file(path) -> {name: tensor})

from minit5.config import T5Config  # noqa: F401  (T5Config.from_json_file(path) reads config.json)

from .step06_model import T5  # noqa: F401


def hf_name(name: str, config) -> str:
    """Your parameter name -> the Hugging Face name. The layout, block i of each stack:

        layer.0   self-attention: SelfAttention.{q,k,v,o}, its layer_norm; block 0 also
                  SelfAttention.relative_attention_bias
        layer.1   decoder: cross-attention EncDecAttention.{q,k,v,o} and its layer_norm;  encoder: the FFN
        layer.2   decoder: the FFN
        FFN       DenseReluDense.wi_0 (gate), .wi_1 (up), .wo (down); T5 v1.0 (not gated): .wi (up), .wo
        others    embed -> shared, {encoder,decoder}.final_norm -> final_layer_norm, lm_head -> lm_head

    Hint: name.split(".") gives e.g. ["decoder", "blocks", "1", "ffn", "gate", "weight"]."""
    raise NotImplementedError("step 7: hf_name")


def load_hf_checkpoint(folder) -> T5:
    """A folder written by transformers' save_pretrained -> your T5 with its weights, in eval mode.

    - config.json: T5Config.from_json_file(folder / "config.json")
    - weights: load_file(folder / "model.safetensors")
    - tied or not is decided by the weights: if the file has an lm_head.weight that differs from shared.weight,
      the head is separate (flan-T5); if it has none (T5 v1.0 files), the head is the embedding. Set
      config.tie_word_embeddings accordingly before building the model.
    - files may also hold encoder.embed_tokens.weight / decoder.embed_tokens.weight, copies of shared: ignore them.
    Then: for each name in model.state_dict(), take the file's tensor hf_name(name); load_state_dict(strict=True)."""
    raise NotImplementedError("step 7: load_hf_checkpoint")
