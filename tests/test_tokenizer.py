"""minit5.tokenizer against transformers v5: ids and decoded text on tricky inputs, every loading route,
save_pretrained round trips both ways, the byte-level tokenizer against ByT5Tokenizer, and bad input; then T5's
real vocabulary (docs/data/flan-t5-tokenizer/), which cannot read Chinese."""

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import pytest
import sentencepiece as spm
import tokenizers
import torch
from tokenizer_vocab import NUM_SENTINELS, make_folders
from transformers import AutoTokenizer, ByT5Tokenizer

from minit5.tokenizer import Tokenizer, TokenizerError, _read_spiece

TRICKY = [
    "Where is Ganymede?", "translate English to German: How old are you?",
    "several   spaces  here", "tabs\tand\nnewlines\r\nend\n", "  leading and trailing  ", " ", "", "\n\t",
    "ﬁne", "ＡＢＣ１２３", "cafe\u0301 vs café", "Straße ﬀ ① ㎏ ™ ½", "NBSP\u00a0here", "zero\u200bwidth",
    "x\u3000y", "日本語のテキスト", "我爱自然语言处理", "emoji 🙂👍🏽 end", "unknown {}<>~\\^ chars",
    "Привет, как дела?",
    "Hello<extra_id_0>world", "<extra_id_1> x", "a<extra_id_99>b<extra_id_100>c", "<extra_id_0> <extra_id_1>",
    "a  <extra_id_2>  b", "＜extra_id_0＞", "a </s> b", "</s>", "<pad><unk>", " <pad> x <unk> ",
    "The end . Isn't it ? I'm here , they're", "He said: \"don't stop\"", "<extra_id_124> <extra_id_125>",
]
# ByT5Tokenizer warns each time a text ends with "</s>" (it then adds no second one)
pytestmark = pytest.mark.filterwarnings("ignore:This sequence already has </s>")
SPM_FOLDERS = ["hf", "google", "legacy", "plain", "spiece"]
LONG = "The quick brown fox jumps over the lazy dog. " * 40


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return make_folders(tmp_path_factory.mktemp("tokenizers"))


@pytest.fixture(scope="module")
def reference(folders):
    """transformers' tokenizer for each folder. transformers reads a spiece.model-only folder only with the
    protobuf package installed (the tests do not need it): there it builds exactly the "hf" folder's tokenizer,
    so that one is spiece's reference."""
    refs = {name: AutoTokenizer.from_pretrained(folders[name]) for name in ("hf", "google", "legacy", "plain", "byt5")}
    refs["spiece"] = refs["hf"]
    return refs


@pytest.fixture(scope="module")
def mine(folders):
    return {name: Tokenizer.from_pretrained(folders[name]) for name in folders}


def test_reference_tokenizers_are_what_the_tests_assume(reference):
    assert type(reference["hf"]).__name__ == "T5Tokenizer" and type(reference["byt5"]).__name__ == "ByT5Tokenizer"
    assert len(reference["hf"]) == 505  # 405 SentencePiece pieces + 100 sentinels
    assert reference["google"].clean_up_tokenization_spaces and not reference["hf"].clean_up_tokenization_spaces


# ---------------------------------------------------------------- SentencePiece vocabularies
@pytest.mark.parametrize("name", SPM_FOLDERS)
def test_ids_and_text_match_transformers(name, mine, reference):
    tok, ref = mine[name], reference[name]
    assert (tok.pad_id, tok.eos_id, tok.unk_id, tok.vocab_size, tok.num_sentinels) == (0, 1, 2, len(ref), NUM_SENTINELS)
    for text in TRICKY + [LONG]:
        ids = tok.encode(text)
        assert ids == ref(text).input_ids, text
        assert tok.encode(text, add_eos=False) == ref(text, add_special_tokens=False).input_ids, text
        for skip in (True, False):
            assert tok.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip), (text, skip)


