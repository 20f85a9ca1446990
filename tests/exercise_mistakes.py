"""Plausible wrong implementations of the exercise steps (exercises/stepNN_*.py), one or more per step.

tests/test_exercises.py runs each step's own tests on them and checks that the tests fail with the message that
explains the mistake. Each wrong implementation is the reference solution with one thing changed, the way a
learner might write it.
"""

from __future__ import annotations

import math
import re
import types

import numpy as np
import torch
import torch.nn.functional as F

from exercises.solutions import (step01_rmsnorm, step02_position_buckets, step03_attention, step04_feed_forward,
                                 step05_block, step06_model, step07_load_checkpoint, step08_greedy, step09_beam_step,
                                 step10_span_corruption, step11_answer)


def variant(module, **changes):
    """A copy of a solution module's namespace with some names replaced."""
    copy = types.ModuleType(module.__name__ + "_wrong")
    copy.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
    copy.__dict__.update(changes)
    return copy


# ---------------------------------------------------------------- step 1: RMS norm
class LayerNormLike(step01_rmsnorm.RMSNorm):
    def forward(self, x):  # subtracts the mean, as LayerNorm does
        x = x - x.mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class EpsOutsideSqrt(step01_rmsnorm.RMSNorm):
    def forward(self, x):
        return self.weight * (x / (x.float().pow(2).mean(-1, keepdim=True).sqrt() + self.eps)).to(self.weight.dtype)


class VarianceInInputDtype(step01_rmsnorm.RMSNorm):
    def forward(self, x):  # x² in float16 overflows
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


# ---------------------------------------------------------------- step 2: buckets
def _bucket_with(sign=1, upper_from_zero=False, rounding=False):
    def relative_position_bucket(relative_position, bidirectional, num_buckets=32, max_distance=128):
        relative_position = sign * relative_position
        bucket = torch.zeros_like(relative_position)
        if bidirectional:
            num_buckets //= 2
            after = relative_position >= 0 if upper_from_zero else relative_position > 0
            bucket += after.long() * num_buckets
            distance = relative_position.abs()
        else:
            distance = (-relative_position).clamp(min=0)
        max_exact = num_buckets // 2
        log_ratio = torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
        scaled = log_ratio * (num_buckets - max_exact)
        far = (max_exact + (scaled.round() if rounding else scaled).long()).clamp(max=num_buckets - 1)
        return bucket + torch.where(distance < max_exact, distance, far)
    return relative_position_bucket


# ---------------------------------------------------------------- step 3: attention and masks
def scaled_attention(q, k, v, bias):  # the usual Transformer's 1/sqrt(d): wrong for T5
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    return F.softmax(scores if bias is None else scores + bias, dim=-1) @ v


def _causal_with(masked):
    def causal_mask(query_len, past, dtype, device):
        if query_len == 1:
            return None
        q = torch.arange(past, past + query_len, device=device)[:, None]
        k = torch.arange(past + query_len, device=device)[None, :]
        return torch.zeros(query_len, past + query_len, dtype=dtype).masked_fill(masked(k, q), torch.finfo(dtype).min)[None, None]
    return causal_mask


# ---------------------------------------------------------------- step 4: feed-forward
class SwappedGateUp(step04_feed_forward.FeedForward):
    def forward(self, x):
        return self.down(self.act(self.up(x)) * self.gate(x)) if self.gate is not None else super().forward(x)


# ---------------------------------------------------------------- step 5: block
class PostNormBlock(step05_block.Block):
    def forward(self, x, self_bias, context=None, cross_bias=None, cache=None):
        x = self.self_attn_norm(x + self.self_attn(x, self_bias, cache=cache))
        if context is not None:
            x = self.cross_attn_norm(x + self.cross_attn(x, cross_bias, context, cache=cache))
        return self.ffn_norm(x + self.ffn(x))


class NoCrossAttentionBlock(step05_block.Block):
    def forward(self, x, self_bias, context=None, cross_bias=None, cache=None):
        return super().forward(x, self_bias, None, None, cache)


