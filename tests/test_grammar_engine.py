"""The context-free grammar engine on small grammars: semantics, matcher API, kernels vs references.

These tests use synthetic vocabularies (every single byte plus a few multi-byte tokens), so they
need no tokenizer and run in seconds.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import grammars
from structgen.automata.cfg import ContextFreeGrammar, Production, Terminal
from structgen.automata.grammar import GrammarAutomaton
from structgen.automata.grammar.earley import EarleyParser, analyze_grammar
from structgen.automata.grammar.engine import terminal_byte_dfa
from structgen.automata.grammar.kernels import (
    DONE,
    LX_PROJ,
    UNKNOWN_PROJECTION,
    IntHashMap,
    hash_get,
    subtree_walks,
    walk_entries,
)
from structgen.automata.grammar.lexer import BLOCKED, DEAD
from structgen.automata.grammar.reference import (
    ReferenceRecognizer,
    hash_get_reference,
    lexer_projection_reference,
    subtree_walks_reference,
    walk_entries_reference,
)
from structgen.automata.grammar.subtrees import SubtreeCache
from structgen.bitmask import bitmask_to_bool
from structgen.compilers.grammar import compile_grammar
from structgen.compilers.lark_frontend import load_lark
from structgen.errors import EmptyLanguageError, GrammarError, TokenRefusedError
from structgen.matcher import Constraint
from structgen.vocabulary import Vocabulary

EXTRA_TOKENS = [
    b'{"',
    b'":',
    b'", "',
    b"true",
    b"null",
    b"12",
    b"}]",
    b' "a',
    b"abc",
    b"SELECT",
    b" FROM",
    b" *",
    b"AND",
    b"year",
    b"\n    ",
    b"def",
    b"():",
    b"\xc3",
    b"\xa9",
    b"\xc3\xa9",
    b"  ",
]


def byte_vocab(extra: list[bytes] = EXTRA_TOKENS) -> Vocabulary:
    """All 256 single bytes, some multi-byte tokens, then one EOS id."""
    tokens: list[bytes | None] = [bytes([b]) for b in range(256)] + list(extra)
    return Vocabulary.from_token_bytes([*tokens, None], [len(tokens)], name="bytes+")


VOCAB = byte_vocab()


def lit(name: str, text: str, priority: int = 0) -> Terminal:
    return Terminal(name, text, is_literal=True, priority=priority)


def rx(name: str, pattern: str, priority: int = 0) -> Terminal:
    return Terminal(name, pattern, is_literal=False, priority=priority)


def grammar(
    rules: str, terminals: list[Terminal], ignore: tuple[str, ...] = (), start: str = "s"
) -> ContextFreeGrammar:
    """Productions from ``"lhs: a b | c; lhs2: ..."`` (an empty alternative derives the empty string)."""
    prods = []
    for rule in rules.split(";"):
        lhs, alts = rule.split(":")
        for alt in alts.split("|"):
            prods.append(Production(lhs.strip(), tuple(alt.split())))
    return ContextFreeGrammar(start, prods, {t.name: t for t in terminals}, ignore)


def accepts(automaton: GrammarAutomaton, data: bytes) -> bool:
    state = automaton.advance_bytes(automaton.initial_state(), data)
    return state is not None and automaton.is_accepting(state)


def valid_prefix(automaton: GrammarAutomaton, data: bytes) -> bool:
    return automaton.advance_bytes(automaton.initial_state(), data) is not None


def reference_for(automaton: GrammarAutomaton, guards=None) -> ReferenceRecognizer:
    dfas = dict(zip(automaton.tables.terminal_names, automaton.lexer.dfas, strict=True))
    return ReferenceRecognizer(automaton.grammar, dfas, guards)


def engine_mask(automaton: GrammarAutomaton, state) -> set[int]:
    words = automaton.token_mask_words(state)
    return set(np.flatnonzero(bitmask_to_bool(words.view(np.int32), automaton.vocab.size)).tolist())


# --- parsing: any context-free grammar ---------------------------------------------------------


def test_ambiguous_and_left_and_right_recursive_grammar():
    g = grammar("s: s s | A | L s R | ", [lit("A", "a"), lit("L", "("), lit("R", ")")])
    a = GrammarAutomaton(g, VOCAB)
    for text in [b"", b"a", b"aaa", b"(a)(aa)", b"((()))a", b"()()"]:
        assert accepts(a, text), text
    for text in [b")", b"(a", b"a)", b"(()"]:
        assert not accepts(a, text), text
    assert not valid_prefix(a, b")")
    assert valid_prefix(a, b"((a")


def test_nullable_chains_and_empty_start():
    g = grammar("s: x y z A; x: | y; y: z | ; z: ", [lit("A", "a")])
    a = GrammarAutomaton(g, VOCAB)
    assert accepts(a, b"a")
    assert not accepts(a, b"")
    g = grammar("s: x; x: | A x", [lit("A", "a")])
    a = GrammarAutomaton(g, VOCAB)
    assert a.is_accepting(a.initial_state())
    assert accepts(a, b"aaaa")


def test_lexical_ambiguity_is_kept():
    # Two terminals match "ab"; which one it was only shows later.
    g = grammar("s: X C | Y D", [rx("X", "a[bc]"), rx("Y", "ab"), lit("C", "!"), lit("D", "?")])
    a = GrammarAutomaton(g, VOCAB)
    assert accepts(a, b"ab!") and accepts(a, b"ab?") and accepts(a, b"ac!")
    assert not accepts(a, b"ac?")


def test_priority_decides_between_terminals_matching_the_same_lexeme():
    g = grammar("s: X C | Y D", [rx("X", "a[bc]", priority=1), rx("Y", "ab"), lit("C", "!"), lit("D", "?")])
    a = GrammarAutomaton(g, VOCAB)
    assert accepts(a, b"ab!")
    assert not accepts(a, b"ab?")


def test_longest_match_without_backtracking():
    # A swallows every "a", so "s: A B" has no sentence although each prefix is lexically fine.
    g = grammar("s: A B", [rx("A", "a+"), lit("B", "a")])
    a = GrammarAutomaton(g, VOCAB)
    assert valid_prefix(a, b"aaa")
    assert not accepts(a, b"aa")
    assert not any(accepts(a, b"a" * n) for n in range(1, 5))
    # The lexeme ends where the next byte cannot extend it.
    g = grammar("s: A B", [rx("A", "a+"), lit("B", "b")])
    a = GrammarAutomaton(g, VOCAB)
    assert accepts(a, b"aaab")


def test_ignored_terminals_and_ties_with_real_ones():
    g = grammar("s: A A", [lit("A", "a"), rx("WS", "[ ]+")], ignore=("WS",))
    a = GrammarAutomaton(g, VOCAB)
    assert accepts(a, b" a  a ") and accepts(a, b"aa")
    assert not accepts(a, b"a")
    # A terminal both used and ignored is always dropped (as Lark does).
    g = grammar("s: A SP A", [lit("A", "a"), lit("SP", " ")], ignore=("SP",))
    a = GrammarAutomaton(g, VOCAB)
    assert not accepts(a, b"a a")


def test_guards_make_keywords_reserved_and_unglued():
    lg = load_lark(
        """
        start: "select" NAME ("and" NAME)*
        NAME: /[a-z]+/
        %ignore " "
        """
    )
    a = GrammarAutomaton(lg.cfg, VOCAB, guards=lg.guards)
    assert accepts(a, b"select x and y")
    assert not valid_prefix(a, b"selectx")  # one NAME where a keyword is needed
    assert not accepts(a, b"select x andy")
    assert valid_prefix(a, b"select and")  # may still become the NAME "andy"
    assert not valid_prefix(a, b"select and ")  # "and" is reserved: not a NAME
    assert not accepts(a, b"select and")
    plain = GrammarAutomaton(lg.cfg, VOCAB)  # without guards the lexer is purely contextual
    assert accepts(plain, b"selectx andy")


def test_guard_errors():
    g = grammar("s: A", [lit("A", "a")])
    with pytest.raises(GrammarError, match="'B' is not a terminal"):
        GrammarAutomaton(g, VOCAB, guards={"B": ["A"]})


def test_grammar_errors_name_the_culprit():
    with pytest.raises(GrammarError, match="undefined symbol 'y'"):
        GrammarAutomaton(grammar("s: x; x: y", []), VOCAB)
    with pytest.raises(GrammarError, match="start symbol 'q' has no rule"):
        GrammarAutomaton(grammar("s: A", [lit("A", "a")], start="q"), VOCAB)
    with pytest.raises(EmptyLanguageError, match="'s' derives no sentence"):
        GrammarAutomaton(grammar("s: A s", [lit("A", "a")]), VOCAB)
    with pytest.raises(GrammarError, match="terminal 'E' matches the empty string"):
        GrammarAutomaton(grammar("s: E", [rx("E", "a*")]), VOCAB)
    with pytest.raises(GrammarError, match="terminal 'N' matches no string"):
        GrammarAutomaton(grammar("s: N", [rx("N", "[^\\s\\S]")]), VOCAB)
    with pytest.raises(GrammarError, match="terminal 'B'"):
        GrammarAutomaton(grammar("s: B", [rx("B", "(a)\\1")]), VOCAB)
    with pytest.raises(GrammarError, match="ignored terminal 'W'"):
        GrammarAutomaton(grammar("s: A", [lit("A", "a")], ignore=("W",)), VOCAB)


def test_unproductive_alternatives_are_dropped_not_fatal():
    g = grammar("s: A | A loop; loop: B loop", [lit("A", "a"), lit("B", "b")])
    a = GrammarAutomaton(g, VOCAB)
    assert accepts(a, b"a")
    assert not valid_prefix(a, b"ab")


# --- the matcher API -----------------------------------------------------------------------------


def test_matcher_roundtrip_copy_rollback_and_eos():
    constraint = compile_grammar("json", VOCAB)
    assert isinstance(constraint, Constraint)
    m = constraint.matcher()
    ids = [VOCAB.token_bytes.index(t) for t in [b'{"', b"a", b'":', b" ", b"12", b"}"]]
    for t in ids[:3]:
        assert m.mask()[t]
        m.advance(t)
    snapshot = m.copy()
    m.consume(ids[3:])
    assert m.is_accepting() and not m.is_finished()
    eos = VOCAB.eos_token_ids[0]
    assert m.accepts(eos)
    m.rollback(3)
    assert not m.is_accepting() and not m.accepts(eos)
    assert m.state == snapshot.state
    with pytest.raises(TokenRefusedError):
        m.advance(VOCAB.token_bytes.index(b"}"))
    m.consume(ids[3:])
    m.advance(eos)
    assert m.is_finished()


def test_forced_bytes_and_can_continue():
    lg = load_lark('start: "hello" " "? NAME\nNAME: /[a-z]+/')
    a = GrammarAutomaton(lg.cfg, VOCAB, guards=lg.guards)
    s0 = a.initial_state()
    # NAME guards the keyword "hello", so the name cannot be glued to it: the space is forced.
    assert a.forced_bytes(s0) == b"hello "
    s = a.advance_bytes(s0, b"hel")
    assert a.forced_bytes(s) == b"lo "
    unguarded = GrammarAutomaton(lg.cfg, VOCAB)
    assert unguarded.forced_bytes(unguarded.initial_state()) == b"hello"
    assert a.can_continue(s) and not a.is_accepting(s)
    lg = load_lark('start: "ab" | "abc"')
    a = GrammarAutomaton(lg.cfg, VOCAB)
    s = a.advance_bytes(a.initial_state(), b"ab")
    assert a.is_accepting(s) and a.can_continue(s) and a.forced_bytes(s) == b""
    s = a.advance_bytes(s, b"c")
    assert a.is_accepting(s) and not a.can_continue(s)


def test_states_are_shared_after_lexeme_ends():
    a = compile_grammar("json", VOCAB).automaton
    s1 = a.advance_bytes(a.initial_state(), b"[1,2,")
    s2 = a.advance_bytes(a.initial_state(), b"[1, 22 ,\n3,")
    assert s1 == s2  # interned Earley sets: left recursion comes back to the same set


# --- kernels equal their plain-Python references -------------------------------------------------


def test_hash_map_matches_reference():
    table = IntHashMap(capacity=8)
    rng = random.Random(3)
    pairs = {(rng.randrange(10_000), rng.randrange(300)): rng.randrange(10**6) for _ in range(500)}
    for (p, acc), v in pairs.items():
        table.put(p * (1 << 24) + acc, v)
    for (p, acc), v in pairs.items():
        key = p * (1 << 24) + acc
        assert hash_get(table.keys, table.vals, key) == v == hash_get_reference(table.keys, table.vals, key)
    assert (
        hash_get(table.keys, table.vals, 123_456_789)
        == -2
        == hash_get_reference(table.keys, table.vals, 123_456_789)
    )


@pytest.mark.parametrize("name", ["json", "sql", "python"])
def test_numba_kernels_equal_python_references(name):
    fast = compile_grammar(name, VOCAB, cache=False).automaton
    slow = compile_grammar(name, VOCAB, cache=False).automaton
    slow._entries_kernel = walk_entries_reference
    slow._subtree_kernel = subtree_walks_reference
    fast.min_cached_subtree = slow.min_cached_subtree = 1  # exercise the subtree cache
    assert fast._entries_kernel is walk_entries and fast._subtree_kernel is subtree_walks
    text = {
        "json": b'{"a": [1, 2.5, "x\\n"], "b": null}',
        "sql": b"SELECT a, count(*) FROM t WHERE x > 1 GROUP BY a",
        "python": b"def f(x):\n    return [i for i in x]\n",
    }[name]
    for cut in range(0, len(text), 3):
        s_fast = fast.advance_bytes(fast.initial_state(), text[:cut])
        s_slow = slow.advance_bytes(slow.initial_state(), text[:cut])
        assert engine_mask(fast, s_fast) == engine_mask(slow, s_slow), text[:cut]


# --- masks equal the brute-force reference -------------------------------------------------------

GRAMMAR_SAMPLES = {
    "json": b'{"key": [true, false, null, -1.5e3, "s\\u00e9"], "n": {}}',
    "sql": b"SELECT a.x, COUNT(*) AS n FROM a JOIN b ON a.id = b.id "
    b"WHERE a.y LIKE 'z%' ORDER BY n DESC LIMIT 3;",
    "python": b'@dec\ndef f(a, *args, b=2):\n    """Doc."""\n    if a:\n'
    b'        return {k: v for k, v in b}\n    x = "s" + str(1)\n',
    "arithmetic": b"-(1.5 + x) ** 2 // f(y, 3) % 7",
    "csv": b'a,"b ""c""",\r\n1,2,3\n',
    "lark": b'start: a+ "x"i\na: /[0-9]+/ -> num\n%ignore " "\n',
}


