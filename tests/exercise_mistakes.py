"""Plausible wrong implementations of the exercise steps (exercises/stepNN_*.py), one or more per step.

tests/test_exercises.py runs each step's own tests on them and checks that the tests fail with the message that
explains the mistake. Each wrong implementation is the reference solution with one thing changed, the way a
learner might write it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types

import numpy as np
import torch
import torch.nn.functional as F

from exercises.solutions import (step01_rmsnorm, step02_position_buckets, step03_attention, step04_feed_forward,
                                 step05_block, step06_model, step07_load_checkpoint, step08_greedy, step09_beam_step,
                                 step10_span_corruption, step11_answer, step12_train)


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


class MeanOverPositions(step01_rmsnorm.RMSNorm):
    def forward(self, x):  # mean(1): over the positions of a sequence, not each position's features
        return self.weight * (x * torch.rsqrt(x.float().pow(2).mean(1, keepdim=True) + self.eps)).to(self.weight.dtype)


class FixedEps(step01_rmsnorm.RMSNorm):
    def forward(self, x):  # 1e-6 written in, whatever eps the norm was given
        return self.weight * (x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6)).to(self.weight.dtype)


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


class BiasWithDefaultBuckets(step02_position_buckets.RelativePositionBias):
    def forward(self, query_len, key_len, query_offset=0):  # relative_position_bucket's defaults, not the config's
        query_pos = torch.arange(query_offset, query_offset + query_len)[:, None]
        buckets = step02_position_buckets.relative_position_bucket(torch.arange(key_len)[None, :] - query_pos,
                                                                   self.bidirectional)
        return self.table(buckets).permute(2, 0, 1).unsqueeze(0)


class BiasWithoutOffset(step02_position_buckets.RelativePositionBias):
    def forward(self, query_len, key_len, query_offset=0):
        return super().forward(query_len, key_len, 0)


class BiasTransposed(step02_position_buckets.RelativePositionBias):
    def forward(self, query_len, key_len, query_offset=0):  # (1, H, Tk, Tq)
        return super().forward(query_len, key_len, query_offset).transpose(-1, -2)


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


def padding_mask_with(value):
    def padding_mask(attention_mask, dtype):
        if attention_mask is None:
            return None
        blocked = (attention_mask == 0)[:, None, None, :]
        return torch.zeros(blocked.shape, dtype=dtype).masked_fill(blocked, value(dtype))
    return padding_mask


def causal_mask_with_inf(query_len, past, dtype, device):
    mask = step03_attention.causal_mask(query_len, past, dtype, device)
    return None if mask is None else mask.masked_fill(mask != 0, -float("inf"))


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


class CrossAttentionWithoutCache(step05_block.Block):
    def forward(self, x, self_bias, context=None, cross_bias=None, cache=None):
        x = x + self.self_attn(self.self_attn_norm(x), self_bias, cache=cache)
        if context is not None:  # the cache is not passed on: the encoder's keys and values are recomputed
            x = x + self.cross_attn(self.cross_attn_norm(x), cross_bias, context)
        return x + self.ffn(self.ffn_norm(x))


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


class DecodeWithoutCrossMask(step06_model.T5):
    def decode(self, decoder_input_ids, encoder_output, attention_mask=None, cache=None):
        return super().decode(decoder_input_ids, encoder_output, None, cache)  # the encoder's padding is seen


class CrossMaskOnlyWithoutCache(step06_model.T5):
    def decode(self, decoder_input_ids, encoder_output, attention_mask=None, cache=None):
        return super().decode(decoder_input_ids, encoder_output, None if cache else attention_mask, cache)


class ForwardIgnoresDecoderInputs(step06_model.T5):
    def forward(self, input_ids, attention_mask=None, decoder_input_ids=None, labels=None):
        return super().forward(input_ids, attention_mask, None, labels)


class ShiftStartsWithZero(step06_model.T5):
    def shift_right(self, labels):
        shifted = torch.cat([torch.zeros_like(labels[:, :1]), labels[:, :-1]], dim=1)
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)


class StackWithoutOffset(step06_model.Stack):
    def forward(self, x, mask=None, context=None, cross_mask=None, cache=None):
        past = cache[0].length if cache else 0
        bias = self.blocks[0].position_bias(x.shape[1], past + x.shape[1])  # query_offset left at 0
        if mask is not None:
            bias = bias + mask
        for i, block in enumerate(self.blocks):
            x = block(x, bias, context, cross_mask, cache[i] if cache else None)
        return self.final_norm(x)


class T5WithoutOffset(step06_model.T5):
    def __init__(self, config):
        super().__init__(config)
        self.encoder, self.decoder = StackWithoutOffset(config, False), StackWithoutOffset(config, True)


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


def loader_trusting_config(recompute_scale=False):
    """Tied or not from config.json's flag (or, with recompute_scale, from the weights, but the rescale then
    recomputed from that tie instead of taken from config.json)."""
    def load_hf_checkpoint(folder):
        config = step07_load_checkpoint.T5Config.from_json_file(folder / "config.json")
        tensors = step07_load_checkpoint.load_file(str(folder / "model.safetensors"))
        if recompute_scale:
            tied = not ("lm_head.weight" in tensors and
                        not torch.equal(tensors["lm_head.weight"], tensors["shared.weight"]))
            config = dataclasses.replace(config, tie_word_embeddings=tied, scale_decoder_outputs=None)
        model = step06_model.T5(config)
        model.load_state_dict({n: tensors[step07_load_checkpoint.hf_name(n, config)] for n in model.state_dict()})
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


@torch.no_grad()
def greedy_without_early_stop(model, input_ids, attention_mask=None, max_new_tokens=20):
    """Right tokens, but always max_new_tokens of them: finished rows are padded to the end."""
    config = model.config
    if attention_mask is None:
        attention_mask = (input_ids != config.pad_token_id).long()
    encoder_output = model.encode(input_ids, attention_mask)
    cache = step08_greedy.new_cache(model, max_new_tokens)
    tokens = torch.zeros(input_ids.shape[0], 1, dtype=torch.long)
    out, finished = [tokens[:, 0]], torch.zeros(input_ids.shape[0], dtype=torch.bool)
    for _ in range(max_new_tokens):
        next_tokens = model.decode(tokens, encoder_output, attention_mask, cache=cache)[:, -1].argmax(-1)
        next_tokens = next_tokens.masked_fill(finished, config.pad_token_id)
        out.append(next_tokens)
        finished |= next_tokens == config.eos_token_id
        tokens = next_tokens[:, None]
    return torch.stack(out, dim=1)


@torch.no_grad()
def greedy_without_inferred_mask(model, input_ids, attention_mask=None, max_new_tokens=20):
    """attention_mask=None is passed on as it is: the padding of the prompts is read."""
    config = model.config
    encoder_output = model.encode(input_ids, attention_mask)
    cache = step08_greedy.new_cache(model, max_new_tokens)
    tokens = torch.zeros(input_ids.shape[0], 1, dtype=torch.long)
    out, finished = [tokens[:, 0]], torch.zeros(input_ids.shape[0], dtype=torch.bool)
    for _ in range(max_new_tokens):
        next_tokens = model.decode(tokens, encoder_output, attention_mask, cache=cache)[:, -1].argmax(-1)
        next_tokens = next_tokens.masked_fill(finished, config.pad_token_id)
        out.append(next_tokens)
        finished |= next_tokens == config.eos_token_id
        if finished.all():
            break
        tokens = next_tokens[:, None]
    return torch.stack(out, dim=1)


# ---------------------------------------------------------------- step 9: beam step
def _beam_step_with(candidates=2, normalise=True, rank_rule=True, penalty="exponent", eos=None, use_last_step=True):
    """candidates=1: only num_beams candidates; normalise=False: raw sums as scores; rank_rule=False: every
    candidate that ends with EOS finishes, whatever its rank; penalty "ignored" or "factor": length_penalty left
    out or multiplied instead of used as an exponent; eos: an EOS id written in; use_last_step=False: last_step
    ignored."""
    def beam_step(log_probs, beam_scores, num_beams, generated_len, eos_id, length_penalty=1.0, last_step=False):
        batch, beams, vocab = log_probs.shape
        totals = (log_probs + beam_scores[:, :, None]).view(batch, -1)
        cand_scores, index = torch.topk(totals, candidates * num_beams)
        parents, tokens = index // vocab, index % vocab
        done = (tokens == (eos_id if eos is None else eos)) | (last_step and use_last_step)
        scores, keep = torch.topk(cand_scores.masked_fill(done, -float("inf")), num_beams)
        finishes = done & (torch.arange(candidates * num_beams) < num_beams) if rank_rule else done
        length = {"exponent": generated_len ** length_penalty, "ignored": generated_len,
                  "factor": generated_len * length_penalty}[penalty] if normalise else 1.0
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


def segmentation_with_float_marks(num_items, num_segments, rng):
    """The docs' recipe as it was: np.array of a list that is empty for one item, so float64."""
    marks = np.array([1] * (num_segments - 1) + [0] * (num_items - num_segments))
    segment_id = np.cumsum(np.concatenate([[0], rng.permutation(marks)]))
    return np.bincount(segment_id, minlength=num_segments)


