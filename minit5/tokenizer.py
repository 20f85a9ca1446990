"""Text <-> token ids for T5, with the ids and text of transformers v5 (`AutoTokenizer` on the same folder).

    SentencePiece (T5, flan-T5)  <pad>=0 </s>=1 <unk>=2, pieces from 3, then <extra_id_99> ... <extra_id_0> on top
                                 (<extra_id_0> = 32099 for T5's 32100 ids); run by the `tokenizers` library
    bytes (byT5, the demo)       <pad>=0 </s>=1 <unk>=2, byte b -> b + 3, then <extra_id_0>=259 ... <extra_id_124>=383
                                 (ascending, as transformers' ByT5Tokenizer assigns them); plain Python

Encodings end with </s> (bytes: not twice when the text itself ends with "</s>", as ByT5Tokenizer does). decode
skips special tokens unless told otherwise (transformers keeps them by default) and drops ids outside the
vocabulary, so -100 labels decode too.

From a tokenizer.json, transformers v5 keeps only the vocabulary, the added tokens and a SentencePiece
`Precompiled` character map (the NFKC-like normalizer), and rebuilds the rest as in _build_sentencepiece; so does
minit5. Run as written by `tokenizers.Tokenizer.from_file`, a file can give other ids: one converted with
legacy=False (Metaspace prepend_scheme "first", no WhitespaceSplit) puts no ▁ before "world" in
"Hello<extra_id_0>world"; one with an NFKC normalizer instead of a charsmap is not normalized by transformers (nor
here). Truncation and padding stored in a tokenizer.json are not applied.

A folder with only spiece.model is read by the small protobuf reader at the end of this file, so it needs no extra
package (transformers needs `sentencepiece` and `protobuf` for it, and gives the same tokenizer).
"""

from __future__ import annotations

import base64
import json
import re
import struct
from pathlib import Path

import torch
from tokenizers import AddedToken, decoders, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as Backend
from tokenizers.models import Unigram

from .checkpoint import CheckpointError, atomic_write, resolve_path, write_json

SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 in every T5 vocabulary
OFFSET = len(SPECIALS)  # byte-level: byte b is id b + OFFSET


class TokenizerError(ValueError):
    """A tokenizer folder or file that cannot be loaded; the message names the file and the problem."""


