"""Byte-level DFAs: character automata lowered to exact UTF-8 byte automata.

Language models emit bytes, and a token may end (or start) in the middle of a multi-byte character,
so every constraint is enforced over bytes. :func:`byte_dfa_from_fsm` lowers an interegular character
FSM to a DFA over bytes that accepts exactly the UTF-8 encodings of the FSM's strings: overlong
forms, surrogates and code points past U+10FFFF are never produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from interegular.fsm import FSM, anything_else

from structgen.automata import kernels
from structgen.errors import EmptyLanguageError

MAX_CODE_POINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)
DEAD = -1


@dataclass(frozen=True)
class ByteDFA:
    """A deterministic automaton over bytes.

    ``transitions[s, b]`` is the state after byte ``b`` from state ``s``, or ``-1`` (dead). Every
    state of a DFA built here is reachable from ``initial`` and can still reach an accepting state,
    so "not dead" means "still a prefix of some accepted string".
    """

    transitions: np.ndarray
    accepting: np.ndarray
    initial: int
    has_exit: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_exit", (self.transitions >= 0).any(axis=1))

    @property
    def num_states(self) -> int:
        """Number of states."""
        return self.transitions.shape[0]

    def walk(self, data: bytes, state: int | None = None) -> int:
        """The state after reading ``data`` from ``state`` (default: initial), or ``-1``."""
        s = self.initial if state is None else state
        for b in data:
            s = int(self.transitions[s, b])
            if s < 0:
                return DEAD
        return s

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` is accepted in full."""
        s = self.walk(data)
        return s >= 0 and bool(self.accepting[s])

    def forced_bytes(self, state: int, limit: int = 4096) -> bytes:
        """Bytes every accepted continuation from ``state`` starts with (stops at a choice or accept)."""
        out = bytearray()
        s = state
        while len(out) < limit and not self.accepting[s]:
            exits = np.flatnonzero(self.transitions[s] >= 0)
            if exits.shape[0] != 1:
                break
            out.append(int(exits[0]))
            s = int(self.transitions[s, exits[0]])
        return bytes(out)


# --- lowering characters to UTF-8 bytes ---------------------------------------------------------


class _Intervals:
    """A total function code point -> target state, as sorted disjoint intervals (target -1 = dead)."""

    __slots__ = ("his", "los", "targets")

    def __init__(self, los: np.ndarray, his: np.ndarray, targets: np.ndarray) -> None:
        self.los, self.his, self.targets = los, his, targets

    def lookup(self, cp: int) -> int:
        i = int(np.searchsorted(self.los, cp, side="right")) - 1
        return int(self.targets[i])

    def restrict(self, lo: int, hi: int, min_valid: int) -> tuple[tuple[int, int, int], ...]:
        """The function on ``[lo, hi]`` relative to ``lo``, with invalid code points mapped to -1."""
        first = int(np.searchsorted(self.los, lo, side="right")) - 1
        pieces: list[tuple[int, int, int]] = []
        i = first
        while i < self.los.shape[0] and self.los[i] <= hi:
            a, b, t = max(int(self.los[i]), lo), min(int(self.his[i]), hi), int(self.targets[i])
            for va, vb in _valid_parts(a, b, min_valid):
                if pieces and pieces[-1][2] == t and pieces[-1][1] == va - lo - 1:
                    pieces[-1] = (pieces[-1][0], vb - lo, t)
                else:
                    pieces.append((va - lo, vb - lo, t))
            i += 1
        return _fill_gaps(pieces, hi - lo)


def _valid_parts(a: int, b: int, min_valid: int) -> list[tuple[int, int]]:
    """Sub-ranges of ``[a, b]`` that are encodable scalar values of the current UTF-8 length."""
    a = max(a, min_valid)
    b = min(b, MAX_CODE_POINT)
    if a > b:
        return []
    s_lo, s_hi = SURROGATES
    if b < s_lo or a > s_hi:
        return [(a, b)]
    parts = []
    if a < s_lo:
        parts.append((a, s_lo - 1))
    if b > s_hi:
        parts.append((s_hi + 1, b))
    return parts


def _fill_gaps(pieces: list[tuple[int, int, int]], span: int) -> tuple[tuple[int, int, int], ...]:
    """Complete ``pieces`` to cover ``[0, span]``, gaps mapping to dead, merging equal neighbours."""
    out: list[tuple[int, int, int]] = []
    pos = 0
    for a, b, t in pieces:
        if a > pos:
            _append(out, pos, a - 1, DEAD)
        _append(out, a, b, t)
        pos = b + 1
    if pos <= span:
        _append(out, pos, span, DEAD)
    return tuple(out)


def _append(out: list[tuple[int, int, int]], a: int, b: int, t: int) -> None:
    if out and out[-1][2] == t:
        out[-1] = (out[-1][0], b, t)
    else:
        out.append((a, b, t))


