"""The context-free grammar engine: a token-level automaton for any :class:`ContextFreeGrammar`.

Architecture (llguidance's, in Python + numba):

* every terminal is a byte DFA; :class:`~structgen.automata.grammar.lexer.LazyLexer` combines the
  terminals the parser allows next (plus the ignored ones) into one lazily built lexer DFA;
* :class:`~structgen.automata.grammar.earley.EarleyParser` parses lexemes, so every context-free
  grammar works, ambiguous ones included; its sets are interned and immutable, so an automaton
  state is just ``(earley_set, lexer_state)`` and matcher copy/rollback cost nothing;
* the token mask walks the vocabulary's byte trie in numba: the tokens that stay inside the
  current lexeme and the trie nodes where the lexeme ends depend on the lexer state only and are
  cached per lexer state (:func:`~structgen.automata.grammar.kernels.subtree_walks`); from each such
  boundary a second walk steps the parser through a memoized transition table
  (:func:`~structgen.automata.grammar.kernels.walk_entries`), building the Earley sets it needs
  on the spot (the parser runs in numba on integer arrays). Below a node where a new lexeme
  starts, a large subtree's lexeme part does not depend on the parser either: met a second time,
  it comes from the :class:`~structgen.automata.grammar.subtrees.SubtreeCache` (per node and
  lexer state), and only its boundary nodes are walked with the parser. The lexeme walk of a new
  lexer state reads that cache too, and a per-vocabulary cache for states equivalent to a
  state of a *shared DFA* (``shared_dfas``: e.g. the rest of a JSON string, in every key and string
  terminal; see :mod:`~structgen.automata.grammar.subtrees`). Lexer rows, lexeme start states and
  subtree entries a walk needs but that do not exist yet are reported and provided here; a
  boundary walk then walks the subtrees that needed them again, a lexeme walk takes the skipped
  subtrees from the lists made for the caches. Whole masks are cached per ``(earley_set, lexer_state)``.
* Identifiers and keywords: with reserved keywords, every context has its own lexer states for an
  identifier in progress (the keywords it may still become differ), yet all of them take the
  same bytes as the identifier alone. Such a state's *projection*
  (:func:`~structgen.automata.grammar.kernels.lexer_projection`) is that identifier-only state:
  its lexeme walk, and its subtree cache entries, are the projection's with the boundaries along
  the keywords' spellings patched (:func:`~structgen.automata.grammar.kernels.lockstep_patches`
  visits only the nodes where the two states differ). The projection's entries serve every
  context, so they are cached at first sight.
* Why Earley and not LALR: the JSON Schema compiler emits ambiguous grammars (overlapping
  ``anyOf`` branches, several terminals matching one lexeme), and a mask needs the parser only at
  lexeme ends, through memoized transitions, so the general parser costs little where it matters.
* Memory: the parser sets a mask computation builds speculatively (one per lexeme sequence the
  vocabulary's tokens can form) are dropped when the output finishes a lexeme, or when there are
  too many (:meth:`~structgen.automata.grammar.earley.EarleyParser.begin_speculation`): the masks
  of one lexeme's tokens find them built, and only the sets the output goes through are kept,
  so memory grows with the output, not with the masks computed.
  The subtree cache is bounded (it starts over when full), lexer states are capped
  (:class:`~structgen.errors.ResourceLimitError`).

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
from structgen.automata.grammar.earley import EarleyParser, analyze_grammar
from structgen.automata.grammar.kernels import (
    DONE,
    LEX_STRIDE,
    UNKNOWN_START,
    lockstep_patches,
    set_token_bits,
    subtree_keys,
    subtree_walks,
    walk_entries,
)
from structgen.automata.grammar.lexer import DEAD, LazyLexer
from structgen.automata.grammar.subtrees import SubtreeCache, class_base, equivalent_states, shared_cache
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

GrammarState = tuple[int, int]


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

    States are ``(parser_set_id, lexer_state_id)`` tuples of ints: immutable and shared. Tables (lexer rows,
    parser sets, masks) grow lazily as states are visited, so construction is cheap.

    ``guards`` maps a terminal to terminals it guards (see
    :mod:`~structgen.automata.grammar.lexer`): typically an identifier regexp guarding the
    keywords it matches, so that a keyword glued to identifier characters is one identifier.
    ``terminal_dfas`` gives ready DFAs for some terminals; ``shared_dfas`` maps terminals to a
    shared DFA whose equivalent states share their lexeme walks across automata (see
    :mod:`~structgen.automata.grammar.subtrees`).
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
        shared_dfas: Mapping[str, ByteDFA] | None = None,
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
        shared = {index[name]: dfa for name, dfa in (shared_dfas or {}).items() if name in index}
        self._share_walks(dfas, shared)
        self.parser = EarleyParser(self.tables)
        # The lexer's accepted terminal sets as arrays for the kernels (rebuilt when they grow).
        self._acc_t0 = np.zeros(1, dtype=np.int64)
        self._acc_terms = np.zeros(0, dtype=np.int32)
        self.trie = TokenTrie.for_vocab(vocab)
        self._words = bitmask_words(vocab.size)
        self._mask_cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._mask_cache_size = mask_cache_size
        self._lexeme_cache: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self._lexeme_cache_size = lexeme_cache_size
        self.subtrees = SubtreeCache()
        self.shared_subtrees = shared_cache(self.trie)
        # Subtrees of more nodes than this, below a node where a lexeme starts, are not walked
        # with the parser: their lexeme part comes from the subtree cache. Smaller ones cost less
        # to walk than their cache entries cost in memory.
        self.min_cached_subtree = 256
        # Shared entries serve every automaton of the vocabulary: worth it for smaller subtrees.
        self.min_shared_subtree = 32
        # Speculative parser sets are kept from mask to mask until the output finishes a lexeme,
        # or until there are this many (see EarleyParser.begin_speculation).
        self.max_speculative_sets = 1 << 14
        # The kernels (swappable for their plain-Python references in tests).
        self._entries_kernel = walk_entries
        self._subtree_kernel = subtree_walks
        self.walk_calls = 0  # statistics: kernel calls, including resumptions
        self._initial: GrammarState = (self.parser.initial, self._lexeme_start(self.parser.initial))

    def _share_walks(self, dfas: list[ByteDFA], shared: Mapping[int, ByteDFA]) -> None:
        """Classes of the DFA states equivalent to a shared DFA's (see :mod:`.subtrees`)."""
        offsets = self.lexer.global_offsets
        self._class_of = np.full(int(offsets[-1]), -1, dtype=np.int64)
        self._shared_final = np.full(len(dfas), -1, dtype=np.int32)
        for t, shared_dfa in shared.items():
            base = class_base(shared_dfa)
            same = equivalent_states(dfas[t], shared_dfa)
            final = np.flatnonzero(same == int(np.flatnonzero(shared_dfa.accepting)[0]))
            if final.shape[0] == 0:
                continue  # never in the accepting state's class: no state of it can end a lexeme shared
            self._class_of[offsets[t] : offsets[t + 1]] = np.where(same >= 0, base + same, -1)
            self._shared_final[t] = self.lexer.singleton_state(t, int(final[0]))

    # --- tables ---------------------------------------------------------------------------------

    def _acc_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The lexer's accepted terminal sets: ``acc_terms[acc_t0[a] : acc_t0[a + 1]]`` is set ``a``."""
        acc_sets = self.lexer.acc_sets
        if self._acc_t0.shape[0] != len(acc_sets) + 1:
            self._acc_t0 = np.zeros(len(acc_sets) + 1, dtype=np.int64)
            self._acc_t0[1:] = np.cumsum([len(terminals) for terminals in acc_sets])
            self._acc_terms = np.array([t for terminals in acc_sets for t in terminals], dtype=np.int32)
        return self._acc_t0, self._acc_terms

    def _lexeme_start(self, parser_id: int) -> int:
        """The lexer state a lexeme starts in after parser set ``parser_id``."""
        parser = self.parser
        tset = parser.terminal_set(parser_id)
        start = parser.lexeme_start(tset)
        if start == UNKNOWN_START:
            start = self._record_lexeme_start(tset)
        return start

    def _record_lexeme_start(self, tset: int) -> int:
        start = self.lexer.start_state(self.parser.terminal_set_members(tset))
        self.parser.set_lexeme_start(tset, start)
        return start

    def _parser_after(self, parser_id: int, acc: int, *, lasting: bool = True) -> int:
        """The parser set after a lexeme whose accepted terminal set is ``acc`` (``-1``: refused).

        Only a guard terminal the parser does not allow can be refused here: every other alive
        terminal was allowed when the lexeme started. ``lasting=False``: the set is only asked
        about, not kept in a state (a speculative set serves, see :meth:`EarleyParser.transition`).
        """
        if self.lexer.acc_ignore[acc]:
            return parser_id
        acc_t0, acc_terms = self._acc_arrays()
        return self.parser.transition(parser_id, acc, acc_t0, acc_terms, lasting=lasting)

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
        parser_state = self._parser_after(parser_state, acc)
        if parser_state < 0:
            return None
        nl = self.lexer.step(self._lexeme_start(parser_state), byte)
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
                after = self._parser_after(parser_state, acc)
                if after < 0:
                    return None
                return after, self._lexeme_start(after)
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
            after = self._parser_after(parser_state, acc, lasting=False)
            if after >= 0:
                row0 = self.lexer.ensure_row(self._lexeme_start(after))
                allowed |= (row == DEAD) & (row0 >= 0)
        return allowed

    def byte_successors(self, state: GrammarState, candidates: np.ndarray) -> dict[GrammarState, list[int]]:
        """The states after each byte of ``candidates`` alone, grouped by state (refused bytes left out).

        The same states as :meth:`advance_bytes` of each byte, from one lexer row: bytes that
        continue the lexeme only change the lexer state, so each distinct one is normalized once.
        Lists keep the order of ``candidates``.
        """
        parser_state, lx = state
        after_byte = self.lexer.ensure_row(lx)[candidates]
        groups: dict[GrammarState, list[int]] = {}
        for code in np.unique(after_byte[after_byte >= 0]).tolist():
            after = self._normalize((parser_state, code))
            if after is not None:
                groups.setdefault(after, []).extend(candidates[after_byte == code].tolist())
        ending = candidates[after_byte == DEAD].tolist()  # bytes after which the lexeme ends
        if not ending:
            return groups
        position = {byte: k for k, byte in enumerate(candidates.tolist())}
        for byte in ending:
            after = self.advance_bytes(state, bytes((byte,)))
            if after is not None:
                members = groups.setdefault(after, [])
                members.append(byte)
                members.sort(key=position.__getitem__)
        return groups

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
            return self.parser.accepting(parser_state)
        acc = int(self.lexer.acc[lx])
        if acc < 0:
            return False
        after = self._parser_after(parser_state, acc, lasting=False)
        return after >= 0 and self.parser.accepting(after)

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

    def write_token_bitmask(self, state: GrammarState, row: np.ndarray) -> None:
        """Overwrite the int32 bitmask ``row`` with the allowed text tokens of ``state`` (a copy)."""
        np.copyto(row, self.token_mask_words(state).view(np.int32))

    # --- masks ----------------------------------------------------------------------------------

    def token_mask_words(self, state: GrammarState) -> np.ndarray:
        """The allowed tokens of ``state`` as uint32 words (cached; do not modify)."""
        cache = self._mask_cache
        mask = cache.get(state)
        if mask is not None:
            cache.move_to_end(state)
            return mask
        parser = self.parser
        if parser.speculating and parser.num_sets - parser.speculation_mark > self.max_speculative_sets:
            parser.end_speculation()
        if not parser.speculating:
            parser.begin_speculation()
        parser.make_room()
        self.lexer.make_room()
        try:
            mask = self._compute_mask(*state)
        except BaseException:
            parser.end_speculation()
            raise
        cache[state] = mask
        if len(cache) > self._mask_cache_size:
            cache.popitem(last=False)
        return mask

    def lexeme_info(self, lx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Context-independent part of the masks of lexer state ``lx`` (cached per state).

        ``(inside, boundary_nodes, boundary_lexers)``: the uint32 mask of the tokens that stay
        inside the current lexeme, and the trie nodes whose byte cannot extend it, each with the
        lexer state of its parent node.
        """
        info = self._lexeme_cache.get(lx)
        if info is not None:
            self._lexeme_cache.move_to_end(lx)
            return info
        single = self.lexer.projection(lx)
        info = self._projected_info(lx, single) if single >= 0 else None
        if info is None:
            info = self._walk_lexeme(lx)
        self._lexeme_cache[lx] = info
        if len(self._lexeme_cache) > self._lexeme_cache_size:
            self._lexeme_cache.popitem(last=False)
        return info

    def _projected_info(self, lx: int, single: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The lexeme info of ``lx`` from that of its projection ``single`` (see
        :func:`~.kernels.lexer_projection`), or ``None`` if ``lx`` does not walk like it."""
        inside, bnodes, blexers = self.lexeme_info(single)
        n = self._lockstep(0, lx, single)
        patch_nodes, patch_lexers = _scratch(self.trie).lock[2:]
        at = np.searchsorted(bnodes, patch_nodes[:n]) if n > 0 else np.zeros(0, dtype=np.int64)
        # Every patched boundary is one of the projection's (unless a shared entry left it out).
        if n < 0 or (n and (at[-1] >= bnodes.shape[0] or (bnodes[at] != patch_nodes[:n]).any())):
            self.lexer.forget_projection(lx)
            return None
        patched = blexers.copy()
        patched[at] = patch_lexers[:n]
        return inside, bnodes, patched

    def _walk_lexeme(self, lx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The lexeme info of ``lx`` (see :meth:`lexeme_info`) from a walk of the whole trie."""
        scratch = _scratch(self.trie)
        inside = np.zeros(self._words, dtype=np.uint32)
        lexers = np.array([lx], dtype=np.int32)
        _, b_end, n_def, n_fresh = self._walk_subtrees(
            _ROOT, lexers, inside, _NO_TOKENS, scratch.b_node, scratch.b_lexer
        )
        n_b = int(b_end[0])
        bnodes, blexers = scratch.b_node[:n_b].copy(), scratch.b_lexer[:n_b].copy()
        fresh = scratch.fresh[:n_fresh].copy()
        if n_def:
            # The walk skipped the subtrees met a second time, or of a shared class: they are
            # cached now, and their lexeme parts come from the lists made for the caches.
            tokens, more_nodes, more_lexers = self._cache_deferred(
                scratch.d_node[:n_def].copy(), scratch.d_lexer[:n_def].copy()
            )
            set_token_bits(inside, tokens)
            # In trie order, as the walk would have found them: boundary walks then read the trie
            # sequentially.
            bnodes = np.concatenate([bnodes, more_nodes])
            order = np.argsort(bnodes, kind="stable")
            bnodes = bnodes[order]
            blexers = np.concatenate([blexers, more_lexers])[order]
        self.subtrees.mark_seen(fresh)
        return inside, bnodes, blexers

    def _cache_deferred(self, nodes: np.ndarray, lexers: np.ndarray) -> tuple[np.ndarray, ...]:
        """Cache the subtrees a lexeme walk deferred: those of a shared class in the shared cache.

        Shared entries are keyed by class and keep only the boundaries under the terminal's
        accepting state (see :mod:`.subtrees`). Returns what the walk would have read from the
        caches, ``(tokens, boundary_nodes, boundary_lexers)``; the ``(node, lexer)`` pairs of one
        walk are distinct. States with a projection are listed from their projections' entries.
        """
        classes = self._shared_classes(lexers)
        shared = classes >= 0
        projected = self.lexer.projections[lexers] >= 0
        own = ~shared & ~projected
        parts = []
        if shared.any():
            parts.append(self._cache_shared(nodes[shared], lexers[shared], classes[shared]))
        if own.any():
            parts.append(self._cache_subtrees(nodes[own], lexers[own]))
        if projected.any():
            # Listed from their projections' entries, not cached: a lexeme walk meets them once.
            self._cache_projections(nodes[projected], lexers[projected])
            tokens, t_end, bnodes, blexers, b_end = self._list_subtrees(nodes[projected], lexers[projected])
            parts.append((tokens[: int(t_end[-1])], bnodes[: int(b_end[-1])], blexers[: int(b_end[-1])]))
        return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))

    def _cache_subtrees(self, nodes: np.ndarray, lexers: np.ndarray) -> tuple[np.ndarray, ...]:
        """Put the lexeme parts of the subtrees ``(nodes[k], lexers[k])`` in the subtree cache.

        A lexer state with a projection (:func:`~.kernels.lexer_projection`: an identifier with
        keywords) gets its projection's entry with the keywords' boundaries patched: the
        projection's entry is listed first when missing, once for all the states that share it.
        Returns the parts of the distinct pairs: ``(tokens, boundary_nodes, boundary_lexers)``.
        """
        return self._add_listings(self._cache_projections(nodes, lexers))

    def _cache_projections(self, nodes: np.ndarray, lexers: np.ndarray) -> np.ndarray:
        """Cache the missing entries of the projections of the subtrees ``(nodes[k], lexers[k])``
        (:func:`~.kernels.lexer_projection`); returns the subtrees' sorted distinct keys."""
        index = self.subtrees.index
        keys, missing = subtree_keys(nodes, lexers, self.lexer.projections, index.keys, index.vals)
        if missing.shape[0]:
            self._add_listings(missing)
        return keys

    def _add_listings(self, keys: np.ndarray) -> tuple[np.ndarray, ...]:
        """List the subtrees of the sorted ``keys`` and add them to the subtree cache; returns
        their parts ``(tokens, boundary_nodes, boundary_lexers)``."""
        roots = (keys // LEX_STRIDE).astype(np.int32)
        starts = (keys % LEX_STRIDE).astype(np.int32)
        tokens, t_end, bnodes, blexers, b_end = self._list_subtrees(roots, starts)
        self.subtrees.add_batch(keys, tokens, t_end, bnodes, blexers, b_end)
        n_t, n_b = int(t_end[-1]), int(b_end[-1])
        return tokens[:n_t], bnodes[:n_b], blexers[:n_b]

    def _lockstep(self, root: int, lx: int, single: int) -> int:
        """:func:`~.kernels.lockstep_patches` of ``(root, lx)`` and its projection ``single``,
        growing the lexer when it asks; the patches are in the scratch ``lock`` arrays."""
        trie, lexer = self.trie, self.lexer
        lock = _scratch(trie).lock
        return lexer.run(
            lambda lxs, lxd: lockstep_patches(
                trie.node_byte, trie.node_depth, trie.node_skip, lexer.trans, root, lx, single, lock, lxs, lxd
            )
        )

    def _list_subtrees(self, roots: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, ...]:
        """The lexeme parts of subtrees as lists: ``(tokens, t_end, bnodes, blexers, b_end)``."""
        trie = self.trie
        skips = trie.node_skip[roots]
        # Room for every token and node below the roots: no walk can need more.
        tokens = np.empty(int((trie.token_start[skips] - trie.token_start[roots + 1]).sum()), np.int32)
        size = int((skips - roots - 1).sum())
        bnodes = np.empty(size, dtype=np.int32)
        blexers = np.empty(size, dtype=np.int32)
        t_end, b_end, _, _ = self._walk_subtrees(roots, starts, _NO_MASK, tokens, bnodes, blexers)
        return tokens, t_end, bnodes, blexers, b_end

    def _shared_classes(self, lexers: np.ndarray) -> np.ndarray:
        """The shared class of each lexer state (-1: none): one terminal alive, in a shared state."""
        member = self.lexer.single_members(lexers)
        return np.where(member >= 0, self._class_of[np.maximum(member, 0)], -1)

    def _cache_shared(
        self, nodes: np.ndarray, lexers: np.ndarray, classes: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        keys, first = np.unique(nodes.astype(np.int64) * LEX_STRIDE + classes, return_index=True)
        roots, starts = nodes[first].astype(np.int32), lexers[first].astype(np.int32)
        tokens, t_end, bnodes, blexers, b_end = self._list_subtrees(roots, starts)
        # Keep the ends under the accepting state (the terminal's own): the other ends cannot end a
        # lexeme, and their lexer states are the terminal's, not the class's.
        finals = self._shared_final[self.lexer.terminal_of(self.lexer.single_members(starts))]
        n_b = int(b_end[-1])
        walk = np.repeat(np.arange(keys.shape[0]), np.diff(b_end, prepend=0))
        keep = blexers[:n_b] == finals[walk]
        kept_nodes = bnodes[:n_b][keep]
        kept_end = np.cumsum(np.bincount(walk[keep], minlength=keys.shape[0]))
        self.shared_subtrees.add_batch(keys, tokens, t_end, kept_nodes, np.zeros_like(kept_nodes), kept_end)
        return tokens[: int(t_end[-1])], kept_nodes, blexers[:n_b][keep]

    def _walk_subtrees(
        self,
        roots: np.ndarray,
        lexers: np.ndarray,
        out: np.ndarray,
        tokens: np.ndarray,
        bnodes: np.ndarray,
        blexers: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Run :func:`~.kernels.subtree_walks` to the end, growing the lexer when it asks.

        Returns the pools' ends after each walk, ``(t_end, b_end)``, and (mask walks only) the
        numbers of subtrees deferred to the cache and of keys met for the first time, written to
        the scratch arrays ``d_node`` / ``d_lexer`` and ``fresh``.
        """
        trie = self.trie
        lexer = self.lexer
        sc = _scratch(trie)
        t_end = np.empty(roots.shape[0], dtype=np.int64)
        b_end = np.empty(roots.shape[0], dtype=np.int64)
        resume = np.array([0, roots[0] + 1, 0, 0, 0, 0], dtype=np.int64)
        while True:
            self.walk_calls += 1
            status, need = self._subtree_kernel(
                trie.node_byte,
                trie.node_depth,
                trie.node_skip,
                trie.token_start,
                trie.token_ids,
                trie.node_token,
                trie.node_classes,
                lexer.trans,
                roots,
                lexers,
                out,
                tokens,
                t_end,
                bnodes,
                blexers,
                b_end,
                sc.stack_l,
                resume,
                self.min_cached_subtree,
                self.subtrees.arrays(),
                sc.d_node,
                sc.d_lexer,
                sc.fresh,
                self.min_shared_subtree,
                self._class_of,
                self._shared_final,
                self.shared_subtrees.arrays(),
                sc.lock,
                *lexer.kernel_arrays(),
            )
            if status == DONE:
                return t_end, b_end, int(resume[4]), int(resume[5])
            lexer.ensure_row(int(need))

    def _compute_mask(self, parser_id: int, lx: int) -> np.ndarray:
        """Mask of ``(parser_id, lx)``: the lexeme part, plus walks from each lexeme boundary.

        A walk pass stops below the nodes that need a lexeme start state or a subtree cache entry
        not computed yet, more room in the parser's or the lexer's arrays, or an accepted
        terminal set new in this pass; those are provided here and the pending nodes walked again.
        """
        inside, bnodes, blex = self.lexeme_info(lx)
        n = bnodes.shape[0]
        if n == 0:
            return inside  # no token ends the lexeme: the mask depends on the lexer state only
        out = inside.copy()
        trie = self.trie
        lexer = self.lexer
        parser = self.parser
        sc = _scratch(trie)
        e_node, e_parser, e_lexer = sc.e_node, sc.e_parser, sc.e_lexer
        p_node, p_parser, p_lexer = sc.p_node, sc.p_parser, sc.p_lexer
        e_node[:n] = bnodes
        e_parser[:n] = parser_id
        e_lexer[:n] = blex
        sc.recent_keys.fill(-1)  # set ids are reused once a speculation ends
        while n:
            self.walk_calls += 1
            acc_t0, acc_terms = self._acc_arrays()
            n, n_miss, n_def, n_fresh = self._entries_kernel(
                trie.node_byte,
                trie.node_depth,
                trie.node_skip,
                trie.token_start,
                trie.token_ids,
                trie.node_token,
                trie.node_classes,
                lexer.trans,
                lexer.acc,
                lexer.acc_ignore,
                parser.grammar_arrays,
                parser.arrays(),
                parser.transition_arrays(),
                acc_t0,
                acc_terms,
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
                self.min_cached_subtree,
                self.subtrees.arrays(),
                sc.d_node,
                sc.d_lexer,
                sc.fresh,
                sc.recent_keys,
                sc.recent_next,
                sc.lock,
                *lexer.kernel_arrays(),
            )
            if n_fresh:
                self.subtrees.mark_seen(sc.fresh[:n_fresh])
            if n_miss:
                for code in np.unique(sc.miss[:n_miss]).tolist():
                    if code < 0:
                        lexer.ensure_row(-1 - code)
                    else:
                        self._record_lexeme_start(code)
            if n_def:
                self._cache_subtrees(sc.d_node[:n_def], sc.d_lexer[:n_def])
            if parser.needs_growth:
                parser.grow()
            e_node, p_node = p_node, e_node
            e_parser, p_parser = p_parser, e_parser
            e_lexer, p_lexer = p_lexer, e_lexer
        return out


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
        self.d_node = np.zeros(n, dtype=np.int32)
        self.d_lexer = np.zeros(n, dtype=np.int32)
        self.fresh = np.zeros(n, dtype=np.int64)
        self.b_node = np.zeros(n, dtype=np.int32)
        self.b_lexer = np.zeros(n, dtype=np.int32)
        # walk_entries' direct-mapped table of the parser transitions met in the current mask.
        self.recent_keys = np.full(2048, -1, dtype=np.int64)
        self.recent_next = np.zeros(2048, dtype=np.int64)
        self.stack_p = np.zeros(trie.max_depth + 2, dtype=np.int64)
        self.stack_l = np.zeros(trie.max_depth + 2, dtype=np.int64)
        # lockstep_patches' stacks and the boundaries it patches.
        self.lock = (
            np.zeros(trie.max_depth + 2, dtype=np.int64),
            np.zeros(trie.max_depth + 2, dtype=np.int64),
            np.zeros(n, dtype=np.int32),
            np.zeros(n, dtype=np.int32),
        )


# Arguments of subtree_walks: the walk of the whole trie, and the outputs a walk does not use.
_ROOT = np.zeros(1, dtype=np.int32)
_NO_MASK = np.zeros(0, dtype=np.uint32)
_NO_TOKENS = np.zeros(0, dtype=np.int32)
_SCRATCH: weakref.WeakKeyDictionary[TokenTrie, _Scratch] = weakref.WeakKeyDictionary()


def _scratch(trie: TokenTrie) -> _Scratch:
    found = _SCRATCH.get(trie)
    if found is None:
        found = _SCRATCH[trie] = _Scratch(trie)
    return found