class Tokenizer:
    pad_id, eos_id, unk_id = 0, 1, 2

    def __init__(self, backend: Backend | None, sentinels: list[int], vocab_size: int, clean_up_spaces: bool = False):
        self._backend = backend  # None: byte-level
        self._sentinels = sentinels  # _sentinels[i] = id of <extra_id_{i}>
        self.vocab_size = vocab_size
        self._clean_up_spaces = clean_up_spaces  # tokenizer_config.json's clean_up_tokenization_spaces
        if backend is None:
            self._byte_specials = {**{t: i for i, t in enumerate(SPECIALS)},
                                   **{f"<extra_id_{i}>": s for i, s in enumerate(sentinels)}}
            self._byte_names = {i: t for t, i in self._byte_specials.items()}
            self._byte_pattern = re.compile("(" + "|".join(map(re.escape, self._byte_specials)) + ")")

    @classmethod
    def byte_level(cls, num_sentinels: int = 125) -> Tokenizer:
        first = OFFSET + 256
        return cls(None, list(range(first, first + num_sentinels)), first + num_sentinels)

    @classmethod
    def from_pretrained(cls, name_or_path) -> Tokenizer:
        if Path(name_or_path).expanduser().is_file():
            raise TokenizerError(f"{name_or_path} is a file; pass the folder that holds tokenizer.json or spiece.model")
        try:
            folder = resolve_path(name_or_path, what="tokenizer")
        except CheckpointError as e:
            raise TokenizerError(str(e)) from None
        config = _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").exists() else {}
        if str(config.get("tokenizer_class")).removesuffix("Fast") == "ByT5Tokenizer":
            return cls.byte_level(int(config.get("extra_ids") or 125))  # transformers v5 saves ByT5's as 0
        extra_ids = int(config.get("extra_ids", 100))
        if (folder / "tokenizer.json").exists():  # preferred over spiece.model, as in transformers
            vocab, charsmap, added = _read_tokenizer_json(folder / "tokenizer.json")
        elif (folder / "spiece.model").exists():
            vocab, charsmap = _read_spiece(folder / "spiece.model")
            vocab += [(f"<extra_id_{i}>", 0.0) for i in reversed(range(extra_ids))]
            added = []
        else:
            raise TokenizerError(f"{folder} holds no tokenizer: looked for tokenizer.json, spiece.model, "
                                 f"and a tokenizer_config.json naming ByT5Tokenizer")
        backend = _build_sentencepiece(vocab, charsmap, added, extra_ids)
        sentinels = []
        while (i := backend.token_to_id(f"<extra_id_{len(sentinels)}>")) is not None:
            sentinels.append(i)
        return cls(backend, sentinels, backend.get_vocab_size(), bool(config.get("clean_up_tokenization_spaces")))

    # --- encoding -----------------------------------------------------------------------------
    def encode(self, text: str, add_eos: bool = True, max_length: int | None = None) -> list[int]:
        """Token ids of `text`; at most max_length of them, the last one </s> if add_eos."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        if self._backend is None:
            return self._finish(self._encode_bytes(text), add_eos, max_length)
        return self._finish(self._backend.encode(text, add_special_tokens=False).ids, add_eos, max_length)

    def encode_batch(self, texts: list[str], max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask): each text encoded as by encode, right-padded with pad_id to the longest."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("encode_batch takes a list of str (for one text, use encode)")
        if self._backend is None:
            rows = [self._encode_bytes(t) for t in texts]
        else:  # the library encodes a batch in parallel, in Rust
            rows = [e.ids for e in self._backend.encode_batch(list(texts), add_special_tokens=False)]
        rows = [self._finish(ids, True, max_length) for ids in rows]
        width = max(map(len, rows), default=0)
        input_ids = torch.tensor([ids + [self.pad_id] * (width - len(ids)) for ids in rows], dtype=torch.long)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in rows], dtype=torch.long)
        return input_ids.view(len(rows), width), mask.view(len(rows), width)  # view: an empty batch is (0, 0)

    def _finish(self, ids: list[int], add_eos: bool, max_length: int | None) -> list[int]:
        if max_length is not None:
            if max_length < 1:
                raise ValueError(f"max_length must be at least 1, got {max_length}")
            ids = ids[:max_length - add_eos]  # cut first, so that the </s> survives
        if add_eos and not (self._backend is None and ids[-1:] == [self.eos_id]):  # ByT5Tokenizer: no second </s>
            ids = ids + [self.eos_id]
        return ids

    def _encode_bytes(self, text: str) -> list[int]:
        parts = self._byte_pattern.split(text)  # text, special, text, ..., special, text
        for k in range(1, len(parts), 2):
            if parts[k] in SPECIALS:  # ByT5Tokenizer strips the whitespace around <pad>, </s> and <unk>
                parts[k - 1], parts[k + 1] = parts[k - 1].rstrip(), parts[k + 1].lstrip()
        ids = []
        for k, part in enumerate(parts):
            if k % 2:
                ids.append(self._byte_specials[part])
            else:
                ids.extend(b + OFFSET for b in part.encode("utf-8"))
        return ids

    # --- decoding -----------------------------------------------------------------------------
    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Text of `ids` (ints or a 1-D tensor); skip_special_tokens drops <pad>, </s>, <unk> and the sentinels."""
        ids = [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids) if 0 <= i < self.vocab_size]
        if self._backend is not None:
            text = self._backend.decode(ids, skip_special_tokens=skip_special_tokens)
        else:
            out = bytearray()
            for i in ids:
                if OFFSET <= i < OFFSET + 256:
                    out.append(i - OFFSET)
                elif not skip_special_tokens:
                    out += self._byte_names[i].encode("utf-8")
            text = out.decode("utf-8", errors="ignore")  # drops a cut-off character, as ByT5Tokenizer does
        if self._clean_up_spaces:  # transformers' clean_up_tokenization, for folders whose config asks for it
            for spaced in (" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"):
                text = text.replace(spaced, spaced.strip())
        return text

    def piece(self, token_id: int) -> str:
        """One id as the vocabulary names it: a SentencePiece piece ("▁Where"), a byte ("W", or "<0xE6>" outside
        printable ASCII: one byte of a multi-byte character), or a special token ("</s>", "<extra_id_0>")."""
        if not 0 <= token_id < self.vocab_size:
            raise IndexError(f"token id {token_id} is outside the vocabulary (0..{self.vocab_size - 1})")
        if self._backend is not None:
            return self._backend.id_to_token(token_id)
        if token_id in self._byte_names:
            return self._byte_names[token_id]
        byte = token_id - OFFSET
        return chr(byte) if 0x21 <= byte <= 0x7E else f"<0x{byte:02X}>"

    # --- sentinels, saving --------------------------------------------------------------------
    @property
    def num_sentinels(self) -> int:
        return len(self._sentinels)

    def sentinel_id(self, i: int) -> int:
        """Id of <extra_id_{i}>, the placeholder for the i-th masked span."""
        if not 0 <= i < len(self._sentinels):
            raise IndexError(f"sentinel {i} out of range: this tokenizer has {len(self._sentinels)}")
        return self._sentinels[i]

    def save_pretrained(self, out_dir) -> None:
        """Write files that minit5 and transformers' AutoTokenizer both load as this tokenizer."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        specials = dict(pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
        if self._backend is None:
            config = dict(tokenizer_class="ByT5Tokenizer", extra_ids=self.num_sentinels, **specials)
        else:  # the tokenizer.json holds the rebuilt pipeline, so even `tokenizers` alone reads it as minit5 does
            atomic_write(out_dir / "tokenizer.json", lambda tmp: self._backend.save(str(tmp)))
            extras = [f"<extra_id_{i}>" for i in range(self.num_sentinels)]
            config = dict(tokenizer_class="T5Tokenizer", extra_ids=len(extras), additional_special_tokens=extras,
                          clean_up_tokenization_spaces=self._clean_up_spaces, **specials)
            write_json(out_dir / "special_tokens_map.json", dict(additional_special_tokens=extras, **specials),
                       sort_keys=False)
        write_json(out_dir / "tokenizer_config.json", config, sort_keys=False)

    def __repr__(self) -> str:
        kind = "byte-level" if self._backend is None else "sentencepiece"
        return f"Tokenizer({kind}, vocab_size={self.vocab_size}, num_sentinels={self.num_sentinels})"


# --------------------------------------------------------------------------------------------------
# SentencePiece vocabularies: the pipeline as transformers v5's T5Tokenizer builds it, and the files
# --------------------------------------------------------------------------------------------------
def _build_sentencepiece(vocab: list[tuple[str, float]], charsmap: bytes, added: list[AddedToken],
                         extra_ids: int) -> Backend:
    backend = Backend(Unigram(vocab, unk_id=2, byte_fallback=False))
    if charsmap:
        backend.normalizer = normalizers.Precompiled(charsmap)
    # Any whitespace run separates words, and each word gets a leading ▁ (after a sentinel too): "a\n b" = "a b".
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace("▁", prepend_scheme="always", split=True)])
    backend.decoder = decoders.Metaspace("▁", prepend_scheme="always", split=True)
    # minit5 appends </s> itself; the template serves whoever loads a saved tokenizer.json with `tokenizers`.
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                           special_tokens=[("</s>", 1)])
    backend.add_tokens(added)  # the file's added tokens, with their flags; then any special one still missing
    present = {t.content for t in added}
    expected = [*SPECIALS, *(f"<extra_id_{i}>" for i in range(extra_ids))]
    backend.add_tokens([AddedToken(t, special=True) for t in expected if t not in present])
    return backend


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(f"{path} is not valid JSON (truncated or corrupt?): {e}") from None
    if not isinstance(data, dict):
        raise TokenizerError(f"{path} should hold a JSON object, found {type(data).__name__}")
    return data


def _read_tokenizer_json(path: Path) -> tuple[list[tuple[str, float]], bytes, list[AddedToken]]:
    """(vocabulary, Precompiled charsmap or b"", added tokens) of a tokenizer.json."""
    data = _read_json(path)
    kind = data["model"].get("type") if isinstance(data.get("model"), dict) else None
    if kind != "Unigram":
        raise TokenizerError(f"{path} holds a {kind or 'model of unknown type'}, "
                             f"not the SentencePiece Unigram model T5 uses")
    try:
        vocab = [(str(piece), float(score)) for piece, score in data["model"]["vocab"]]
        normalizer = data.get("normalizer") or {}
        steps = normalizer["normalizers"] if normalizer.get("type") == "Sequence" else [normalizer]
        charsmap = next((base64.b64decode(s["precompiled_charsmap"]) for s in steps
                         if s.get("type") == "Precompiled" and s.get("precompiled_charsmap")), b"")
        keys = ("content", "single_word", "lstrip", "rstrip", "normalized", "special")
        added = [AddedToken(**{k: t[k] for k in keys if k in t})
                 for t in sorted(data.get("added_tokens") or [], key=lambda t: t["id"])]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise TokenizerError(f"{path} is not a valid tokenizer.json ({type(e).__name__}: {e})") from None
    return _check_layout(vocab, path), charsmap, added


def _check_layout(vocab: list[tuple[str, float]], path: Path) -> list[tuple[str, float]]:
    if tuple(piece for piece, _ in vocab[:3]) != SPECIALS:
        raise TokenizerError(f"{path} does not have T5's layout <pad>=0, </s>=1, <unk>=2 "
                             f"(its first pieces are {[piece for piece, _ in vocab[:3]]})")
    return vocab


# spiece.model is a protobuf (sentencepiece_model.proto); only these fields are read:
#   ModelProto: 1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
#   SentencePiece: 1 piece (string), 2 score (float)       TrainerSpec: 3 model_type (1 = Unigram)
#   NormalizerSpec: 2 precompiled_charsmap (bytes)
def _read_spiece(path: Path) -> tuple[list[tuple[str, float]], bytes]:
    vocab, charsmap, model_type = [], b"", 1
    try:
        for field, value in _protobuf_fields(path.read_bytes()):
            if field == 1:
                piece = dict(_protobuf_fields(value))
                vocab.append((piece[1].decode("utf-8"), struct.unpack("<f", piece[2])[0] if 2 in piece else 0.0))
            elif field == 2:
                model_type = dict(_protobuf_fields(value)).get(3, 1)
            elif field == 3:
                charsmap = dict(_protobuf_fields(value)).get(2, b"")
    except (ValueError, KeyError, TypeError, AttributeError, struct.error) as e:
        raise TokenizerError(f"{path} is not a readable SentencePiece model (truncated or corrupt?): {e!r}") from None
    if model_type != 1:
        raise TokenizerError(f"{path} is not a SentencePiece Unigram model (its model_type is {model_type})")
    return _check_layout(vocab, path), charsmap


def _protobuf_fields(data: bytes):
    """(field number, value) for each field of a protobuf message: an int for a varint, else the raw bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        wire_type = key & 7
        if wire_type == 0:
            value, pos = _varint(data, pos)
        elif wire_type in (1, 2, 5):  # 8 bytes, length-prefixed, 4 bytes
            size, pos = _varint(data, pos) if wire_type == 2 else (8 if wire_type == 1 else 4, pos)
            value, pos = data[pos:pos + size], pos + size
            if pos > len(data):
                raise ValueError("the data ends inside a field")
        else:
            raise ValueError(f"unexpected protobuf wire type {wire_type}")
        yield key >> 3, value


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        value |= (data[pos] & 0x7F) << shift
        shift, pos = shift + 7, pos + 1
        if data[pos - 1] < 0x80:
            return value, pos
    raise ValueError("the data ends inside a number")