# Lead bytes of multi-byte sequences: (first lead, last lead, payload mask, continuation bytes,
# smallest code point that this length may encode).
_LEAD_GROUPS = ((0xC2, 0xDF, 0x1F, 1, 0x80), (0xE0, 0xEF, 0x0F, 2, 0x800), (0xF0, 0xF4, 0x07, 3, 0x10000))
# One entry per lead byte: (byte, first code point, last code point, continuation bytes, min valid).
_LEADS = tuple(
    (lead, (lead & payload) * 64**k, (lead & payload) * 64**k + 64**k - 1, k, min_valid)
    for first, last, payload, k, min_valid in _LEAD_GROUPS
    for lead in range(first, last + 1)
)
_LEAD_BYTES = np.array([lead[0] for lead in _LEADS])
# The encodable code points of each lead byte (overlong forms and values past U+10FFFF cut off).
_LEAD_LO = np.array([max(lead[1], lead[4]) for lead in _LEADS], dtype=np.int64)
_LEAD_HI = np.array([min(lead[2], MAX_CODE_POINT) for lead in _LEADS], dtype=np.int64)
_ASCII = np.arange(0x80, dtype=np.int64)
# Lead bytes whose first continuation byte is restricted (no overlong forms, no surrogates, nothing
# past U+10FFFF); every other continuation byte may be anything in 0x80-0xBF.
_FIRST_CONTINUATION = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}


class _Lowering:
    """Builds the byte transition table, sharing continuation sub-automata between states."""

    def __init__(self, num_char_states: int) -> None:
        self.rows: list[np.ndarray] = [np.full(256, DEAD, dtype=np.int32) for _ in range(num_char_states)]
        self.shared: dict[tuple[int, tuple[tuple[int, int, int], ...]], int] = {}
        self.constant: dict[tuple[int, int, int, int], int] = {}

    def new_state(self) -> int:
        self.rows.append(np.full(256, DEAD, dtype=np.int32))
        return len(self.rows) - 1

    def lower_state(self, state: int, func: _Intervals) -> None:
        row = self.rows[state]
        row[:0x80] = func.targets[np.searchsorted(func.los, _ASCII, side="right") - 1]
        first = np.searchsorted(func.los, _LEAD_LO, side="right") - 1
        last = np.searchsorted(func.los, _LEAD_HI, side="right") - 1
        for j, (lead, lo, _, k, min_valid) in enumerate(_LEADS):
            if first[j] == last[j]:
                row[lead] = self.constant_lead(j, int(func.targets[first[j]]))
            else:
                row[lead] = self.node(func, lo, k, min_valid)

    def constant_lead(self, j: int, target: int) -> int:
        """Sub-automaton of lead byte number ``j`` when all its code points go to ``target``."""
        if target == DEAD:
            return DEAD
        lead, _, _, k, _ = _LEADS[j]
        first, last = _FIRST_CONTINUATION.get(lead, (0x80, 0xBF))
        key = (first, last, k, target)
        cached = self.constant.get(key)
        if cached is None:
            cached = self.constant[key] = self.new_state()
            self.rows[cached][first : last + 1] = self.chain(k - 1, target)
        return cached

    def chain(self, k: int, target: int) -> int:
        """State that reads any ``k`` continuation bytes, then is ``target``."""
        if k == 0:
            return target
        key = (0x80, 0xBF, k, target)
        cached = self.constant.get(key)
        if cached is None:
            cached = self.constant[key] = self.new_state()
            self.rows[cached][0x80:0xC0] = self.chain(k - 1, target)
        return cached

    def node(self, func: _Intervals, lo: int, k: int, min_valid: int) -> int:
        """State that reads ``k`` continuation bytes of a code point in ``[lo, lo + 64**k)``."""
        pieces = func.restrict(lo, lo + 64**k - 1, min_valid)
        if len(pieces) == 1 and pieces[0][2] == DEAD:
            return DEAD
        key = (k, pieces)
        cached = self.shared.get(key)
        if cached is not None:
            return cached
        state = self.new_state()
        self.shared[key] = state
        step = 64 ** (k - 1)
        row = self.rows[state]
        for c in range(64):
            if k == 1:
                row[0x80 + c] = _lookup_pieces(pieces, c)
            else:
                row[0x80 + c] = self.node(func, lo + c * step, k - 1, min_valid)
        return state


def _lookup_pieces(pieces: tuple[tuple[int, int, int], ...], offset: int) -> int:
    for a, b, t in pieces:
        if a <= offset <= b:
            return t
    return DEAD


def _char_functions(fsm: FSM, states: list, index: dict) -> list[_Intervals]:
    """For each of ``states``, its transition function over all code points as intervals."""
    alphabet = fsm.alphabet
    explicit = sorted(
        (ord(ch), key) for ch, key in alphabet._symbol_mapping.items() if ch is not anything_else
    )
    default_key = alphabet._symbol_mapping.get(anything_else)
    cps = np.array([cp for cp, _ in explicit], dtype=np.int64)
    keys = np.array([key for _, key in explicit], dtype=np.int64)
    num_keys = max(alphabet._symbol_mapping.values(), default=-1) + 1
    functions = []
    for state in states:
        by_key = np.full(num_keys + 1, DEAD, dtype=np.int64)
        for key, target in fsm.map.get(state, {}).items():
            by_key[key] = index[target]
        default = int(by_key[default_key]) if default_key is not None else DEAD
        functions.append(_intervals_from_points(cps, by_key[keys], default))
    return functions