# ---------------------------------------------------------------- step 6: model
class UnscaledOutput(step06_model.T5):
    def project(self, h):  # forgets T5 v1.0's d_model**-0.5
        return F.linear(h, self.embed.weight if self.lm_head is None else self.lm_head.weight)


class PerSequenceLoss(step06_model.T5):
    def forward(self, input_ids, attention_mask=None, decoder_input_ids=None, labels=None):
        logits, _ = super().forward(input_ids, attention_mask, decoder_input_ids, labels)
        loss = torch.stack([F.cross_entropy(logits[i], labels[i], ignore_index=-100) for i in range(len(labels))]).mean()
        return logits, loss


class ShiftKeepsIgnore(step06_model.T5):
    def shift_right(self, labels):
        return torch.cat([torch.full_like(labels[:, :1], self.config.decoder_start_token_id), labels[:, :-1]], dim=1)


class ScaledEmbedding(step06_model.T5):
    def encode(self, input_ids, attention_mask=None):
        x = self.embed(input_ids) * self.config.d_model ** 0.5
        return self.encoder(x, step06_model.padding_mask(attention_mask, x.dtype))


# ---------------------------------------------------------------- step 7: loading
def hf_name_swapped_ffn(name, config):
    return step07_load_checkpoint.hf_name(name, config).replace("wi_0", "WI").replace("wi_1", "wi_0").replace("WI", "wi_1")


def hf_name_decoder_ffn_at_layer_1(name, config):
    out = step07_load_checkpoint.hf_name(name, config)
    return re.sub(r"^decoder\.block\.(\d+)\.layer\.2\.", r"decoder.block.\1.layer.1.", out)


def loader_using(table):
    def load_hf_checkpoint(folder):
        config = step07_load_checkpoint.T5Config.from_json_file(folder / "config.json")
        tensors = step07_load_checkpoint.load_file(str(folder / "model.safetensors"))
        config.tie_word_embeddings = not ("lm_head.weight" in tensors and
                                          not torch.equal(tensors["lm_head.weight"], tensors["shared.weight"]))
        model = step06_model.T5(config)
        model.load_state_dict({n: tensors[table(n, config)] for n in model.state_dict()})
        return model.eval()
    return load_hf_checkpoint


# ---------------------------------------------------------------- step 8: greedy
@torch.no_grad()
def greedy_without_padding(model, input_ids, attention_mask=None, max_new_tokens=20):
    """Rows go on generating after their EOS."""
    config = model.config
    if attention_mask is None:
        attention_mask = (input_ids != config.pad_token_id).long()
    encoder_output = model.encode(input_ids, attention_mask)
    cache = step08_greedy.new_cache(model, max_new_tokens)
    tokens = torch.zeros(input_ids.shape[0], 1, dtype=torch.long)
    out, finished = [tokens[:, 0]], torch.zeros(input_ids.shape[0], dtype=torch.bool)
    for _ in range(max_new_tokens):
        next_tokens = model.decode(tokens, encoder_output, attention_mask, cache=cache)[:, -1].argmax(-1)
        out.append(next_tokens)
        finished |= next_tokens == config.eos_token_id
        if finished.all():
            break
        tokens = next_tokens[:, None]
    return torch.stack(out, dim=1)


@torch.no_grad()
def greedy_without_cache(model, input_ids, attention_mask=None, max_new_tokens=20):
    """Right answers, but the whole prefix goes through the decoder again at every step."""
    config = model.config
    if attention_mask is None:
        attention_mask = (input_ids != config.pad_token_id).long()
    encoder_output = model.encode(input_ids, attention_mask)
    seq = torch.zeros(input_ids.shape[0], 1, dtype=torch.long)
    finished = torch.zeros(input_ids.shape[0], dtype=torch.bool)
    for _ in range(max_new_tokens):
        next_tokens = model.decode(seq, encoder_output, attention_mask)[:, -1].argmax(-1).masked_fill(finished, 0)
        seq = torch.cat([seq, next_tokens[:, None]], dim=1)
        finished |= next_tokens == config.eos_token_id
        if finished.all():
            break
    return seq