def test_known_t5_behaviours(mine, folders):
    tok = mine["hf"]
    assert tok.encode("") == tok.encode(" ") == tok.encode("\n\t") == [1]
    assert tok.encode("Hello<extra_id_0>world") == tok.encode("Hello <extra_id_0> world")  # each segment gets its ▁
    assert tok.sentinel_id(0) in tok.encode("Hello<extra_id_0>world")
    assert tok.encode("a </s> b")[1] == 1  # a literal </s> is the EOS id
    assert tok.encode("a\tb\n\nc") == tok.encode("a b c")  # whitespace runs are one separator
    assert tok.encode("{}") == [5, 2, 1]  # ▁ then one <unk> for consecutive unknown characters
    ids = tok.encode("<pad> Hello world")
    assert tok.decode(ids, skip_special_tokens=False) == "<pad> Hello world</s>"
    assert tok.decode(ids) == "Hello world"  # skip_special_tokens is the default
    assert tok.decode(tok.encode("a<extra_id_3>b")) == "a b"  # skipping drops the sentinels too
    assert tok.decode(torch.tensor(ids)) == tok.decode(ids + [-100, tok.vocab_size, 10**9])  # tensors; junk ids dropped
    assert Tokenizer.from_pretrained(str(folders["hf"])).encode("Hi") == tok.encode("Hi")  # a str path works too
    assert repr(tok) == "Tokenizer(sentencepiece, vocab_size=505, num_sentinels=100)"


def test_nfkc_comes_from_the_precompiled_charsmap(mine):
    with_map, without = mine["hf"], mine["plain"]
    for text, plain in [("ﬁne", "fine"), ("ＡＢＣ１２３", "ABC123"), ("cafe\u0301", "café"), ("①", "1")]:
        assert with_map.encode(text) == with_map.encode(plain), text
        assert without.encode(text) != without.encode(plain), text
    # Full-width brackets normalize to "<extra_id_0>", a piece of the Unigram vocabulary (score 0), as in transformers.
    assert with_map.encode("＜extra_id_0＞") == [5, with_map.sentinel_id(0), 1]


