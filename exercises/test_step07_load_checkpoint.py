"""Step 7: loading a Hugging Face checkpoint. The files are written by transformers itself, and your loaded model
must give transformers' logits.

(PYTEST_DONT_REWRITE: a failed check shows its own message, not pytest's account of the expression.)"""

import json
from pathlib import Path

import torch
from transformers import T5Config as HFConfig
from transformers import T5ForConditionalGeneration

from minit5.checkpoint import hf_name as reference_hf_name
from minit5.checkpoint import load_model as reference_load

from ._support import QUESTIONS, ask_without_cache, check_close, prompts, reference_model, tiny_config, v1_0_config

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
        swapped = any(g == e.replace("wi_0", "wi_1") != e or g == e.replace("wi_1", "wi_0") != e
                      for _, g, e in wrong)
        if swapped:
            lines.append("wi_0 and wi_1 are swapped: wi_0 is the gate (the input of GELU), wi_1 is up.")
        if any(n.startswith("decoder") and ".ffn" in n for n, _, _ in wrong):
            lines.append("In the decoder, layer.1 is the cross-attention (EncDecAttention), so the FFN is layer.2.")
        if any(".ffn." in n for n, _, _ in wrong) and not config.is_gated:
            lines.append("T5 v1.0 (ReLU) has DenseReluDense.wi and .wo only: up is wi.")
        lines.append("docs/weights.md has the whole table (\"Names: minit5's and Hugging Face's\").")
        raise AssertionError("\n".join(lines))


def transformers_checkpoint(folder, tied: bool, tie_flag="as on the hub"):
    """A random T5 written by transformers' save_pretrained, as hub files look: flan-T5 (untied) or T5 v1.0 (tied).
    tie_flag: what config.json says about tie_word_embeddings: "as on the hub" (flan-T5 false, T5 v1.0 nothing),
    None (the key is left out), True or False."""
    torch.manual_seed(0)
    settings = dict(vocab_size=64, d_model=32, d_kv=16, d_ff=48, num_layers=2, num_heads=4, dropout_rate=0.0,
                    decoder_start_token_id=0, feed_forward_proj="relu" if tied else "gated-gelu")
    model = T5ForConditionalGeneration(HFConfig(**settings)).eval()
    if not tied:  # a flan-T5 file has its own lm_head
        model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight) * 32 ** -0.5)
    model.save_pretrained(folder)
    raw = json.loads((folder / "config.json").read_text())
    raw.pop("scale_decoder_outputs", None)
    if tie_flag == "as on the hub":
        tie_flag = None if tied else False  # T5 v1.0 files do not say: absent means tied (and rescaled)
    raw.pop("tie_word_embeddings", None)
    if tie_flag is not None:
        raw["tie_word_embeddings"] = tie_flag
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


def load_with_yours(impl, folder, story):
    """impl.load_hf_checkpoint(folder), with a KeyError (a name the file does not have) explained."""
    try:
        return impl.load_hf_checkpoint(folder)
    except KeyError as e:
        raise AssertionError(
            f"load_hf_checkpoint on a file with {story} raised KeyError({e}): the file has no such tensor. "
            f"Tied or not is decided by the weights, not by config.json: a file without lm_head.weight is tied (the "
            f"head is the embedding), whatever tie_word_embeddings says; set config.tie_word_embeddings from the "
            f"file before building the model.") from None


def test_tied_or_not_is_decided_by_the_weights(impl, tmp_path):
    """Real files do not always tell the truth in config.json: T5 v1.0 files leave the tie flag out, and some
    files carry a flag their weights contradict. The weights decide, as in minit5 and transformers."""
    cases = [(False, None, "its own lm_head.weight and no tie_word_embeddings in config.json"),
             (False, True, "its own lm_head.weight, but tie_word_embeddings: true in config.json"),
             (True, False, "no lm_head.weight, but tie_word_embeddings: false in config.json")]
    for i, (tied, flag, story) in enumerate(cases):
        folder = tmp_path / f"case{i}"
        transformers_checkpoint(folder, tied, tie_flag=flag)
        expected_model = reference_load(folder)
        model = load_with_yours(impl, folder, story)
        has_head = getattr(model, "lm_head", None) is not None
        if has_head == tied:
            raise AssertionError(
                f"a file with {story}: your model is {'untied (it has an lm_head)' if has_head else 'tied (no lm_head)'}"
                f", but the weights say {'tied' if tied else 'untied'}. Tied or not is decided by the weights, not "
                f"by config.json's tie_word_embeddings: an lm_head.weight that differs from shared.weight means "
                f"untied; no lm_head.weight (or one equal to shared.weight) means tied. Set "
                f"config.tie_word_embeddings from the file before building the model.")
        input_ids, attention_mask = prompts(model.config)
        labels = torch.tensor([[5, 9, 12, 1], [6, 8, 1, 0], [4, 1, 0, 0]])
        with torch.no_grad():
            expected = expected_model(input_ids, attention_mask, labels=labels)[0]
            got = model(input_ids, attention_mask, labels=labels)[0]
        check_close(got, expected, f"logits of your model loaded from a file with {story}", atol=1e-4,
                    mistakes=[("the decoder output is rescaled (or not) by the weights' tie: the rescale follows "
                               "config.json (scale_decoder_outputs, else 'tie_word_embeddings is not false'), which "
                               "T5Config.from_json_file already computes; change only tie_word_embeddings.",
                               expected * (model.config.d_model ** (0.5 if expected_model.config.scale_decoder_outputs
                                                                    else -0.5)))],
                    hint="minit5/checkpoint.py load_model shows the rule (docs/weights.md, \"Tied or untied\").")


def test_your_loader_brings_a_trained_model_to_life(impl, demo_model, say):
    """The first moment your code runs a trained T5: the small demo model (exercises/demo_model, trained on the
    demo's data) loaded by your loader, run by your steps 1-6, decoded by a slow greedy loop written for you
    (_support.py ask_without_cache: your KV cache comes in step 8)."""
    folder = Path(demo_model)
    assert (folder / "config.json").exists(), f"no trained model at {folder} (--demo-model or MINIT5_DEMO_MODEL)"
    model = impl.load_hf_checkpoint(folder)
    for question, answer in QUESTIONS.items():
        got = ask_without_cache(model, question)
        assert answer in got, (
            f"your model, loaded by your loader from {folder}, answers {question!r} with {got!r}; the trained model "
            f"answers {answer!r}. The tests above compare your loader on random weights; if they pass, compare "
            f"your logits with minit5's on this model: T5.from_pretrained({str(folder)!r}).")
        say(("\n" if answer == "Jupiter" else "") + f"  your T5, loaded by your loader: {question} → {got}")


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