@pytest.mark.parametrize("min_cached_subtree", [256, 1])
@pytest.mark.parametrize("name", sorted(GRAMMAR_SAMPLES))
def test_masks_equal_brute_force_reference(name, min_cached_subtree):
    lg = load_lark(grammars.load(name), name=name)
    a = GrammarAutomaton(lg.cfg, VOCAB, guards=lg.guards)
    a.min_cached_subtree = min_cached_subtree  # 1: nearly every lexeme start uses the subtree cache
    ref = reference_for(a, lg.guards)
    text = GRAMMAR_SAMPLES[name]
    assert ref.accepts(text) and accepts(a, text)
    for cut in range(len(text) + 1):
        state = a.advance_bytes(a.initial_state(), text[:cut])
        rstate = ref.feed_bytes(ref.initial, text[:cut])
        assert state is not None and rstate is not None
        assert engine_mask(a, state) == ref.allowed_tokens(rstate, VOCAB), (name, text[:cut])
        assert a.is_accepting(state) == ref.is_accepting(rstate)


def test_runs_of_unary_operators_stay_in_one_parser_set():
    # A right recursion through a helper rule: completing s in a run of operators only completes s
    # again, so each operator after the first leads back to the set after the first (Leo's
    # deterministic reduction path). Parentheses count, and "op s B" makes runs ambiguous: those
    # must not merge.
    terminals = [lit("M", "-"), lit("P", "+"), lit("A", "a"), lit("B", "b"), lit("L", "("), lit("R", ")")]
    g = grammar("s: op s | L s R | A; op: M | P", terminals)
    a = GrammarAutomaton(g, VOCAB)
    states = [a.advance_bytes(a.initial_state(), b"-" * n) for n in range(1, 7)]
    assert len({state[0] for state in states}) == 1 and states[0][0] != a.initial_state()[0]
    paren = [a.advance_bytes(a.initial_state(), b"(" * n)[0] for n in range(1, 5)]
    assert len(set(paren)) == 4
    ambiguous = GrammarAutomaton(grammar("s: op s | op s B | A; op: M | P", terminals), VOCAB)
    for automaton, texts in [(a, [b"-+--a", b"(-(--a))", b"--(a)"]), (ambiguous, [b"---abb", b"-+ab"])]:
        ref = reference_for(automaton)
        for text in texts:
            for cut in range(len(text) + 1):
                state = automaton.advance_bytes(automaton.initial_state(), text[:cut])
                rstate = ref.feed_bytes(ref.initial, text[:cut])
                assert state is not None and rstate is not None, text[:cut]
                assert automaton.is_accepting(state) == ref.is_accepting(rstate), text[:cut]
                assert engine_mask(automaton, state) == ref.allowed_tokens(rstate, VOCAB), text[:cut]
    assert accepts(ambiguous, b"---abb") and not accepts(ambiguous, b"-abb")