def test_spiece_reader_matches_sentencepiece(folders, mine):
    path = folders["spiece"] / "spiece.model"
    processor = spm.SentencePieceProcessor(model_file=str(path))
    vocab, charsmap = _read_spiece(path)
    assert vocab == [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    assert len(charsmap) > 100_000  # nmt_nfkc
    # sentencepiece's own encoding (which knows nothing of added tokens) agrees on all plain text
    for text in TRICKY + [LONG]:
        if "<" not in text and "＜" not in text:
            assert mine["spiece"].encode(text, add_eos=False) == processor.encode(text), text


def test_raw_tokenizer_json_can_disagree_with_transformers(folders, mine, reference):
    """Why the pipeline is rebuilt: a legacy=False file run as written by `tokenizers` gives other ids."""
    raw = tokenizers.Tokenizer.from_file(str(folders["legacy"] / "tokenizer.json"))
    text = "Hello<extra_id_0>world"
    assert raw.encode(text).ids != reference["legacy"](text).input_ids == mine["legacy"].encode(text)
    assert "▁world" not in raw.encode(text).tokens  # prepend_scheme "first": no ▁ after the sentinel


def test_stored_truncation_and_padding_are_ignored(folders, mine):
    stored = json.loads((folders["google"] / "tokenizer.json").read_text())
    assert stored["truncation"]["max_length"] == 8 and stored["padding"]["strategy"] == {"Fixed": 40}
    ids = mine["google"].encode(LONG)
    assert len(ids) > 40 and ids == mine["hf"].encode(LONG)
    assert mine["google"].encode("Hi") == mine["hf"].encode("Hi")  # not padded to 40


@pytest.mark.parametrize("name", ["hf", "byt5"])
def test_truncation_keeps_the_eos(name, mine, reference):
    tok, ref = mine[name], reference[name]
    for max_length in (1, 2, 8, 50):
        ids = tok.encode(LONG, max_length=max_length)
        assert len(ids) == max_length and ids[-1] == 1
        assert ids == ref(LONG, max_length=max_length, truncation=True).input_ids
        no_eos = tok.encode(LONG, add_eos=False, max_length=max_length)
        assert no_eos == ref(LONG, add_special_tokens=False, max_length=max_length, truncation=True).input_ids
        assert len(no_eos) == max_length and no_eos[-1] != 1
    assert tok.encode("Hi", max_length=50) == tok.encode("Hi")
    with pytest.raises(ValueError, match="max_length must be at least 1"):
        tok.encode("Hi", max_length=0)


@pytest.mark.parametrize("name", ["hf", "google", "spiece", "byt5"])
def test_encode_batch_matches_transformers_padding(name, mine, reference):
    tok, ref = mine[name], reference[name]
    texts = ["Where is Ganymede?", "", "Hello<extra_id_0>world and more words here", "ﬁne ＡＢＣ"]
    input_ids, mask = tok.encode_batch(texts)
    expected = ref(texts, padding=True, return_tensors="pt")
    assert input_ids.dtype == mask.dtype == torch.long
    assert torch.equal(input_ids, expected.input_ids) and torch.equal(mask, expected.attention_mask)
    assert input_ids[1].tolist()[:2] == [1, 0]  # right-padded with 0
    input_ids, mask = tok.encode_batch(texts, max_length=6)
    expected = ref(texts, padding=True, truncation=True, max_length=6, return_tensors="pt")
    assert torch.equal(input_ids, expected.input_ids) and torch.equal(mask, expected.attention_mask)
    rows = [tok.encode(t, max_length=6) for t in texts]
    assert input_ids.tolist() == [ids + [0] * (max(map(len, rows)) - len(ids)) for ids in rows]
    empty_ids, empty_mask = tok.encode_batch([])
    assert empty_ids.shape == empty_mask.shape == (0, 0)


def test_sentinel_ids(mine, reference):
    tok, ref = mine["hf"], reference["hf"]
    assert [tok.sentinel_id(i) for i in range(100)] == [504 - i for i in range(100)]  # vocab_size - 1 - i, as T5
    names = [f"<extra_id_{i}>" for i in range(125)]
    assert [tok.sentinel_id(i) for i in range(100)] == ref.convert_tokens_to_ids(names[:100])
    assert mine["spiece"].sentinel_id(0) == 504
    byte, byt5 = mine["byt5"], reference["byt5"]
    assert byte.num_sentinels == 125 and byte.sentinel_id(0) == 259 and byte.sentinel_id(124) == 383
    assert [byte.sentinel_id(i) for i in range(125)] == byt5.convert_tokens_to_ids(names)
    for bad in (-1, 100):
        with pytest.raises(IndexError, match=f"sentinel {bad} out of range: this tokenizer has 100"):
            tok.sentinel_id(bad)


# ---------------------------------------------------------------- bytes (byT5)
def test_byte_level_matches_byt5(mine):
    ref = ByT5Tokenizer()
    for tok in (Tokenizer.byte_level(), mine["byt5"]):
        assert (tok.pad_id, tok.eos_id, tok.unk_id, tok.vocab_size, tok.num_sentinels) == (0, 1, 2, 384, 125)
        for text in TRICKY + [LONG, "a</s></s> b", "<extra_id_12><extra_id_1>2"]:
            ids = tok.encode(text)
            assert ids == ref(text).input_ids, text
            for skip in (True, False):
                assert tok.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip), text
        for max_length in (2, 3, 4):  # the cut can end on a </s> of the text: then no second one is added
            assert tok.encode("ab</s>cd", max_length=max_length) == ref("ab</s>cd", max_length=max_length,
                                                                         truncation=True).input_ids
    tok = Tokenizer.byte_level()
    assert tok.encode("ab</s>cd", max_length=3) == [100, 101, 1] and tok.encode("a</s>") == [100, 1]
    assert tok.encode("Hi é") == [72 + 3, 105 + 3, 32 + 3, 0xC3 + 3, 0xA9 + 3, 1]
    assert tok.encode("a </s> b") == [100, 1, 101, 1]  # ByT5Tokenizer strips spaces around <pad>, </s>, <unk>
    assert tok.encode("Hello<extra_id_0>world")[5] == 259
    assert repr(tok) == "Tokenizer(byte-level, vocab_size=384, num_sentinels=125)"


def test_byte_level_decodes_invalid_utf8_like_byt5():
    tok, ref = Tokenizer.byte_level(), ByT5Tokenizer()
    e = [b + 3 for b in "日".encode()]  # a three-byte character
    cases = [e[:2], e[1:], [0xC0 + 3, 0xAF + 3], [0xFF + 3, 75], e[:1] + [1] + e[1:], e[:2] + [259] + e[2:],
             [0x80 + 3] * 3]
    for ids in cases:
        for skip in (True, False):
            assert tok.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip), ids
    assert tok.decode(e[:2] + [75]) == "H"  # the broken character is dropped, not replaced
    assert tok.decode([75, 384, 10**6, -100]) == "H"  # ids outside the vocabulary are dropped (ByT5Tokenizer raises)


