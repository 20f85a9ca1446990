"""Claims the docs state as exact, each checked as stated: T5 v1.0's eager path bit for bit equal to transformers',
relative-position buckets equal to transformers' function far beyond the short parity inputs (and the logits there),
gradients with SDPA and with gradient checkpointing, the fast decode step at batch 1 (its column-major layout), and
half-precision decoding against transformers' half precision."""

import pytest
import torch
from hf_models import load_hf, padded_batch
from transformers.models.t5.modeling_t5 import T5Attention

from minit5 import T5
from minit5.checkpoint import hf_name
from minit5.fast import FastDecodeState, strategy_for
from minit5.generate import DecodeState
from minit5.model import relative_position_bucket


@pytest.fixture(scope="module")
def models(hf_folder):
    folders = {variant: hf_folder(variant, eos_likely=True) for variant in ("t5-v1.0", "flan-t5", "odd-shape")}
    return {variant: (load_hf(variant, folder), folder) for variant, folder in folders.items()}


def test_t5_v1_0_eager_is_bit_for_bit_transformers_eager(models):
    hf, folder = models["t5-v1.0"]
    model = T5.from_pretrained(folder)
    input_ids, attention_mask, labels = padded_batch(model.config.vocab_size, seed=9)
    with torch.no_grad():
        ref = hf(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False)
        ref_encoder = hf.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits, loss = model(input_ids, attention_mask=attention_mask, labels=labels)
        encoder_output = model.encode(input_ids, attention_mask)
    assert torch.equal(encoder_output, ref_encoder)  # docs/parity.md: "differ by 0"
    assert torch.equal(logits, ref.logits)
    assert loss.item() == ref.loss.item()


@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (16, 20), (8, 16), (64, 256), (4, 8), (32, 1000)])
@pytest.mark.parametrize("bidirectional", [True, False], ids=["encoder", "decoder"])
def test_relative_position_buckets_equal_transformers_up_to_1000_away(num_buckets, max_distance, bidirectional):
    distances = torch.arange(-1000, 1001)[None, :]  # key position - query position, both directions
    ours = relative_position_bucket(distances, bidirectional, num_buckets, max_distance)
    theirs = T5Attention._relative_position_bucket(distances, bidirectional=bidirectional, num_buckets=num_buckets,
                                                   max_distance=max_distance)
    assert torch.equal(ours, theirs)
    assert ours.max().item() == num_buckets - 1  # the far buckets are really reached


def test_logits_on_inputs_longer_than_max_distance(models):
    hf, folder = models["odd-shape"]  # max_distance 20, 16 buckets: 70 tokens span every far bucket
    model = T5.from_pretrained(folder)
    assert model.config.relative_attention_max_distance == 20
    input_ids, attention_mask, labels = padded_batch(model.config.vocab_size, seed=3, batch=2, src_len=70, tgt_len=45)
    with torch.no_grad():
        ref = hf(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False).logits
        logits, _ = model(input_ids, attention_mask=attention_mask, labels=labels)
    assert (logits - ref).abs().max().item() <= 1e-4


@pytest.mark.parametrize("setting", ["sdpa", "gradient-checkpointing"])
@pytest.mark.parametrize("variant", ["t5-v1.0", "flan-t5"])
def test_gradients_with_sdpa_and_with_gradient_checkpointing(models, variant, setting):
    hf, folder = models[variant]
    model = T5.from_pretrained(folder).train()  # checkpointing acts in training mode (dropout is 0 here)
    if setting == "sdpa":
        model.set_attention("sdpa")
    else:
        model.set_gradient_checkpointing(True)
    input_ids, attention_mask, labels = padded_batch(model.config.vocab_size, seed=2)
    hf.zero_grad()
    hf(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False).loss.backward()
    model(input_ids, attention_mask=attention_mask, labels=labels)[1].backward()
    hf_params = dict(hf.named_parameters())
    for name, param in model.named_parameters():
        ref = hf_params[hf_name(name, model.config)].grad
        assert ref.abs().max() > 0, name
        assert (param.grad - ref).abs().max().item() <= 1e-4 * ref.abs().max().item(), name
    hf.zero_grad()


def step_logits(state_class, model, input_ids, attention_mask, tokens):
    with torch.no_grad():
        state = state_class(model, model.encode(input_ids, attention_mask), attention_mask, tokens.shape[1])
        return torch.stack([state.step(tokens[:, t:t + 1]) for t in range(tokens.shape[1])], dim=1)


@pytest.mark.parametrize("variant", ["t5-v1.0", "flan-t5", "odd-shape"])
def test_fast_step_at_batch_1_equals_the_readable_step_in_logits(models, variant):
    _, folder = models[variant]
    model = T5.from_pretrained(folder)
    assert strategy_for(1, model)[0] == "column-major"  # batch 1 really takes the other layout
    input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, seed=6, batch=1, src_len=11)
    tokens = torch.randint(3, model.config.vocab_size, (1, 12), generator=torch.Generator().manual_seed(0))
    tokens[:, 0] = 0
    readable = step_logits(DecodeState, model, input_ids, attention_mask, tokens)
    fast = step_logits(FastDecodeState, model, input_ids, attention_mask, tokens)
    assert (fast - readable).abs().max().item() <= 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_decoding_against_transformers_half_precision(models, dtype):
    """Each decoding step's logits (the cached, fast path) against transformers' forward pass in the same dtype:
    as close as transformers' half precision is to its own fp32."""
    _, folder = models["flan-t5"]
    hf_half, hf_fp32 = load_hf("flan-t5", folder, dtype=dtype), load_hf("flan-t5", folder)
    model = T5.from_pretrained(folder, dtype=dtype)
    input_ids, attention_mask, labels = padded_batch(model.config.vocab_size, seed=8, batch=2, src_len=10, tgt_len=9)
    tokens = model.shift_right(labels)
    with torch.no_grad():
        ref = hf_half(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=tokens,
                      use_cache=False).logits.float()
        fp32 = hf_fp32(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=tokens,
                       use_cache=False).logits
    for state_class in (DecodeState, FastDecodeState):
        ours = step_logits(state_class, model, input_ids, attention_mask, tokens)
        assert (ours - ref).abs().max().item() <= 2 * (ref - fp32).abs().max().item() + 1e-3, state_class
    # and greedy decoding picks the tokens transformers' half precision picks
    with torch.no_grad():
        expected = hf_half.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=8,
                                    do_sample=False, use_cache=False)
    assert torch.equal(model.generate(input_ids, attention_mask, max_new_tokens=8), expected)