def _random_grammar(rng: random.Random) -> ContextFreeGrammar:
    pool = [
        lit("A", "a"),
        lit("AB", "ab"),
        lit("B", "b"),
        rx("AS", "a+"),
        rx("ABS", "[ab]+c?"),
        lit("C", "c"),
        rx("CC", "c[ab]?", priority=rng.choice([0, 1])),
        rx("WS", " +"),
    ]
    terminals = rng.sample(pool, rng.randint(2, 6))
    names = [t.name for t in terminals if t.name != "WS"] or ["A"]
    if "A" in names and all(t.name != "A" for t in terminals):
        terminals.append(lit("A", "a"))
    nts = ["s", "x", "y"]
    rules = []
    for nt in nts:
        alts = []
        for _ in range(rng.randint(1, 3)):
            alts.append(" ".join(rng.choice(names + nts) for _ in range(rng.randint(0, 3))))
        rules.append(f"{nt}: " + " | ".join(alts))
    rules.append("s: " + rng.choice(names))  # keep the start productive
    ignore = ("WS",) if any(t.name == "WS" for t in terminals) else ()
    return grammar("; ".join(rules), terminals, ignore)


def test_random_grammars_agree_with_reference():
    rng = random.Random(2024)
    small = byte_vocab([b"ab", b"ba", b"aa", b"abc", b" a", b"c "])
    checked = 0
    for _ in range(60):
        g = _random_grammar(rng)
        try:
            a = GrammarAutomaton(g, small)
        except GrammarError:
            continue
        ref = reference_for(a)
        for _ in range(15):
            text = bytes(rng.choice(b"abc ") for _ in range(rng.randint(0, 7)))
            state = a.advance_bytes(a.initial_state(), text)
            rstate = ref.feed_bytes(ref.initial, text)
            assert (state is None) == (rstate is None), (g, text)
            if state is not None:
                assert a.is_accepting(state) == ref.is_accepting(rstate), (g, text)
                assert engine_mask(a, state) == ref.allowed_tokens(rstate, small), (g, text)
                checked += 1
    assert checked > 100