def noise_mask_with_t5_settings(length, noise_density=0.15, mean_noise_span_length=3.0, rng=None):
    return step10_span_corruption.random_spans_noise_mask(length, 0.15, 3.0, rng)  # the arguments are not used


def sentinels_reading_mask_minus_one(tokens, mask, sentinel_ids):
    """`not mask[i - 1]` without the i == 0 case: at i = 0 Python reads mask[-1], the last entry."""
    out, run = [], 0
    for i, token in enumerate(tokens):
        if not mask[i]:
            out.append(int(token))
        elif not mask[i - 1]:
            out.append(sentinel_ids[run])
            run += 1
    return out


def span_corrupt_with_eos_1(tokens, mask, sentinel_ids, eos_id=1):
    inputs, targets = step10_span_corruption.span_corrupt(tokens, mask, sentinel_ids, 1)
    return inputs, targets


# ---------------------------------------------------------------- step 11: answering
def answer_without_eos(model_dir, question, max_new_tokens=32):
    model = step07_load_checkpoint.load_hf_checkpoint(model_dir)
    tok = step11_answer.Tokenizer.from_pretrained(model_dir)
    ids = torch.tensor([tok.encode(question, add_eos=False)])  # the prompt lacks its </s>
    return tok.decode(step08_greedy.greedy_generate(model, ids, max_new_tokens=max_new_tokens)[0].tolist())


