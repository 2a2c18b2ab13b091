"""The shipped grammars on their corpora (tests/data/grammars), with real tokenizers.

* every corpus sentence, tokenized by SmolLM2's and Llama 3's tokenizers, is accepted token by
  token (and each token is in the mask where masks are checked) and ends accepting;
* mutated sentences are refused exactly at the first token after which no valid continuation
  exists, as the plain-Python reference recognizer decides;
* masks equal a brute-force reference (every token of the vocabulary tried from the reference
  recognizer's state) on sampled states;
* whole-sentence acceptance agrees with Lark's own LALR parser (``lexer="basic"``: keywords
  reserved, as our front end lexes them) on the corpora and on mutated sentences, for the grammars
  Lark can parse (all but ``python``, whose corpus is checked with CPython's ``ast`` instead).

Under ``CI`` (environment variable set) the corpora are subsampled to keep the run short; set
``STRUCTGEN_FULL_CORPORA=1`` to run everything anyway (it is the default outside CI).
"""

from __future__ import annotations

import ast
import functools
import json
import os
import random
import zlib
from pathlib import Path

import lark
import numpy as np
import pytest

import grammars
from structgen.automata.grammar import GrammarAutomaton
from structgen.automata.grammar.reference import ReferenceRecognizer
from structgen.bitmask import bitmask_to_bool
from structgen.compilers.grammar import compile_grammar
from structgen.compilers.lark_frontend import load_lark
from structgen.vocabulary import Vocabulary

DATA = Path(__file__).resolve().parent / "data" / "grammars"
FULL = bool(os.environ.get("STRUCTGEN_FULL_CORPORA")) or not os.environ.get("CI")
GRAMMARS = ["json", "sql", "python", "arithmetic", "csv", "lark"]
LARK_CHECKED = ["json", "sql", "arithmetic", "csv", "lark"]
VOCABS = ["smollm2", "llama3"]
BYTES = Vocabulary.from_token_bytes([bytes([b]) for b in range(256)] + [None], [256], name="bytes")