def _parser_agrees_with_reference(g: ContextFreeGrammar, rng: random.Random, walks: int) -> int:
    """Random terminal walks through the numba Earley kernels and the reference recognizer."""
    tables = analyze_grammar(g)
    parser = EarleyParser(tables)
    dfas = {name: terminal_byte_dfa(g.terminals[name]) for name in tables.terminal_names}
    ref = ReferenceRecognizer(g, dfas)
    num_t = tables.num_terminals
    checked = 0
    for _ in range(walks):
        state, sets = parser.initial, ref.initial.sets
        for _ in range(rng.randint(1, 12)):
            assert set(parser.terminals(state)) == ref._expected(sets[-1])
            assert parser.accepting(state) == ref._sentence_done(sets[-1])
            checked += 1
            # Mostly expected terminals, sometimes any (refusals), sometimes two at once.
            pool = list(parser.terminals(state)) if rng.random() < 0.8 else list(range(num_t))
            if not pool:
                break
            terminals = sorted(set(rng.sample(pool, min(len(pool), rng.choice((1, 1, 2))))))
            state = parser.scan(state, terminals)
            sets = ref._scan(sets, set(terminals))
            assert (state < 0) == (sets is None)
            if state < 0:
                break
    return checked


def test_earley_kernels_agree_with_reference_parser():
    rng = random.Random(7)
    checked = 0
    for _ in range(40):
        try:
            checked += _parser_agrees_with_reference(_random_grammar(rng), rng, 10)
        except GrammarError:
            continue
    for name in ("arithmetic", "json", "python"):
        checked += _parser_agrees_with_reference(load_lark(grammars.load(name), name=name).cfg, rng, 30)
    assert checked > 500


