"""The context-free grammar engine: a token-level automaton for any :class:`ContextFreeGrammar`.

Architecture (llguidance's, in Python + numba):

* every terminal is a byte DFA; :class:`~structgen.automata.grammar.lexer.LazyLexer` combines the
  terminals the parser allows next (plus the ignored ones) into one lazily built lexer DFA;
* :class:`~structgen.automata.grammar.earley.EarleyParser` parses lexemes, so every context-free
  grammar works, ambiguous ones included; its sets are interned and immutable, so an automaton
  state is just ``(earley_set, lexer_state)`` and matcher copy/rollback cost nothing;
* the token mask walks the vocabulary's byte trie in numba: the tokens that stay inside the
  current lexeme and the trie nodes where the lexeme ends depend on the lexer state only and are
  cached per lexer state (:func:`~structgen.automata.grammar.kernels.lexeme_walk`); from each such
  boundary a second walk steps the parser through a memoized transition table
  (:func:`~structgen.automata.grammar.kernels.walk_entries`). Table entries a walk needs but that
  do not exist yet are reported, computed in Python in one batch, and the subtrees that needed
  them walked again; tokens repeating a one-byte lexeme (``((((``, ``--------``), which nest one
  new parser set per byte, get their whole chain computed at once. Whole masks are cached per
  ``(earley_set, lexer_state)``.
* Why Earley and not LALR: the JSON Schema compiler emits ambiguous grammars (overlapping
  ``anyOf`` branches, several terminals matching one lexeme), and a mask needs the parser only at
  lexeme ends, through memoized transitions, so the general parser costs little where it matters.
* Memory: the parser sets a mask computation builds speculatively (one per lexeme sequence the
  vocabulary's tokens can form) are dropped when the mask is done
  (:meth:`~structgen.automata.grammar.earley.EarleyParser.begin_speculation`); only the sets the
  output goes through are kept, so memory grows with the output, not with the masks computed.
  Lexer states are capped (:class:`~structgen.errors.ResourceLimitError`).

Semantics (what "allowed" means): the output is lexed greedily from the left -- a lexeme ends only
where the next byte cannot extend any terminal still alive in it (see
:mod:`~structgen.automata.grammar.lexer` for priorities and ignored terminals) -- and a token is
allowed when, after it, every finished lexeme has been accepted by the parser and the unfinished
one is a prefix of some lexeme of a terminal the parser allows. The output is complete when the
unfinished lexeme (if any) is itself a lexeme and the parser then accepts. With greedy lexing a
prefix can be valid yet have no completion (e.g. ``s: A B`` with ``A: /a+/`` and ``B: "a"``:
``"a"`` is allowed, but ``A`` swallows every further ``a``); Lark's lexers fail on the same
grammars, and the engine does not try to detect it.
"""

from __future__ import annotations

import re
import sys
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping

import numpy as np

from structgen.automata.byte_dfa import ByteDFA
from structgen.automata.cfg import ContextFreeGrammar, Terminal
from structgen.automata.grammar.earley import EarleyParser, EarleySet, analyze_grammar
from structgen.automata.grammar.kernels import (
    ACC_STRIDE,
    DONE,
    ParserTransitionMap,
    byte_runs_below,
    lexeme_walk,
    walk_entries,
)
from structgen.automata.grammar.lexer import DEAD, LazyLexer
from structgen.automata.regex import regex_to_byte_dfa
from structgen.automata.token_trie import TokenTrie
from structgen.bitmask import bitmask_words
from structgen.errors import EmptyLanguageError, GrammarError, RegexError
from structgen.matcher import Automaton
from structgen.vocabulary import Vocabulary

if sys.version_info >= (3, 11):
    from re import _parser as sre_parse
else:  # pragma: no cover - Python 3.10
    import sre_parse

GrammarState = tuple[EarleySet, int]


