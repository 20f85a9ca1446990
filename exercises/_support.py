"""What the exercise tests share: tiny configurations, reference models from minit5, and comparisons whose
failure messages say what is probably wrong (not only "mismatch"). You do not need to edit this file."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from minit5.config import T5Config

HERE = Path(__file__).resolve().parent
# A small T5 trained on the demo's data (minit5/demo.py), shipped so that step 7 and step 11 have a real model to
# load: 517,504 parameters, 2.0 MiB. `python -m exercises.build_demo_model` trains it again (docs/exercises.md).
DEMO_MODEL = HERE / "demo_model"
QUESTIONS = {"Where is Ganymede?": "Jupiter", "伽尼米德在哪里？": "木星"}  # what every trained demo model answers


def tiny_config(**overrides) -> T5Config:
    """A flan-T5-shaped model small enough to run in milliseconds. num_heads * d_kv (64) is not d_model (32) on
    purpose: real T5 models differ there too (t5-3b), and code that assumes they are equal breaks here."""
    settings = dict(vocab_size=64, d_model=32, d_kv=16, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
                    dropout_rate=0.0, feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    return T5Config(**{**settings, **overrides})


def v1_0_config(**overrides) -> T5Config:
    """The original T5 (v1.0): ReLU feed-forward, lm_head tied to the embedding, decoder output rescaled."""
    return tiny_config(**{"feed_forward_proj": "relu", "tie_word_embeddings": True, **overrides})


def reference_model(config: T5Config, seed: int = 0):
    """minit5's T5 with random weights, in eval mode (no dropout)."""
    from minit5.model import T5
    torch.manual_seed(seed)
    return T5(config).eval()


def copy_weights(yours, reference, what: str = "your model"):
    """Load reference's weights into your module. The parameter names must be minit5's (the docstrings list them)."""
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in yours.state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or unexpected:
        raise AssertionError(
            f"{what} has other parameter names than minit5's, so the tests cannot give it the same weights.\n"
            f"  missing:    {missing[:6]}{' ...' if len(missing) > 6 else ''}\n"
            f"  unexpected: {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}\n"
            f"Keep the attribute names the docstrings give (self.q, self.self_attn_norm, self.blocks, ...).")
    wrong_shape = [f"{k}: {got[k]}, expected {expected[k]}" for k in expected if got[k] != expected[k]]
    if wrong_shape:
        raise AssertionError(f"{what}: parameters of the wrong shape: " + "; ".join(wrong_shape[:4]) +
                             "\nnn.Linear(in, out) stores its weight as (out, in); heads * d_kv is not d_model here.")
    yours.load_state_dict(reference.state_dict())
    return yours.eval()


def check_close(actual, expected, what: str, atol: float = 1e-5, rtol: float = 1e-5, mistakes=(), hint: str = "",
                shape_hint: str = ""):
    """Assert that `actual` equals `expected` within tolerance. On failure, say how it differs: which known
    mistake reproduces it (mistakes: (explanation, what that mistake would give) pairs), a scale factor, or which
    rows of a batch differ. `hint` is shown when the values differ and no known mistake explains them;
    `shape_hint` only when the shape or dtype is wrong."""
    __tracebackhide__ = True  # pytest shows the test's line, not this function's source
    if not isinstance(actual, torch.Tensor):
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(actual).__name__}")
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: your result has shape {tuple(actual.shape)}, expected "
                             f"{tuple(expected.shape)}." + (f"\n{shape_hint or hint}" if shape_hint or hint else ""))
    if actual.dtype != expected.dtype:
        raise AssertionError(f"{what}: your result has dtype {actual.dtype}, expected {expected.dtype}."
                             + (f"\n{shape_hint or hint}" if shape_hint or hint else ""))
    a, e = actual.detach().double(), expected.detach().double()
    if torch.allclose(a, e, atol=atol, rtol=rtol):
        return
    finite = torch.isfinite(a)
    diff = (a - e).abs()[finite].max().item() if finite.any() else float("nan")
    lines = [f"{what} differs from the reference: max |difference| {diff:.3g} (allowed {atol:g} + {rtol:g}·|x|)."]
    for explanation, wrong in mistakes:
        if wrong is not None and wrong.shape == a.shape and torch.allclose(a, wrong.detach().double(), atol=atol * 10,
                                                                         rtol=rtol * 10):
            lines.append(f"Your result equals what this mistake gives: {explanation}")
            raise AssertionError("\n".join(lines))
    if not finite.all():
        lines.append("Your result holds inf or NaN.")
    elif e.abs().sum() > 0:
        scale = ((a * e).sum() / (e * e).sum()).item()  # the best factor s with actual ≈ s * expected
        if abs(scale - 1) > 1e-3 and torch.allclose(a, scale * e, atol=atol * 10, rtol=1e-3):
            lines.append(f"Your values are {scale:.4g} times the expected ones: a scale factor is wrong, "
                         f"missing or extra.")
    close = torch.isclose(a, e, atol=atol, rtol=rtol)
    if a.dim() >= 2 and a.shape[0] > 1:  # a batch: which examples are right says a lot (padding, masks)
        good = [row for row in range(a.shape[0]) if close[row].all()]
        if good:
            bad_rows = [row for row in range(a.shape[0]) if row not in good]
            lines.append(f"Row(s) {', '.join(map(str, bad_rows))} of the batch differ; row(s) "
                         f"{', '.join(map(str, good))} match.")
    bad = (~close).nonzero()
    first = tuple(bad[0].tolist())
    lines.append(f"{len(bad)} of {a.numel()} values differ; the first at index {first}: yours "
                 f"{a[first].item():.6g}, expected {e[first].item():.6g}.")
    if hint:
        lines.append(hint)
    raise AssertionError("\n".join(lines))