def test_parser_store_grows_and_speculation_rolls_back():
    # Deep nesting overflows every initial array size; speculation then drops the sets again.
    tables = analyze_grammar(load_lark(grammars.load("arithmetic"), name="arithmetic").cfg)
    parser = EarleyParser(tables)
    names = tables.terminal_names
    paren, number = [names.index(n) for n in ("LPAR", "NUMBER")]
    state = parser.parse_terminals([[paren]] * 300)
    assert state > 0 and parser.terminals(state) == parser.terminals(parser.parse_terminals([[paren]]))
    before = parser.num_sets
    parser.begin_speculation()
    deeper = parser.parse_terminals([[paren]] * 700 + [[number]])
    assert deeper > before and parser.accepting(deeper) is False
    assert parser.end_speculation() == before and parser.num_sets == before
    # The same scans after the rollback build equal sets again (the intern table forgot them).
    assert parser.parse_terminals([[paren]] * 300) == state
    assert parser.parse_terminals([[paren]] * 301) == before
    # A prediction group and a kernel larger than the closure's work arrays.
    wide = grammar(
        "s: "
        + " | ".join(f"n{i} B" for i in range(1500))
        + "; "
        + "; ".join(f"n{i}: A" for i in range(1500)),
        [lit("A", "a"), lit("B", "b")],
    )
    parser = EarleyParser(analyze_grammar(wide))
    after = parser.parse_terminals([[0], [1]])
    assert after > 0 and parser.accepting(after) and parser.scan(parser.scan(parser.initial, [0]), [0]) == -1