def literal_byte_dfa(text: str, ignore_case: bool = False) -> ByteDFA:
    """The byte DFA of exactly the UTF-8 encoding of ``text`` (no regex parsing).

    ``ignore_case`` (ASCII ``text`` only) also accepts every upper/lower case variant, as the
    regex ``(?i:text)`` does.
    """
    data = text.encode("utf-8")
    if ignore_case and not text.isascii():
        raise ValueError("ignore_case needs ASCII text")
    transitions = np.full((len(data) + 1, 256), DEAD, dtype=np.int32)
    for i, b in enumerate(data):
        transitions[i, b] = i + 1
        if ignore_case:
            ch = chr(b)
            transitions[i, ord(ch.lower())] = i + 1
            transitions[i, ord(ch.upper())] = i + 1
    accepting = np.zeros(len(data) + 1, dtype=np.bool_)
    accepting[len(data)] = True
    return ByteDFA(transitions, accepting, 0)


def _ascii_literal_of(pattern: str) -> tuple[str, bool] | None:
    """``(text, ignore_case)`` when ``pattern`` is an ASCII literal, optionally in ``(?i:...)``."""
    if not pattern.isascii():
        return None
    try:
        tree = list(sre_parse.parse(pattern))
    except Exception:  # invalid patterns get their error from the regex compiler
        return None
    ignore_case = False
    if len(tree) == 1 and str(tree[0][0]) == "SUBPATTERN":
        _, add_flags, del_flags, sub = tree[0][1]
        if add_flags != re.IGNORECASE or del_flags:
            return None
        ignore_case = True
        tree = list(sub)
    if not tree or any(str(op) != "LITERAL" for op, _ in tree):
        return None
    return "".join(chr(arg) for _, arg in tree), ignore_case


def terminal_byte_dfa(terminal: Terminal) -> ByteDFA:
    """The byte DFA of one terminal; raises :class:`GrammarError` naming it when it is unusable."""
    if terminal.is_literal:
        if not terminal.pattern:
            raise GrammarError(f"terminal {terminal.name!r} is the empty string")
        return literal_byte_dfa(terminal.pattern)
    literal = _ascii_literal_of(terminal.pattern)
    if literal is not None:  # e.g. Lark's case-insensitive keywords: no need for interegular
        return literal_byte_dfa(*literal)
    try:
        dfa = regex_to_byte_dfa(terminal.pattern)
    except EmptyLanguageError:
        raise GrammarError(f"terminal {terminal.name!r} matches no string: /{terminal.pattern}/") from None
    except RegexError as exc:
        raise GrammarError(f"terminal {terminal.name!r}: {exc}") from None
    if dfa.accepting[dfa.initial]:
        raise GrammarError(
            f"terminal {terminal.name!r} matches the empty string (/{terminal.pattern}/); "
            "zero-width terminals are not supported by the lexer"
        )
    return dfa


