"""The grammar engine's numba kernels against their plain-Python twins in ``grammar.reference``.

Two copies of a store (parser or lexer) start equal; one is driven by the kernels, the other by
the references with the same arguments (both grown the same way on ``GROW``), and after every
call the results and the used part of every array must be equal (scratch arrays aside).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import grammars
from structgen.automata.cfg import ContextFreeGrammar, Production, Terminal
from structgen.automata.grammar import GrammarAutomaton
from structgen.automata.grammar.earley import EarleyParser, analyze_grammar
from structgen.automata.grammar.kernels import (
    C_EPOOL,
    C_GEN,
    C_GITEMS,
    C_GKEY,
    C_GROUPS,
    C_GTERMS,
    C_KPOOL,
    C_NEED,
    C_SETS,
    C_TSETS,
    C_TSPOOL,
    EMPTY_KEY,
    GROW,
    L_ACC_POOL,
    L_ACCS,
    L_NEED,
    L_POOL,
    L_STATES,
    LEX_STRIDE,
    LX_ACC,
    LX_ACC_IGNORE,
    LX_ACC_POOL,
    LX_ACC_SLOTS,
    LX_ACC_TABLE,
    LX_BUF,
    LX_COUNTS,
    LX_HAS_EXIT,
    LX_POOL,
    LX_SLOTS,
    LX_TABLE,
    LX_TRANS,
    ST_COUNTS,
    ST_E_ITEM,
    ST_E_NEXT,
    ST_E_ORIGIN,
    ST_GI_ITEM,
    ST_GI_NEXT,
    ST_GKEY,
    ST_GROUP_SLOTS,
    ST_GROUPS,
    ST_GTERMS,
    ST_KPOOL,
    ST_SET_SLOTS,
    ST_SETS,
    ST_TSET_SLOTS,
    ST_TSETS,
    ST_TSPOOL,
    earley_close,
    earley_scan,
    hash_get_many,
    hash_put,
    hash_put_absent,
    hash_put_many,
    intern_rehash,
    lexeme_start_state,
    lexer_intern,
    lexer_row,
    parser_transition,
    subtree_keys,
)
from structgen.automata.grammar.lexer import LazyLexer
from structgen.automata.grammar.reference import (
    earley_close_reference,
    earley_scan_reference,
    hash_get_many_reference,
    hash_put_absent_reference,
    hash_put_many_reference,
    hash_put_reference,
    intern_rehash_reference,
    lexeme_start_state_reference,
    lexer_intern_reference,
    lexer_row_reference,
    parser_transition_reference,
    subtree_keys_reference,
)
from structgen.compilers.lark_frontend import load_lark
from structgen.vocabulary import Vocabulary

BYTES = Vocabulary.from_token_bytes([*(bytes([b]) for b in range(256)), None], [256], name="bytes")
# Used part of each parser array: (array, count giving its used length).
PARSER_POOLS = [
    (ST_SETS, C_SETS),
    (ST_KPOOL, C_KPOOL),
    (ST_E_NEXT, C_EPOOL),
    (ST_E_ITEM, C_EPOOL),
    (ST_E_ORIGIN, C_EPOOL),
    (ST_GROUPS, C_GROUPS),
    (ST_GKEY, C_GKEY),
    (ST_GI_NEXT, C_GITEMS),
    (ST_GI_ITEM, C_GITEMS),
    (ST_GTERMS, C_GTERMS),
    (ST_TSETS, C_TSETS),
    (ST_TSPOOL, C_TSPOOL),
]
LEXER_POOLS = [
    (LX_TABLE, L_STATES),
    (LX_TRANS, L_STATES),
    (LX_ACC, L_STATES),
    (LX_HAS_EXIT, L_STATES),
    (LX_POOL, L_POOL),
    (LX_ACC_TABLE, L_ACCS),
    (LX_ACC_IGNORE, L_ACCS),
    (LX_ACC_POOL, L_ACC_POOL),
]


def nullable_grammar() -> ContextFreeGrammar:
    """Nullable chains, left and right recursion, and a start that derives the empty string."""
    rules = {
        "s": [("x", "y", "s"), ("s", "A"), ()],
        "x": [("y", "y"), ("B",), ()],
        "y": [(), ("x", "C"), ("A", "y")],
    }
    productions = [Production(lhs, rhs) for lhs, alts in rules.items() for rhs in alts]
    terminals = {n: Terminal(n, n.lower(), is_literal=True) for n in ("A", "B", "C")}
    return ContextFreeGrammar("s", productions, terminals, ())


def shipped(name: str) -> ContextFreeGrammar:
    return load_lark(grammars.load(name), name=name).cfg


# --- parser ---------------------------------------------------------------------------------------


def run_parser(parser: EarleyParser, kernel, *args, transitions: bool = False) -> int:
    """Call a parser kernel (or its twin) on ``parser``'s store until it stops asking to grow."""
    while True:
        extra = (parser.transition_arrays(),) if transitions else ()
        result = int(kernel(parser.grammar_arrays, parser.arrays(), *extra, *args))
        if result != GROW:
            return result
        parser.grow()