# ---------------------------------------------------------------- step 9: beam step
def _beam_step_with(candidates=2, normalise=True, rank_rule=True):
    """candidates=1: only num_beams candidates; normalise=False: raw sums as scores; rank_rule=False: every
    candidate that ends with EOS finishes, whatever its rank."""
    def beam_step(log_probs, beam_scores, num_beams, generated_len, eos_id, length_penalty=1.0, last_step=False):
        batch, beams, vocab = log_probs.shape
        totals = (log_probs + beam_scores[:, :, None]).view(batch, -1)
        cand_scores, index = torch.topk(totals, candidates * num_beams)
        parents, tokens = index // vocab, index % vocab
        done = (tokens == eos_id) | last_step
        scores, keep = torch.topk(cand_scores.masked_fill(done, -float("inf")), num_beams)
        finishes = done & (torch.arange(candidates * num_beams) < num_beams) if rank_rule else done
        length = generated_len ** length_penalty if normalise else 1.0
        normalised = (cand_scores / length).masked_fill(~finishes, -float("inf"))
        return step09_beam_step.BeamStep(scores, parents.gather(1, keep), tokens.gather(1, keep), normalised,
                                         parents, tokens)
    return beam_step


def beam_module(step_fn):
    def beam_search(model, input_ids, attention_mask=None, num_beams=4, max_new_tokens=20, length_penalty=1.0):
        return step09_beam_step.run_beam_search(model, input_ids, attention_mask, num_beams, max_new_tokens,
                                                length_penalty, step_fn, step08_greedy.new_cache)
    return variant(step09_beam_step, beam_step=step_fn, beam_search=beam_search)


# ---------------------------------------------------------------- step 10: span corruption
def segmentation_by_choice(num_items, num_segments, rng):
    """A valid random split, drawn another way than T5 (so masks differ from T5's for the same seed)."""
    cuts = np.sort(rng.choice(np.arange(1, num_items), num_segments - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [num_items]]))


def sentinel_per_token(tokens, mask, sentinel_ids):
    """Every masked token becomes a sentinel (instead of one per span)."""
    out, run = [], 0
    for token, masked in zip(tokens, mask):
        if masked:
            out.append(sentinel_ids[run])
            run += 1
        else:
            out.append(int(token))
    return out


# ---------------------------------------------------------------- step 11: answering
def answer_without_eos(model_dir, question, max_new_tokens=32):
    model = step07_load_checkpoint.load_hf_checkpoint(model_dir)
    tok = step11_answer.Tokenizer.from_pretrained(model_dir)
    ids = torch.tensor([tok.encode(question, add_eos=False)])  # the prompt lacks its </s>
    return tok.decode(step08_greedy.greedy_generate(model, ids, max_new_tokens=max_new_tokens)[0].tolist())


