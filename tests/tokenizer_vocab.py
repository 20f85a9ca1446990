"""A small T5-layout SentencePiece vocabulary, made offline, and tokenizer folders in the layouts found on the hub.

No real T5 vocabulary can be downloaded in the tests, so `make_folders` trains one with the `sentencepiece`
trainer on the text below (its default normalizer is nmt_nfkc, stored in spiece.model as a Precompiled charsmap,
as in Google's T5 vocabulary), with T5's layout: <pad>=0, </s>=1, <unk>=2, pieces from 3, and 100 sentinels
<extra_id_99> ... <extra_id_0> appended on top by the tokenizers. Then it writes these folders:

    spiece      spiece.model only (older checkpoints)
    hf          T5Tokenizer built by transformers from that vocabulary and saved by it (tokenizer.json, v5 style)
    google      a tokenizer.json as Google's original files are written (Precompiled normalizer, WhitespaceSplit +
                Metaspace, sentinels as special added tokens) that also stores truncation and padding settings,
                with a v4-style tokenizer_config.json (clean_up_tokenization_spaces true) and special_tokens_map.json
    legacy      a tokenizer.json as transformers v4 writes with legacy=False (Replace/Strip normalizers, Metaspace
                prepend_scheme "first", no WhitespaceSplit): transformers v5 ignores that pipeline
    plain       a tokenizer.json with no normalizer (as some re-saved files are): no NFKC
    byt5        ByT5Tokenizer saved by transformers (tokenizer_config.json naming ByT5Tokenizer, no vocabulary)
"""

import base64
import io
import json
import shutil
from pathlib import Path

CORPUS = """\
The quick brown fox jumps over the lazy dog. Where is Ganymede? It is the largest moon of Jupiter.
translate English to German: How old are you? Wie alt bist du? Ich bin zwanzig Jahre alt.
summarize: The tower is 324 metres tall, about the same height as an 81-storey building.
It is the tallest structure in Paris.
Je suis très content de vous voir. Le café est déjà prêt, mais la crème brûlée n'est pas finie.
Ça va très bien, merci. Où est la bibliothèque? À bientôt, mon ami. Noël approche, et l'été est loin.
Straße, Mädchen, Öl, Übung, schön, grün, größer, Fußball, Käse, Brötchen und Bäckerei.
El niño comió una manzana en la mañana. ¿Dónde está la estación? ¡Qué bueno! Señor, canción, corazón.
東京は日本の首都です。 我爱自然语言处理。 今天天气很好。
Привет, как дела? Это хорошо. Спасибо, до свидания.
Москва и Санкт-Петербург.
Numbers: 1 2 3 4 5 6 7 8 9 10 42 100 1999 2024 3.14 0.5 - the answer is 42, and it always will be.
Questions: who, what, when, where, why, how? Answer the question: what is the capital of France? Paris.
Is this review positive or negative? I loved this movie, the actors were great and the story was moving.
Premise: A man is playing a guitar. Hypothesis: A person plays music. Does the premise entail the hypothesis? yes
Q: Can you write a poem about the sea? A: The sea is wide, the sea is deep, its waves will sing me into sleep.
Please answer the following question. What is the boiling point of water in Celsius? The answer is 100 degrees.
He said: "don't stop", they're here, we've seen it, I'm sure it's fine; isn't it? Yes! No... maybe (or not).
Email me at someone@example.com or visit https://example.org/page?id=7&lang=en for more information.
"""

TRAIN_LINES = CORPUS.splitlines() * 4 + [w for line in CORPUS.splitlines() for w in line.split()]
NUM_SENTINELS = 100


def train_spiece(vocab_size: int = 600) -> bytes:
    """A SentencePiece Unigram model with T5's special-piece layout, serialized (the contents of spiece.model)."""
    import sentencepiece as spm
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TRAIN_LINES), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=0.9995, hard_vocab_limit=False,
        normalization_rule_name="nmt_nfkc", num_threads=1, minloglevel=2)
    return model.getvalue()