def test_mask_computation_forgets_speculative_sets():
    vocab = byte_vocab([b"----------", b"((((((((", b"(-(-(", b"))))"])
    a = compile_grammar("arithmetic", vocab, cache=False).automaton
    ref = reference_for(a)
    state = a.advance_bytes(a.initial_state(), b"1 + (")
    before = len(a.parser.sets)
    mask = engine_mask(a, state)
    assert mask == ref.allowed_tokens(ref.feed_bytes(ref.initial, b"1 + ("), vocab)
    assert vocab.token_bytes.index(b"----------") in mask and vocab.token_bytes.index(b"))))") not in mask
    # The sets the walk built stay for the next masks while no lexeme ends: the mask of a state
    # in the same lexeme builds none, and questions about the output do not drop them.
    built = len(a.parser.sets)
    assert built > before and a.parser.speculating
    longer = a.advance_bytes(a.initial_state(), b"12")
    engine_mask(a, a.advance_bytes(a.initial_state(), b"1"))
    assert not a.is_accepting(state) and a.is_accepting(longer)
    assert a.parser.speculating
    # A lexeme that ends in the output drops them: the output's sets are lasting.
    after = a.advance_bytes(state, b"-")
    assert not a.parser.speculating and len(a.parser.sets) < built
    assert after is not None and a.parser.speculation_mark is None
    assert engine_mask(a, after) == ref.allowed_tokens(ref.feed_bytes(ref.initial, b"1 + (-"), vocab)
    # The output itself still parses after the tables were rolled back.
    assert accepts(a, b"1 + (---------- 2)")
    # Too many speculative sets: the next mask starts over.
    a.max_speculative_sets = 0
    engine_mask(a, a.advance_bytes(a.initial_state(), b"1 * ("))
    engine_mask(a, a.advance_bytes(a.initial_state(), b"(("))
    assert a.parser.num_sets - a.parser.speculation_mark <= built


@pytest.mark.parametrize("name", ["sql", "python", "lark"])
def test_lexer_kernels_agree_with_reference_lexing(name):
    # Every row of the lexer states reached from a few start states, against the reference
    # recognizer's alive-terminal stepping, and each state's accepted set against its rules.
    lg = load_lark(grammars.load(name), name=name)
    a = GrammarAutomaton(lg.cfg, VOCAB, guards=lg.guards)
    ref = reference_for(a, lg.guards)
    lexer = a.lexer
    priorities, ignored = lexer.priorities, lexer.ignored
    rng = random.Random(name)
    todo = [lexer.start_state(a.parser.terminals(a.parser.initial))]
    todo += [lexer.start_state(tuple(sorted(rng.sample(range(len(lexer.dfas)), 5)))) for _ in range(5)]
    seen = set(todo)
    while todo and len(seen) < 300:
        state = todo.pop()
        alive = lexer.state_terminals(state)
        row = lexer.ensure_row(state)
        for byte in range(256):
            stepped = ref._step_alive(alive, byte)
            if not stepped:
                assert row[byte] == DEAD
            elif all(g for _, _, g in stepped):
                assert row[byte] == BLOCKED
            else:
                assert lexer.state_terminals(int(row[byte])) == stepped
                if int(row[byte]) not in seen:
                    seen.add(int(row[byte]))
                    todo.append(int(row[byte]))
        accepting = [t for t, s, _ in alive if lexer.dfas[t].accepting[s]]
        if not accepting:
            assert lexer.acc[state] == DEAD
            continue
        best = max(priorities[t] for t in accepting)
        top = [t for t in accepting if priorities[t] == best]
        kept = [t for t in top if t not in ignored]
        acc = int(lexer.acc[state])
        assert lexer.acc_sets[acc] == tuple(kept or top) and lexer.acc_ignore[acc] == (not kept)
    assert len(seen) > 20