def assert_same_parser(fast: EarleyParser, slow: EarleyParser) -> None:
    a, b = fast.arrays(), slow.arrays()
    counts = a[ST_COUNTS]
    keep = [k for k in range(len(counts)) if k not in (C_GEN, C_NEED)]  # stamps and grow requests
    assert a[ST_COUNTS][keep].tolist() == b[ST_COUNTS][keep].tolist()
    for array, count in PARSER_POOLS:
        n = int(counts[count])
        assert np.array_equal(a[array][:n], b[array][:n]), array
    for slots in (ST_SET_SLOTS, ST_GROUP_SLOTS, ST_TSET_SLOTS):
        assert np.array_equal(a[slots], b[slots]), slots
    for x, y in zip(fast.transition_arrays(), slow.transition_arrays(), strict=True):
        assert np.array_equal(x, y)


def accepted_sets(num_t: int, rng: random.Random) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
    """Every single terminal and some pairs, as the ``acc_t0`` / ``acc_terms`` arrays."""
    sets = [[t] for t in range(num_t)]
    sets += [sorted(rng.sample(range(num_t), 2)) for _ in range(num_t if num_t > 1 else 0)]
    acc_t0 = np.zeros(len(sets) + 1, dtype=np.int64)
    acc_t0[1:] = np.cumsum([len(s) for s in sets])
    return sets, acc_t0, np.array([t for s in sets for t in s], dtype=np.int32)


def parser_twins_agree(g: ContextFreeGrammar, rng: random.Random, walks: int, depth: int) -> int:
    """Random walks of transitions and scans through both parsers; returns the steps compared."""
    tables = analyze_grammar(g)
    fast, slow = EarleyParser(tables), EarleyParser(tables)
    assert_same_parser(fast, slow)
    # The initial set's closure again (not interned: slot -1).
    assert run_parser(fast, earley_close, 0, True, -1) == run_parser(
        slow, earley_close_reference, 0, True, -1
    )
    assert_same_parser(fast, slow)
    sets, acc_t0, acc_terms = accepted_sets(tables.num_terminals, rng)
    steps = 0
    for walk in range(walks):
        speculating = walk % 3 == 2
        if speculating:
            fast.begin_speculation()
            slow.begin_speculation()
        state = fast.initial
        for _ in range(rng.randint(1, depth)):
            expected = set(fast.terminals(state))
            choices = [a for a, s in enumerate(sets) if expected & set(s)] or list(range(len(sets)))
            acc = rng.choice(choices if rng.random() < 0.9 else range(len(sets)))
            if rng.random() < 0.8:
                args = (acc_t0, acc_terms, state, acc)
                nxt = run_parser(fast, parser_transition, *args, transitions=True)
                assert nxt == run_parser(slow, parser_transition_reference, *args, transitions=True)
            else:
                args = (state, acc_terms, int(acc_t0[acc]), int(acc_t0[acc + 1]))
                nxt = run_parser(fast, earley_scan, *args)
                assert nxt == run_parser(slow, earley_scan_reference, *args)
            assert_same_parser(fast, slow)
            steps += 1
            if nxt < 0:
                break
            state = nxt
        if speculating:
            assert fast.end_speculation() == slow.end_speculation()
            assert_same_parser(fast, slow)
    return steps


@pytest.mark.parametrize("name", ["arithmetic", "json", "sql", "python", "lark", "csv"])
def test_parser_kernels_equal_references_on_shipped_grammars(name):
    assert parser_twins_agree(shipped(name), random.Random(name), walks=40, depth=40) > 60


def test_parser_kernels_equal_references_on_nullable_grammar():
    assert parser_twins_agree(nullable_grammar(), random.Random(5), walks=30, depth=25) > 100


