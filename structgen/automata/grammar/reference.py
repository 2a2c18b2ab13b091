"""A plain-Python reference recognizer for the grammar engine's semantics (for tests).

It shares nothing with the engine but the terminal byte DFAs: the lexer is a tuple of alive
terminals stepped byte by byte, and the parser is a textbook Earley recognizer (sets of
``(production, dot, origin)`` items closed by a predict/complete worklist; an empty-span
completion is remembered so that later predictions of the same nonterminal advance over it). It
implements the rules documented in :mod:`structgen.automata.grammar.engine`: greedy lexing (a
lexeme ends only when the next byte cannot extend any alive terminal), contextual terminals (those
the parser expects plus the ignored ones), highest priority wins and non-ignored beats ignored
among the accepting terminals, all remaining candidates scanned at once; a guard terminal is alive
wherever a terminal it guards is expected, a byte only guard-only terminals can read is refused,
and a lexeme won only by unexpected terminals is refused.

It is slow and meant for tests: :meth:`ReferenceRecognizer.allowed_tokens` feeds every token of a
vocabulary after a prefix (sharing the work of common token prefixes, so it is a walk over the
sorted tokens, but every state is computed by the reference rules from the state before it).
"""

from __future__ import annotations

from dataclasses import dataclass

from structgen.automata.byte_dfa import ByteDFA
from structgen.automata.cfg import ContextFreeGrammar
from structgen.automata.grammar.earley import analyze_grammar
from structgen.vocabulary import Vocabulary

Item = tuple[int, int, int]  # (production, dot, origin set index)


@dataclass(frozen=True)
class RefState:
    """Earley sets so far, and the alive terminals of the unfinished lexeme (``None``: none)."""

    sets: tuple[frozenset[Item], ...]
    alive: tuple[tuple[int, int, bool], ...] | None