def answer_with_default_length(model_dir, question, max_new_tokens=32):
    return step11_answer.answer(model_dir, question)  # max_new_tokens is not passed on


# ---------------------------------------------------------------- step 12: training
def collate_with(label_pad=-100, left=False, mask_all_ones=False, pad_zero=False):
    def collate(examples, pad_id):
        batch = step12_train.collate(examples, 0 if pad_zero else pad_id)
        pad_id = 0 if pad_zero else pad_id
        if left:  # every row's tokens moved to its end
            for key, fill in (("input_ids", pad_id), ("attention_mask", 0), ("labels", -100)):
                rows = []
                for row in batch[key].tolist():
                    real = [t for t in row if t != fill]
                    rows.append([fill] * (len(row) - len(real)) + real)
                batch[key] = torch.tensor(rows)
        batch["labels"] = batch["labels"].masked_fill(batch["labels"] == -100, pad_id if label_pad == "pad" else label_pad)
        if mask_all_ones:
            batch["attention_mask"] = torch.ones_like(batch["attention_mask"])
        return batch
    return collate


def loss_with(shift=True, count_padding=False, per_sequence=False, use_mask=True, detach=False):
    def seq2seq_loss(model, batch):
        labels = batch["labels"]
        decoder_input_ids = model.shift_right(labels) if shift else labels.clamp(min=0)
        logits, _ = model(batch["input_ids"], batch["attention_mask"] if use_mask else None,
                          decoder_input_ids=decoder_input_ids)
        if per_sequence:
            loss = torch.stack([F.cross_entropy(logits[i], labels[i], ignore_index=-100) for i in range(len(labels))]).mean()
        elif count_padding:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.clamp(min=0).reshape(-1))
        else:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        return loss.detach() if detach else loss
    return seq2seq_loss


def train_step_with(zero_grad=True, clip="before"):
    def train_step(model, optimizer, batch, clip_norm=1.0):
        if zero_grad:
            optimizer.zero_grad()
        loss = step12_train.seq2seq_loss(model, batch)
        loss.backward()
        if clip == "before":
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        elif clip == "fixed":  # 1.0 written in
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if clip == "after":  # too late: the step has been taken
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        return loss.item()
    return train_step


