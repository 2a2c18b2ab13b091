"""Incremental Earley recognition over terminals, with hash-consed (shared, immutable) Earley sets.

An Earley set is closed (predict and complete done) once, when it is built, and never changes. Its
items are ``(item, origin)`` where ``origin`` is the set the item started in (possibly the set
itself, for predicted items). Two scans that produce the same kernel -- the items advanced over the
scanned terminal, with the same origin sets -- produce the same set: :meth:`EarleyParser.scan`
interns sets by kernel, so a parser state is one :class:`EarleySet` object, transitions are
memoized per set, and left-recursive lists (``a: a "," b | b``, what Lark makes of ``b ("," b)*``)
come back to the same set at every repetition. Rolling back is free: an older state is just an older
set object.

Nullable nonterminals use the Aycock-Horspool rule: predicting a nullable ``B`` also advances the
dot over it, so completions with an empty span never need to look at the set being built.

Speed: predicted items (origin: the set itself) do not depend on the set, so they live in shared
:class:`PredictionGroup` objects; a set stores only its explicit items, as flat tuples of integers
(origins are set ids), which the garbage collector does not need to traverse. A scan whose kernel
items are all predicted ones of the scanned set (``(((``, ``- - -``) is instantiated from a cached
template instead of being closed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from structgen.automata.cfg import ContextFreeGrammar
from structgen.errors import EmptyLanguageError, GrammarError

AUGMENTED_START = "$start"


class EmptyGrammarError(GrammarError, EmptyLanguageError):
    """The grammar derives no sentence (its start symbol is unproductive)."""


@dataclass(frozen=True)
class GrammarTables:
    """A validated grammar, numbered for the parser.

    Terminals are ``0 .. T-1`` (in ``terminal_names`` order) and nonterminals ``0 .. N-1``; in a
    production's right-hand side a nonterminal ``n`` is written ``T + n``. Items are numbered so
    that advancing the dot is ``item + 1``: item ``i`` is production ``item_prod[i]`` with the dot
    before symbol ``item_next[i]`` (``-1`` once complete). Nonterminal 0 is the augmented start.
    """

    terminal_names: tuple[str, ...]
    nonterminal_names: tuple[str, ...]
    productions: tuple[tuple[int, tuple[int, ...]], ...]
    item_next: tuple[int, ...]
    item_lhs: tuple[int, ...]
    first_item: tuple[int, ...]
    nullable: tuple[bool, ...]
    predictions: tuple[tuple[int, ...], ...]
    predicted_nonterminals: tuple[frozenset[int], ...]

    @property
    def num_terminals(self) -> int:
        """Number of terminals the parser knows (``T``)."""
        return len(self.terminal_names)


def analyze_grammar(grammar: ContextFreeGrammar) -> GrammarTables:
    """Validate ``grammar`` and number it for :class:`EarleyParser`.

    The terminals kept are those used by a production reachable from the start, and the ignored
    ones, in the order of ``grammar.terminals``.

    Raises :class:`GrammarError` naming an undefined symbol or a missing start rule, and
    :class:`EmptyGrammarError` when the start symbol derives no sentence. Productions that use an
    unproductive nonterminal are dropped (they cannot take part in any sentence, so the language is
    unchanged), as are nonterminals unreachable from the start.
    """
    terminals = grammar.terminals
    rules: dict[str, list[tuple[str, ...]]] = {}
    for prod in grammar.productions:
        if prod.lhs in terminals:
            raise GrammarError(f"{prod.lhs!r} is both a terminal and the left-hand side of a rule")
        rules.setdefault(prod.lhs, []).append(tuple(prod.rhs))
    for lhs, alternatives in rules.items():
        for rhs in alternatives:
            for sym in rhs:
                if sym not in terminals and sym not in rules:
                    raise GrammarError(f"rule {lhs!r} uses undefined symbol {sym!r}")
    if grammar.start not in rules:
        raise GrammarError(f"start symbol {grammar.start!r} has no rule")

    # Productive nonterminals: least fixpoint.
    productive: set[str] = set()
    changed = True
    while changed:
        changed = False
        for lhs, alternatives in rules.items():
            if lhs in productive:
                continue
            if any(all(s in terminals or s in productive for s in rhs) for rhs in alternatives):
                productive.add(lhs)
                changed = True
    if grammar.start not in productive:
        raise EmptyGrammarError(f"start symbol {grammar.start!r} derives no sentence (empty language)")
    kept = {
        lhs: [rhs for rhs in alts if all(s in terminals or s in productive for s in rhs)]
        for lhs, alts in rules.items()
        if lhs in productive
    }
    # Reachable from the start, in discovery order (deterministic numbering).
    order = [grammar.start]
    seen = {grammar.start}
    k = 0
    while k < len(order):
        for rhs in kept[order[k]]:
            for sym in rhs:
                if sym in kept and sym not in seen:
                    seen.add(sym)
                    order.append(sym)
        k += 1

    for name in grammar.ignore:
        if name not in terminals:
            raise GrammarError(f"ignored terminal {name!r} is not defined")
    used = {s for name in order for rhs in kept[name] for s in rhs if s in terminals}
    terminal_order = [name for name in terminals if name in used or name in grammar.ignore]
    term_index = {name: i for i, name in enumerate(terminal_order)}
    num_t = len(terminal_order)
    nt_names = (AUGMENTED_START, *order)
    nt_index = {name: i for i, name in enumerate(nt_names)}

    def code(sym: str) -> int:
        if sym in terminals:
            return term_index[sym]
        return num_t + nt_index[sym]

    productions: list[tuple[int, tuple[int, ...]]] = [(0, (code(grammar.start),))]
    for name in order:
        for rhs in kept[name]:
            productions.append((nt_index[name], tuple(code(s) for s in rhs)))

    item_next: list[int] = []
    item_lhs: list[int] = []
    prod_first: list[int] = []
    for lhs, rhs in productions:
        prod_first.append(len(item_next))
        for sym in rhs:
            item_next.append(sym)
            item_lhs.append(lhs)
        item_next.append(-1)
        item_lhs.append(lhs)
    first_item_by_nt: list[list[int]] = [[] for _ in nt_names]
    for p, (lhs, _) in enumerate(productions):
        first_item_by_nt[lhs].append(prod_first[p])

    nullable = [False] * len(nt_names)
    changed = True
    while changed:
        changed = False
        for lhs, rhs in productions:
            if not nullable[lhs] and all(s >= num_t and nullable[s - num_t] for s in rhs):
                nullable[lhs] = True
                changed = True

    # Prediction closure of each nonterminal: every item X -> . gamma (and, over nullable
    # symbols, X -> alpha . gamma) that predicting it adds, all with origin "this set".
    predictions: list[tuple[int, ...]] = []
    predicted_nts: list[frozenset[int]] = []
    for n in range(len(nt_names)):
        items: list[int] = []
        done_nt = {n}
        stack = [n]
        item_seen: set[int] = set()
        while stack:
            m = stack.pop()
            for it in first_item_by_nt[m]:
                i = it
                while i not in item_seen:
                    item_seen.add(i)
                    items.append(i)
                    nx = item_next[i]
                    if nx < num_t:
                        break
                    nt = nx - num_t
                    if nt not in done_nt:
                        done_nt.add(nt)
                        stack.append(nt)
                    if not nullable[nt]:
                        break
                    i += 1
        predictions.append(tuple(items))
        predicted_nts.append(frozenset(done_nt))

    return GrammarTables(
        terminal_names=tuple(terminal_order),
        nonterminal_names=nt_names,
        productions=tuple(productions),
        item_next=tuple(item_next),
        item_lhs=tuple(item_lhs),
        first_item=tuple(prod_first),
        nullable=tuple(nullable),
        predictions=tuple(predictions),
        predicted_nonterminals=tuple(predicted_nts),
    )


class PredictionGroup:
    """The predicted items of a set of nonterminals, shared by every Earley set predicting them.

    Predicted items all have the set they are in as origin, so they do not depend on the set:
    ``by_terminal[t]`` / ``by_nonterminal[n]`` are tuples of item ids.
    """

    __slots__ = ("by_nonterminal", "by_terminal", "terminals")

    def __init__(self, items: Iterable[int], item_next: Sequence[int], num_t: int) -> None:
        by_terminal: dict[int, list[int]] = {}
        by_nonterminal: dict[int, list[int]] = {}
        for item in sorted(items):
            nxt = item_next[item]
            if nxt < 0:
                continue  # an empty-span completion: handled by the nullable rule
            if nxt < num_t:
                by_terminal.setdefault(nxt, []).append(item)
            else:
                by_nonterminal.setdefault(nxt - num_t, []).append(item)
        self.by_terminal = {t: tuple(v) for t, v in by_terminal.items()}
        self.by_nonterminal = {n: tuple(v) for n, v in by_nonterminal.items()}
        self.terminals = frozenset(by_terminal)


_NO_GROUP = PredictionGroup((), (), 0)


def _with_origin(items: tuple[int, ...], origin: int) -> tuple[int, ...]:
    """Flat ``(item, origin)`` pairs."""
    return tuple(x for item in items for x in (item, origin))


@dataclass(frozen=True)
class _Template:
    """A scan result up to its origin: items are ids, every origin is the scanned set."""

    completed: frozenset[int]
    kernel: tuple[int, ...]
    by_terminal: dict[int, tuple[int, ...]]
    by_nonterminal: dict[int, tuple[int, ...]]
    group: PredictionGroup
    terminals: tuple[int, ...]


class EarleySet:
    """One closed Earley set: an immutable parser state (see the module docstring).

    The items are the *explicit* ones, whose origin is an older set, plus the predicted ones,
    origin this set, in the shared ``group``. ``by_terminal[t]`` / ``by_nonterminal[n]`` hold the
    explicit items expecting terminal ``t`` / nonterminal ``n`` as a flat tuple ``(item0,
    origin_id0, item1, origin_id1, ...)``: origins are set ids (``parser.sets[i]``), so a set holds
    only integers and the garbage collector has almost nothing to traverse however many sets
    exist. ``terminals`` is the sorted tuple of terminals the parser accepts next, ``accepting``
    whether the input so far is a sentence; ``transitions`` memoizes :meth:`EarleyParser.scan`
    (scanned terminals -> next set id, ``-1`` when refused).
    """

    __slots__ = ("accepting", "by_nonterminal", "by_terminal", "group", "id", "terminals", "transitions")

    def __init__(self, set_id: int) -> None:
        self.id = set_id
        self.by_terminal: dict[int, tuple[int, ...]] = {}
        self.by_nonterminal: dict[int, tuple[int, ...]] = {}
        self.group = _NO_GROUP
        self.terminals: tuple[int, ...] = ()
        self.accepting = False
        self.transitions: dict[object, int] = {}

    def expecting(self, terminal: int) -> list[tuple[int, int]]:
        """Every ``(item, origin set id)`` of this set expecting ``terminal``."""
        flat = self.by_terminal.get(terminal, ())
        out = list(zip(flat[::2], flat[1::2], strict=True))
        out.extend((item, self.id) for item in self.group.by_terminal.get(terminal, ()))
        return out

    def __repr__(self) -> str:
        return f"EarleySet(id={self.id}, terminals={self.terminals}, accepting={self.accepting})"


class EarleyParser:
    """Builds and interns :class:`EarleySet` objects for one grammar.

    ``initial`` is the set before any input. :meth:`scan` is the only transition. Sets are interned
    by kernel in ``_interned``; ``sets[i]`` is the set with id ``i``. Prediction groups are shared
    between sets through ``_groups``.
    """

    def __init__(self, tables: GrammarTables) -> None:
        self.tables = tables
        self._num_t = tables.num_terminals
        self._interned: dict[tuple[int, ...], int] = {}
        self._groups: dict[frozenset[int], PredictionGroup] = {}
        self._group_of_direct: dict[frozenset[int], PredictionGroup] = {}
        self._templates: dict[tuple[int, object], _Template | None] = {}
        self.sets: list[EarleySet] = []
        # Speculation (see begin_speculation): the first set id it may drop, and what to undo.
        self._spec_mark: int | None = None
        self._spec_interned: list[tuple[int, ...]] = []
        self._spec_memo: list[tuple[EarleySet, object]] = []
        self.initial = self._new_set()
        self._close(self.initial, [], {0})
        self.initial.accepting = tables.nullable[0]

    def _new_set(self) -> EarleySet:
        s = EarleySet(len(self.sets))
        self.sets.append(s)
        return s

    def begin_speculation(self) -> None:
        """Start building sets that :meth:`end_speculation` will forget.

        A token mask explores every lexeme sequence the vocabulary's tokens can form, building
        many sets only one of which (at most) the output will take; forgetting them keeps memory
        proportional to the output, not to the masks computed. Transitions between sets that
        existed before are kept.
        """
        self._spec_mark = len(self.sets)
        self._spec_interned.clear()
        self._spec_memo.clear()

    def end_speculation(self) -> int:
        """Forget the sets built since :meth:`begin_speculation`; returns the first forgotten id."""
        mark = self._spec_mark
        if mark is None:
            raise RuntimeError("end_speculation without begin_speculation")
        for ident in self._spec_interned:
            del self._interned[ident]
        for state, key in self._spec_memo:
            del state.transitions[key]
        del self.sets[mark:]
        self._spec_mark = None
        self._spec_interned.clear()
        self._spec_memo.clear()
        return mark

    @property
    def speculation_mark(self) -> int | None:
        """Ids from this one on are speculative (``None``: not speculating)."""
        return self._spec_mark

    def _group(self, direct: frozenset[int]) -> PredictionGroup:
        """The prediction group of the nonterminals ``direct`` (and all they predict)."""
        group = self._group_of_direct.get(direct)
        if group is not None:
            return group
        covered = frozenset().union(*(self.tables.predicted_nonterminals[n] for n in direct))
        group = self._groups.get(covered)
        if group is None:
            items: set[int] = set()
            for n in direct:
                items.update(self.tables.predictions[n])
            group = PredictionGroup(items, self.tables.item_next, self._num_t)
            self._groups[covered] = group
        self._group_of_direct[direct] = group
        return group

    def scan(self, state: EarleySet, terminals: Sequence[int]) -> EarleySet | None:
        """The set after reading one lexeme that is any of ``terminals``; ``None`` if none fits.

        Several terminals at once keep lexical ambiguity: the resulting set holds the parses of
        every reading.
        """
        key = terminals[0] if len(terminals) == 1 else tuple(terminals)
        cached = state.transitions.get(key)
        if cached is not None:
            return self.sets[cached] if cached >= 0 else None
        sid = state.id
        if sid and not any(t in state.by_terminal for t in terminals):
            # Every kernel item is a predicted one, origin ``state``: the new set is a function of
            # the prediction group and the terminals, plus that origin -- unless its closure
            # completes a nonterminal that some explicit item of ``state`` waits for.
            tkey = (id(state.group), key)
            template = self._templates.get(tkey)
            if template is None:
                template = self._templates[tkey] = self._template(state.group, terminals)
            if template is not None and not any(n in state.by_nonterminal for n in template.completed):
                return self._from_template(state, key, template)
        kernel: list[int] = []  # flat (item, origin id) pairs
        group_by_terminal = state.group.by_terminal
        for t in terminals:
            flat = state.by_terminal.get(t, ())
            for k in range(0, len(flat), 2):
                kernel.append(flat[k] + 1)
                kernel.append(flat[k + 1])
            for item in group_by_terminal.get(t, ()):
                kernel.append(item + 1)
                kernel.append(sid)
        if not kernel:
            state.transitions[key] = -1  # refused: true whatever is speculative
            return None
        pairs = sorted(set(zip(kernel[::2], kernel[1::2], strict=True)))
        ident = tuple(x for pair in pairs for x in pair)
        found = self._interned.get(ident)
        mark = self._spec_mark
        if found is None:
            result = self._new_set()
            self._close(result, pairs, ())
            self._interned[ident] = result.id
            if mark is not None:
                self._spec_interned.append(ident)
        else:
            result = self.sets[found]
        state.transitions[key] = result.id
        if mark is not None and state.id < mark <= result.id:
            self._spec_memo.append((state, key))
        return result

    def _template(self, group: PredictionGroup, terminals: Sequence[int]) -> _Template | None:
        """The closure of scanning ``terminals`` from a set whose kernel items all come from ``group``.

        Every item of the result starts in the scanned set. Completions only advance the group's
        items; the nonterminals completed are listed in ``completed`` (the template does not
        apply to a set with explicit items waiting for one of them). ``None``: refused.
        """
        items = sorted({item + 1 for t in terminals for item in group.by_terminal.get(t, ())})
        if not items:
            return None
        item_next = self.tables.item_next
        item_lhs = self.tables.item_lhs
        nullable = self.tables.nullable
        num_t = self._num_t
        seen = set(items)
        stack = list(items)
        by_terminal: dict[int, list[int]] = {}
        by_nonterminal: dict[int, list[int]] = {}
        direct: set[int] = set()
        completed: set[int] = set()
        while stack:
            item = stack.pop()
            nxt = item_next[item]
            if nxt < 0:
                lhs = item_lhs[item]
                completed.add(lhs)
                for waiting in group.by_nonterminal.get(lhs, ()):
                    if waiting + 1 not in seen:
                        seen.add(waiting + 1)
                        stack.append(waiting + 1)
                continue
            if nxt < num_t:
                by_terminal.setdefault(nxt, []).append(item)
            else:
                nt = nxt - num_t
                by_nonterminal.setdefault(nt, []).append(item)
                direct.add(nt)
                if nullable[nt] and item + 1 not in seen:
                    seen.add(item + 1)
                    stack.append(item + 1)
        group_after = self._group(frozenset(direct)) if direct else _NO_GROUP
        return _Template(
            completed=frozenset(completed),
            kernel=tuple(items),
            by_terminal={t: tuple(v) for t, v in by_terminal.items()},
            by_nonterminal={n: tuple(v) for n, v in by_nonterminal.items()},
            group=group_after,
            terminals=tuple(sorted(set(by_terminal) | group_after.terminals)),
        )

    def _from_template(self, state: EarleySet, key: object, template: _Template) -> EarleySet:
        """:meth:`scan` for a kernel of predicted items of ``state`` (see :meth:`_template`)."""
        sid = state.id
        ident = tuple(x for item in template.kernel for x in (item, sid))
        found = self._interned.get(ident)
        mark = self._spec_mark
        if found is None:
            result = self._new_set()
            result.by_terminal = {t: _with_origin(v, sid) for t, v in template.by_terminal.items()}
            result.by_nonterminal = {n: _with_origin(v, sid) for n, v in template.by_nonterminal.items()}
            result.group = template.group
            result.terminals = template.terminals
            self._interned[ident] = result.id
            if mark is not None:
                self._spec_interned.append(ident)
        else:
            result = self.sets[found]
        state.transitions[key] = result.id
        if mark is not None and sid < mark <= result.id:
            self._spec_memo.append((state, key))
        return result

    def _close(self, target: EarleySet, kernel: list[tuple[int, int]], predicted: Iterable[int]) -> None:
        """Complete ``kernel`` (``(item, origin id)`` pairs) into ``target`` and attach the predictions.

        Nullable nonterminals follow Aycock-Horspool. ``predicted`` are nonterminals to predict in
        any case (the augmented start, initially).
        """
        tables = self.tables
        item_next = tables.item_next
        item_lhs = tables.item_lhs
        nullable = tables.nullable
        num_t = self._num_t
        sets = self.sets
        by_terminal: dict[int, list[int]] = {}
        by_nonterminal: dict[int, list[int]] = {}
        direct: set[int] = set(predicted)
        seen: set[tuple[int, int]] = set(kernel)
        stack: list[tuple[int, int]] = list(seen)
        accepting = False
        while stack:
            item, origin = stack.pop()
            nxt = item_next[item]
            if nxt < 0:
                # Explicit items never start in ``target``: their origin is an older set.
                lhs = item_lhs[item]
                if lhs == 0 and origin == 0:
                    accepting = True
                origin_set = sets[origin]
                flat = origin_set.by_nonterminal.get(lhs, ())
                for k in range(0, len(flat), 2):
                    pair = (flat[k] + 1, flat[k + 1])
                    if pair not in seen:
                        seen.add(pair)
                        stack.append(pair)
                for waiting in origin_set.group.by_nonterminal.get(lhs, ()):
                    pair = (waiting + 1, origin)
                    if pair not in seen:
                        seen.add(pair)
                        stack.append(pair)
            elif nxt < num_t:
                bucket = by_terminal.get(nxt)
                if bucket is None:
                    bucket = by_terminal[nxt] = []
                bucket.append(item)
                bucket.append(origin)
            else:
                nt = nxt - num_t
                bucket = by_nonterminal.get(nt)
                if bucket is None:
                    bucket = by_nonterminal[nt] = []
                bucket.append(item)
                bucket.append(origin)
                direct.add(nt)
                if nullable[nt]:
                    pair = (item + 1, origin)
                    if pair not in seen:
                        seen.add(pair)
                        stack.append(pair)
        target.by_terminal = {t: tuple(v) for t, v in by_terminal.items()}
        target.by_nonterminal = {n: tuple(v) for n, v in by_nonterminal.items()}
        if direct:
            target.group = self._group(frozenset(direct))
        target.terminals = tuple(sorted(set(by_terminal) | target.group.terminals))
        target.accepting = accepting

    def parse_terminals(self, lexemes: Sequence[Sequence[int]]) -> EarleySet | None:
        """The set after a sequence of lexemes (each a set of candidate terminals), or ``None``."""
        state: EarleySet | None = self.initial
        for terminals in lexemes:
            if state is None:
                return None
            state = self.scan(state, terminals)
        return state