class ReferenceRecognizer:
    """Byte-level recognizer of ``grammar`` with the engine's lexing rules (see module doc)."""

    def __init__(
        self,
        grammar: ContextFreeGrammar,
        dfas: dict[str, ByteDFA],
        guards: dict[str, frozenset[str]] | None = None,
    ) -> None:
        tables = analyze_grammar(grammar)
        self.num_t = tables.num_terminals
        self.productions = tables.productions
        self.names = tables.terminal_names
        self.dfas = [dfas[name] for name in self.names]
        self.priority = [grammar.terminals[name].priority for name in self.names]
        self.ignored = frozenset(i for i, name in enumerate(self.names) if name in grammar.ignore)
        index = {name: i for i, name in enumerate(self.names)}
        self.guards = {
            index[g]: {index[k] for k in ks if k in index} for g, ks in (guards or {}).items() if g in index
        }
        self.by_lhs: dict[int, list[int]] = {}
        for p, (lhs, _) in enumerate(self.productions):
            self.by_lhs.setdefault(lhs, []).append(p)
        start_set = self._closure({(p, 0, 0) for p in self.by_lhs[0]}, 0, ())
        self.initial = RefState((start_set,), None)

    # --- Earley ----------------------------------------------------------------------------------

    def _closure(self, items: set[Item], index: int, sets: tuple[frozenset[Item], ...]) -> frozenset[Item]:
        """Predict and complete ``items`` as Earley set number ``index`` (a worklist).

        Nullable rules: a nonterminal completed with an empty span in this set is remembered, so
        an item predicting it later is advanced over it as well.
        """
        current: set[Item] = set()
        empty_done: set[int] = set()
        work = list(items)
        while work:
            item = work.pop()
            if item in current:
                continue
            current.add(item)
            p, dot, origin = item
            rhs = self.productions[p][1]
            if dot < len(rhs):
                sym = rhs[dot]
                if sym >= self.num_t:
                    nt = sym - self.num_t
                    work.extend((q, 0, index) for q in self.by_lhs.get(nt, ()))
                    if nt in empty_done:
                        work.append((p, dot + 1, origin))
                continue
            lhs = self.productions[p][0]
            if origin == index:
                empty_done.add(lhs)
                waiting_in = list(current)
            else:
                waiting_in = sets[origin]
            for q, qdot, qorigin in waiting_in:
                qrhs = self.productions[q][1]
                if qdot < len(qrhs) and qrhs[qdot] == self.num_t + lhs:
                    work.append((q, qdot + 1, qorigin))
        return frozenset(current)

    def _expected(self, items: frozenset[Item]) -> set[int]:
        out = set()
        for p, dot, _ in items:
            rhs = self.productions[p][1]
            if dot < len(rhs) and rhs[dot] < self.num_t:
                out.add(rhs[dot])
        return out

    def _scan(
        self, sets: tuple[frozenset[Item], ...], terminals: set[int]
    ) -> tuple[frozenset[Item], ...] | None:
        kernel = set()
        for p, dot, origin in sets[-1]:
            rhs = self.productions[p][1]
            if dot < len(rhs) and rhs[dot] in terminals:
                kernel.add((p, dot + 1, origin))
        if not kernel:
            return None
        return (*sets, self._closure(kernel, len(sets), sets))

    def _sentence_done(self, items: frozenset[Item]) -> bool:
        return any(p == 0 and dot == 1 and origin == 0 for p, dot, origin in items)

    # --- lexing -----------------------------------------------------------------------------------

    def _start_lexeme(self, sets: tuple[frozenset[Item], ...]) -> tuple[tuple[int, int, bool], ...]:
        """Alive terminals at a lexeme start: ``(terminal, dfa state, only alive as a guard)``."""
        real = self._expected(sets[-1]) | self.ignored
        guards = {g for g, ks in self.guards.items() if ks & real} - real
        return tuple((t, self.dfas[t].initial, t in guards) for t in sorted(real | guards))

    def _step_alive(
        self, alive: tuple[tuple[int, int, bool], ...], byte: int
    ) -> tuple[tuple[int, int, bool], ...]:
        return tuple(
            (t, int(self.dfas[t].transitions[s, byte]), g)
            for t, s, g in alive
            if self.dfas[t].transitions[s, byte] >= 0
        )

    def _finish_lexeme(self, state: RefState) -> tuple[frozenset[Item], ...] | None:
        """The Earley sets after ending the unfinished lexeme, or ``None`` if it is no lexeme."""
        if state.alive is None:
            return state.sets
        accepting = [t for t, s, _ in state.alive if self.dfas[t].accepting[s]]
        if not accepting:
            return None
        best = max(self.priority[t] for t in accepting)
        top = {t for t in accepting if self.priority[t] == best}
        kept = top - self.ignored
        if not kept:
            return state.sets
        return self._scan(state.sets, kept)

    def feed(self, state: RefState, byte: int) -> RefState | None:
        """The state after one more byte, or ``None`` if the output is no longer valid."""
        alive = state.alive if state.alive is not None else self._start_lexeme(state.sets)
        stepped = self._step_alive(alive, byte)
        if stepped:
            # Longest match: the lexeme goes on. If only guards go on, it can only end refused.
            return RefState(state.sets, stepped) if not all(g for _, _, g in stepped) else None
        if state.alive is None:
            return None
        sets = self._finish_lexeme(state)
        if sets is None:
            return None
        restart = self._step_alive(self._start_lexeme(sets), byte)
        if not restart or all(g for _, _, g in restart):
            return None
        return RefState(sets, restart)

    def feed_bytes(self, state: RefState | None, data: bytes) -> RefState | None:
        """:meth:`feed` over several bytes."""
        for byte in data:
            if state is None:
                return None
            state = self.feed(state, byte)
        return state

    def is_accepting(self, state: RefState) -> bool:
        """Whether the output is a complete sentence."""
        sets = self._finish_lexeme(state)
        return sets is not None and self._sentence_done(sets[-1])

    def accepts(self, data: bytes) -> bool:
        """Whether ``data`` is a complete sentence."""
        state = self.feed_bytes(self.initial, data)
        return state is not None and self.is_accepting(state)

    def allowed_tokens(self, state: RefState, vocab: Vocabulary) -> set[int]:
        """Ids of the text tokens ``t`` such that the output after ``t`` is still valid."""
        tokens = sorted((data, i) for i, data in enumerate(vocab.token_bytes) if data)
        allowed: set[int] = set()
        # Stack of (bytes prefix, state after it); tokens are sorted so prefixes come first.
        stack: list[tuple[bytes, RefState | None]] = [(b"", state)]
        for data, token_id in tokens:
            while not data.startswith(stack[-1][0]):
                stack.pop()
            base, cur = stack[-1]
            for k in range(len(base), len(data)):
                cur = self.feed(cur, data[k]) if cur is not None else None
                stack.append((data[: k + 1], cur))
            if cur is not None:
                allowed.add(token_id)
        return allowed