def test_parser_kernels_equal_references_when_arrays_grow():
    # Deep nesting outgrows every initial array (and the transition tables) on both sides.
    g = shipped("arithmetic")
    tables = analyze_grammar(g)
    fast, slow = EarleyParser(tables), EarleyParser(tables)
    paren = np.array([tables.terminal_names.index("LPAR")], dtype=np.int32)
    acc_t0 = np.array([0, 1], dtype=np.int64)
    state = fast.initial
    for _ in range(600):
        nxt = run_parser(fast, parser_transition, acc_t0, paren, state, 0, transitions=True)
        assert nxt == run_parser(slow, parser_transition_reference, acc_t0, paren, state, 0, transitions=True)
        state = nxt
    assert state > 256 and fast.transitions.keys.shape[0] > 1024
    assert_same_parser(fast, slow)


def test_intern_rehash_equals_reference():
    tables = analyze_grammar(shipped("python"))
    parser = EarleyParser(tables)
    rng = random.Random(11)
    _, acc_t0, acc_terms = accepted_sets(tables.num_terminals, rng)
    for _ in range(200):
        state = parser.initial
        for _ in range(rng.randint(1, 10)):
            expected = parser.terminals(state)
            if not expected:
                break
            nxt = parser.transition(state, rng.choice(expected), acc_t0, acc_terms)
            if nxt < 0:
                break
            state = nxt
    store = parser.arrays()
    cases = [
        (ST_SETS, 0, 1, ST_KPOOL, C_SETS, 1),
        (ST_GROUPS, 0, 1, ST_GKEY, C_GROUPS, 0),
        (ST_TSETS, 0, 1, ST_TSPOOL, C_TSETS, 0),
    ]
    for table, c0, c1, pool, count, first in cases:
        n = int(store[ST_COUNTS][count])
        assert n > 10
        size = 4 << int(np.ceil(np.log2(n)))
        fast, slow = np.full(size, -1, dtype=np.int32), np.full(size, -1, dtype=np.int32)
        intern_rehash(fast, store[table], c0, c1, store[pool], first, n)
        intern_rehash_reference(slow, store[table], c0, c1, store[pool], first, n)
        assert np.array_equal(fast, slow)
        assert sorted(fast[fast >= 0].tolist()) == list(range(first, n))


def test_hash_put_equals_reference():
    rng = random.Random(2)
    keys = [rng.randrange(1 << 40) for _ in range(300)]
    vals = [rng.randrange(1 << 20) for _ in keys]
    fast_keys, slow_keys = (np.full(1024, EMPTY_KEY, dtype=np.int64) for _ in range(2))
    fast_vals, slow_vals = (np.full(1024, -1, dtype=np.int32) for _ in range(2))
    for key, value in zip(keys[:150], vals[:150], strict=True):
        hash_put(fast_keys, fast_vals, key, value)
        hash_put_reference(slow_keys, slow_vals, key, value)
    # Overwrites and fresh keys in one batch.
    batch_keys = np.array(keys[100:], dtype=np.int64)
    batch_vals = np.array([v + 1 for v in vals[100:]], dtype=np.int32)
    added = hash_put_many(fast_keys, fast_vals, batch_keys, batch_vals)
    new_keys = len(set(keys[150:]) - set(keys[:150]))
    assert added == hash_put_many_reference(slow_keys, slow_vals, batch_keys, batch_vals) == new_keys
    assert np.array_equal(fast_keys, slow_keys) and np.array_equal(fast_vals, slow_vals)
    assert int((fast_keys != EMPTY_KEY).sum()) == len(set(keys))
    # Subtree cache keys, and their projections' keys missing from the table.
    nodes = np.array([rng.randrange(1000) for _ in range(60)], dtype=np.int32)
    lexers = np.array([rng.randrange(50) for _ in range(60)], dtype=np.int32)
    proj = np.array([rng.choice([-1, -2, rng.randrange(50)]) for _ in range(50)], dtype=np.int32)
    present = np.array([int(nodes[k]) * LEX_STRIDE + max(int(proj[lexers[k]]), 0) for k in range(0, 60, 3)])
    index_keys, index_vals = fast_keys.copy(), fast_vals.copy()
    hash_put_many(index_keys, index_vals, present, np.zeros(present.shape[0], dtype=np.int32))
    got = subtree_keys(nodes, lexers, proj, index_keys, index_vals)
    want = subtree_keys_reference(nodes, lexers, proj, index_keys, index_vals)
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)) and want[1].shape[0] > 0
    query = np.array([*keys[::7], *(rng.randrange(1 << 40) for _ in range(20))], dtype=np.int64)
    found = hash_get_many(fast_keys, fast_vals, query)
    assert np.array_equal(found, hash_get_many_reference(slow_keys, slow_vals, query))
    assert (found[: len(keys[::7])] >= 0).all() and (found[len(keys[::7]) :] == -2).all()
    # Marking keys: stored values stay, absent keys get the mark, and the count says how many.
    marks = np.array([*keys[250:], *(rng.randrange(1 << 40) for _ in range(40))], dtype=np.int64)
    added = hash_put_absent(fast_keys, fast_vals, marks, -3)
    assert added == hash_put_absent_reference(slow_keys, slow_vals, marks, -3) == 40
    assert np.array_equal(fast_keys, slow_keys) and np.array_equal(fast_vals, slow_vals)
    assert int((fast_vals == -3).sum()) == 40