# ---------------------------------------------------------------- saving
@pytest.mark.parametrize("name", ["hf", "google", "legacy", "spiece", "byt5"])
def test_save_pretrained_round_trips(name, mine, reference, tmp_path):
    tok = mine[name]
    tok.save_pretrained(tmp_path / "out")
    again = Tokenizer.from_pretrained(tmp_path / "out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert type(theirs).__name__ == type(reference[name]).__name__
    assert repr(again) == repr(tok) and len(theirs) == tok.vocab_size
    sentinels = range(tok.num_sentinels)
    assert list(map(again.sentinel_id, sentinels)) == list(map(tok.sentinel_id, sentinels))
    for text in TRICKY:
        ids = tok.encode(text)
        assert again.encode(text) == ids == theirs(text).input_ids, text
        for skip in (True, False):
            assert again.decode(ids, skip_special_tokens=skip) == tok.decode(ids, skip_special_tokens=skip)
            assert theirs.decode(ids, skip_special_tokens=skip) == tok.decode(ids, skip_special_tokens=skip)
    tok.save_pretrained(tmp_path / "out")  # saving over an earlier save works


def test_saved_t5_files(mine, tmp_path):
    mine["spiece"].save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "T5Tokenizer" and config["extra_ids"] == 100
    assert json.loads((tmp_path / "special_tokens_map.json").read_text())["eos_token"] == "</s>"
    raw = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))  # the file alone behaves as minit5
    for text in TRICKY:
        assert raw.encode(text).ids == mine["spiece"].encode(text), text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["special_tokens_map.json", "tokenizer.json",
                                                           "tokenizer_config.json"]


