"""python -m minit5.parity: finds the first stage where two models part.

For every variant of tests/hf_models.py: the clean folder agrees with transformers (exit 0); a copy with one tensor
perturbed is reported against the clean one at exactly the stage (block and sublayer) where that tensor acts
(exit 1). Half precision names the first stage that overflows; bad input exits 2 with one line; --json is checked
against the printed report. Mostly in-process calls of main(argv); two real command-line runs."""

import contextlib
import io
import json
import os
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hf_models import VARIANTS, build_hf_model
from safetensors.torch import load_file, save_file

from minit5 import T5Config, Tokenizer
from minit5.checkpoint import hf_name
from minit5.tokenizer import _build_sentencepiece
from minit5.parity import TOLERANCES, BadInput, compare, main, render, stage_names, stage_of_parameter, to_json

ROOT = Path(__file__).resolve().parents[1]
NEW_TOKENS = 3


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("Where is Ganymede?\n\n木卫三\n", encoding="utf-8")  # a blank line is skipped
    return path


pytestmark = pytest.mark.usefixtures("one_thread")  # these models are tiny (conftest.py)


def tiny_sentencepiece() -> Tokenizer:
    """A hand-made SentencePiece (Unigram) tokenizer of 84 ids, small enough for the test models' 120 rows:
    single characters, a few whole words, 8 sentinels. Chinese characters it lacks become <unk>."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0) for c in string.ascii_letters + string.digits + "?.,:+="]
    pieces += [("▁" + w, -1.0) for w in ("Where", "is", "the", "木卫三")]
    pieces += [(f"<extra_id_{i}>", 0.0) for i in reversed(range(8))]
    backend = _build_sentencepiece(pieces, b"", [], 8)
    return Tokenizer(backend, [backend.token_to_id(f"<extra_id_{i}>") for i in range(8)], backend.get_vocab_size())


@pytest.fixture(scope="module", params=list(VARIANTS))
def clean(request, tmp_path_factory):
    """A random reference model of this variant, written by transformers, with a tokenizer that both libraries
    read: the tiny SentencePiece one, or byte-level for byT5."""
    variant = request.param
    _, folder = build_hf_model(variant, tmp_path_factory.mktemp(f"clean-{variant}"))
    (Tokenizer.byte_level() if variant == "byt5" else tiny_sentencepiece()).save_pretrained(folder)
    return variant, folder


def call(argv):
    """main(argv) in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as e:  # argparse's own refusals
            status = e.code
    return status, out.getvalue(), err.getvalue()


def run_tool(*argv, prompts, tmp_path):
    """Run the tool with the test prompts and --json; check the JSON and return (status, stdout, data)."""
    json_path = tmp_path / "report.json"
    json_path.unlink(missing_ok=True)
    status, out, err = call([*argv, "--prompts", prompts, "--max-new-tokens", NEW_TOKENS, "--json", json_path])
    assert status in (0, 1), err
    data = json.loads(json_path.read_text(encoding="utf-8"))
    check_json(data, status, out)
    return status, out, data


def number(x):
    """JSON numbers, with inf and NaN written as strings."""
    assert isinstance(x, (int, float)) or x in ("inf", "-inf", "nan"), x
    return float(x)


def check_json(data, status, printed):
    config = T5Config.from_json_file(Path(data["model"]["path"]) / "config.json")
    assert [s["name"] for s in data["stages"]] == stage_names(config)
    for s in data["stages"]:
        for key in ("max_abs_diff", "rel_diff", "max_abs_model", "max_abs_reference"):
            number(s[key])
        assert s["over_tolerance"] == (not number(s["rel_diff"]) <= data["tolerance"])
        assert s["name"] in printed  # every stage is a row of the printed table
    over = [s["name"] for s in data["stages"] if s["over_tolerance"]]
    assert data["first_divergence"] == (over[0] if over else None)
    for search in ("greedy", "beam"):
        rows = data["tokens"][search]
        assert len(rows) == len(data["prompts"]) == 2
        for r in rows:
            a, b, step = r["model"], r["reference"], r["first_difference"]
            assert all(isinstance(t, int) for t in a + b) and 1 <= len(b) <= NEW_TOKENS
            if step is None:
                assert a == b
            else:  # equal before the step, different at it
                assert a[:step - 1] == b[:step - 1] and a[step - 1:step] != b[step - 1:step]
    assert data["tokens_identical"] == all(r["first_difference"] is None for rows in data["tokens"].values()
                                           for r in rows)
    assert data["tokenizer_ids_identical"] in (True, False, None)
    agree = (data["first_divergence"] is None and data["tokens_identical"]
             and data["tokenizer_ids_identical"] is not False)
    assert data["agree"] == agree and data["exit_status"] == status == (0 if agree else 1)
    assert printed.rstrip().splitlines()[-1].startswith("AGREE" if agree else "DIFFER")


