"""Vocabulary: the exact bytes of every token id of a model.

:meth:`Vocabulary.from_tokenizer` reads them out of any Hugging Face fast tokenizer (anything backed
by the ``tokenizers`` library): GPT-2 style byte-level BPE (including tiktoken vocabularies
converted to byte-level), SentencePiece-style vocabularies (``▁`` for spaces, ``<0xNN>``
byte-fallback pieces) and plain-text token strings. The token kind is read from the backend's
decoder pipeline, never guessed from a model name.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from structgen.errors import StructgenError


class VocabularyError(StructgenError, ValueError):
    """A vocabulary or tokenizer could not be turned into token bytes (the message says why)."""


@dataclass(frozen=True)
class Vocabulary:
    """The byte string of every token id, plus the end-of-sequence ids.

    ``token_bytes[i]`` is the exact text bytes token ``i`` contributes to the output, or ``None`` for
    special and unused ids (EOS, BOS, chat markers, ids that only pad the model's logits). ``size``
    is the width of the model's logits and may exceed the tokenizer's vocabulary.
    """

    token_bytes: tuple[bytes | None, ...]
    eos_token_ids: tuple[int, ...]
    name: str = "vocabulary"
    _text: tuple[bool, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.token_bytes, (str, bytes)) or not isinstance(self.token_bytes, Sequence):
            raise VocabularyError(f"token_bytes must be a tuple, got {type(self.token_bytes).__name__}")
        # a list is accepted and frozen, so the vocabulary stays hashable and immutable
        object.__setattr__(self, "token_bytes", tuple(self.token_bytes))
        for i, data in enumerate(self.token_bytes):
            if data is not None and type(data) is not bytes:
                raise VocabularyError(f"token {i} must be bytes or None, got {type(data).__name__}")
        if not self.eos_token_ids:
            raise VocabularyError("a vocabulary needs at least one end-of-sequence token id")
        # numpy / torch integer ids are accepted and stored as plain ints
        object.__setattr__(self, "eos_token_ids", tuple(_as_id(eos) for eos in self.eos_token_ids))
        for eos in self.eos_token_ids:
            if not 0 <= eos < len(self.token_bytes):
                raise VocabularyError(f"EOS id {eos} outside the vocabulary of size {len(self.token_bytes)}")
            if self.token_bytes[eos] is not None:
                raise VocabularyError(f"EOS id {eos} must be a special token (token_bytes None)")
        object.__setattr__(self, "_text", tuple(b is not None and len(b) > 0 for b in self.token_bytes))

    @classmethod
    def from_token_bytes(
        cls,
        token_bytes: Sequence[bytes | None],
        eos_token_ids: Iterable[int],
        *,
        size: int | None = None,
        name: str = "vocabulary",
    ) -> Vocabulary:
        """Build from explicit token bytes, padding with special ids up to ``size``."""
        tokens = list(token_bytes)
        if size is not None:
            if size < len(tokens):
                raise VocabularyError(f"size {size} is smaller than the {len(tokens)} tokens given")
            tokens.extend([None] * (size - len(tokens)))
        return cls(tuple(tokens), tuple(eos_token_ids), name)

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer: Any,
        *,
        size: int | None = None,
        eos_token_ids: Iterable[int] | None = None,
        name: str | None = None,
    ) -> Vocabulary:
        """The vocabulary of a Hugging Face fast tokenizer (or a bare ``tokenizers.Tokenizer``).

        Every id gets the exact bytes its token contributes to decoded text: byte-level BPE strings
        are mapped back through the GPT-2 byte<->unicode table, SentencePiece ``▁`` becomes a space
        and ``<0xNN>`` byte-fallback pieces become that single byte. The leading space that
        SentencePiece decoders strip from the very start of a sequence (the "dummy prefix") is kept:
        it belongs to the token and is really produced when the token follows other text.

        Special tokens (added tokens marked special, and the tokenizer's BOS/EOS/PAD/UNK and other
        declared special tokens) get ``None``. ``eos_token_ids`` defaults to the tokenizer's EOS id
        plus the end-of-turn / end-of-text markers it defines (``<|eot_id|>``, ``<|im_end|>``, ...).
        ``size`` pads the vocabulary with ``None`` ids up to the model's logits width.
        """
        backend = _backend_of(tokenizer)
        strings, special = _token_strings(tokenizer, backend)
        steps = _decoding_steps(backend)
        token_bytes = _apply_steps(strings, special, steps)
        n_ids = len(token_bytes)
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int):
                raise VocabularyError(f"size must be an integer, got {size!r}")
            if size < n_ids:
                raise VocabularyError(f"size {size} is smaller than the tokenizer's {n_ids} token ids")
            token_bytes.extend([None] * (size - n_ids))
        if eos_token_ids is None:
            eos = _default_eos_ids(tokenizer, backend, token_bytes)
        else:
            eos = _checked_eos_ids(eos_token_ids, token_bytes)
        if name is None:
            name = str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
        return cls(tuple(token_bytes), eos, name)

    @property
    def size(self) -> int:
        """Number of token ids (the width of the logits)."""
        return len(self.token_bytes)

    def is_text_token(self, token_id: int) -> bool:
        """Whether ``token_id`` produces text (is neither special, unused nor empty)."""
        return 0 <= token_id < len(self._text) and self._text[token_id]

    def decode(self, token_ids: Iterable[int]) -> bytes:
        """Concatenated bytes of ``token_ids``; special tokens contribute nothing."""
        return b"".join(self.token_bytes[i] or b"" for i in token_ids)

    def describe(self, token_id: int) -> str:
        """A short human-readable description of one token, for error messages."""
        if not 0 <= token_id < self.size:
            return "out of range"
        data = self.token_bytes[token_id]
        if data is None:
            return "EOS" if token_id in self.eos_token_ids else "special"
        return repr(data)


# Names of tokens that end a model's turn or its text in common chat vocabularies. Only ids the
# tokenizer defines as special tokens are used, so a text token that happens to spell one of these
# never becomes an EOS. <|eom_id|> is in Llama 3's own stop-token list (end of a tool-call message).
END_OF_TURN_TOKENS = (
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|end▁of▁sentence|>",
    "</s>",
    "<eos>",
)


def bytes_to_unicode() -> dict[int, str]:
    """The GPT-2 byte-level table: each byte value -> the printable character standing for it.

    Printable Latin-1 bytes stand for themselves; the other 68 bytes (controls, space, 0x7F-0xA0,
    0xAD) are moved to U+0100 onwards, in byte order, so every token string is visible text.
    """
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def _backend_of(tokenizer: Any) -> Any:
    """The ``tokenizers.Tokenizer`` behind a transformers fast tokenizer (or the object itself)."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:  # pragma: no cover - transformers always brings tokenizers
        raise VocabularyError("the `tokenizers` package is needed: pip install tokenizers") from exc
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if isinstance(backend, Tokenizer):
        return backend
    raise VocabularyError(
        f"{type(tokenizer).__name__} is not a fast tokenizer: Vocabulary.from_tokenizer needs a "
        "transformers tokenizer backed by the `tokenizers` library (PreTrainedTokenizerFast) or a "
        "tokenizers.Tokenizer"
    )


def _token_strings(tokenizer: Any, backend: Any) -> tuple[list[str | None], set[int]]:
    """Raw token string of every id (``None`` for holes) and the set of special ids."""
    model_vocab: dict[str, int] = backend.get_vocab(with_added_tokens=False)
    added = backend.get_added_tokens_decoder()
    ids = [*model_vocab.values(), *added.keys()]
    if not ids:
        raise VocabularyError("the tokenizer has an empty vocabulary")
    if min(ids) < 0:
        raise VocabularyError(f"the tokenizer has a negative token id {min(ids)}")
    strings: list[str | None] = [None] * (max(ids) + 1)
    for text, i in model_vocab.items():
        strings[i] = text
    special: set[int] = set()
    for i, token in added.items():
        strings[i] = token.content
        if token.special:
            special.add(i)
    # transformers' own notion of special tokens (BOS/EOS/UNK/PAD/extra) can include tokens the
    # backend did not flag; a token the tokenizer calls special never counts as text.
    for i in getattr(tokenizer, "all_special_ids", ()) or ():
        if i is not None and 0 <= i < len(strings):
            special.add(i)
    return strings, special


def _component_json(component: Any) -> dict[str, Any] | None:
    """The JSON description of a tokenizers decoder / pre-tokenizer / normalizer object."""
    if component is None:
        return None
    return json.loads(component.__getstate__())


def _flatten(node: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    """The steps of a (possibly nested) ``Sequence`` component, in order."""
    if node is None:
        return []
    if node.get("type") == "Sequence":
        return [step for child in node[key] for step in _flatten(child, key)]
    return [node]


def _decoding_steps(backend: Any) -> list[tuple[str, Any]]:
    """The per-token decoding steps of ``backend``, as ``(kind, argument)`` pairs.

    Only steps that change single tokens matter: ``Fuse`` and the steps after it that act on the
    whole joined sequence (``Strip`` removing SentencePiece's dummy-prefix space) are sequence-level
    cosmetics that do not change which bytes a token adds after other text.
    """
    decoder = _flatten(_component_json(backend.decoder), "decoders")
    if not decoder:
        # Without a decoder ``tokenizers`` joins token strings with spaces, which no model emits;
        # fall back to what the pre-tokenizer says the strings encode.
        pre = [step.get("type") for step in _flatten(_component_json(backend.pre_tokenizer), "pretokenizers")]
        byte_fallback = bool(getattr(backend.model, "byte_fallback", False))
        if "ByteLevel" in pre:
            decoder = [{"type": "ByteLevel"}]
        elif "Metaspace" in pre:
            decoder = [{"type": "Metaspace", "replacement": "▁"}]
            if byte_fallback:
                decoder.append({"type": "ByteFallback"})
        else:
            raise VocabularyError(
                "the tokenizer has no decoder and no ByteLevel/Metaspace pre-tokenizer, so the bytes of "
                "its tokens are undefined"
            )
    steps: list[tuple[str, Any]] = []
    fused = False
    for step in decoder:
        kind = step.get("type")
        if kind == "ByteLevel":
            steps.append(("byte_level", None))
            fused = True  # the ByteLevel decoder joins everything into one string
        elif kind == "ByteFallback":
            steps.append(("byte_fallback", None))
        elif kind == "Replace":
            pattern = step["pattern"]
            if "String" not in pattern:
                raise VocabularyError(f"unsupported decoder step Replace with a regex pattern: {pattern}")
            steps.append(("replace", (pattern["String"], step["content"])))
        elif kind == "Metaspace":
            # Per token: the replacement character stands for a space; the removal of the first
            # token's leading space is the sequence-level dummy prefix.
            steps.append(("replace", (step.get("replacement", "▁"), " ")))
        elif kind == "Fuse":
            fused = True
        elif kind == "Strip":
            if not fused:
                steps.append(("strip", (step["content"], step["start"], step["stop"])))
        else:
            raise VocabularyError(
                f"unsupported tokenizer decoder step {kind!r}: the bytes of its tokens cannot be derived "
                "token by token (supported: ByteLevel, ByteFallback, Replace, Metaspace, Fuse, Strip)"
            )
    return steps


def _byte_fallback_value(token: str) -> int | None:
    """The byte of a ``<0xNN>`` SentencePiece byte piece, else ``None``."""
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        digits = token[3:5]
        if all(c in "0123456789abcdefABCDEF" for c in digits):
            return int(digits, 16)
    return None


def _strip(token: str, content: str, start: int, stop: int) -> str:
    """The tokenizers ``Strip`` decoder on one token: drop up to start/stop ``content`` chars."""
    begin = 0
    while begin < min(start, len(token)) and token[begin] == content:
        begin += 1
    end = len(token)
    while len(token) - end < stop and end > begin and token[end - 1] == content:
        end -= 1
    return token[begin:end]


def _apply_steps(
    strings: list[str | None], special: set[int], steps: list[tuple[str, Any]]
) -> list[bytes | None]:
    """Run every non-special token string through the decoding steps and return its bytes."""
    values: list[str | bytes | None] = [None if i in special else s for i, s in enumerate(strings)]
    for kind, arg in steps:
        if kind == "replace":
            old, new = arg
            for i, v in enumerate(values):
                if v is None:
                    continue
                if isinstance(v, str):
                    if old in v:
                        values[i] = v.replace(old, new)
                else:
                    values[i] = v.replace(old.encode(), new.encode())
        elif kind == "strip":
            content, start, stop = arg
            for i, v in enumerate(values):
                if isinstance(v, str):
                    values[i] = _strip(v, content, start, stop)
        elif kind == "byte_fallback":
            for i, v in enumerate(values):
                if isinstance(v, str) and v.startswith("<0x"):
                    byte = _byte_fallback_value(v)
                    if byte is not None:
                        values[i] = bytes([byte])
        elif kind == "byte_level":
            _byte_level_in_place(values)
        else:  # pragma: no cover - _decoding_steps only produces the kinds above
            raise AssertionError(kind)
    # Whatever is still a string is plain text.
    return [v.encode("utf-8") if isinstance(v, str) else v for v in values]


def _byte_level_in_place(values: list[str | bytes | None]) -> None:
    """Map byte-level token strings back to bytes, exactly like the ``ByteLevel`` decoder.

    A token made only of table characters becomes those bytes; a token with any other character
    (added tokens such as ``" <tool>"`` written in plain text) is kept as its UTF-8 text, which is
    what ``tokenizers`` does too.
    """
    table = bytes_to_unicode()
    to_latin1 = {ord(ch): chr(b) for b, ch in table.items()}
    # Every non-table character must be detected, including Latin-1 ones such as U+00AD that
    # would otherwise survive the latin-1 encode as a wrong single byte.
    drop_table = dict.fromkeys(ord(ch) for ch in table.values())
    for i, v in enumerate(values):
        if not isinstance(v, str):
            continue
        if v.translate(drop_table):
            values[i] = v.encode("utf-8")
        else:
            values[i] = v.translate(to_latin1).encode("latin-1")


def _as_id(value: Any) -> int:
    """``value`` as a plain int token id (any integer type but bool), else a VocabularyError."""
    if isinstance(value, bool):
        raise VocabularyError(f"EOS id {value!r} is not an integer")
    try:
        return int(operator.index(value))
    except TypeError:
        raise VocabularyError(f"EOS id {value!r} is not an integer") from None


def _checked_eos_ids(eos_token_ids: Iterable[int], token_bytes: list[bytes | None]) -> tuple[int, ...]:
    """Validate explicit EOS ids: integers, in range, special (``None`` bytes), deduplicated."""
    if isinstance(eos_token_ids, (str, bytes)) or not isinstance(eos_token_ids, Iterable):
        raise VocabularyError(f"eos_token_ids must be an iterable of ints, got {eos_token_ids!r}")
    result: list[int] = []
    for item in eos_token_ids:
        eos = _as_id(item)
        if not 0 <= eos < len(token_bytes):
            raise VocabularyError(f"EOS id {eos} outside the vocabulary of size {len(token_bytes)}")
        if token_bytes[eos] is not None:
            raise VocabularyError(f"EOS id {eos} is a text token {token_bytes[eos]!r}, not a special token")
        if eos not in result:
            result.append(eos)
    if not result:
        raise VocabularyError("eos_token_ids is empty: a vocabulary needs at least one EOS id")
    return tuple(result)


def _default_eos_ids(tokenizer: Any, backend: Any, token_bytes: list[bytes | None]) -> tuple[int, ...]:
    """The tokenizer's EOS id plus the end-of-turn markers it defines as special tokens."""
    result: list[int] = []
    eos = getattr(tokenizer, "eos_token_id", None)
    if isinstance(eos, int) and 0 <= eos < len(token_bytes) and token_bytes[eos] is None:
        result.append(eos)
    for name in END_OF_TURN_TOKENS:
        i = backend.token_to_id(name)
        if i is not None and i < len(token_bytes) and token_bytes[i] is None and i not in result:
            result.append(i)
    if not result:
        raise VocabularyError(
            "the tokenizer defines no EOS token and none of the usual end-of-turn tokens "
            f"({', '.join(END_OF_TURN_TOKENS)}); pass eos_token_ids= explicitly"
        )
    return tuple(result)


_T = TypeVar("_T")


class PerVocabulary(Generic[_T]):
    """``build(vocab)``, built once per vocabulary object and cached (the latest ``size`` kept).

    Keyed by identity: vocabularies are large, and hashing their contents on every lookup would
    cost. The vocabulary is kept with its value, so that its id cannot be reused while cached.
    """

    def __init__(self, build: Callable[[Vocabulary], _T], size: int = 8) -> None:
        self._build = build
        self._size = size
        self._cache: dict[int, tuple[Vocabulary, _T]] = {}

    def __call__(self, vocab: Vocabulary) -> _T:
        """The value for ``vocab``."""
        hit = self._cache.get(id(vocab))
        if hit is not None and hit[0] is vocab:
            return hit[1]
        value = self._build(vocab)
        if len(self._cache) >= self._size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[id(vocab)] = (vocab, value)
        return value