def make_eos_likely(model, margin: float = 0.5, seed: int = 11):
    """A random model almost never says EOS, so generation would always run to the length limit. Refit the EOS
    row of the output layer so that its logit is about `margin` below the best one on typical decoder states:
    then rows end at varied steps, which is what the generation tests need."""
    config = model.config
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, config.vocab_size, (8, 9), generator=g)
    labels = torch.randint(3, config.vocab_size, (8, 10), generator=g)
    with torch.no_grad():
        enc = model.encode(input_ids)
        x = model.embed(model.shift_right(labels))
        from minit5.model import causal_mask
        states = model.decoder(x, causal_mask(x.shape[1], 0, x.dtype, x.device), enc)  # (B, T, D)
        logits = model.project(states)
        if config.scale_decoder_outputs:
            states = states * config.d_model ** -0.5
        target = (logits.max(-1).values - margin).reshape(-1, 1)
        weight = model.embed.weight if model.lm_head is None else model.lm_head.weight
        weight[config.eos_token_id] = torch.linalg.lstsq(states.reshape(-1, states.shape[-1]), target).solution[:, 0]
    return model


def prompts(config: T5Config, batch: int = 3, length: int = 7, seed: int = 1):
    """(input_ids, attention_mask): random prompts, right-padded to different lengths."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, config.vocab_size, (batch, length), generator=g)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    for row in range(1, batch):
        keep = max(2, length - 2 * row)
        input_ids[row, keep:] = config.pad_token_id
        attention_mask[row, keep:] = 0
    input_ids[torch.arange(batch), attention_mask.sum(1) - 1] = config.eos_token_id
    return input_ids, attention_mask


def transformers_model(reference, folder: Path):
    """The same weights in transformers' T5ForConditionalGeneration (eager attention), through a saved folder."""
    from transformers import T5ForConditionalGeneration
    reference.save_pretrained(folder)
    return T5ForConditionalGeneration.from_pretrained(folder, attn_implementation="eager").eval()


def save_byte_tokenizer(folder: Path):
    """A tokenizer_config.json for the byte-level tokenizer (what the demo model uses)."""
    folder = Path(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "ByT5Tokenizer", "extra_ids": 125}))


@torch.no_grad()
def ask_without_cache(model, question: str, max_new_tokens: int = 16) -> str:
    """Greedy decoding the slow way, with your model's encode and decode: the whole answer so far goes through
    the decoder again at every step (no KV cache: that is step 8). The demo model reads bytes (id = byte + 3)."""
    from minit5.tokenizer import Tokenizer
    tok = Tokenizer.byte_level()
    input_ids = torch.tensor([tok.encode(question)])  # (1, S), ending with EOS
    encoder_output = model.encode(input_ids)
    answer = torch.full((1, 1), model.config.decoder_start_token_id, dtype=torch.long)
    for _ in range(max_new_tokens):
        next_token = model.decode(answer, encoder_output)[:, -1].argmax(-1)  # (1,)
        answer = torch.cat([answer, next_token[:, None]], dim=1)
        if next_token.item() == model.config.eos_token_id:
            break
    return tok.decode(answer[0].tolist())


def save_hf_checkpoint(model, folder, hf_name):
    """Write your model as a Hugging Face folder (config.json, model.safetensors, the byte tokenizer's
    tokenizer_config.json), naming each tensor with your step 7 hf_name, so that your loader can read it back.
    A tied model (no lm_head) writes only shared.weight for the embedding, as transformers does."""
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config
    tensors = {hf_name(name, config): tensor.detach().contiguous().clone()
               for name, tensor in model.state_dict().items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config.save(folder / "config.json")
    save_byte_tokenizer(folder)