def perturbed_copy(folder, name, dest, factor=None, seed=0):
    """A copy of the folder with one tensor changed: minit5 parameter `name`, noise of half its mean |value|
    added (norm weights are all ones, so their std would be 0), or multiplied by factor."""
    shutil.copytree(folder, dest)
    config = T5Config.from_json_file(folder / "config.json")
    tensors = load_file(dest / "model.safetensors")
    key = hf_name(name, config)
    t = tensors[key]
    if factor is None:
        noise = torch.randn(t.shape, generator=torch.Generator().manual_seed(seed))
        tensors[key] = t + 0.5 * t.abs().mean() * noise
    else:
        tensors[key] = t * factor
    save_file(tensors, dest / "model.safetensors", metadata={"format": "pt"})
    return dest


def tensors_to_break(variant):
    """One tensor of each kind (encoder and decoder; self-attention, cross-attention, feed-forward; norms, position
    bias, embedding, output layer), spread over first and last blocks."""
    _, _, overrides, tied = VARIANTS[variant]
    enc_last = overrides.get("num_layers", 2) - 1
    dec_last = overrides.get("num_decoder_layers", overrides.get("num_layers", 2)) - 1
    bias_block = enc_last if variant == "umt5" else 0  # umT5: every block has its own table
    names = [f"encoder.blocks.{enc_last}.self_attn.q.weight", "encoder.blocks.0.ffn.down.weight",
             f"encoder.blocks.{bias_block}.position_bias.table.weight", "encoder.final_norm.weight",
             "decoder.blocks.0.self_attn.v.weight", f"decoder.blocks.{dec_last}.cross_attn.k.weight",
             f"decoder.blocks.{dec_last}.cross_attn_norm.weight", f"decoder.blocks.{dec_last}.ffn.up.weight",
             "decoder.blocks.0.ffn_norm.weight", "embed.weight"]
    return names + ([] if tied else ["lm_head.weight"])


def test_clean_folder_agrees_with_transformers(clean, prompts, tmp_path):
    variant, folder = clean
    status, out, data = run_tool(folder, prompts=prompts, tmp_path=tmp_path)
    assert status == 0, out
    assert data["reference"]["kind"] == "transformers" and data["tokenizer_ids_identical"] is True
    assert data["first_divergence"] is None and data["tokens_identical"]
    # far inside the tolerance: what is left is rounding (docs/parity.md measures it)
    assert max(number(s["rel_diff"]) for s in data["stages"]) < 1e-5
    assert "cross_attn" in out and "decoder.blocks.0.ffn" in out


def test_one_perturbed_tensor_is_found_where_it_acts(clean, prompts, tmp_path):
    variant, folder = clean
    found = {}
    for i, name in enumerate(tensors_to_break(variant)):
        broken = perturbed_copy(folder, name, tmp_path / f"broken{i}")
        status, out, data = run_tool(broken, "--against", folder, prompts=prompts, tmp_path=tmp_path)
        found[name] = (status, data["first_divergence"])
        if data["first_divergence"]:
            assert f">> {data['first_divergence']} " in out  # the row is highlighted
    expected = {name: (1, stage_of_parameter(name)) for name in found}
    assert found == expected
    # the mapping itself, spelled out for a few names
    assert stage_of_parameter("decoder.blocks.1.cross_attn_norm.weight") == "decoder.blocks.1.cross_attn"
    assert stage_of_parameter("encoder.blocks.0.position_bias.table.weight") == "encoder.blocks.0.self_attn"
    assert stage_of_parameter("encoder.blocks.3.ffn.gate.weight") == "encoder.blocks.3.ffn"


