"""The beam-search loop of step 9, written for you: it calls your `beam_step` once per generated token.

It follows transformers' rules (the version in transformers 5), as `minit5/generate.py` `_beam_search` does:

    running beams    (B, beams, length) token ids, with their summed log-probs (B, beams)
    finished         (B, beams, length) the best hypotheses that ended with EOS, with length-normalised scores

Each step your beam_step says which candidates run on and which end here; this loop keeps the best `beams`
finished hypotheses per example and stops an example once its best running beam can no longer beat the worst
finished one. The answer is each example's best finished hypothesis, filled with EOS after its end (as
transformers does). Read it once; nothing here needs changing.
"""

import torch
import torch.nn.functional as F


@torch.no_grad()
def run_beam_search(model, input_ids, attention_mask, num_beams: int, max_new_tokens: int, length_penalty: float,
                    beam_step, new_cache):
    config = model.config
    eos, length = config.eos_token_id, max_new_tokens + 1  # the output includes the start token
    batch = input_ids.shape[0]
    if attention_mask is None:
        attention_mask = (input_ids != config.pad_token_id).long()
    # Every prompt becomes num_beams rows: (B * beams, S, D)
    encoder_output = model.encode(input_ids, attention_mask).repeat_interleave(num_beams, dim=0)
    attention_mask = attention_mask.repeat_interleave(num_beams, dim=0)
    cache = new_cache(model, max_new_tokens)

    running = torch.full((batch, num_beams, length), eos, dtype=torch.long)
    running[:, :, 0] = config.decoder_start_token_id
    running_scores = torch.zeros(batch, num_beams)
    running_scores[:, 1:] = -float("inf")  # the beams start identical: only beam 0 may propose at the first step
    finished = running.clone()
    finished_scores = torch.full((batch, num_beams), -float("inf"))
    finished_lengths = torch.zeros(batch, num_beams, dtype=torch.long)
    is_finished = torch.zeros(batch, num_beams, dtype=torch.bool)
    can_improve = torch.ones(batch, 1, dtype=torch.bool)
    first_row = torch.arange(batch)[:, None] * num_beams  # (B, 1): the flat row of each example's beam 0

    for cur_len in range(1, length):  # cur_len tokens after the start token once this step's token is added
        logits = model.decode(running[:, :, cur_len - 1].reshape(-1, 1), encoder_output, attention_mask,
                              cache=cache)[:, -1]  # (B * beams, V)
        log_probs = F.log_softmax(logits.float(), dim=-1).view(batch, num_beams, -1)  # (B, beams, V)
        step = beam_step(log_probs, running_scores, num_beams, cur_len, eos, length_penalty,
                         last_step=cur_len + 1 >= length)

        # Hypotheses that end here: their parent's tokens plus the final token.
        ended = running.gather(1, step.finished_parents[:, :, None].expand(-1, -1, length)).clone()
        ended[:, :, cur_len] = step.finished_tokens
        # Beams that run on: their parent's tokens plus the new token.
        running = running.gather(1, step.parents[:, :, None].expand(-1, -1, length)).clone()
        running[:, :, cur_len] = step.tokens
        running_scores = step.scores

        # Keep the best num_beams finished hypotheses (an example that cannot improve takes no more).
        new_scores = step.finished_scores.masked_fill(~can_improve, -float("inf"))  # (B, 2 * beams)
        merged = torch.cat([finished_scores, new_scores], dim=1)
        best = torch.topk(merged, num_beams).indices  # (B, beams)
        finished = torch.cat([finished, ended], dim=1).gather(1, best[:, :, None].expand(-1, -1, length))
        finished_scores = merged.gather(1, best)
        finished_lengths = torch.cat([finished_lengths, torch.full_like(step.finished_tokens, cur_len)], 1).gather(1, best)
        is_finished = torch.cat([is_finished, torch.isfinite(new_scores)], dim=1).gather(1, best)

        for layer in cache:  # row i of the cache now continues old row parents[i]
            layer.select((step.parents + first_row).view(-1))

        # Could the best running beam still beat the worst finished hypothesis (judged at the current length)?
        best_possible = running_scores[:, :1] / cur_len ** length_penalty
        worst_finished = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True).values, -float("inf"))
        can_improve &= (best_possible > worst_finished).any(dim=-1, keepdim=True)
        if not can_improve.any():
            break
    return finished[:, 0, : 1 + int(finished_lengths[:, 0].max())]