def _intervals_from_points(cps: np.ndarray, targets: np.ndarray, default: int) -> _Intervals:
    """Intervals for "explicit code points map to ``targets``, every other code point to ``default``"."""
    after = cps + 1
    gap_starts = after[(after <= MAX_CODE_POINT) & ~np.isin(after, cps)]
    if cps.shape[0] == 0 or cps[0] != 0:
        gap_starts = np.concatenate([[0], gap_starts])
    starts = np.concatenate([cps, gap_starts])
    outs = np.concatenate([targets, np.full(gap_starts.shape[0], default, dtype=np.int64)])
    order = np.argsort(starts, kind="stable")
    starts, outs = starts[order], outs[order]
    change = np.ones(starts.shape[0], dtype=bool)
    change[1:] = outs[1:] != outs[:-1]
    los, outs = starts[change], outs[change]
    his = np.append(los[1:] - 1, MAX_CODE_POINT)
    return _Intervals(los.astype(np.int64), his.astype(np.int64), outs.astype(np.int64))


def byte_dfa_from_fsm(fsm: FSM) -> ByteDFA:
    """Lower a character-level interegular FSM to a trimmed, minimized :class:`ByteDFA`.

    Raises :class:`EmptyLanguageError` when the FSM accepts nothing.
    """
    states = sorted(fsm.states, key=repr)
    index = {state: i for i, state in enumerate(states)}
    lowering = _Lowering(len(states))
    for state, func in zip(states, _char_functions(fsm, states, index), strict=True):
        lowering.lower_state(index[state], func)
    transitions = np.stack(lowering.rows)
    accepting = np.zeros(transitions.shape[0], dtype=bool)
    for state in fsm.finals:
        accepting[index[state]] = True
    return finalize(transitions, accepting, index[fsm.initial])


def literal_set_dfa(literals: list[bytes]) -> ByteDFA:
    """The DFA accepting exactly ``literals``: their byte trie, minimized (shared suffixes merge)."""
    rows = [np.full(256, DEAD, dtype=np.int32)]
    accepting = [False]
    for literal in literals:
        state = 0
        for b in literal:
            nxt = int(rows[state][b])
            if nxt < 0:
                nxt = len(rows)
                rows[state][b] = nxt
                rows.append(np.full(256, DEAD, dtype=np.int32))
                accepting.append(False)
            state = nxt
        accepting[state] = True
    return finalize(np.stack(rows), np.array(accepting), 0)


def finalize(transitions: np.ndarray, accepting: np.ndarray, initial: int) -> ByteDFA:
    """Trim (keep states reachable and co-reachable) and minimize a byte transition table."""
    transitions, accepting, initial = _trim(transitions, accepting, initial)
    return _minimize(transitions, accepting, initial)


def _trim(transitions: np.ndarray, accepting: np.ndarray, initial: int) -> tuple[np.ndarray, np.ndarray, int]:
    live = kernels.useful_states(transitions, accepting, initial)
    if not live[initial]:
        raise EmptyLanguageError("the constraint accepts no string")
    keep = np.flatnonzero(live)
    remap = np.full(transitions.shape[0] + 1, DEAD, dtype=np.int32)
    remap[keep] = np.arange(keep.shape[0], dtype=np.int32)
    # Index -1 (dead) reads remap's last slot, which is dead too.
    table = remap[transitions[keep]]
    return table, accepting[keep], int(remap[initial])


def distinct_columns(transitions: np.ndarray) -> np.ndarray:
    """Indices of one byte per class of bytes that every state treats alike."""
    weights = np.random.default_rng(0).integers(1, 2**61, size=transitions.shape[0])
    fingerprint = weights @ (transitions.astype(np.int64) + 1)
    _, first, inverse = np.unique(fingerprint, return_index=True, return_inverse=True)
    if not np.array_equal(transitions[:, first[inverse]], transitions):  # a fingerprint collision
        _, first = np.unique(transitions, axis=1, return_index=True)
    return np.sort(first)


def _minimize(transitions: np.ndarray, accepting: np.ndarray, initial: int) -> ByteDFA:
    """Merge equivalent states (Hopcroft) over byte classes: columns every state treats alike."""
    classes = np.ascontiguousarray(transitions[:, distinct_columns(transitions)])
    block, count = kernels.equivalence_classes(classes, accepting)
    representative = np.zeros(count, dtype=np.int64)
    representative[block] = np.arange(block.shape[0])
    table = transitions[representative]
    table = np.where(table >= 0, block[np.maximum(table, 0)], DEAD).astype(np.int32)
    return ByteDFA(np.ascontiguousarray(table), accepting[representative], int(block[initial]))
