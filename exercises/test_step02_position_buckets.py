"""Step 2: relative position buckets and the bias table. Compared with minit5 and transformers."""

import torch
from transformers.models.t5.modeling_t5 import T5Attention

from minit5.model import RelativePositionBias as Reference
from minit5.model import relative_position_bucket as reference_bucket

from ._support import check_close, tiny_config

STEP = "step02_position_buckets"
SETTINGS = [(True, 32, 128), (False, 32, 128), (True, 16, 20)]  # (bidirectional, num_buckets, max_distance)


def describe(bidirectional):
    return "encoder (bidirectional)" if bidirectional else "decoder (causal)"


def test_buckets_match_minit5_and_transformers(impl):
    rel = torch.arange(-300, 301)  # key position - query position
    for bidirectional, num_buckets, max_distance in SETTINGS:
        expected = reference_bucket(rel, bidirectional, num_buckets, max_distance)
        hf = T5Attention._relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
        assert torch.equal(hf, expected), "minit5 and transformers disagree (the reference is broken)"
        got = impl.relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
        where = f"relative_position_bucket(..., bidirectional={bidirectional}, {num_buckets}, {max_distance})"
        assert isinstance(got, torch.Tensor) and got.shape == rel.shape, \
            f"{where} should return a tensor of bucket ids shaped like its input {tuple(rel.shape)}"
        if torch.equal(got.long(), expected):
            continue
        wrong = (got.long() != expected).nonzero()[:, 0]
        examples = ", ".join(f"{rel[i].item()} → {got[i].item()} (expected {expected[i].item()})" for i in wrong[:6])
        lines = [f"{where}: {len(wrong)} of {len(rel)} relative positions get the wrong bucket, e.g. {examples}."]
        if torch.equal(got.long(), reference_bucket(-rel, bidirectional, num_buckets, max_distance)):
            lines.append("Your buckets are mirrored: the relative position is key position - query position "
                         "(positive = the key comes after the query), not query - key.")
        elif got.max() >= num_buckets or got.min() < 0:
            lines.append(f"Some buckets fall outside 0..{num_buckets - 1}: clamp the log-spaced bucket to "
                         f"num_buckets - 1 (after halving num_buckets for the encoder).")
        elif bidirectional and (rel[wrong] == 0).any():
            lines.append("Distance 0 (the query itself) must be bucket 0: only keys strictly after the query "
                         "(relative_position > 0) use the upper half.")
        elif (rel[wrong].abs() >= num_buckets // 4).all():
            lines.append("Close distances are right, far ones are not: check the log-spaced formula: max_exact + "
                         "log(n / max_exact) / log(max_distance / max_exact) * (num_buckets - max_exact), truncated "
                         "toward zero with .long() (not rounded), and for the encoder use the halved num_buckets.")
        lines.append(f"The table in docs/architecture.md section 4 lists the expected buckets ({describe(bidirectional)}).")
        raise AssertionError("\n".join(lines))


def test_bias_matches_minit5(impl):
    config = tiny_config()
    for bidirectional in (True, False):
        torch.manual_seed(0)
        ref = Reference(config, bidirectional)
        yours = impl.RelativePositionBias(config, bidirectional)
        assert tuple(yours.table.weight.shape) == (32, 4), \
            f"RelativePositionBias.table should be nn.Embedding(num_buckets, num_heads) = (32, 4), got {tuple(yours.table.weight.shape)}"
        with torch.no_grad():
            yours.table.weight.copy_(ref.table.weight)
            expected = ref(5, 7)
            check_close(yours(5, 7), expected, f"RelativePositionBias(5 queries, 7 keys), {describe(bidirectional)}",
                        mistakes=[("the bias is laid out (1, H, Tk, Tq): queries index the rows.",
                                   ref(7, 5).transpose(-1, -2))],
                        hint="The result is (1, H, Tq, Tk): table(buckets) is (Tq, Tk, H), so permute(2, 0, 1).")
            # While generating, the one new query sits at position query_offset.
            full = ref(10, 10)
            check_close(yours(1, 10, query_offset=9), full[:, :, 9:], "RelativePositionBias(1, 10, query_offset=9)",
                        mistakes=[("query_offset is ignored: the new query is at position 9, not 0.", full[:, :, :1])],
                        hint="With a KV cache only the newest query is computed; its position is query_offset.")