def test_a_clean_copy_against_its_original_is_identical(clean, prompts, tmp_path):
    variant, folder = clean
    shutil.copytree(folder, tmp_path / "copy")
    status, out, data = run_tool(tmp_path / "copy", "--against", folder, prompts=prompts, tmp_path=tmp_path)
    assert status == 0 and all(number(s["max_abs_diff"]) == 0 for s in data["stages"])


@pytest.fixture(scope="module")
def flan(tmp_path_factory):
    _, folder = build_hf_model("flan-t5", tmp_path_factory.mktemp("flan"))
    tiny_sentencepiece().save_pretrained(folder)
    return folder


def test_float16_names_the_first_overflowing_stage(flan, prompts, tmp_path):
    # Block 1's FFN "up" matrix scaled up: its hidden layer exceeds float16's largest value (65504).
    big = perturbed_copy(flan, "encoder.blocks.1.ffn.up.weight", tmp_path / "big", factor=1e5)
    status, out, data = run_tool(big, "--dtype", "float16", prompts=prompts, tmp_path=tmp_path)
    assert status == 1
    assert data["reference"]["runs_in"] == "minit5, float32" and data["tolerance"] == TOLERANCES["float16"]
    assert data["first_divergence"] == data["first_nonfinite"]["model"] == "encoder.blocks.1.ffn"
    assert data["first_stage_beyond_half_range"] == "encoder.blocks.1.ffn"
    assert data["first_nonfinite"]["reference"] is None
    row = next(s for s in data["stages"] if s["name"] == "encoder.blocks.1.ffn")
    assert number(row["max_abs_ffn_hidden_reference"]) > 65504 and row["nonfinite_model"] > 0
    assert ">> encoder.blocks.1.ffn " in out and "inf/NaN first appears in MODEL" in out
    assert "DIFFER: first divergence at encoder.blocks.1.ffn" in out.splitlines()[-1]

    # The same model unscaled stays within the float16 tolerance at every stage, with no inf/NaN.
    _, _, healthy = run_tool(flan, "--dtype", "float16", prompts=prompts, tmp_path=tmp_path)
    assert healthy["first_divergence"] is None and healthy["first_nonfinite"]["model"] is None
    assert 0 < max(number(s["rel_diff"]) for s in healthy["stages"])  # half precision does round


def config_copy(source, folder, **changes):
    """A folder holding only source's config.json, with some fields changed."""
    folder.mkdir()
    raw = {**json.loads((source / "config.json").read_text()), **changes}
    (folder / "config.json").write_text(json.dumps(raw))
    return folder


@pytest.mark.parametrize("case,message", [
    ("missing", "error: MODEL folder {tmp}/nothing does not exist"),
    ("no-config", "error: MODEL {tmp}/empty is not a T5 checkpoint: it has no config.json"),
    ("bert", "is not a T5 checkpoint: {tmp}/bert/config.json describes a 'bert' model"),
    ("shapes", "error: MODEL and REF have different shapes: d_ff is 48 in MODEL"),
    ("no-tokenizer", "error: MODEL needs a tokenizer for its inputs:"),
    ("bad-tokenizer", "error: --tokenizer folder {tmp}/nothing does not exist"),
    ("not-a-tokenizer", "error: --tokenizer: {tmp} holds no tokenizer"),
    ("prompts", "error: cannot read --prompts {tmp}/none.txt"),
    ("tolerance", "error: --tolerance must be a positive number, got 0.0"),
    ("tokens", "error: --max-new-tokens must be at least 1, got 0"),
    ("json", "error: cannot write --json {tmp}/no/such/out.json: its folder does not exist"),
    ("dtype", "error: argument --dtype: invalid choice: 'float64'"),
])
def test_bad_input_exits_2_with_one_line(flan, tmp_path, case, message):
    argv = {
        "missing": [tmp_path / "nothing"],
        "no-config": [(tmp_path / "empty").mkdir() or tmp_path / "empty"],
        "bert": [config_copy(flan, tmp_path / "bert", model_type="bert")],
        "no-tokenizer": [shutil.copytree(flan, tmp_path / "bare", ignore=shutil.ignore_patterns("tokenizer*"))],
        "bad-tokenizer": [flan, "--tokenizer", tmp_path / "nothing"],
        "not-a-tokenizer": [flan, "--tokenizer", tmp_path],
        "prompts": [flan, "--prompts", tmp_path / "none.txt"],
        "tolerance": [flan, "--tolerance", "0"],
        "tokens": [flan, "--max-new-tokens", "0"],
        "json": [flan, "--json", tmp_path / "no/such/out.json"],
        "dtype": [flan, "--dtype", "float64"],
    }.get(case)
    if case == "shapes":  # a REF with another FFN width
        _, other = build_hf_model("flan-t5", tmp_path / "wide", d_ff=64)
        argv = [flan, "--against", other]
    status, out, err = call(argv)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert message.format(tmp=tmp_path) in err.strip(), err
    if case == "shapes":
        assert err.strip().endswith(f"but 64 in REF ({tmp_path / 'wide'})")
    if case == "no-tokenizer":  # and says how to give it one
        assert "--tokenizer DIR_OR_HUB_ID" in err