def _run_subtree_walks(kernel, automaton, roots, lexers, out, tokens, size):
    trie, lexer = automaton.trie, automaton.lexer
    bnodes, blexers = np.zeros(size, np.int32), np.zeros(size, np.int32)
    t_end, b_end = np.zeros(len(roots), np.int64), np.zeros(len(roots), np.int64)
    stack = np.zeros(trie.max_depth + 2, dtype=np.int64)
    resume = np.array([0, roots[0] + 1, 0, 0, 0, 0], dtype=np.int64)
    unused = np.zeros(0, dtype=np.int64)
    depth = np.zeros(trie.max_depth + 2, dtype=np.int64)
    lock = (depth, depth.copy(), np.zeros(trie.num_nodes, np.int32), np.zeros(trie.num_nodes, np.int32))
    while True:
        status, need = kernel(
            trie.node_byte, trie.node_depth, trie.node_skip, trie.token_start, trie.token_ids,
            trie.node_token, trie.node_classes, lexer.trans, roots, lexers, out, tokens, t_end, bnodes,
            blexers, b_end,
            stack, resume, 1 << 30, SubtreeCache().arrays(), unused, unused, unused, 1 << 30,
            automaton._class_of, automaton._shared_final, SubtreeCache().arrays(), lock,
            *lexer.kernel_arrays(),
        )  # fmt: skip
        if status == DONE:
            return t_end, b_end, bnodes, blexers
        lexer.ensure_row(int(need))


@pytest.mark.parametrize("kernel", [subtree_walks, subtree_walks_reference])
def test_subtree_walks_batched_lists_what_single_mask_walks_find(kernel):
    # The subtree cache's batched walks (token lists) and the lexeme walk of one root (mask bits)
    # are the same walk: subtree by subtree, the same tokens and the same boundaries.
    a = compile_grammar("sql", VOCAB, cache=False).automaton
    trie, lexer = a.trie, a.lexer
    # The subtrees of first-byte nodes, each with the lexer state after its byte at a lexeme start.
    lx0 = a.initial_state()[1]
    pairs = []
    for node in np.flatnonzero(trie.node_depth == 1).tolist():
        after = lexer.step(lx0, int(trie.node_byte[node]))
        if after >= 0 and trie.node_skip[node] > node + 1:
            pairs.append((node, after))
    pairs = pairs[:40]
    roots = np.array([p[0] for p in pairs], dtype=np.int32)
    lexers = np.array([p[1] for p in pairs], dtype=np.int32)
    skips = trie.node_skip[roots]
    tokens = np.zeros(int((trie.token_start[skips] - trie.token_start[roots + 1]).sum()), np.int32)
    size = int((skips - roots - 1).sum())
    no_mask = np.zeros(0, dtype=np.uint32)
    t_end, b_end, bnodes, blexers = _run_subtree_walks(kernel, a, roots, lexers, no_mask, tokens, size)
    t0 = b0 = 0
    for k in range(len(pairs)):
        mask = np.zeros(a._words, dtype=np.uint32)
        one = _run_subtree_walks(kernel, a, roots[k : k + 1], lexers[k : k + 1], mask, tokens[:0], size)
        root = int(roots[k])
        below = trie.token_ids[trie.token_start[root + 1] : trie.token_start[trie.node_skip[root]]]
        expected = [int(t) for t in below if (int(mask[t >> 5]) >> (int(t) & 31)) & 1]
        assert tokens[t0 : t_end[k]].tolist() == expected
        n_b = int(one[1][0])
        assert bnodes[b0 : b_end[k]].tolist() == one[2][:n_b].tolist()
        assert blexers[b0 : b_end[k]].tolist() == one[3][:n_b].tolist()
        t0, b0 = int(t_end[k]), int(b_end[k])
    assert t0 > 0 and b0 > 0


def _lexer_states_along(automaton: GrammarAutomaton, text: bytes) -> list[int]:
    states = []
    state = automaton.initial_state()
    for byte in text:
        state = automaton._step(state, byte)
        states.append(state[1])
    return states


