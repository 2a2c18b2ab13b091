"""Regex constraints: UTF-8 byte DFAs, the numba token index and the matcher on real vocabularies."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from structgen.automata import reference
from structgen.automata.regex import regex_to_byte_dfa
from structgen.automata.token_index import DFAAutomaton
from structgen.bitmask import bitmask_to_bool
from structgen.compilers.regex import RegexCompiler, compile_regex
from structgen.errors import EmptyLanguageError, RegexError, TokenRefusedError
from structgen.vocabulary import Vocabulary

REALISTIC = [
    r"\d{3}-\d{4}",
    r"[\w.+-]+@[\w-]+\.[\w.-]+",
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})",
    r"((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)",
    r"(\+\d{1,3} )?\(?\d{3}\)? ?\d{3}-\d{4}",
    r'\{"name": "[^"\\]{1,20}", "tags": \[("[a-z]+"(, "[a-z]+")*)?\]\}',
    r"(yes|no|maybe|é|日本語|🙂)+",
    r"[^\n]{0,12}\n?",
]


def _toy_vocab() -> Vocabulary:
    """All single bytes plus tokens that split multi-byte characters in awkward places."""
    euro = "€".encode()  # 3 bytes
    tokens: list[bytes | None] = [None]
    tokens += [bytes([b]) for b in range(256)]
    tokens += [euro[:2], euro[1:], euro, b"1" + euro[:1], euro[2:] + b"2", b"ab", b"abc", b"a\xe2"]
    return Vocabulary.from_token_bytes(tokens, [0], size=300, name="toy")


def _walk(constraint, ids):
    """Advance over ``ids``; returns the index of the first refused token, or None."""
    matcher = constraint.matcher()
    for position, token_id in enumerate(ids):
        if not matcher.accepts(token_id):
            return position, matcher
        matcher.advance(token_id)
    return None, matcher


# --- byte DFA ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        ("é|ü+|[\u4e00-\u9fff]{2}", ["é", "üüü", "中文"], ["e", "中", "ü中"]),
        (r"[^x]", ["\u00e9", "\U0001f642", "\ud7ff", "\ue000", "\U0010ffff"], ["x", "ab"]),
        (r"\u00e9\x41\U0001F642", ["éA🙂"], ["é"]),
        (r"(?i)abc", ["ABC", "aBc"], ["abd"]),
        (r"^\d+$", ["0", "123"], ["", "1a"]),
        (r"(?=a)\w+", ["ab"], ["ba"]),
    ],
)
def test_byte_dfa_matches_exactly_the_utf8_encodings(pattern, good, bad):
    dfa = regex_to_byte_dfa(pattern)
    for text in good:
        assert dfa.matches(text.encode("utf-8", "surrogatepass")), text
    for text in bad:
        assert not dfa.matches(text.encode("utf-8", "surrogatepass")), text


def test_byte_dfa_refuses_invalid_utf8():
    dfa = regex_to_byte_dfa(r"[^x]*")
    for data in [b"\xc0\x80", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff", b"\x80"]:
        assert not dfa.matches(data), data
    for text in ["a", "é", "€", "\U0010ffff", "\ud7ff\ue000"]:
        assert dfa.matches(text.encode())


def test_counted_repetition_is_minimal_and_exact():
    dfa = regex_to_byte_dfa(r"[a-z]{0,200}")
    assert dfa.num_states == 201
    assert dfa.matches(b"a" * 200) and not dfa.matches(b"a" * 201)


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        (r"(a)\1", "backreference"),
        (r"(?<=a)b", "lookbehind"),
        (r"(?<!a)b", "lookbehind"),
        (r"a\bb", "word boundary"),
        (r"a++", "possessive"),
        (r"(?>a)", "atomic"),
        (r"a^b", "anchor"),
        (r"(?s).", "inline flag"),
        (r"[a-", "invalid regex"),
        (r"\p{L}", "invalid regex"),
        (r"(?(1)a|b)", "invalid regex"),
    ],
)
def test_unsupported_syntax_names_the_construct(pattern, construct):
    with pytest.raises(RegexError, match=construct):
        regex_to_byte_dfa(pattern)


def test_empty_language_is_an_error():
    with pytest.raises(EmptyLanguageError):
        regex_to_byte_dfa(r"[^\s\S]")
    with pytest.raises(EmptyLanguageError):
        regex_to_byte_dfa(r"(?=a)b")


# --- token index and matcher on a toy vocabulary ------------------------------------------------


def test_tokens_splitting_multibyte_characters():
    vocab = _toy_vocab()
    constraint = compile_regex(r"1€2", vocab)
    ids = {data: i for i, data in enumerate(vocab.token_bytes) if data is not None}
    euro = "€".encode()
    for spelling in (
        [b"1", euro, b"2"],
        [b"1" + euro[:1], euro[1:], b"2"],
        [b"1", euro[:2], euro[2:] + b"2"],
    ):
        refused, matcher = _walk(constraint, [ids[p] for p in spelling])
        assert refused is None and matcher.is_accepting(), spelling
    refused, _ = _walk(constraint, [ids[b"1"], ids[euro[1:]]])
    assert refused == 1


def test_index_equals_reference_on_toy_vocab():
    vocab = _toy_vocab()
    for pattern in [r"1€2", r"(ab|abc|€)+", r"[^a]{2,4}"]:
        automaton = compile_regex(pattern, vocab).automaton
        for state in range(automaton.dfa.num_states):
            tokens, nexts = automaton.index.transitions(state)
            expected = reference.allowed_transitions(automaton.dfa, vocab, state)
            assert dict(zip(tokens.tolist(), nexts.tolist(), strict=True)) == expected


def test_token_level_liveness_without_byte_fallback():
    # Without single-byte tokens, "ab" cannot be followed by anything that completes "abd".
    tokens = [None, b"a", b"ab", b"c", b"bd"]
    vocab = Vocabulary.from_token_bytes(tokens, [0], name="sparse")
    constraint = compile_regex(r"abc|abd", vocab)
    automaton = constraint.automaton
    assert list(automaton.index.live) == reference.token_level_live(automaton.dfa, vocab)
    matcher = constraint.matcher()
    assert matcher.accepts(1) and matcher.accepts(2)
    matcher.advance(1)
    assert matcher.accepts(4) and not matcher.accepts(3)
    with pytest.raises(EmptyLanguageError):
        compile_regex(r"x", vocab)


def test_matcher_api_on_toy_vocab():
    vocab = _toy_vocab()
    constraint = compile_regex(r"ab(c|d)?", vocab)
    matcher = constraint.matcher()
    b = vocab.token_bytes.index
    assert matcher.forced_bytes() == b"ab"
    assert not matcher.accepts(0)
    matcher.advance(b(b"ab"))
    assert matcher.is_accepting() and not matcher.is_finished() and matcher.accepts(0)
    fork = matcher.copy()
    fork.advance(b(b"c"))
    assert fork.is_finished() and matcher.num_tokens == 1
    assert np.flatnonzero(fork.mask()).tolist() == [0]
    with pytest.raises(TokenRefusedError):
        matcher.advance(b(b"x"))
    matcher.rollback(1)
    assert matcher.num_tokens == 0 and not matcher.accepts(b(b"c"))
    matcher.consume([b(b"abc"), 0])
    assert matcher.is_finished() and np.flatnonzero(matcher.mask()).tolist() == [0]
    with pytest.raises(ValueError):
        matcher.rollback(5)


def test_bitmask_rows_and_padding():
    vocab = _toy_vocab()
    matcher = compile_regex(r"[ab]", vocab).matcher()
    out = np.full((2, (vocab.size + 31) // 32), -1, dtype=np.int32)
    matcher.fill_bitmask(out, 1)
    allowed = np.flatnonzero(bitmask_to_bool(out[1], vocab.size))
    assert [vocab.token_bytes[i] for i in allowed] == [b"a", b"b"]
    assert (out[0] == -1).all()


def test_regex_compiler_caches():
    vocab = _toy_vocab()
    compiler = RegexCompiler(vocab)
    assert compiler.compile(r"a+") is compiler.compile(r"a+")


# --- real vocabularies --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["smollm2", "llama3"])
def real(request):
    """(tokenizer, vocabulary, compiler) of a real model."""
    tokenizer = request.getfixturevalue(f"{request.param}_tokenizer")
    vocab = request.getfixturevalue(f"{request.param}_vocab")
    return tokenizer, vocab, RegexCompiler(vocab)


def _encode(tokenizer, vocab, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assume(vocab.decode(ids) == text.encode())
    return ids


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_matching_strings_are_accepted_token_by_token(real, data):
    tokenizer, vocab, compiler = real
    pattern = data.draw(st.sampled_from(REALISTIC))
    text = data.draw(st.from_regex(re.compile(pattern, re.ASCII), fullmatch=True))
    ids = _encode(tokenizer, vocab, text)
    refused, matcher = _walk(compiler.compile(pattern), ids)
    assert refused is None, (pattern, text, refused)
    assert matcher.is_accepting()
    assert matcher.accepts(vocab.eos_token_ids[0])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_non_matching_strings_are_refused(real, data):
    tokenizer, vocab, compiler = real
    pattern = data.draw(st.sampled_from(REALISTIC))
    base = data.draw(st.from_regex(re.compile(pattern, re.ASCII), fullmatch=True))
    cut = data.draw(st.integers(0, len(base)))
    text = base[:cut] + data.draw(st.text(min_size=1, max_size=3)) + base[cut + 1 :]
    assume(not re.fullmatch(pattern, text, re.ASCII))
    ids = _encode(tokenizer, vocab, text)
    refused, matcher = _walk(compiler.compile(pattern), ids)
    assert refused is not None or not matcher.is_accepting(), (pattern, text)
    if refused is not None:
        prefix = vocab.decode(ids[: refused + 1])
        assert regex_to_byte_dfa(pattern).walk(prefix) < 0 or not matcher.accepts(ids[refused])


@pytest.mark.parametrize("pattern", [r"\d{3}-\d{4}", r"(yes|no|maybe|é|日本語|🙂)+", r"[^\n]{0,12}\n?"])
def test_numba_index_equals_reference(real, pattern):
    _, vocab, compiler = real
    automaton = compiler.compile(pattern).automaton
    rng = np.random.default_rng(0)
    states = rng.choice(automaton.dfa.num_states, size=min(4, automaton.dfa.num_states), replace=False)
    for state in states.tolist():
        tokens, nexts = automaton.index.transitions(state)
        expected = {
            t: s
            for t, s in reference.allowed_transitions(automaton.dfa, vocab, state).items()
            if automaton.index.live[s]
        }
        assert dict(zip(tokens.tolist(), nexts.tolist(), strict=True)) == expected
        mask = np.zeros(automaton.index.words, dtype=np.uint32)
        automaton.fill_token_bitmask(state, mask.view(np.int32))
        assert np.flatnonzero(bitmask_to_bool(mask.view(np.int32), vocab.size)).tolist() == sorted(expected)


def test_mask_agrees_with_accepts(real):
    tokenizer, vocab, compiler = real
    matcher = compiler.compile(REALISTIC[6]).matcher()
    for token_id in tokenizer.encode('{"name": "Zoë", "tags": ["a"', add_special_tokens=False):
        matcher.advance(token_id)
    mask = matcher.mask()
    probe = [matcher.accepts(t) for t in range(vocab.size)]
    assert mask.tolist() == probe
    assert mask.sum() > 0


def test_forced_tokens_use_canonical_tokenization(real):
    tokenizer, vocab, compiler = real
    matcher = compiler.compile(r'\{"answer": "(yes|no)"\}').matcher()
    assert matcher.forced_bytes() == b'{"answer": "'
    forced = matcher.forced_tokens(lambda text: tokenizer.encode(text, add_special_tokens=False))
    assert forced and vocab.decode(forced) == b'{"answer": "'[: len(vocab.decode(forced))]
    assert len(vocab.decode(forced)) < len(b'{"answer": "')


@pytest.mark.parametrize("eager", [True, False])
def test_lazy_and_eager_indexes_agree(eager):
    tokens = [None, b"a", b"ab", b"c", b"bd", b"b"]
    vocab = Vocabulary.from_token_bytes(tokens, [0], name="sparse")
    automaton = DFAAutomaton(regex_to_byte_dfa(r"(abc|abd|b)+"), vocab, eager=eager)
    assert list(automaton.index.live) == reference.token_level_live(automaton.dfa, vocab)
    for state in range(automaton.dfa.num_states):
        expected = {
            t: s
            for t, s in reference.allowed_transitions(automaton.dfa, vocab, state).items()
            if automaton.index.live[s]
        }
        allowed = np.flatnonzero(bitmask_to_bool(automaton.index.mask_row(state).view(np.int32), vocab.size))
        assert allowed.tolist() == sorted(expected)
        assert automaton.index.num_allowed(state) == len(expected)