@functools.cache
def load_corpus(name: str) -> tuple[tuple[str, str], ...]:
    """``(id, text)`` pairs of the corpus of shipped grammar ``name``."""
    if name == "sql":
        text = (DATA / "sql_queries.sql").read_text(encoding="utf-8").split("\n\n", 1)[1]
        blocks = [b.strip() for b in text.split("\n-- ;;\n")]
        return tuple((f"sql_queries.sql#{k}", b) for k, b in enumerate(blocks))
    if name == "lark":
        files = [grammars.path(n) for n in grammars.names()]
        files += sorted((Path(lark.__file__).parent / "grammars").glob("*.lark"))
        return tuple(
            (str(f.name if f.parent == grammars.path("json").parent else f"lark/{f.name}"), f.read_text())
            for f in files
        )
    rows = [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    return tuple((row["id"], row["text"]) for row in rows)


def sample(items, k: int, seed: str):
    """All items outside CI, else ``k`` of them chosen by a seeded RNG."""
    items = list(items)
    if FULL or len(items) <= k:
        return items
    return random.Random(seed).sample(items, k)


def mutate(text: str, seed: str) -> str:
    """One random insertion, deletion or replacement, with characters the corpus uses."""
    rng = random.Random(zlib.crc32(seed.encode()))
    alphabet = sorted(set(text) | set(" ,;:()[]{}\"'\n=+-*/.xyz0129"))
    i = rng.randrange(len(text) + 1)
    op = rng.random()
    ch = rng.choice(alphabet)
    if op < 0.34 or i == len(text):
        return text[:i] + ch + text[i:]
    if op < 0.67:
        return text[:i] + text[i + 1 :]
    return text[:i] + ch + text[i + 1 :]


@functools.cache
def constraint(name: str, vocab: Vocabulary):
    return compile_grammar(name, vocab)


@functools.cache
def reference(name: str) -> ReferenceRecognizer:
    automaton = constraint(name, BYTES).automaton
    dfas = dict(zip(automaton.tables.terminal_names, automaton.lexer.dfas, strict=True))
    return ReferenceRecognizer(automaton.grammar, dfas, load_lark(grammars.load(name), name=name).guards)


def vocab_and_tokenizer(request, which: str):
    return request.getfixturevalue(f"{which}_vocab"), request.getfixturevalue(f"{which}_tokenizer")


def encode(tokenizer, vocab: Vocabulary, text: str) -> list[int]:
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    assert vocab.decode(ids) == text.encode("utf-8"), "the tokenizer does not round-trip this text"
    return ids


def mask_of(automaton: GrammarAutomaton, state) -> np.ndarray:
    return bitmask_to_bool(automaton.token_mask_words(state).view(np.int32), automaton.vocab.size)


# --- corpus acceptance ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", VOCABS)
@pytest.mark.parametrize("name", GRAMMARS)
def test_corpus_accepted_token_by_token(request, name, which):
    vocab, tokenizer = vocab_and_tokenizer(request, which)
    c = constraint(name, vocab)
    sentences = sample(load_corpus(name), 4, f"{name}/{which}")
    for k, (ident, text) in enumerate(sentences):
        ids = encode(tokenizer, vocab, text)
        m = c.matcher()
        check_masks = k % (4 if FULL else 2) == 0
        for pos, token in enumerate(ids):
            if check_masks:
                assert m.mask()[token], f"{ident}: token {pos} ({vocab.describe(token)}) not in the mask"
            assert m.accepts(token), f"{ident}: token {pos} ({vocab.describe(token)}) refused"
            m.advance(token)
        assert m.is_accepting(), f"{ident}: not accepting at the end"
        assert m.accepts(vocab.eos_token_ids[0])


def test_python_corpus_is_python():
    for ident, text in load_corpus("python"):
        ast.parse(text, filename=ident)


# --- mutations -----------------------------------------------------------------------------------


def first_invalid_token(ref: ReferenceRecognizer, vocab: Vocabulary, ids: list[int]) -> int | None:
    """Index of the first token after which the reference finds no valid prefix (None: never)."""
    state = ref.initial
    for pos, token in enumerate(ids):
        state = ref.feed_bytes(state, vocab.token_bytes[token])
        if state is None:
            return pos
    return None


@pytest.mark.parametrize("which", VOCABS)
@pytest.mark.parametrize("name", GRAMMARS)
def test_mutations_refused_at_first_invalid_token(request, name, which):
    vocab, tokenizer = vocab_and_tokenizer(request, which)
    c = constraint(name, vocab)
    ref = reference(name)
    refused = 0
    for ident, text in sample(load_corpus(name), 6, f"mut/{name}/{which}"):
        if len(text) > 3000 and not FULL:
            continue
        for variant in range(2):
            mutated = mutate(text, f"{ident}/{variant}")
            ids = encode(tokenizer, vocab, mutated)
            expected = first_invalid_token(ref, vocab, ids)
            m = c.matcher()
            got = None
            for pos, token in enumerate(ids):
                if not m.accepts(token):
                    got = pos
                    break
                m.advance(token)
            assert got == expected, (
                f"{ident} mutated {mutated!r}: engine refuses at {got}, reference at {expected}"
            )
            if got is None:
                state = ref.feed_bytes(ref.initial, mutated.encode())
                assert m.is_accepting() == ref.is_accepting(state)
            else:
                refused += 1
    if name != "csv":  # almost every mutation of a CSV file is CSV
        assert refused > 0


# --- masks against the brute-force reference -----------------------------------------------------


@pytest.mark.parametrize("which", VOCABS)
@pytest.mark.parametrize("name", GRAMMARS)
def test_masks_equal_brute_force_reference(request, name, which):
    vocab, tokenizer = vocab_and_tokenizer(request, which)
    a = constraint(name, vocab).automaton
    ref = reference(name)
    per_grammar = 25 if FULL else (2 if which == "smollm2" else 1)
    rng = random.Random(f"masks/{name}/{which}")
    corpus = [item for item in load_corpus(name) if len(item[1]) <= 2500]
    for _ in range(per_grammar):
        ident, text = rng.choice(corpus)
        ids = encode(tokenizer, vocab, text)
        cut = rng.randrange(len(ids) + 1)
        prefix = vocab.decode(ids[:cut])
        state = a.advance_bytes(a.initial_state(), prefix)
        rstate = ref.feed_bytes(ref.initial, prefix)
        assert state is not None and rstate is not None
        got = set(np.flatnonzero(mask_of(a, state)).tolist())
        want = ref.allowed_tokens(rstate, vocab)
        assert got == want, (
            f"{ident} after {prefix[-40:]!r}: extra {[vocab.describe(t) for t in sorted(got - want)[:8]]}, "
            f"missing {[vocab.describe(t) for t in sorted(want - got)[:8]]}"
        )


# --- agreement with Lark --------------------------------------------------------------------------


@functools.cache
def lark_parser(name: str) -> lark.Lark:
    return lark.Lark(grammars.load(name), parser="lalr", lexer="basic")


def lark_accepts(name: str, text: str) -> bool:
    try:
        lark_parser(name).parse(text)
    except lark.exceptions.LarkError:
        return False
    return True


@pytest.mark.parametrize("name", LARK_CHECKED)
def test_agrees_with_lark_on_corpus_and_mutations(name):
    a = constraint(name, BYTES).automaton

    def engine_accepts(text: str) -> bool:
        state = a.advance_bytes(a.initial_state(), text.encode())
        return state is not None and a.is_accepting(state)

    corpus = load_corpus(name)
    for ident, text in corpus:
        assert lark_accepts(name, text), f"Lark refuses corpus sentence {ident}"
        assert engine_accepts(text), f"structgen refuses corpus sentence {ident}"
    rng = random.Random(f"lark/{name}")
    rounds = 300 if FULL else 60
    accepted = 0
    for k in range(rounds):
        ident, text = rng.choice(corpus)
        mutated = mutate(text, f"lark/{ident}/{k}")
        verdict = engine_accepts(mutated)
        accepted += verdict
        assert verdict == lark_accepts(name, mutated), f"{ident}: disagreement on {mutated!r}"
    assert 0 < accepted < rounds