# (step, test function, wrong implementation, what the failure message must say)
MISTAKES = [
    ("step01_rmsnorm", "test_rms_norm_matches_minit5_and_transformers",
     variant(step01_rmsnorm, RMSNorm=LayerNormLike), "the mean is subtracted"),
    ("step01_rmsnorm", "test_rms_norm_matches_minit5_and_transformers",
     variant(step01_rmsnorm, RMSNorm=EpsOutsideSqrt), "eps is added outside the square root"),
    ("step01_rmsnorm", "test_rms_norm_in_float16_does_not_overflow",
     variant(step01_rmsnorm, RMSNorm=VarianceInInputDtype), "overflows float16"),
    ("step01_rmsnorm", "test_rms_norm_matches_minit5_and_transformers",
     variant(step01_rmsnorm, RMSNorm=MeanOverPositions), r"over the wrong dimension \(the positions"),
    ("step01_rmsnorm", "test_rms_norm_uses_its_eps",
     variant(step01_rmsnorm, RMSNorm=FixedEps), "eps is not the one given"),
    ("step02_position_buckets", "test_buckets_match_minit5_and_transformers",
     variant(step02_position_buckets, relative_position_bucket=_bucket_with(sign=-1)), "mirrored"),
    ("step02_position_buckets", "test_buckets_match_minit5_and_transformers",
     variant(step02_position_buckets, relative_position_bucket=_bucket_with(upper_from_zero=True)), "Distance 0"),
    ("step02_position_buckets", "test_buckets_match_minit5_and_transformers",
     variant(step02_position_buckets, relative_position_bucket=_bucket_with(rounding=True)), "truncated toward zero"),
    ("step02_position_buckets", "test_bias_uses_the_configs_bucket_settings",
     variant(step02_position_buckets, RelativePositionBias=BiasWithDefaultBuckets),
     r"the buckets use the defaults \(32 buckets, max_distance 128\)"),
    ("step02_position_buckets", "test_bias_matches_minit5",
     variant(step02_position_buckets, RelativePositionBias=BiasWithoutOffset), "query_offset is ignored"),
    ("step02_position_buckets", "test_bias_matches_minit5",
     variant(step02_position_buckets, RelativePositionBias=BiasTransposed), r"laid out \(1, H, Tk, Tq\)"),
    ("step03_attention", "test_attention_has_no_scaling",
     variant(step03_attention, attention=scaled_attention), r"divided by sqrt\(d_kv\) = 4, so they are 4x smaller"),
    ("step03_attention", "test_causal_mask",
     variant(step03_attention, causal_mask=_causal_with(lambda k, q: k >= q)), "the diagonal is masked"),
    ("step03_attention", "test_causal_mask",
     variant(step03_attention, causal_mask=_causal_with(lambda k, q: k > q + 1)), "shifted by one"),
    ("step03_attention", "test_padding_mask",
     variant(step03_attention, padding_mask=padding_mask_with(lambda dtype: -1e9)),
     r"hold -1e\+09, not torch.finfo\(torch.float32\).min"),
    ("step03_attention", "test_padding_mask",
     variant(step03_attention, padding_mask=padding_mask_with(lambda dtype: torch.finfo(torch.float32).min)),
     "float32's does not fit in float16"),
    ("step03_attention", "test_causal_mask", variant(step03_attention, causal_mask=causal_mask_with_inf),
     r"hold -inf, not torch.finfo.*softmax of all -inf"),
    ("step04_feed_forward", "test_gelu_new_is_the_tanh_approximation",
     variant(step04_feed_forward, gelu_new=F.gelu), r"exact \(erf\) GELU"),
    ("step04_feed_forward", "test_gated_gelu_matches_minit5",
     variant(step04_feed_forward, FeedForward=SwappedGateUp), "gate and up are swapped"),
    ("step05_block", "test_encoder_block_matches_minit5",
     variant(step05_block, Block=PostNormBlock), "post-norm"),
    ("step05_block", "test_decoder_block_matches_minit5",
     variant(step05_block, Block=NoCrossAttentionBlock), "cross-attention sublayer is skipped"),
    ("step05_block", "test_decoder_block_passes_the_cache_to_both_attentions",
     variant(step05_block, Block=CrossAttentionWithoutCache), "pass the cache to the cross-attention too"),
    ("step06_model", "test_logits_and_loss_match_minit5",
     variant(step06_model, T5=UnscaledOutput), "not rescaled"),
    ("step06_model", "test_logits_and_loss_match_minit5",
     variant(step06_model, T5=PerSequenceLoss), "averaged per sequence"),
    ("step06_model", "test_shift_right", variant(step06_model, T5=ShiftKeepsIgnore), "-100"),
    ("step06_model", "test_encoder_matches_minit5", variant(step06_model, T5=ScaledEmbedding), r"sqrt\(d_model\)"),
    ("step06_model", "test_logits_and_loss_match_minit5", variant(step06_model, T5=DecodeWithoutCrossMask),
     r"not used in cross-attention: the rows with padding \(1 and 2\) differ, and row 0, which has none, matches"),
    ("step06_model", "test_decoding_with_a_cache_matches_a_full_decode",
     variant(step06_model, T5=CrossMaskOnlyWithoutCache), "not used in cross-attention while decoding with a cache"),
    ("step06_model", "test_decoding_with_a_cache_matches_a_full_decode", variant(step06_model, T5=T5WithoutOffset),
     r"without a cache is right.*query_offset = past"),
    ("step06_model", "test_forward_takes_decoder_input_ids",
     variant(step06_model, T5=ForwardIgnoresDecoderInputs), "decoder_input_ids are ignored"),
    ("step06_model", "test_shift_right", variant(step06_model, T5=ShiftStartsWithZero),
     r"config.decoder_start_token_id \(2 here\)"),
    ("step07_load_checkpoint", "test_name_table_matches_minit5",
     variant(step07_load_checkpoint, hf_name=hf_name_swapped_ffn), "wi_0 and wi_1 are swapped"),
    ("step07_load_checkpoint", "test_name_table_matches_minit5",
     variant(step07_load_checkpoint, hf_name=hf_name_decoder_ffn_at_layer_1), "the FFN is layer.2"),
    ("step07_load_checkpoint", "test_loads_a_transformers_checkpoint",
     variant(step07_load_checkpoint, load_hf_checkpoint=loader_using(hf_name_swapped_ffn)),
     r"blocks\.0\.ffn\.gate\.weight should hold encoder\.block\.0\.layer\.1\.DenseReluDense\.wi_0\.weight, "
     r"but holds encoder\.block\.0\.layer\.1\.DenseReluDense\.wi_1\.weight"),
    ("step07_load_checkpoint", "test_tied_or_not_is_decided_by_the_weights",
     variant(step07_load_checkpoint, load_hf_checkpoint=loader_trusting_config()),
     r"your model is tied \(no lm_head\), but the weights say untied. Tied or not is decided by the weights"),
    ("step07_load_checkpoint", "test_tied_or_not_is_decided_by_the_weights",
     variant(step07_load_checkpoint, load_hf_checkpoint=loader_trusting_config(recompute_scale=True)),
     r"rescaled \(or not\) by the weights' tie"),
    ("step08_greedy", "test_greedy_matches_minit5_and_transformers",
     variant(step08_greedy, greedy_generate=greedy_without_padding), "went on after its EOS"),
    ("step08_greedy", "test_greedy_uses_the_cache",
     variant(step08_greedy, greedy_generate=greedy_without_cache), "feeds only the newest token"),
    ("step08_greedy", "test_greedy_stops_when_every_row_has_ended",
     variant(step08_greedy, greedy_generate=greedy_without_early_stop), "went on after every row had produced EOS"),
    ("step08_greedy", "test_greedy_infers_the_attention_mask",
     variant(step08_greedy, greedy_generate=greedy_without_inferred_mask), r"infer it: \(input_ids != config"),
    ("step09_beam_step", "test_beam_step_by_hand",
     variant(step09_beam_step, beam_step=_beam_step_with(normalise=False)), "not length-normalised"),
    ("step09_beam_step", "test_beam_step_by_hand",
     variant(step09_beam_step, beam_step=_beam_step_with(candidates=1)), "only num_beams candidates"),
    ("step09_beam_step", "test_beam_step_by_hand",
     variant(step09_beam_step, beam_step=_beam_step_with(rank_rule=False)), "rank 3 was kept"),
    ("step09_beam_step", "test_beam_search_matches_minit5",
     beam_module(_beam_step_with(normalise=False)), r"beam_search\(num_beams=.*fails test_beam_step_by_hand"),
    ("step09_beam_step", "test_beam_step_length_penalty_and_eos_id_by_hand",
     variant(step09_beam_step, beam_step=_beam_step_with(penalty="ignored")), "length_penalty is ignored"),
    ("step09_beam_step", "test_beam_step_length_penalty_and_eos_id_by_hand",
     variant(step09_beam_step, beam_step=_beam_step_with(penalty="factor")), "length_penalty multiplies the length"),
    ("step09_beam_step", "test_beam_search_matches_minit5", beam_module(_beam_step_with(penalty="ignored")),
     r"length_penalty=2.0\) gave.*fails test_beam_step_length_penalty_and_eos_id_by_hand"),
    ("step09_beam_step", "test_beam_search_matches_minit5", beam_module(_beam_step_with(penalty="factor")),
     r"length_penalty=(2.0|0.5)\) gave.*fails test_beam_step_length_penalty_and_eos_id_by_hand"),
    ("step09_beam_step", "test_beam_step_length_penalty_and_eos_id_by_hand",
     variant(step09_beam_step, beam_step=_beam_step_with(eos=1)), "whatever number that is"),
    ("step09_beam_step", "test_beam_step_at_the_last_step_by_hand",
     variant(step09_beam_step, beam_step=_beam_step_with(use_last_step=False)), "last_step is ignored"),
    ("step09_beam_step", "test_beam_search_matches_minit5", beam_module(_beam_step_with(use_last_step=False)),
     "fails test_beam_step_at_the_last_step_by_hand"),
    ("step10_span_corruption", "test_random_segmentation",
     variant(step10_span_corruption, random_segmentation=segmentation_by_choice), "draw exactly as the docstring"),
    ("step10_span_corruption", "test_sentinels",
     variant(step10_span_corruption, spans_to_sentinels=sentinel_per_token,
             span_corrupt=lambda tokens, mask, ids, eos_id=1: (sentinel_per_token(tokens, mask, ids) + [eos_id],
                                                               sentinel_per_token(tokens, ~np.asarray(mask), ids) + [eos_id])),
     "ONE sentinel"),
    ("step10_span_corruption", "test_random_segmentation",
     variant(step10_span_corruption, random_segmentation=segmentation_with_float_marks), "dtype=np.int64"),
    ("step10_span_corruption", "test_noise_mask",
     variant(step10_span_corruption, random_spans_noise_mask=noise_mask_with_t5_settings),
     r"noise_density=0.3.*use the noise_density given"),
    ("step10_span_corruption", "test_spans_to_sentinels",
     variant(step10_span_corruption, spans_to_sentinels=sentinels_reading_mask_minus_one), "reads the LAST entry"),
    ("step10_span_corruption", "test_sentinels",
     variant(step10_span_corruption, span_corrupt=span_corrupt_with_eos_1), r"the eos_id given \(2 here\)"),
    ("step11_answer", "test_answer_matches_minit5_on_a_tiny_model",
     variant(step11_answer, answer=answer_without_eos), "appends EOS"),
    ("step11_answer", "test_answer_matches_minit5_on_a_tiny_model",
     variant(step11_answer, answer=answer_with_default_length), "with the max_new_tokens given"),
    ("step12_train", "test_collate_pads_inputs_and_labels",
     variant(step12_train, collate=collate_with(label_pad="pad")), r"labels are padded with pad_id \(0\)"),
    ("step12_train", "test_collate_pads_inputs_and_labels",
     variant(step12_train, collate=collate_with(pad_zero=True)), r"not with the pad_id given \(2\)"),
    ("step12_train", "test_collate_pads_inputs_and_labels",
     variant(step12_train, collate=collate_with(left=True)), "padding is on the left"),
    ("step12_train", "test_collate_pads_inputs_and_labels",
     variant(step12_train, collate=collate_with(mask_all_ones=True)), "attention_mask is all ones"),
    ("step12_train", "test_loss_and_gradients_match_minit5",
     variant(step12_train, seq2seq_loss=loss_with(shift=False)), "reads the labels themselves"),
    ("step12_train", "test_loss_and_gradients_match_minit5",
     variant(step12_train, seq2seq_loss=loss_with(count_padding=True)), "the padding is counted"),
    ("step12_train", "test_loss_and_gradients_match_minit5",
     variant(step12_train, seq2seq_loss=loss_with(per_sequence=True)), "averaged per sequence"),
    ("step12_train", "test_loss_and_gradients_match_minit5",
     variant(step12_train, seq2seq_loss=loss_with(use_mask=False)), "the encoder reads the padding"),
    ("step12_train", "test_loss_and_gradients_match_minit5",
     variant(step12_train, seq2seq_loss=loss_with(detach=True)), "0-dim tensor that backward"),
    ("step12_train", "test_train_step_matches_the_steps_written_out",
     variant(step12_train, train_step=train_step_with(zero_grad=False)), "not cleared between steps"),
    ("step12_train", "test_train_step_matches_the_steps_written_out",
     variant(step12_train, train_step=train_step_with(clip="never")), "not clipped"),
    ("step12_train", "test_train_step_matches_the_steps_written_out",
     variant(step12_train, train_step=train_step_with(clip="after")), "not clipped"),
    ("step12_train", "test_train_step_matches_the_steps_written_out",
     variant(step12_train, train_step=train_step_with(clip="fixed")), r"clipped to 1.0, not to the clip given \(0.5\)"),
]