def make_folders(root: Path) -> dict:
    """Write the folders described above under root; return {name: folder}."""
    import sentencepiece as spm
    from transformers import ByT5Tokenizer, T5Tokenizer

    from minit5.tokenizer import _read_spiece

    proto = train_spiece()
    processor = spm.SentencePieceProcessor(model_proto=proto)
    folders = {name: root / name for name in ("spiece", "hf", "google", "legacy", "plain", "byt5")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    (folders["spiece"] / "spiece.model").write_bytes(proto)

    # What transformers does with spiece.model (given the protobuf package, which the tests do not need):
    # the pieces and scores, the sentinels appended in reverse, and the proto's Precompiled charsmap.
    # The pieces come from sentencepiece itself; the charsmap from minit5's reader (the tests check it against
    # sentencepiece's own normalization).
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    vocab += [(f"<extra_id_{i}>", 0.0) for i in reversed(range(NUM_SENTINELS))]
    charsmap = _read_spiece(folders["spiece"] / "spiece.model")[1]
    assert charsmap, "the sentencepiece trainer should have stored its nmt_nfkc charsmap"
    T5Tokenizer(vocab=vocab, _spm_precompiled_charsmap=charsmap).save_pretrained(folders["hf"])

    tokenizer_json = json.loads((folders["hf"] / "tokenizer.json").read_text())
    precompiled = {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()}
    specials = [dict(id=i, content=p, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
                for i, (p, _) in enumerate(vocab) if i < 3 or p.startswith("<extra_id_")]

    google = dict(tokenizer_json, added_tokens=specials, normalizer=precompiled,
                  truncation=dict(direction="Right", max_length=8, strategy="LongestFirst", stride=0),
                  padding=dict(strategy=dict(Fixed=40), direction="Right", pad_to_multiple_of=None, pad_id=0,
                               pad_type_id=0, pad_token="<pad>"),
                  pre_tokenizer=dict(type="Sequence", pretokenizers=[
                      dict(type="WhitespaceSplit"),
                      dict(type="Metaspace", replacement="▁", prepend_scheme="always", split=True)]))
    _write(folders["google"] / "tokenizer.json", google)
    extras = [f"<extra_id_{i}>" for i in range(NUM_SENTINELS)]
    _write(folders["google"] / "tokenizer_config.json", dict(
        additional_special_tokens=extras, eos_token="</s>", extra_ids=NUM_SENTINELS, model_max_length=512,
        pad_token="<pad>", unk_token="<unk>", tokenizer_class="T5Tokenizer", clean_up_tokenization_spaces=True))
    _write(folders["google"] / "special_tokens_map.json", dict(
        additional_special_tokens=extras, eos_token="</s>", pad_token="<pad>", unk_token="<unk>"))
    (folders["google"] / "spiece.model").write_bytes(proto)  # tokenizer.json wins when both are there

    legacy = dict(tokenizer_json, added_tokens=specials,
                  normalizer=dict(type="Sequence", normalizers=[
                      precompiled, dict(type="Strip", strip_left=False, strip_right=True),
                      dict(type="Replace", pattern=dict(Regex=" {2,}"), content="▁")]),
                  pre_tokenizer=dict(type="Metaspace", replacement="▁", prepend_scheme="first", split=False),
                  decoder=dict(type="Metaspace", replacement="▁", prepend_scheme="first", split=False))
    _write(folders["legacy"] / "tokenizer.json", legacy)
    shutil.copy(folders["hf"] / "tokenizer_config.json", folders["legacy"])

    _write(folders["plain"] / "tokenizer.json", dict(tokenizer_json, normalizer=None))
    shutil.copy(folders["hf"] / "tokenizer_config.json", folders["plain"])

    ByT5Tokenizer().save_pretrained(folders["byt5"])
    return folders


def _write(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")