# (step, test function, wrong implementation, what the failure message must say)
MISTAKES = [
    ("step01_rmsnorm", "test_rms_norm_matches_minit5_and_transformers",
     variant(step01_rmsnorm, RMSNorm=LayerNormLike), "the mean is subtracted"),
    ("step01_rmsnorm", "test_rms_norm_matches_minit5_and_transformers",
     variant(step01_rmsnorm, RMSNorm=EpsOutsideSqrt), "eps is added outside the square root"),
    ("step01_rmsnorm", "test_rms_norm_in_float16_does_not_overflow",
     variant(step01_rmsnorm, RMSNorm=VarianceInInputDtype), "overflows float16"),
    ("step02_position_buckets", "test_buckets_match_minit5_and_transformers",
     variant(step02_position_buckets, relative_position_bucket=_bucket_with(sign=-1)), "mirrored"),
    ("step02_position_buckets", "test_buckets_match_minit5_and_transformers",
     variant(step02_position_buckets, relative_position_bucket=_bucket_with(upper_from_zero=True)), "Distance 0"),
    ("step02_position_buckets", "test_buckets_match_minit5_and_transformers",
     variant(step02_position_buckets, relative_position_bucket=_bucket_with(rounding=True)), "truncated toward zero"),
    ("step03_attention", "test_attention_has_no_scaling",
     variant(step03_attention, attention=scaled_attention), r"divided by sqrt\(d_kv\) = 4, so they are 4x smaller"),
    ("step03_attention", "test_causal_mask",
     variant(step03_attention, causal_mask=_causal_with(lambda k, q: k >= q)), "the diagonal is masked"),
    ("step03_attention", "test_causal_mask",
     variant(step03_attention, causal_mask=_causal_with(lambda k, q: k > q + 1)), "shifted by one"),
    ("step04_feed_forward", "test_gelu_new_is_the_tanh_approximation",
     variant(step04_feed_forward, gelu_new=F.gelu), r"exact \(erf\) GELU"),
    ("step04_feed_forward", "test_gated_gelu_matches_minit5",
     variant(step04_feed_forward, FeedForward=SwappedGateUp), "gate and up are swapped"),
    ("step05_block", "test_encoder_block_matches_minit5",
     variant(step05_block, Block=PostNormBlock), "post-norm"),
    ("step05_block", "test_decoder_block_matches_minit5",
     variant(step05_block, Block=NoCrossAttentionBlock), "cross-attention sublayer is skipped"),
    ("step06_model", "test_logits_and_loss_match_minit5",
     variant(step06_model, T5=UnscaledOutput), "not rescaled"),
    ("step06_model", "test_logits_and_loss_match_minit5",
     variant(step06_model, T5=PerSequenceLoss), "averaged per sequence"),
    ("step06_model", "test_shift_right", variant(step06_model, T5=ShiftKeepsIgnore), "-100"),
    ("step06_model", "test_encoder_matches_minit5", variant(step06_model, T5=ScaledEmbedding), r"sqrt\(d_model\)"),
    ("step07_load_checkpoint", "test_name_table_matches_minit5",
     variant(step07_load_checkpoint, hf_name=hf_name_swapped_ffn), "wi_0 and wi_1 are swapped"),
    ("step07_load_checkpoint", "test_name_table_matches_minit5",
     variant(step07_load_checkpoint, hf_name=hf_name_decoder_ffn_at_layer_1), "the FFN is layer.2"),
    ("step07_load_checkpoint", "test_loads_a_transformers_checkpoint",
     variant(step07_load_checkpoint, load_hf_checkpoint=loader_using(hf_name_swapped_ffn)),
     r"blocks\.0\.ffn\.gate\.weight should hold encoder\.block\.0\.layer\.1\.DenseReluDense\.wi_0\.weight, "
     r"but holds encoder\.block\.0\.layer\.1\.DenseReluDense\.wi_1\.weight"),
    ("step08_greedy", "test_greedy_matches_minit5_and_transformers",
     variant(step08_greedy, greedy_generate=greedy_without_padding), "went on after its EOS"),
    ("step08_greedy", "test_greedy_uses_the_cache",
     variant(step08_greedy, greedy_generate=greedy_without_cache), "feeds only the newest token"),
    ("step09_beam_step", "test_beam_step_by_hand",
     variant(step09_beam_step, beam_step=_beam_step_with(normalise=False)), "not length-normalised"),
    ("step09_beam_step", "test_beam_step_by_hand",
     variant(step09_beam_step, beam_step=_beam_step_with(candidates=1)), "only num_beams candidates"),
    ("step09_beam_step", "test_beam_step_by_hand",
     variant(step09_beam_step, beam_step=_beam_step_with(rank_rule=False)), "rank 3 was kept"),
    ("step09_beam_step", "test_beam_search_matches_minit5",
     beam_module(_beam_step_with(normalise=False)), r"beam_search\(num_beams="),
    ("step10_span_corruption", "test_random_segmentation",
     variant(step10_span_corruption, random_segmentation=segmentation_by_choice), "draw exactly as the docstring"),
    ("step10_span_corruption", "test_sentinels",
     variant(step10_span_corruption, spans_to_sentinels=sentinel_per_token,
             span_corrupt=lambda tokens, mask, ids, eos_id=1: (sentinel_per_token(tokens, mask, ids) + [eos_id],
                                                               sentinel_per_token(tokens, ~np.asarray(mask), ids) + [eos_id])),
     "ONE sentinel"),
    ("step11_answer", "test_answer_matches_minit5_on_a_tiny_model",
     variant(step11_answer, answer=answer_without_eos), "appends EOS"),
]
