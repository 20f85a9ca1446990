"""Small random Hugging Face reference models of every T5 variant, saved in Hugging Face's folder format.

Each variant is built with transformers' own classes, so the files are exactly what transformers writes.
transformers 5 forces tie_word_embeddings=True on configs built in code; to get the untied head of
T5 v1.1/flan-T5/mT5/umT5/byT5, the builder gives lm_head its own random matrix before saving, and then
rewrites config.json the way the hub files read (tie_word_embeddings false, no scale_decoder_outputs key).
"""

import json
from pathlib import Path

import torch
from transformers import (MT5Config, MT5ForConditionalGeneration, T5Config, T5ForConditionalGeneration,
                          UMT5Config, UMT5ForConditionalGeneration)

SMALL = dict(vocab_size=120, d_model=32, d_ff=48, d_kv=8, num_heads=4, num_layers=2, dropout_rate=0.0,
             decoder_start_token_id=0)

# name: (config class, model class, config overrides, tied head)
VARIANTS = {
    "t5-v1.0": (T5Config, T5ForConditionalGeneration, dict(feed_forward_proj="relu"), True),
    "flan-t5": (T5Config, T5ForConditionalGeneration, dict(feed_forward_proj="gated-gelu"), False),
    "mt5": (MT5Config, MT5ForConditionalGeneration, dict(feed_forward_proj="gated-gelu", vocab_size=300), False),
    "umt5": (UMT5Config, UMT5ForConditionalGeneration, dict(feed_forward_proj="gated-gelu"), False),
    "byt5": (T5Config, T5ForConditionalGeneration,
             dict(feed_forward_proj="gated-gelu", vocab_size=384, num_layers=3, num_decoder_layers=1), False),
    # the awkward shapes: heads * d_kv != d_model, decoder deeper than encoder, non-default buckets
    "odd-shape": (T5Config, T5ForConditionalGeneration,
                  dict(feed_forward_proj="gated-gelu", num_heads=3, d_kv=16, num_layers=1, num_decoder_layers=3,
                       relative_attention_num_buckets=16, relative_attention_max_distance=20), False),
}
HF_CLASSES = {name: v[1] for name, v in VARIANTS.items()}


# How far below the best logit the EOS logit is put (see make_eos_likely); chosen per variant so that generation
# ends at varied steps, some rows early, some at the length limit (checked by the generation tests).
EOS_MARGIN = {"t5-v1.0": -0.7, "byt5": -1.0, "odd-shape": -1.0}


def build_hf_model(variant: str, folder, seed: int = 0, eos_likely: bool = False, **overrides):
    """Build a random reference model, save it to `folder`, return (model reloaded from folder, folder)."""
    config_class, model_class, variant_overrides, tied = VARIANTS[variant]
    torch.manual_seed(seed)
    config = config_class(**{**SMALL, **variant_overrides, **overrides})
    model = model_class(config).eval()
    if not tied:  # give the output layer its own weights (a hub flan-T5 file has a distinct lm_head)
        model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight) * config.d_model ** -0.5)
    if eos_likely:
        make_eos_likely(model, EOS_MARGIN.get(variant, 0.0))
    folder = Path(folder)
    model.save_pretrained(folder)
    config_path = folder / "config.json"
    raw = json.loads(config_path.read_text())
    raw.pop("scale_decoder_outputs", None)  # as in hub files, which predate that key
    if tied:
        raw.pop("tie_word_embeddings", None)  # T5 v1.0 files do not say; absent means tied and rescaled
    else:
        raw["tie_word_embeddings"] = False
    config_path.write_text(json.dumps(raw, indent=2))
    return load_hf(variant, folder), folder


def load_hf(variant: str, folder, attn: str = "eager", **kwargs):
    return HF_CLASSES[variant].from_pretrained(folder, attn_implementation=attn, **kwargs).eval()


def hf_is_tied(hf_model) -> bool:
    return hf_model.lm_head.weight.data_ptr() == hf_model.shared.weight.data_ptr()


def padded_batch(vocab_size: int, seed: int = 1, batch: int = 3, src_len: int = 9, tgt_len: int = 6):
    """input ids with right padding of different lengths, their mask, and labels with -100 padding."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab_size, (batch, src_len), generator=g)
    attention_mask = torch.ones(batch, src_len, dtype=torch.long)
    labels = torch.randint(3, vocab_size, (batch, tgt_len), generator=g)
    for row in range(1, batch):
        keep = max(2, src_len - 3 * row)
        attention_mask[row, keep:] = 0
        input_ids[row, keep:] = 0
        labels[row, max(1, tgt_len - 2 * row):] = -100
    labels[:, -1] = torch.where(labels[:, -1] == -100, labels[:, -1], torch.ones_like(labels[:, -1]))  # EOS
    return input_ids, attention_mask, labels


def make_eos_likely(hf_model, margin: float, seed: int = 11):
    """A random model almost never says EOS. Refit the EOS row of the output layer so that its logit is about
    `margin` below the best logit on typical decoder states: generation then ends at varied steps."""
    input_ids, attention_mask, labels = padded_batch(hf_model.config.vocab_size, seed=seed, batch=8, tgt_len=12)
    seen = []
    hook = hf_model.lm_head.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    with torch.no_grad():
        logits = hf_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels.clamp(min=3),
                          use_cache=False).logits
        hook.remove()
        states = seen[0].reshape(-1, seen[0].shape[-1])  # (B*T, D): what lm_head sees
        target = (logits.max(-1).values - margin).reshape(-1, 1)
        hf_model.lm_head.weight[hf_model.config.eos_token_id] = torch.linalg.lstsq(states, target).solution[:, 0]


def step_logits(state_class, model, input_ids, attention_mask, tokens):
    """Feed tokens (B, T) one step at a time to a decoding state (generate.DecodeState, fast.FastDecodeState,
    compiled.CompiledDecodeState): the next-token logits of every step, (B, T, V)."""
    with torch.no_grad():
        encoded = model.encode(input_ids, attention_mask)
        state = state_class(model, encoded, attention_mask, tokens.shape[1])
        return torch.stack([state.step(tokens[:, t:t + 1]) for t in range(tokens.shape[1])], dim=1)


def save_byte_model(folder, num_layers: int = 1):
    """A random minit5 T5 (d_model 32, 4 heads, gated-GELU, untied head; seed 0) and the byte-level tokenizer, saved
    together in folder as `python train.py` would: what the command-line and server tests ask questions of.
    Returns the folder."""
    from minit5 import T5, T5Config, Tokenizer
    torch.manual_seed(0)
    T5(T5Config(vocab_size=384, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=num_layers,
                feed_forward_proj="gated-gelu", tie_word_embeddings=False)).save_pretrained(folder)
    Tokenizer.byte_level().save_pretrained(folder)
    return folder