# ---------------------------------------------------------------- bad input
def test_bad_folders(folders, tmp_path):
    def fails(path, message):
        with pytest.raises(TokenizerError, match=message):
            Tokenizer.from_pretrained(path)

    assert issubclass(TokenizerError, ValueError)
    fails(tmp_path / "nowhere", r"tokenizer folder .*nowhere does not exist")
    (tmp_path / "empty").mkdir()
    fails(tmp_path / "empty", r"empty holds no tokenizer: looked for tokenizer.json, spiece.model")
    fails(folders["hf"] / "tokenizer.json", r"tokenizer.json is a file; pass the folder")

    text = (folders["hf"] / "tokenizer.json").read_text()
    for name, content, message in [
        ("truncated", text[: len(text) // 2], r"truncated.tokenizer.json is not valid JSON \(truncated or corrupt\?\)"),
        ("list", "[1, 2]", r"list.tokenizer.json should hold a JSON object, found list"),
        ("bpe", json.dumps({"model": {"type": "BPE", "vocab": {}, "merges": []}}),
         r"bpe.tokenizer.json holds a BPE, not the SentencePiece Unigram model T5 uses"),
        ("novocab", json.dumps({"model": {"type": "Unigram"}}),
         r"novocab.tokenizer.json is not a valid tokenizer.json \(KeyError: 'vocab'\)"),
        ("layout", json.dumps({"model": {"type": "Unigram", "vocab": [["<unk>", 0], ["a", -1], ["b", -2]]}}),
         r"layout.tokenizer.json does not have T5's layout <pad>=0, </s>=1, <unk>=2"),
    ]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "tokenizer.json").write_text(content)
        fails(tmp_path / name, message)

    proto = (folders["spiece"] / "spiece.model").read_bytes()
    for name, content in [("cut", proto[: len(proto) // 3]), ("junk", b"\xff" * 64)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "spiece.model").write_bytes(content)
        fails(tmp_path / name, rf"{name}.spiece.model is not a readable SentencePiece model \(truncated or corrupt\?\)")

    (tmp_path / "config").mkdir()
    shutil.copy(folders["hf"] / "tokenizer.json", tmp_path / "config")
    (tmp_path / "config" / "tokenizer_config.json").write_text("{oops")
    fails(tmp_path / "config", r"config.tokenizer_config.json is not valid JSON")


def test_hub_id_that_cannot_be_fetched():
    message = r"could not fetch no-such-org/no-such-tokenizer from the Hugging Face hub"
    with pytest.raises(TokenizerError, match=message):
        Tokenizer.from_pretrained("no-such-org/no-such-tokenizer")


@pytest.mark.parametrize("name", ["hf", "byt5"])
def test_bad_text(name, mine):
    tok = mine[name]
    for bad in (None, 3, b"bytes", ["a list"]):
        with pytest.raises(TypeError, match=f"encode takes a str, got {type(bad).__name__}"):
            tok.encode(bad)
    for bad in ("one string", ["ok", None], [b"bytes"]):
        with pytest.raises(TypeError, match=r"encode_batch takes a list of str \(for one text, use encode\)"):
            tok.encode_batch(bad)


# ---------------------------------------------------------------- T5's real vocabulary, as flan-T5 uses it
REAL = Path(__file__).resolve().parents[1] / "docs" / "data" / "flan-t5-tokenizer"  # shipped, Apache-2.0
QUESTION_EN, QUESTION_ZH = "Where is Ganymede in our solar system?", "伽尼米德在我们的太阳系中的位置"


@pytest.fixture(scope="module")
def flan_t5():
    return Tokenizer.from_pretrained(REAL)


def test_the_shipped_vocabulary_is_the_file_its_readme_names():
    digest = hashlib.sha256((REAL / "tokenizer.json").read_bytes()).hexdigest()
    readme = (REAL / "README.md").read_text(encoding="utf-8")
    assert f"sha256 `{digest}`" in readme  # the README says which file this is; the two must not drift apart
    assert "Apache License" in (REAL / "LICENSE").read_text(encoding="utf-8")


def test_real_vocabulary_layout(flan_t5):
    assert (flan_t5.vocab_size, flan_t5.num_sentinels) == (32100, 100)
    assert [flan_t5.piece(i) for i in range(3)] == ["<pad>", "</s>", "<unk>"]
    assert flan_t5.sentinel_id(0) == 32099 and flan_t5.sentinel_id(99) == 32000  # at the top, counting down
    assert flan_t5.encode("Hello<extra_id_0>world")[1] == 32099


def test_real_vocabulary_matches_transformers(flan_t5):
    ref = AutoTokenizer.from_pretrained(REAL)
    assert len(ref) == flan_t5.vocab_size
    for text in TRICKY + [LONG, QUESTION_EN, QUESTION_ZH, "木卫三是木星的卫星。", "伽尼米德在哪里？"]:
        ids = flan_t5.encode(text)
        assert ids == ref(text).input_ids, text
        for skip in (True, False):
            assert flan_t5.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip), text


def test_flan_t5_cannot_read_chinese(flan_t5):
    """What docs/tokens.md says: the course's question in English is 12 pieces, in Chinese one <unk>; the
    vocabulary holds no Chinese character at all."""
    en = flan_t5.encode(QUESTION_EN)
    assert [flan_t5.piece(i) for i in en] == ["▁Where", "▁is", "▁Gan", "y", "med", "e", "▁in", "▁our", "▁solar",
                                              "▁system", "?", "</s>"]
    assert flan_t5.decode(en) == QUESTION_EN
    for chinese in (QUESTION_ZH, "木卫三是木星的卫星。", "伽"):
        assert flan_t5.encode(chinese) == [3, 2, 1]  # ▁, one <unk> for the whole run of characters, </s>
        assert flan_t5.decode(flan_t5.encode(chinese)) == ""  # nothing of the question comes back
    assert not any("\u4e00" <= ch <= "\u9fff" for i in range(flan_t5.vocab_size) for ch in flan_t5.piece(i))
    # Google's spiece.model normalizes with NFKC first (the shipped file has no normalizer): then the full-width
    # ？ becomes ? and survives, the characters do not.
    assert flan_t5.encode("伽尼米德在哪里？") == [3, 2, 1]
    nfkc = Tokenizer.from_pretrained(REAL)
    nfkc._backend.normalizer = tokenizers.normalizers.NFKC()
    assert [nfkc.piece(i) for i in nfkc.encode("伽尼米德在哪里？")] == ["▁", "<unk>", "?", "</s>"]
    assert nfkc.encode(QUESTION_ZH) == flan_t5.encode(QUESTION_ZH) and nfkc.encode(QUESTION_EN) == en