# --- lexer ----------------------------------------------------------------------------------------


def run_lexer(lexer: LazyLexer, kernel, *args) -> int:
    """Call a lexer kernel (or its twin) on ``lexer``'s store until it stops asking to grow."""
    return lexer.run(lambda lxs, lxd: int(kernel(lxs, lxd, *args)))


def assert_same_lexer(fast: LazyLexer, slow: LazyLexer) -> None:
    a, b = fast._store, slow._store
    counts = a[LX_COUNTS]
    assert a[LX_COUNTS][:L_NEED].tolist() == b[LX_COUNTS][:L_NEED].tolist()
    for array, count in LEXER_POOLS:
        n = int(counts[count])
        assert np.array_equal(a[array][:n], b[array][:n]), array
    for slots in (LX_SLOTS, LX_ACC_SLOTS):
        assert np.array_equal(a[slots], b[slots]), slots


def twin_lexers(name: str) -> tuple[LazyLexer, LazyLexer, int]:
    lg = load_lark(grammars.load(name), name=name)
    a = GrammarAutomaton(lg.cfg, BYTES, guards=lg.guards)
    lexer = a.lexer
    make = lambda: LazyLexer(lexer.dfas, lexer.priorities, lexer.ignored, guards=lexer.guards)  # noqa: E731
    return make(), make(), len(lexer.dfas)


@pytest.mark.parametrize("name", ["json", "sql", "python", "lark"])
def test_lexer_kernels_equal_references(name):
    fast, slow, num_t = twin_lexers(name)
    rng = random.Random(name)
    todo = []
    for _ in range(6):
        # A lexeme start state (ignored terminals and guards added) interned on both sides.
        terms = np.array(sorted(rng.sample(range(num_t), min(num_t, 4))), dtype=np.int64)
        start = run_lexer(fast, lexeme_start_state, terms, 0, terms.shape[0])
        assert run_lexer(slow, lexeme_start_state_reference, terms, 0, terms.shape[0]) == start
        assert fast.start_state(tuple(terms.tolist())) == start
        assert_same_lexer(fast, slow)
        todo.append(start)
    seen = set(todo)
    while todo and len(seen) < 250:
        state = todo.pop(0)
        assert run_lexer(fast, lexer_row, state) == 0 == run_lexer(slow, lexer_row_reference, state)
        assert_same_lexer(fast, slow)
        for nxt in fast.trans[state].tolist():
            if nxt >= 0 and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert len(seen) > 20


def test_lexer_intern_equals_reference_on_new_and_known_keys():
    fast, slow, num_t = twin_lexers("sql")
    probe, _, _ = twin_lexers("sql")
    start = probe.start_state(tuple(range(num_t)))
    lo, hi = probe._store[LX_TABLE][start]
    key = probe._store[LX_POOL][lo:hi].copy()
    for flag in (1, 0, 1):  # a lexeme start, the same codes inside a lexeme, the start again (known)
        key[0] = flag
        ids = []
        for lexer, kernel in ((fast, lexer_intern), (slow, lexer_intern_reference)):
            lexer._store[LX_BUF][: key.shape[0]] = key
            ids.append(run_lexer(lexer, kernel, key.shape[0]))
        assert ids[0] == ids[1]
        assert_same_lexer(fast, slow)
    assert fast.num_states == 2