def test_a_folder_of_weights_alone_borrows_a_tokenizer(flan, prompts, tmp_path):
    """A folder written by model.save_pretrained alone has no tokenizer: --tokenizer names where one is."""
    bare = shutil.copytree(flan, tmp_path / "bare", ignore=shutil.ignore_patterns("tokenizer*"))
    status, out, data = run_tool(bare, "--tokenizer", flan, prompts=prompts, tmp_path=tmp_path)
    assert status == 0 and data["reference"]["kind"] == "transformers", out
    assert data["tokenizer"] == str(flan) and data["tokenizer_ids_identical"] is True
    assert f"tokenised by the tokenizer of {flan}; transformers' tokenizer gives the same ids" in out
    broken = perturbed_copy(bare, "encoder.blocks.0.ffn.down.weight", tmp_path / "broken")
    status, out, data = run_tool(broken, "--against", flan, "--tokenizer", flan, prompts=prompts, tmp_path=tmp_path)
    assert status == 1 and data["first_divergence"] == "encoder.blocks.0.ffn"


def test_compare_is_the_command_as_a_function(flan, prompts, tmp_path):
    """compare() with plain arguments gives the data of --json, and render() of it is the printed report."""
    broken = perturbed_copy(flan, "decoder.blocks.1.cross_attn.o.weight", tmp_path / "broken")
    result = compare(broken, against=flan, prompts=["Where is Ganymede?", "木卫三"], max_new_tokens=NEW_TOKENS)
    status, out, data = run_tool(broken, "--against", flan, prompts=prompts, tmp_path=tmp_path)
    assert status == result["exit_status"] == 1 and result["first_divergence"] == "decoder.blocks.1.cross_attn"
    assert to_json(result) == data and render(result) == out.rstrip("\n")
    for kwargs, message in ((dict(max_new_tokens=0), "--max-new-tokens must be at least 1, got 0"),
                            (dict(tolerance=-1.0), "--tolerance must be a positive number, got -1.0"),
                            (dict(dtype="float64"), "--dtype must be one of float32, bfloat16, float16"),
                            (dict(prompts=[]), "the prompts must be a list of texts")):
        with pytest.raises(BadInput, match=message.replace("(", r"\(")):
            compare(flan, against=flan, **kwargs)


def test_without_transformers_says_how_to_install_it(flan, prompts, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now raises ImportError
    status, out, err = call([flan])
    assert status == 2 and err.strip() == (
        'error: comparing with transformers needs it installed (the test extra): pip install -e ".[test]"; '
        "or compare two checkpoints with --against REF")
    status, _, _ = run_tool(flan, "--against", flan, prompts=prompts, tmp_path=tmp_path)  # needs no transformers
    assert status == 0


def test_command_line(flan, prompts, tmp_path):
    broken = perturbed_copy(flan, "decoder.blocks.1.cross_attn.o.weight", tmp_path / "broken")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models, as in-process above
    result = subprocess.run([sys.executable, "-m", "minit5.parity", str(broken), "--against", str(flan), "--prompts",
                             str(prompts), "--max-new-tokens", "2"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 1, result.stderr
    assert ">> decoder.blocks.1.cross_attn " in result.stdout
    assert result.stdout.splitlines()[-1].startswith("DIFFER: first divergence at decoder.blocks.1.cross_attn")

    missing = subprocess.run([sys.executable, "-m", "minit5.parity", str(tmp_path / "nothing")], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, env=env)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == f"error: MODEL folder {tmp_path / 'nothing'} does not exist\n"