def test_identifier_states_project_onto_the_identifier_alone():
    # "SELECT c": NAME with the keywords starting with c walks like NAME alone; a keyword the
    # parser allows next to a reserved-word NAME (guard-only) does not (NAME blocks its bytes).
    a = compile_grammar("sql", VOCAB, cache=False).automaton
    lexer = a.lexer
    names = a.tables.terminal_names
    after_c = a.advance_bytes(a.initial_state(), b"SELECT c")[1]
    single = lexer.projection(after_c)
    assert len(lexer.state_terminals(after_c)) > 2
    assert [(names[t], g) for t, _, g in lexer.state_terminals(single)] == [("NAME", False)]
    glued = a.advance_bytes(a.initial_state(), b"SELECT a FROM t GROUP BY a HAV")[1]
    assert [(names[t], g) for t, _, g in lexer.state_terminals(glued)] == [("NAME", True), ("HAVING", False)]
    assert lexer.projection(glued) == -1
    assert lexer.projection(single) == -1  # a singleton is its own
    lxs, lxd = lexer.kernel_arrays()
    for state in range(lexer.num_states):
        expected = lexer.projection(state)
        lxd = lexer.kernel_arrays()[1]
        lxd[LX_PROJ][state] = UNKNOWN_PROJECTION
        assert lexer_projection_reference(lxs, lxd, state) == expected


@pytest.mark.parametrize("name", ["sql", "python"])
def test_projected_lexeme_walks_equal_full_walks(name):
    # The lexeme part of a state with a projection is its projection's with the keywords'
    # boundaries patched: the same as walking the state itself, at the root and below nodes.
    text = GRAMMAR_SAMPLES[name]
    fast = compile_grammar(name, VOCAB, cache=False).automaton
    fast.min_cached_subtree = 1
    projected = [lx for lx in _lexer_states_along(fast, text) if fast.lexer.projection(lx) >= 0]
    assert len(projected) >= 3
    for lx in projected:
        by_projection = fast.lexeme_info(lx)
        walked = fast._walk_lexeme(lx)
        for got, want in zip(by_projection, walked, strict=True):
            assert np.array_equal(got, want)
    # Masks whose walks take subtree cache entries from projections: at first sight (the
    # projection's entry listed at once), then from derived entries.
    lg = load_lark(grammars.load(name), name=name)
    ref = reference_for(fast, lg.guards)
    for _ in range(3):
        fast._mask_cache.clear()
        for cut in range(len(text) + 1):
            state = fast.advance_bytes(fast.initial_state(), text[:cut])
            rstate = ref.feed_bytes(ref.initial, text[:cut])
            assert engine_mask(fast, state) == ref.allowed_tokens(rstate, VOCAB), text[:cut]


def test_subtree_cache_bound_keeps_masks_exact():
    # A cache that can hold almost nothing starts over at nearly every walk pass: still exact.
    lg = load_lark(grammars.load("json"), name="json")
    a = GrammarAutomaton(lg.cfg, VOCAB, guards=lg.guards)
    a.min_cached_subtree = 1
    a.subtrees = SubtreeCache(max_items=3)
    ref = reference_for(a, lg.guards)
    text = GRAMMAR_SAMPLES["json"]
    for cut in range(0, len(text) + 1, 3):
        state = a.advance_bytes(a.initial_state(), text[:cut])
        assert engine_mask(a, state) == ref.allowed_tokens(ref.feed_bytes(ref.initial, text[:cut]), VOCAB)
    assert a.subtrees.num_tokens + a.subtrees.num_bounds < 200


def test_lexer_state_limit():
    from structgen.automata.grammar.lexer import LazyLexer
    from structgen.errors import ResourceLimitError

    dfa = terminal_byte_dfa(rx("S", "[a-z]{0,40}!"))
    lexer = LazyLexer([dfa], [0], [], max_states=10)
    state = lexer.start_state((0,))
    with pytest.raises(ResourceLimitError, match="more than 10 states"):
        for _ in range(20):
            state = lexer.step(state, ord("a"))


def test_literal_dfa_is_exact():
    dfa = terminal_byte_dfa(lit("E", "é!"))
    assert dfa.matches("é!".encode()) and not dfa.matches(b"e!") and not dfa.matches("é".encode())


@pytest.mark.parametrize("name", ["json", "python", "sql"])
def test_byte_successors_group_the_single_byte_steps(name):
    a = compile_grammar(name, VOCAB, cache=False).automaton
    every_byte = np.arange(256, dtype=np.intp)
    text = GRAMMAR_SAMPLES[name]
    for cut in range(len(text) + 1):
        state = a.advance_bytes(a.initial_state(), text[:cut])
        expected: dict = {}
        for byte in range(256):
            after = a.advance_bytes(state, bytes((byte,)))
            if after is not None:
                expected.setdefault(after, []).append(byte)
        assert a.byte_successors(state, every_byte) == expected, text[:cut]
