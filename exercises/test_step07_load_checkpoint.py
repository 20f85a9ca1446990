"""Step 7: loading a Hugging Face checkpoint. The files are written by transformers itself, and your loaded model
must give transformers' logits."""

import json

import torch
from transformers import T5Config as HFConfig
from transformers import T5ForConditionalGeneration

from minit5.checkpoint import hf_name as reference_hf_name

from ._support import check_close, prompts, reference_model, tiny_config, v1_0_config

STEP = "step07_load_checkpoint"


def test_name_table_matches_minit5(impl):
    for config in (tiny_config(), v1_0_config()):
        names = list(reference_model(config).state_dict())
        wrong = []
        for name in names:
            expected = reference_hf_name(name, config)
            got = impl.hf_name(name, config)
            if got != expected:
                wrong.append((name, got, expected))
        if not wrong:
            continue
        lines = [f"hf_name gives {len(wrong)} wrong names ({config.feed_forward_proj} config), e.g.:"]
        lines += [f"  {n}  →  {g!r}, expected {e!r}" for n, g, e in wrong[:5]]
        text = " ".join(f"{g} {e}" for _, g, e in wrong)
        if "wi_0" in text and "wi_1" in text:
            lines.append("wi_0 and wi_1 are swapped: wi_0 is the gate (the input of GELU), wi_1 is up.")
        if any(n.startswith("decoder") and ".ffn" in n for n, _, _ in wrong):
            lines.append("In the decoder, layer.1 is the cross-attention (EncDecAttention), so the FFN is layer.2.")
        if any(".ffn." in n for n, _, _ in wrong) and not config.is_gated:
            lines.append("T5 v1.0 (ReLU) has DenseReluDense.wi and .wo only: up is wi.")
        lines.append("docs/weights.md has the whole table (\"Names: minit5's and Hugging Face's\").")
        raise AssertionError("\n".join(lines))


def transformers_checkpoint(folder, tied: bool):
    """A random T5 written by transformers' save_pretrained, as hub files look: flan-T5 (untied) or T5 v1.0 (tied)."""
    torch.manual_seed(0)
    settings = dict(vocab_size=64, d_model=32, d_kv=16, d_ff=48, num_layers=2, num_heads=4, dropout_rate=0.0,
                    decoder_start_token_id=0, feed_forward_proj="relu" if tied else "gated-gelu")
    model = T5ForConditionalGeneration(HFConfig(**settings)).eval()
    if not tied:  # a flan-T5 file has its own lm_head
        model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight) * 32 ** -0.5)
    model.save_pretrained(folder)
    raw = json.loads((folder / "config.json").read_text())
    raw.pop("scale_decoder_outputs", None)
    if tied:
        raw.pop("tie_word_embeddings", None)  # T5 v1.0 files do not say: absent means tied (and rescaled)
    else:
        raw["tie_word_embeddings"] = False
    (folder / "config.json").write_text(json.dumps(raw))
    return T5ForConditionalGeneration.from_pretrained(folder, attn_implementation="eager").eval()


def test_loads_a_transformers_checkpoint(impl, tmp_path):
    for tied, name in [(False, "flan-T5 (separate lm_head)"), (True, "T5 v1.0 (no lm_head in the file: tied)")]:
        folder = tmp_path / ("tied" if tied else "untied")
        hf = transformers_checkpoint(folder, tied)
        model = impl.load_hf_checkpoint(folder)
        config = model.config
        input_ids, attention_mask = prompts(config)
        labels = torch.tensor([[5, 9, 12, 1], [6, 8, 1, 0], [4, 1, 0, 0]])
        with torch.no_grad():
            expected = hf(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False).logits
            got = model(input_ids, attention_mask, labels=labels)[0]
        hint = where_weights_went(model, hf)
        check_close(got, expected, f"logits of your model loaded from a transformers {name} checkpoint", atol=1e-4,
                    hint=hint)


def where_weights_went(model, hf) -> str:
    """For each of your parameters that is not the Hugging Face tensor it should be, name the one it is."""
    hf_tensors = {k: v for k, v in hf.state_dict().items()}
    lines = []
    for name, p in model.state_dict().items():
        try:
            target = reference_hf_name(name, model.config)
        except KeyError:
            lines.append(f"  {name}: minit5 has no such parameter")
            continue
        if target in hf_tensors and hf_tensors[target].shape == p.shape and torch.equal(hf_tensors[target], p):
            continue
        same = [k for k, v in hf_tensors.items() if v.shape == p.shape and torch.equal(v, p)]
        lines.append(f"  {name} should hold {target}, but holds {same[0] if same else 'none of the file tensors'}")
    if not lines:
        return "Every parameter holds the right tensor, so the difference comes from the model (steps 1-6)."
    return "Your loaded parameters:\n" + "\n".join(lines[:6])