class GrammarAutomaton(Automaton):
    """Token-level automaton of a context-free grammar over one vocabulary (see the module doc).

    States are ``(EarleySet, lexer_state_id)`` tuples: immutable and shared. Tables (lexer rows,
    parser sets, masks) grow lazily as states are visited, so construction is cheap.

    ``guards`` maps a terminal to terminals it guards (see
    :mod:`~structgen.automata.grammar.lexer`): typically an identifier regexp guarding the
    keywords it matches, so that a keyword glued to identifier characters is one identifier.
    """

    def __init__(
        self,
        grammar: ContextFreeGrammar,
        vocab: Vocabulary,
        *,
        guards: Mapping[str, Iterable[str]] | None = None,
        mask_cache_size: int = 2048,
        lexeme_cache_size: int = 1024,
        terminal_dfas: Mapping[str, ByteDFA] | None = None,
    ) -> None:
        self.grammar = grammar
        self.vocab = vocab
        self.tables = analyze_grammar(grammar)
        dfas = []
        for name in self.tables.terminal_names:
            given = terminal_dfas.get(name) if terminal_dfas else None
            dfas.append(given if given is not None else terminal_byte_dfa(grammar.terminals[name]))
        priorities = [grammar.terminals[name].priority for name in self.tables.terminal_names]
        index = {name: i for i, name in enumerate(self.tables.terminal_names)}
        guard_ids: dict[int, list[int]] = {}
        for guard, guarded in (guards or {}).items():
            if guard not in grammar.terminals:
                raise GrammarError(f"guard {guard!r} is not a terminal")
            for name in guarded:
                if name not in grammar.terminals:
                    raise GrammarError(f"terminal {guard!r} guards {name!r}, which is not a terminal")
            kept = [index[name] for name in guarded if name in index]
            # A guard the grammar never uses (e.g. a keyword of an unused rule) cannot be lexed
            # and guards nothing the parser could see: it is left out.
            if guard in index and kept:
                guard_ids[index[guard]] = kept
        self.lexer = LazyLexer(dfas, priorities, [index[name] for name in grammar.ignore], guards=guard_ids)
        self.parser = EarleyParser(self.tables)
        self.ptrans = ParserTransitionMap()
        self.spec_ptrans = ParserTransitionMap()  # transitions into speculative sets (one mask)
        self.p_lex0 = np.zeros(256, dtype=np.int32)
        self._registered = 0
        self._new_transitions: dict[int, int] = {}
        self._register_new_sets()
        self.trie = TokenTrie.for_vocab(vocab)
        self._words = bitmask_words(vocab.size)
        self._mask_cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._mask_cache_size = mask_cache_size
        self._lexeme_cache: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self._lexeme_cache_size = lexeme_cache_size
        # The kernels (swappable for their plain-Python references in tests).
        self._lexeme_kernel = lexeme_walk
        self._entries_kernel = walk_entries
        self.walk_calls = 0  # statistics: kernel calls, including resumptions
        self._initial: GrammarState = (self.parser.initial, int(self.p_lex0[self.parser.initial.id]))

    # --- tables ---------------------------------------------------------------------------------

    def _register_new_sets(self) -> None:
        """Give every parser set built since the last call its lexeme start state."""
        sets = self.parser.sets
        if len(sets) > self.p_lex0.shape[0]:
            grown = np.zeros(max(len(sets), 2 * self.p_lex0.shape[0]), dtype=np.int32)
            grown[: self.p_lex0.shape[0]] = self.p_lex0
            self.p_lex0 = grown
        for k in range(self._registered, len(sets)):
            self.p_lex0[k] = self.lexer.start_state(sets[k].terminals)
        self._registered = len(sets)

    def _parser_after(self, parser_state: EarleySet, acc: int) -> EarleySet | None:
        """The parser set after a lexeme whose accepted terminal set is ``acc`` (``None``: refused).

        Only a guard terminal the parser does not allow can be refused here: every other alive
        terminal was allowed when the lexeme started.
        """
        if self.lexer.acc_ignore[acc]:
            return parser_state
        nxt = self.parser.scan(parser_state, self.lexer.acc_sets[acc])
        if nxt is not None and nxt.id >= self._registered:
            self._register_new_sets()
        return nxt

    def _end_lexeme(self, parser_state: EarleySet, acc: int) -> EarleySet | None:
        """:meth:`_parser_after`, also recorded in the kernels' transition table."""
        nxt = self._parser_after(parser_state, acc)
        if not self.lexer.acc_ignore[acc] and self.ptrans.get(parser_state.id, acc) == -2:
            self.ptrans.put(parser_state.id, acc, -1 if nxt is None else nxt.id)
        return nxt

    def _step(self, state: GrammarState, byte: int) -> GrammarState | None:
        parser_state, lx = state
        nl = self.lexer.step(lx, byte)
        if nl >= 0:
            return parser_state, nl
        if nl != DEAD:  # BLOCKED: only guard-only terminals read this byte
            return None
        acc = int(self.lexer.acc[lx])
        if acc < 0:
            return None
        parser_state = self._end_lexeme(parser_state, acc)
        if parser_state is None:
            return None
        nl = self.lexer.step(int(self.p_lex0[parser_state.id]), byte)
        if nl < 0:
            return None
        return parser_state, nl

    def _normalize(self, state: GrammarState) -> GrammarState | None:
        """End a lexeme that no byte can extend now, so equal situations share one state."""
        parser_state, lx = state
        acc = int(self.lexer.acc[lx])
        if acc >= 0:
            self.lexer.ensure_row(lx)
            if not self.lexer.has_exit[lx]:
                after = self._end_lexeme(parser_state, acc)
                if after is None:
                    return None
                return after, int(self.p_lex0[after.id])
        return state

    def advance_bytes(self, state: GrammarState, data: bytes) -> GrammarState | None:
        """The state after the bytes ``data``, or ``None`` if they leave the language."""
        cur: GrammarState | None = state
        for byte in data:
            cur = self._step(cur, byte)
            if cur is None:
                return None
        return self._normalize(cur)

    def allowed_bytes(self, state: GrammarState) -> np.ndarray:
        """Bool ``[256]``: which next bytes keep the output valid."""
        parser_state, lx = state
        row = self.lexer.ensure_row(lx)
        allowed = row >= 0
        acc = int(self.lexer.acc[lx])
        if acc >= 0:
            after = self._end_lexeme(parser_state, acc)
            if after is not None:
                row0 = self.lexer.ensure_row(int(self.p_lex0[after.id]))
                allowed |= (row == DEAD) & (row0 >= 0)
        return allowed

    # --- Automaton API --------------------------------------------------------------------------

    def initial_state(self) -> GrammarState:
        """The state before any output."""
        return self._initial

    def next_state(self, state: GrammarState, token_id: int) -> GrammarState | None:
        """The state after token ``token_id``, or ``None`` if refused."""
        data = self.vocab.token_bytes[token_id]
        if not data:
            return None
        return self.advance_bytes(state, data)

    def is_accepting(self, state: GrammarState) -> bool:
        """Whether the output is a complete sentence."""
        parser_state, lx = state
        if self.lexer.is_start(lx):
            return parser_state.accepting
        acc = int(self.lexer.acc[lx])
        if acc < 0:
            return False
        after = self._end_lexeme(parser_state, acc)
        return after is not None and after.accepting

    def can_continue(self, state: GrammarState) -> bool:
        """Whether some byte may follow."""
        return bool(self.allowed_bytes(state).any())

    def forced_bytes(self, state: GrammarState, limit: int = 256) -> bytes:
        """The bytes every allowed continuation starts with (stops at a choice or at acceptance)."""
        out = bytearray()
        cur = state
        while len(out) < limit and not self.is_accepting(cur):
            allowed = np.flatnonzero(self.allowed_bytes(cur))
            if allowed.shape[0] != 1:
                break
            byte = int(allowed[0])
            nxt = self._step(cur, byte)
            if nxt is None:  # pragma: no cover - allowed_bytes said it was fine
                break
            out.append(byte)
            cur = nxt
        return bytes(out)

    def fill_token_bitmask(self, state: GrammarState, row: np.ndarray) -> None:
        """OR the allowed text tokens of ``state`` into the int32 bitmask ``row``."""
        mask = self.token_mask_words(state)
        np.bitwise_or(row, mask.view(np.int32), out=row)

    # --- masks ----------------------------------------------------------------------------------

    def token_mask_words(self, state: GrammarState) -> np.ndarray:
        """The allowed tokens of ``state`` as uint32 words (cached; do not modify)."""
        parser_state, lx = state
        key = (parser_state.id, lx)
        cache = self._mask_cache
        mask = cache.get(key)
        if mask is not None:
            cache.move_to_end(key)
            return mask
        parser = self.parser
        parser.begin_speculation()
        try:
            mask = self._compute_mask(parser_state.id, lx)
        finally:
            mark = parser.end_speculation()
            self.spec_ptrans.clear()
            self._registered = min(self._registered, mark)
        cache[key] = mask
        if len(cache) > self._mask_cache_size:
            cache.popitem(last=False)
        return mask

    def lexeme_info(self, lx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Context-independent part of the masks of lexer state ``lx`` (cached).

        ``(inside, boundary_nodes, boundary_lexers)``: the uint32 mask of tokens that stay inside
        the current lexeme, and the trie nodes whose byte cannot extend it, each with the lexer
        state of its parent node.
        """
        cache = self._lexeme_cache
        info = cache.get(lx)
        if info is not None:
            cache.move_to_end(lx)
            return info
        trie = self.trie
        lexer = self.lexer
        scratch = _scratch(trie)
        inside = np.zeros(self._words, dtype=np.uint32)
        resume = np.array([1, 0], dtype=np.int64)
        while True:
            self.walk_calls += 1
            status, need = self._lexeme_kernel(
                trie.node_byte,
                trie.node_depth,
                trie.node_skip,
                trie.token_start,
                trie.token_ids,
                lexer.trans,
                lx,
                inside,
                scratch.e_node,
                scratch.e_lexer,
                scratch.stack_l,
                resume,
            )
            if status == DONE:
                break
            lexer.ensure_row(int(need))  # NEED_SPACE cannot happen: one boundary per node at most
        n_b = int(resume[1])
        info = (inside, scratch.e_node[:n_b].copy(), scratch.e_lexer[:n_b].copy())
        cache[lx] = info
        if len(cache) > self._lexeme_cache_size:
            cache.popitem(last=False)
        return info

    def _compute_mask(self, parser_id: int, lx: int) -> np.ndarray:
        """Mask of ``(parser_id, lx)``: the lexeme part, plus walks from each lexeme boundary."""
        inside, bnodes, blex = self.lexeme_info(lx)
        n = bnodes.shape[0]
        if n == 0:
            return inside  # no token ends the lexeme: the mask depends on the lexer state only
        out = inside.copy()
        trie = self.trie
        lexer = self.lexer
        sets = self.parser.sets
        sc = _scratch(trie)
        e_node, e_parser, e_lexer = sc.e_node, sc.e_parser, sc.e_lexer
        p_node, p_parser, p_lexer = sc.p_node, sc.p_parser, sc.p_lexer
        e_node[:n] = bnodes
        e_parser[:n] = parser_id
        e_lexer[:n] = blex
        while n:
            self.walk_calls += 1
            n, n_miss = self._entries_kernel(
                trie.node_byte,
                trie.node_depth,
                trie.node_skip,
                trie.token_start,
                trie.token_ids,
                lexer.trans,
                lexer.acc,
                lexer.acc_ignore,
                self.ptrans.keys,
                self.ptrans.vals,
                self.spec_ptrans.keys,
                self.spec_ptrans.vals,
                self.p_lex0,
                e_node,
                e_parser,
                e_lexer,
                n,
                out,
                sc.stack_p,
                sc.stack_l,
                p_node,
                p_parser,
                p_lexer,
                sc.miss,
                sc.miss_node,
            )
            if n_miss:
                codes, first = np.unique(sc.miss[:n_miss], return_index=True)
                self._fill_missing(codes, sc.miss_node[first], sets)
            e_node, p_node = p_node, e_node
            e_parser, p_parser = p_parser, e_parser
            e_lexer, p_lexer = p_lexer, e_lexer
        return out

    def _fill_missing(self, missing: np.ndarray, nodes: np.ndarray, sets: list[EarleySet]) -> None:
        """Compute the lexer rows and parser transitions a walk reported missing.

        ``nodes[k]`` is the trie node that needed ``missing[k]``; its byte starts the lexeme after
        the one that ended. When that byte is a lexeme by itself (``(``, ``-``...), tokens that
        repeat it (``((((``, ``--------``) nest one new parser set per byte: :meth:`_chain_ahead`
        builds that chain now, as deep as the longest run of the byte below the node, instead of
        one walk pass per level.
        """
        self._new_transitions = {}
        runs = _scratch(self.trie).runs
        node_byte = self.trie.node_byte
        for code, node in zip(missing.tolist(), nodes.tolist(), strict=True):
            if code < 0:
                self.lexer.ensure_row(-1 - code)
                continue
            pid, acc = divmod(code, ACC_STRIDE)
            nxt = self._parser_after(sets[pid], acc)
            self._new_transitions[code] = -1 if nxt is None else nxt.id
            if nxt is not None and runs[node] > 1:
                self._chain_ahead(nxt, int(node_byte[node]), int(runs[node]) - 1)
        mark = self.parser.speculation_mark
        lasting: tuple[list[int], list[int]] = ([], [])
        speculative: tuple[list[int], list[int]] = ([], [])
        for code, value in self._new_transitions.items():
            pid = code // ACC_STRIDE
            keys, values = lasting if mark is None or (pid < mark and value < mark) else speculative
            keys.append(code)
            values.append(value)
        for table, (keys, values) in ((self.ptrans, lasting), (self.spec_ptrans, speculative)):
            if keys:
                table.put_many(np.array(keys, dtype=np.int64), np.array(values, dtype=np.int32))

    def _chain_ahead(self, state: EarleySet, byte: int, limit: int) -> None:
        """Record the transitions of up to ``limit`` one-byte lexemes ``byte`` in a row from ``state``."""
        lexer = self.lexer
        new = self._new_transitions
        for _ in range(limit):
            first = lexer.step(int(self.p_lex0[state.id]), byte)
            if first < 0 or lexer.step(first, byte) != DEAD:
                return  # the byte cannot start a lexeme here, or does not end one by itself
            acc = int(lexer.acc[first])
            if acc < 0 or lexer.acc_ignore[acc]:
                return
            code = state.id * ACC_STRIDE + acc
            terminals = lexer.acc_sets[acc]
            if code in new or (terminals[0] if len(terminals) == 1 else terminals) in state.transitions:
                return  # known already (a later walk pass finds any table entry still missing)
            nxt = self._parser_after(state, acc)
            new[code] = -1 if nxt is None else nxt.id
            if nxt is None:
                return
            state = nxt


class _Scratch:
    """Work arrays of the mask walks, one set per token trie (walks run one at a time)."""

    def __init__(self, trie: TokenTrie) -> None:
        n = trie.num_nodes + 1
        self.e_node = np.zeros(n, dtype=np.int32)
        self.e_parser = np.zeros(n, dtype=np.int64)
        self.e_lexer = np.zeros(n, dtype=np.int32)
        self.p_node = np.zeros(n, dtype=np.int32)
        self.p_parser = np.zeros(n, dtype=np.int64)
        self.p_lexer = np.zeros(n, dtype=np.int32)
        self.miss = np.zeros(n, dtype=np.int64)
        self.miss_node = np.zeros(n, dtype=np.int32)
        self.runs = byte_runs_below(trie.node_byte, trie.node_depth)
        self.stack_p = np.zeros(trie.max_depth + 2, dtype=np.int64)
        self.stack_l = np.zeros(trie.max_depth + 2, dtype=np.int64)


_SCRATCH: weakref.WeakKeyDictionary[TokenTrie, _Scratch] = weakref.WeakKeyDictionary()


def _scratch(trie: TokenTrie) -> _Scratch:
    found = _SCRATCH.get(trie)
    if found is None:
        found = _SCRATCH[trie] = _Scratch(trie)
    return found
