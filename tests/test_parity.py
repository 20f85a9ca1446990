"""minit5 against transformers on random models of every T5 variant: encoder output, logits, loss, gradients.

Tolerances (fp32): encoder output and logits max |diff| <= 1e-4, loss |diff| <= 1e-5, each parameter's
gradient max |diff| <= 1e-4 * max |HF gradient|. Batches are padded (different lengths per row)."""

import pytest
import torch
from hf_models import VARIANTS, hf_is_tied, load_hf, padded_batch

from minit5 import T5
from minit5.checkpoint import hf_name


@pytest.fixture(scope="module")
def pair(variant, hf_folder):  # every variant (conftest.py)
    folder = hf_folder(variant)
    return variant, load_hf(variant, folder), T5.from_pretrained(folder), folder


def test_tied_and_untied_heads_are_really_exercised(pair):
    variant, hf, model, _ = pair
    tied = VARIANTS[variant][3]
    assert hf_is_tied(hf) == tied
    assert (model.lm_head is None) == tied
    assert model.config.scale_decoder_outputs == tied  # only T5 v1.0 rescales the decoder output
    assert getattr(hf.config, "scale_decoder_outputs", False) == tied
    if variant == "umt5":  # a position-bias table in every layer of both stacks
        assert all(b.position_bias is not None for b in model.encoder.blocks + model.decoder.blocks)
    else:
        assert [b.position_bias is not None for b in model.decoder.blocks] == [True] + [False] * (
            len(model.decoder.blocks) - 1)


@pytest.mark.parametrize("hf_attn", ["eager", "sdpa"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_encoder_output_logits_and_loss(pair, attn, hf_attn):
    variant, _, model, folder = pair
    hf = load_hf(variant, folder, attn=hf_attn)
    model.set_attention(attn)
    input_ids, attention_mask, labels = padded_batch(model.config.vocab_size)
    with torch.no_grad():
        ref = hf(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False)
        ref_encoder = hf.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        encoder_output = model.encode(input_ids, attention_mask)
        logits, loss = model(input_ids, attention_mask=attention_mask, labels=labels)
    assert (encoder_output - ref_encoder).abs().max().item() <= 1e-4
    assert logits.shape == ref.logits.shape
    assert (logits - ref.logits).abs().max().item() <= 1e-4
    assert abs(loss.item() - ref.loss.item()) <= 1e-5
    model.set_attention("eager")


def test_explicit_decoder_input_ids_without_labels(pair):
    variant, hf, model, _ = pair
    input_ids, attention_mask, labels = padded_batch(model.config.vocab_size, seed=5)
    decoder_input_ids = model.shift_right(labels)
    with torch.no_grad():
        ref = hf(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                 use_cache=False).logits
        logits, loss = model(input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    assert loss is None
    assert (logits - ref).abs().max().item() <= 1e-4


def test_gradients_match(pair):
    variant, hf, model, _ = pair
    input_ids, attention_mask, labels = padded_batch(model.config.vocab_size, seed=2)
    hf.zero_grad()
    model.zero_grad()
    hf(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False).loss.backward()
    model(input_ids, attention_mask=attention_mask, labels=labels)[1].backward()
    hf_params = dict(hf.named_parameters())
    checked = 0
    for name, param in model.named_parameters():
        ref = hf_params[hf_name(name, model.config)].grad
        scale = ref.abs().max().item()
        assert scale > 0, f"{name}: reference gradient is zero, the check would be empty"
        assert (param.grad - ref).abs().max().item() <= 1e-4 * scale, name
        checked += 1
    assert checked == len(list(model.parameters())) >= 20


def test_shift_right_as_huggingface(pair):
    _, hf, model, _ = pair
    labels = torch.tensor([[-100, 4, 1, -100, 7], [5, 6, 7, 1, -100]])
    assert torch.equal(model.shift_right(labels), hf._shift_right(labels))
    assert model.shift_right(labels).tolist() == [[0, 0, 4, 1, 0], [0, 5, 6, 7, 1]]


def test_labels_only_forward_requires_something():
    model = T5(__import__("minit5").T5Config(vocab_size=50, d_model=16, d_ff=32, d_kv=4, num_heads=4, num_layers=1))
    with pytest.raises(ValueError, match="decoder_input_ids or labels"):
        model(torch.tensor([[5, 6, 1]]))
