"""Length-aware constraints: shortest completions of automaton states and a token-budget matcher.

With a budget of ``N`` new tokens, "valid output" means a sentence of the constraint of at most
``N`` tokens (EOS excluded). :class:`BudgetMatcher` enforces that: with ``R`` tokens left, a text
token is allowed only if, after it, the output can still be completed within ``R - 1`` tokens.
Samplers see an ordinary :class:`~structgen.matcher.Matcher` (``accepts``, ``fill_bitmask``), so
AWRS and the mask sampler sample exactly from the model restricted to this tightened constraint.

Distances. :class:`ShortestCompletion` finds a completion of a state by a breadth-first search over
:meth:`Automaton.next_state` with the vocabulary's single-byte tokens (byte-level vocabularies may
lack a few; the search uses those that exist), merging equal states and stopping at the first
accepting state or state whose completion is already known. The distance is the fewest vocabulary
tokens that spell the path found (a shortest segmentation of its bytes, every byte being a token
itself): a real completion of that many tokens wherever the automaton allows a token where it
allows its bytes one by one (automata over bytes do), so the distance is an upper bound of the
token distance and "distance <= R - 1" is a safe test. Searches expand at most ``node_budget``
states. Breadth-first search is exponential in the distance where the constraint allows free
content (whitespace, open-ended objects, strings), so for JSON outputs a second strategy takes over
when it fails: :meth:`ShortestCompletion._propose_json` writes a completion move by move from the
output's JSON structure (:func:`json_context`: close the string, minimal values, close containers,
required properties spelled by probing the automaton), every byte checked by the automaton, so it
is a real completion though not a shortest one. Where both fail the distance is unknown (``None``),
which the matcher treats conservatively (see below), and ``stats["exhausted"]`` counts it. Every
state on a found path gets its distance memoized (the rest of the path, with one record per path),
so the distance of a state is the first one found for it: consistent for one
:class:`ShortestCompletion` (shared by all matchers of an automaton), not across compiles.

Relaxations. States that carry their own history (the JSON Schema automaton's tracker keeps the
text of open values) never repeat, so a search over them could not merge anything. An automaton
can name a coarser automaton whose continuations include its own
(:meth:`~structgen.matcher.Automaton.completion_relaxation`); the search then runs there, with
memoized distances, and the path found is replayed through the real automaton. When a check of
the real automaton refuses the path, a second search runs over real states merged by their
relaxed state (a merged state may hide a completion, never invent one, so the result stays an
upper bound, or unknown). The relaxed distance is a lower bound of the real one and refuses
tokens cheaply; candidate tokens are judged by it alone (the real distance is used for the
current state only), so for such automata the test is optimistic where a runtime check would
refuse the relaxed path (a string that must still match its format, say).

When the test applies. The test is on only when ``R - 1 < relaxed distance of the current state +
margin``. The distance is asked for at every position once at most ``window`` tokens remain; before
that, only at scheduled positions: the first one, then, after a check that left ``s`` tokens of
slack (``R - 1 - distance - margin``), ``s // 2`` positions later (never past the window's start).
A completion that grows by less than a token per token in between cannot use the slack up before
the next check, so a long shortest completion (longer than the window) still starts in time, and
an output far from its end costs a few checks whose intervals shrink as the slack does. Inside the
test a token is allowed when its next state's distance is at most ``max(R, d) - 1`` (``d`` the
current state's distance): while the budget can be met (``d <= R``) that is exactly "completable
within ``R - 1``"; if it was lost (the completion grew faster than the checks foresaw, or a token
outside the margin lengthened it by more than ``margin`` tokens) every token must at least shorten
the way to the end. The current state's own path always passes, so the tightened constraint never
leaves a live state without an allowed token. Where the current state's distance is unknown the test
is off at that position (nothing better can be promised), and next states whose distance is unknown
are refused. The test is also off where the current state's completion needs more than
``HOPELESS_RATIO`` times the remaining tokens (the output will be cut whatever is chosen); after
either, no distance is asked for during the next ``RETRY_AFTER`` positions (where the relaxed
distance is unknown, during half the positions left before the window, if more), since a failed
search costs its whole node budget.

Limits. Distances are upper bounds (the shortest path in bytes, then its fewest tokens; a proposal
may write optional properties too), so near the end the test may refuse a token after which a
completion with fewer tokens existed. Outside JSON, far completions of constraints with free
content stay out of reach of the node budget: their distance is unknown and the test stays off
there.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import NamedTuple

import numpy as np

from structgen.bitmask import bitmask_to_bool, bool_to_bitmask
from structgen.errors import TokenRefusedError
from structgen.matcher import Automaton, Constraint, Matcher, State
from structgen.vocabulary import PerVocabulary, Vocabulary

#: Tokens of slack below which the budget test is on (see the module docstring).
DEFAULT_MARGIN = 16
#: Remaining tokens at or below which the distance is asked for at every position; above, only at
#: scheduled positions (see the module docstring).
DEFAULT_WINDOW = 128
#: States a single search may expand before it gives up (each costs one ``next_state`` per byte).
DEFAULT_NODE_BUDGET = 64
# Expansions before a JSON proposal takes over: near completions are found in a few, far ones not
# in thousands, and each expansion tries every byte.
_JSON_NODE_BUDGET = 8

#: A completion that needs more than this many times the remaining tokens will not fit: the budget
#: is lost, and the test is switched off rather than paid for at every position of an output that
#: will be cut anyway.
HOPELESS_RATIO = 2
#: Positions to wait after the current state's distance was unknown or hopeless before asking again:
#: the next states of such a state are usually just as far, and a failed search costs its whole budget.
RETRY_AFTER = 8
# Longest token tried when counting the tokens that write a path (longer ones only make the count
# smaller, and the count only has to be an upper bound).
_LONGEST_TOKEN = 32

_MISSING = object()


def _build_byte_tokens(vocab: Vocabulary) -> list[int]:
    by_byte: dict[int, int] = {}
    for token_id, data in enumerate(vocab.token_bytes):
        if data is not None and len(data) == 1 and vocab.is_text_token(token_id):
            by_byte.setdefault(data[0], token_id)
    return [by_byte[b] for b in sorted(by_byte)]


def _build_text_tokens(vocab: Vocabulary) -> frozenset[bytes]:
    return frozenset(
        data for token_id, data in enumerate(vocab.token_bytes) if data and vocab.is_text_token(token_id)
    )


_BYTE_TOKENS = PerVocabulary(_build_byte_tokens)
_TEXT_TOKENS = PerVocabulary(_build_text_tokens)


def single_byte_tokens(vocab: Vocabulary) -> list[int]:
    """Ids of the text tokens that are exactly one byte, one per byte value, in byte order."""
    return _BYTE_TOKENS(vocab)


class _Found(NamedTuple):
    """A completion path found from some state, and the tokens it takes from each of its positions.

    ``tokens[k]`` is the fewest vocabulary tokens that spell ``path[k:]`` (``tokens[len(path)]``
    is 0). States on the path share the record: a state's completion is ``(found, offset)``.
    """

    path: bytes
    tokens: tuple[int, ...]


_Rest = tuple[_Found, int]
# The completion of an accepting state.
_DONE: _Rest = (_Found(b"", (0,)), 0)


# JSON proposals: values tried first, bytes for string content, scalars and keys, and bounds.
_MINIMAL_VALUES = (b"0", b'""', b"null", b"false", b"true", b"[]", b"{}", b'"a"', b"1")
_CONTENT_BYTES = b"abcdefghijklmnopqrstuvwxyz0123456789-_.ABCDEFGHIJKLMNOPQRSTUVWXYZ:/@ "
_SCALAR_BYTES = b"0123456789.eE+-truefalsn"
_KEY_BYTES = bytes(b for b in range(0x20, 0x7F) if b not in b'"\\')
_CONTENT_DEPTH = 48
_CONTENT_WIDTH = 64
_MAX_KEYS = 64
_MAX_KEY_LENGTH = 64
_FREE_GROUP = 4
_PROPOSAL_MOVES = 512


class JsonContext(NamedTuple):
    """Where a JSON output is: open containers (``"o"``/``"a"``) and what comes next.

    ``mode``: ``value`` (a value), ``item`` (a value or ``]``), ``first_key`` (a key or ``}``),
    ``next_key`` (a key), ``colon``, ``key``/``string`` (inside a key or a string value; with a
    trailing backslash just after an escape character), ``scalar`` (inside a number or literal),
    ``after`` (after a value).
    """

    stack: tuple[str, ...]
    mode: str


#: The context before any output.
JSON_START = JsonContext((), "value")
_WS = frozenset(b" \t\n\r")
_SCALAR_START = frozenset(b"-0123456789tfn")


def json_context(context: JsonContext, data: bytes) -> JsonContext | None:
    """The context after ``data``, or ``None`` when ``data`` cannot continue JSON there."""
    stack, mode = list(context.stack), context.mode
    for byte in data:
        if mode in ("key", "string"):
            if byte == 0x5C:
                mode += "\\"
            elif byte == 0x22:
                mode = "colon" if mode == "key" else "after"
            continue
        if mode in ("key\\", "string\\"):
            mode = mode[:-1]
            continue
        if mode == "scalar":
            if byte in _WS or byte in b",}]":
                mode = "after"
            else:
                continue
        if byte in _WS:
            continue
        if mode in ("value", "item"):
            if mode == "item" and byte == 0x5D:
                stack.pop()
                mode = "after"
            elif byte == 0x22:
                mode = "string"
            elif byte == 0x7B:
                stack.append("o")
                mode = "first_key"
            elif byte == 0x5B:
                stack.append("a")
                mode = "item"
            elif byte in _SCALAR_START:
                mode = "scalar"
            else:
                return None
        elif mode in ("first_key", "next_key"):
            if byte == 0x22:
                mode = "key"
            elif byte == 0x7D and mode == "first_key":
                stack.pop()
                mode = "after"
            else:
                return None
        elif mode == "colon":
            if byte != 0x3A:
                return None
            mode = "value"
        elif mode == "after":
            if not stack:
                return None
            if byte == 0x2C:
                mode = "next_key" if stack[-1] == "o" else "value"
            elif (byte == 0x7D and stack[-1] == "o") or (byte == 0x5D and stack[-1] == "a"):
                stack.pop()
                mode = "after"
            else:
                return None
    return JsonContext(tuple(stack), mode)


class _Container:
    """An open container of a JSON proposal: the keys it was found to allow and the keys written."""

    __slots__ = ("keys", "used")

    def __init__(self) -> None:
        self.keys: tuple[list[bytes], bytes | None] | None = None
        self.used: set[bytes] = set()


class ShortestCompletion:
    """Memoized token distances from automaton states to acceptance (see the module docstring).

    ``distance(state)`` is the number of tokens that write a completion found by breadth-first
    search over single bytes (the shortest one in bytes when the search finds it on its own) or by
    a JSON proposal, ``None`` when neither found one. ``lower_bound(state)`` is the relaxed
    distance (equal to ``distance`` without a relaxation); :meth:`completion` gives the bytes
    behind it. ``stats`` counts ``searches``, their ``expansions``, ``exhausted`` searches,
    ``replays`` of relaxed paths and the ``refused_replays`` that needed a second search, and
    ``proposals`` (``proposals_found``: those that completed).
    """

    def __init__(
        self, automaton: Automaton, *, node_budget: int = DEFAULT_NODE_BUDGET, cache_size: int = 4096
    ) -> None:
        if node_budget < 1:
            raise ValueError(f"node_budget must be >= 1, got {node_budget}")
        self.automaton = automaton
        self.node_budget = node_budget
        vocab = automaton.vocab
        self.byte_tokens = single_byte_tokens(vocab)
        # Relaxed state -> its completion, or None when none was found.
        self._paths: dict[State, _Rest | None] = {}
        # Real state -> distance, for automata with a relaxation (their states rarely repeat).
        self._distances: OrderedDict[State, int | None] = OrderedDict()
        self._cache_size = cache_size
        # Relaxed states the JSON proposal was tried from (it is not tried twice).
        self._proposed: set[State] = set()
        self._byte_token = {vocab.token_bytes[t][0]: t for t in self.byte_tokens}
        self._key_bytes = np.array([b for b in _KEY_BYTES if b in self._byte_token], dtype=np.intp)
        self._text_tokens = _TEXT_TOKENS(vocab)
        self._longest = min(_LONGEST_TOKEN, max(map(len, self._text_tokens), default=1))
        self.stats = {
            "searches": 0,
            "expansions": 0,
            "exhausted": 0,
            "replays": 0,
            "refused_replays": 0,
            "proposals": 0,
            "proposals_found": 0,
        }

    def lower_bound(
        self, state: State, context: Callable[[], JsonContext | None] | None = None
    ) -> int | None:
        """The relaxed distance of ``state`` (``None``: unknown or no completion).

        ``context`` gives, when asked, the JSON structure of the output at ``state`` (see
        :func:`json_context`); it lets a failed search fall back to :meth:`_propose_json`.
        """
        rest = self._relaxed_rest(state, context)
        return None if rest is None else rest[0].tokens[rest[1]]

    def completion(
        self, state: State, context: Callable[[], JsonContext | None] | None = None
    ) -> bytes | None:
        """The bytes of the completion behind :meth:`lower_bound` (``None``: none found)."""
        rest = self._relaxed_rest(state, context)
        return None if rest is None else rest[0].path[rest[1] :]

    def distance(self, state: State, context: Callable[[], JsonContext | None] | None = None) -> int | None:
        """Tokens of a completion of ``state`` found by the search (``None``: none found)."""
        relaxed_automaton, relaxed = self.automaton.completion_relaxation(state)
        if relaxed_automaton is self.automaton:
            return self.lower_bound(state, context)
        if state in self._distances:
            self._distances.move_to_end(state)
            return self._distances[state]
        rest = self._relaxed_path(relaxed_automaton, relaxed, context)
        found = None if rest is None else self._replay(state, rest)
        if rest is not None and found is None:
            self.stats["refused_replays"] += 1
            result = self._search(self.automaton, state, self._relaxed_key, _unknown, self.node_budget)
            found = None if result is None else self._spell(result[1], _DONE).tokens[0]
        self._distances[state] = found
        if len(self._distances) > self._cache_size:
            self._distances.popitem(last=False)
        return found

    def _relaxed_rest(self, state: State, context: Callable[[], JsonContext | None] | None) -> _Rest | None:
        relaxed_automaton, relaxed = self.automaton.completion_relaxation(state)
        return self._relaxed_path(relaxed_automaton, relaxed, context)

    def _relaxed_key(self, state: State) -> Hashable:
        return self.automaton.completion_relaxation(state)[1]

    def _replay(self, state: State, rest: _Rest) -> int | None:
        """The tokens of ``rest`` if its path leads ``state`` to acceptance in the real automaton."""
        self.stats["replays"] += 1
        automaton = self.automaton
        found, offset = rest
        current: State | None = state
        for byte in found.path[offset:]:
            current = automaton.next_state(current, self._byte_token[byte])
            if current is None:
                return None
        return found.tokens[offset] if automaton.is_accepting(current) else None

    def _spell(self, prefix: bytes, rest: _Rest) -> _Found:
        """The completion ``prefix`` then ``rest``, with the fewest tokens from each position.

        A shortest segmentation of the bytes into vocabulary tokens (the rest's counts are
        reused): where the automaton allows a token wherever it allows its bytes one by one, as
        automata over bytes do, the counts are the lengths of real token paths.
        """
        found, offset = rest
        path = prefix + found.path[offset:]
        counts = [0] * len(prefix) + list(found.tokens[offset:])
        text_tokens, longest, size = self._text_tokens, self._longest, len(path)
        for k in range(len(prefix) - 1, -1, -1):
            # Every byte of a path is a single-byte token, so j = k + 1 always counts.
            counts[k] = 1 + min(
                counts[j] for j in range(k + 1, min(size, k + longest) + 1) if path[k:j] in text_tokens
            )
        return _Found(path, tuple(counts))

    def _relaxed_path(
        self, automaton: Automaton, state: State, context: Callable[[], JsonContext | None] | None
    ) -> _Rest | None:
        hit = self._paths.get(state, _MISSING)
        if hit is not None and hit is not _MISSING:
            return hit  # type: ignore[return-value]
        if hit is None and (context is None or state in self._proposed):
            return None
        start_context = None if context is None else context()
        budget = self.node_budget if start_context is None else min(self.node_budget, _JSON_NODE_BUDGET)
        result = self._search(automaton, state, None, self._paths.get, budget) if hit is _MISSING else None
        if result is None and start_context is not None:
            self._proposed.add(state)
            result = self._propose_json(automaton, state, start_context, self._paths.get)
        if result is None:
            self._paths[state] = None
            return None
        states, prefix, rest = result
        found = self._spell(prefix, rest)
        # Every state on the prefix is at the rest of the path from acceptance (exactly, for a
        # breadth-first path; at most, for a proposed one); the last one, if it was known, keeps
        # its own completion, which is the rest.
        for k, on_path in enumerate(states):
            if self._paths.get(on_path) is None:
                self._paths[on_path] = (found, k)
        return found, 0

    def _search(
        self,
        automaton: Automaton,
        start: State,
        key: Callable[[State], Hashable] | None,
        known: Callable[[State], _Rest | None],
        node_budget: int,
    ) -> tuple[list[State], bytes, _Rest] | None:
        """A completion of ``start``: ``(states on the searched prefix, its bytes, the rest)``.

        Targets are accepting states and states whose completion is ``known`` (the rest of the
        path is then theirs): a breadth-first search of at most ``node_budget`` expansions, which
        returns the shortest path in bytes over the states it saw, or None. States with equal
        ``key`` (the state itself when ``key`` is None) are merged: the first one reached stands
        for all.
        """
        self.stats["searches"] += 1
        mark = (lambda state: state) if key is None else key
        suffix = _DONE if automaton.is_accepting(start) else known(start)
        if suffix is not None:
            return [start], b"", suffix
        nodes, parent, via = [start], [-1], [-1]
        depth = [0]
        seen = {mark(start)}
        queue = deque([0])
        best: tuple[int, int, _Rest] | None = None  # (total bytes, node, known rest)
        expansions = 0
        while queue:
            index = queue.popleft()
            if best is not None and depth[index] + 1 >= best[0]:
                break  # every path through the rest of the queue is at least as long
            if expansions >= node_budget:
                break
            expansions += 1
            self.stats["expansions"] += 1
            current = nodes[index]
            for byte, token_id in self._byte_token.items():
                nxt = automaton.next_state(current, token_id)
                if nxt is None:
                    continue
                m = mark(nxt)
                if m in seen:
                    continue
                seen.add(m)
                nodes.append(nxt)
                parent.append(index)
                via.append(byte)
                depth.append(depth[index] + 1)
                rest = _DONE if automaton.is_accepting(nxt) else known(nxt)
                if rest is not None:
                    total = depth[-1] + len(rest[0].path) - rest[1]
                    if best is None or total < best[0]:
                        best = (total, len(nodes) - 1, rest)
                else:
                    queue.append(len(nodes) - 1)
        if best is not None:
            states, prefix = self._unwind(nodes, parent, via, best[1])
            return states, prefix, best[2]
        self.stats["exhausted"] += 1
        return None

    # --- JSON proposals ---------------------------------------------------------------------------

    def _feed(self, automaton: Automaton, state: State, data: bytes) -> tuple[State, list[State]] | None:
        """The state after the bytes ``data`` (as single-byte tokens) and the states on the way."""
        states = []
        for byte in data:
            token_id = self._byte_token.get(byte)
            state = None if token_id is None else automaton.next_state(state, token_id)
            if state is None:
                return None
            states.append(state)
        return state, states

    def _propose_json(
        self,
        automaton: Automaton,
        start: State,
        context: JsonContext,
        known: Callable[[State], _Rest | None],
    ) -> tuple[list[State], bytes, _Rest] | None:
        """A completion built move by move from the output's JSON structure, each move checked.

        Breadth-first search cannot reach far completions of JSON with free content, so this
        writes one: close the open string (a short search finds the bytes that let it close),
        give an expected value the first minimal value the automaton completes (``0``, ``""``,
        ``null``, ...; else it opens a string, object or array), close containers, and where an
        object may not close yet (required properties), add a property whose key the automaton
        spells (keys it distinguishes from free keys, each at most once per object) with a minimal
        value. It stops early at a state whose completion is ``known``. Every byte goes through
        :meth:`Automaton.next_state`, so the result is a real completion (not a shortest one);
        ``None`` when a move finds nothing.
        """
        self.stats["proposals"] += 1
        state, ctx = start, context
        states: list[State] = [start]
        path = bytearray()
        containers = [_Container() for _ in ctx.stack]
        for _ in range(_PROPOSAL_MOVES):
            if automaton.is_accepting(state) and not ctx.stack and ctx.mode in ("after", "scalar"):
                self.stats["proposals_found"] += 1
                return states, bytes(path), _DONE
            rest = known(state) if path else None
            if rest is not None:
                self.stats["proposals_found"] += 1
                return states, bytes(path), rest
            move = self._json_move(automaton, state, ctx, containers)
            if move is None:
                return None
            fed = self._feed(automaton, state, move)
            after = json_context(ctx, move)
            if fed is None or after is None:
                return None
            if len(after.stack) > len(ctx.stack):
                containers.append(_Container())
            elif len(after.stack) < len(ctx.stack):
                del containers[len(after.stack) :]
            state, ctx = fed[0], after
            states.extend(fed[1])
            path += move
        return None

    def _json_move(
        self, automaton: Automaton, state: State, ctx: JsonContext, containers: list[_Container]
    ) -> bytes | None:
        """The next bytes of a JSON proposal (see :meth:`_propose_json`)."""
        feed = self._feed
        mode = ctx.mode
        if mode in ("string\\", "key\\"):
            return b"n"  # finish the escape sequence (\n), then close the string
        if mode in ("string", "key"):
            return self._close_string(automaton, state)
        if mode == "colon":
            return b":"
        if mode in ("value", "item"):
            if mode == "item" and feed(automaton, state, b"]") is not None:
                return b"]"
            for value in _MINIMAL_VALUES:
                fed = feed(automaton, state, value)
                if fed is not None and self._value_done(automaton, fed[0], ctx):
                    return value
            for opener in (b'"', b"{", b"[", b"-", b"0"):
                if feed(automaton, state, opener) is not None:
                    return opener
            return None
        if mode in ("after", "scalar"):
            if not ctx.stack:
                return None
            close = b"}" if ctx.stack[-1] == "o" else b"]"
            if feed(automaton, state, close) is not None:
                return close
            if feed(automaton, state, b",") is not None:
                return b","
            return self._extend_scalar(automaton, state) if mode == "scalar" else None
        if mode in ("first_key", "next_key"):
            if mode == "first_key" and feed(automaton, state, b"}") is not None:
                return b"}"
            opened = feed(automaton, state, b'"')
            if opened is None:
                return None
            container = containers[-1] if containers else _Container()

            def allowed(keys: list[bytes]) -> list[bytes]:
                return [
                    key
                    for key in keys
                    if key not in container.used and feed(automaton, state, b'"' + key + b'":') is not None
                ]

            # Keys spelled at an earlier property of the object are tried first, and spelled
            # again only when none of them may follow here (with properties in a fixed order,
            # the later ones are only allowed from here on): spelling costs a next_state per
            # byte of every listed key.
            candidates = [] if container.keys is None else allowed(container.keys[0])
            if not candidates:
                container.keys = self._keys(automaton, opened[0])
                listed, free = container.keys
                candidates = allowed(listed) or ([] if free is None else allowed([free]))
            if not candidates:
                return None
            key = self._pick_key(automaton, state, candidates)
            container.used.add(key)
            return b'"' + key + b'":'
        return None

    def _pick_key(self, automaton: Automaton, state: State, candidates: list[bytes]) -> bytes:
        """The key to write next where an object may not close yet.

        Writing a key with a minimal value is simulated for each candidate: a key after which the
        object may close wins; else the key after which the fewest other candidates are still
        allowed (where properties come in a fixed order, that skips the optional ones up to the
        next required property); ties keep the candidates' order.
        """
        best, best_left = candidates[0], len(candidates) + 1
        for key in candidates:
            after = self._with_minimal_value(automaton, state, b'"' + key + b'":')
            if after is None:
                continue
            if self._feed(automaton, after, b"}") is not None:
                return key
            left = sum(
                1
                for other in candidates
                if other != key and self._feed(automaton, after, b',"' + other + b'":') is not None
            )
            if left < best_left:
                best, best_left = key, left
        return best

    def _with_minimal_value(self, automaton: Automaton, state: State, prefix: bytes) -> State | None:
        """The state after ``prefix`` and the first minimal value that completes there, if any."""
        fed = self._feed(automaton, state, prefix)
        if fed is None:
            return None
        for value in _MINIMAL_VALUES:
            done = self._feed(automaton, fed[0], value)
            if done is not None and any(self._feed(automaton, done[0], b) is not None for b in (b",", b"}")):
                return done[0]
        return None

    def _value_done(self, automaton: Automaton, state: State, ctx: JsonContext) -> bool:
        """Whether the value just written is complete: the output may end or its container go on."""
        if not ctx.stack:
            return automaton.is_accepting(state)
        return any(self._feed(automaton, state, b) is not None for b in (b",", b"}", b"]"))

    def _close_string(self, automaton: Automaton, state: State) -> bytes | None:
        """Bytes that close the open string: the shortest found over plain content bytes, then ``"``."""
        found = self._content_search(automaton, state, lambda u: self._feed(automaton, u, b'"') is not None)
        return None if found is None else found + b'"'

    def _extend_scalar(self, automaton: Automaton, state: State) -> bytes | None:
        """Bytes that complete an unfinished number or literal (until a separator is allowed)."""

        def done(u: State) -> bool:
            return any(self._feed(automaton, u, b) is not None for b in (b",", b"}", b"]"))

        return self._content_search(automaton, state, done, _SCALAR_BYTES)

    def _content_search(
        self, automaton: Automaton, start: State, goal: Callable[[State], bool], alphabet: bytes = b""
    ) -> bytes | None:
        """Breadth-first over ``alphabet`` (default: letters, digits, ``-_.``) until ``goal`` holds."""
        alphabet = alphabet or _CONTENT_BYTES
        if goal(start):
            return b""
        frontier = [(start, b"")]
        seen = {start}
        for _ in range(_CONTENT_DEPTH):
            nxt = []
            for state, text in frontier:
                for byte in alphabet:
                    fed = self._feed(automaton, state, bytes((byte,)))
                    if fed is None or fed[0] in seen:
                        continue
                    seen.add(fed[0])
                    if goal(fed[0]):
                        return text + bytes((byte,))
                    nxt.append((fed[0], text + bytes((byte,))))
            frontier = nxt[:_CONTENT_WIDTH]
            if not frontier:
                return None
        return None

    def _keys(self, automaton: Automaton, after_quote: State) -> tuple[list[bytes], bytes | None]:
        """``(listed keys, a free key or None)``, spelled from just after the opening quote.

        At each position the key bytes are grouped by the state they lead to: a group of many
        bytes is free text (any key), a small group continues a listed key. A prefix is a listed
        key when closing it leads elsewhere than closing a free key does. Listed keys come in
        byte order; the free key is one byte, when free keys are allowed.
        """
        # A grammar automaton groups the next states of all key bytes from one lexer row (inside
        # a key only the lexer moves); other automata take one next_state per byte.
        byte_successors = getattr(automaton, "byte_successors", None)
        next_state, byte_token, key_bytes = automaton.next_state, self._byte_token, self._key_bytes
        free_state: State | None = None
        free: bytes | None = None
        keys: list[bytes] = []
        stack = [(after_quote, b"")]
        while stack and len(keys) < _MAX_KEYS:
            state, text = stack.pop()
            if byte_successors is not None:
                groups = byte_successors(state, key_bytes)
            else:
                groups = {}
                for byte in key_bytes.tolist():
                    nxt = next_state(state, byte_token[byte])
                    if nxt is not None:
                        groups.setdefault(nxt, []).append(byte)
            if text == b"":
                wide = [members for members in groups.values() if len(members) > _FREE_GROUP]
                if wide:
                    free = bytes((wide[0][0],))
                    closed = self._feed(automaton, after_quote, free + b'"')
                    free_state = None if closed is None else closed[0]
            else:
                closed = self._feed(automaton, state, b'"')
                if closed is not None and (free_state is None or closed[0] != free_state):
                    keys.append(text)
            if len(text) >= _MAX_KEY_LENGTH:
                continue
            for nxt, members in sorted(groups.items(), key=lambda item: -item[1][0]):
                if len(members) <= _FREE_GROUP:
                    stack.append((nxt, text + bytes((members[0],))))
        return keys, free

    @staticmethod
    def _unwind(nodes: list[State], parent: list[int], via: list[int], end: int) -> tuple[list[State], bytes]:
        states, data = [], bytearray()
        index = end
        while index >= 0:
            states.append(nodes[index])
            if parent[index] >= 0:
                data.append(via[index])
            index = parent[index]
        states.reverse()
        data.reverse()
        return states, bytes(data)


def _unknown(state: State) -> None:
    """No state has a known completion (the search must reach acceptance)."""
    return None


_SEARCHES: weakref.WeakKeyDictionary[Automaton, ShortestCompletion] = weakref.WeakKeyDictionary()


def shortest_completion(automaton: Automaton) -> ShortestCompletion:
    """The :class:`ShortestCompletion` of ``automaton``, shared by all its budget matchers."""
    found = _SEARCHES.get(automaton)
    if found is None:
        found = _SEARCHES[automaton] = ShortestCompletion(automaton)
    return found


class BudgetMatcher(Matcher):
    """A :class:`~structgen.matcher.Matcher` whose outputs must fit in ``max_tokens`` tokens.

    EOS is not counted and is handled as usual (allowed when the output is complete). See the
    module docstring for the test, ``margin`` and ``window``; ``completions`` defaults to the automaton's
    shared :class:`ShortestCompletion`. Once ``max_tokens`` tokens are consumed and the output is
    complete, the matcher is finished (only EOS may follow).
    """

    __slots__ = ("_contexts", "_limit_at", "_next_check", "completions", "margin", "max_tokens", "window")

    def __init__(
        self,
        automaton: Automaton,
        max_tokens: int,
        *,
        margin: int = DEFAULT_MARGIN,
        window: int = DEFAULT_WINDOW,
        completions: ShortestCompletion | None = None,
        states: list[State] | None = None,
        contexts: list[JsonContext | None] | None = None,
    ) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
            raise ValueError(f"max_tokens must be a non-negative integer, got {max_tokens!r}")
        if margin < 0 or window < 0:
            raise ValueError(f"margin and window must be >= 0, got {margin} and {window}")
        super().__init__(automaton, states)
        self.max_tokens = max_tokens
        self.margin = margin
        self.window = window
        self.completions = completions if completions is not None else shortest_completion(automaton)
        # JSON structure of the output at each position (None once it is not JSON), for proposals.
        self._contexts: list[JsonContext | None] = contexts if contexts is not None else [JSON_START]
        # (state, num_tokens, limit) of the last position asked about: states are immutable values,
        # so the position is identified by the state object and the token count.
        self._limit_at: tuple[State, int, int | None] | None = None
        # No distance is asked for before this many tokens (see the module docstring).
        self._next_check = 0

    @property
    def remaining(self) -> int:
        """Tokens left in the budget (EOS excluded)."""
        return self.max_tokens - self.num_tokens

    def copy(self) -> BudgetMatcher:
        """An independent matcher at the same position, with the same budget and shared memo."""
        other = BudgetMatcher(
            self._automaton,
            self.max_tokens,
            margin=self.margin,
            window=self.window,
            completions=self.completions,
            states=list(self._states),
            contexts=list(self._contexts),
        )
        other._next_check = self._next_check
        return other

    def budget_limit(self) -> int | None:
        """Largest distance allowed after the next token, or ``None`` when the test is off here."""
        state = self._states[-1]
        cached = self._limit_at
        if cached is not None and cached[0] is state and cached[1] == self.num_tokens:
            return cached[2]
        limit = self._compute_limit(state)
        self._limit_at = (state, self.num_tokens, limit)
        return limit

    def budget_active(self) -> bool:
        """Whether the next token is decided under the budget test."""
        return self.budget_limit() is not None

    def _compute_limit(self, state: State) -> int | None:
        if super().is_finished() or self.num_tokens < self._next_check:
            return None
        remaining = self.remaining
        # Far from the end, the next check is scheduled (see the module docstring): never past
        # the window, where every position is checked.
        far = remaining - self.window
        context = self._contexts[-1]
        lower = self.completions.lower_bound(state, lambda: context)
        if lower is None:
            self._next_check = self.num_tokens + max(RETRY_AFTER, far // 2)
            return None
        slack = remaining - 1 - lower - self.margin
        if slack >= 0:
            self._next_check = self.num_tokens + max(1, min(slack // 2, far))
            return None
        current = self.completions.distance(state, lambda: context)
        if current is None or current > HOPELESS_RATIO * remaining:
            self._next_check = self.num_tokens + RETRY_AFTER
            return None
        return max(remaining, current) - 1

    def _fits(self, state: State, limit: int, token_id: int) -> bool:
        """Whether ``state``, reached by ``token_id``, can be completed in ``limit`` bytes.

        Candidates are judged by their relaxed distance (their distance, for automata without a
        relaxation): replaying a path through the JSON Schema automaton's runtime checks costs a
        validation of the document, once per candidate token of a mask.
        """
        context = self._contexts[-1]
        data = self.vocab.token_bytes[token_id]

        def next_context() -> JsonContext | None:
            return None if context is None else json_context(context, data)

        lower = self.completions.lower_bound(state, next_context)
        return lower is not None and lower <= limit

    def is_finished(self) -> bool:
        """True once EOS was consumed, or when the output is complete and nothing more may follow."""
        return super().is_finished() or (self.remaining <= 0 and self.is_accepting())

    def accepts(self, token_id: int) -> bool:
        """Whether ``token_id`` is allowed next, the budget included."""
        if token_id in self.vocab.eos_token_ids or not self.vocab.is_text_token(token_id):
            return super().accepts(token_id)
        limit = self.budget_limit()
        if limit is None:
            return super().accepts(token_id)
        nxt = self._automaton.next_state(self._states[-1], token_id)
        return nxt is not None and self._fits(nxt, limit, token_id)

    def fill_bitmask(self, out: np.ndarray, row: int = 0) -> None:
        """Write the allowed next tokens, the budget included, into row ``row`` of ``out``."""
        super().fill_bitmask(out, row)
        limit = self.budget_limit()
        if limit is None:
            return
        words = out[row] if out.ndim == 2 else out
        allowed = bitmask_to_bool(words, self.vocab.size)
        state = self._states[-1]
        next_state = self._automaton.next_state
        eos = set(self.vocab.eos_token_ids)
        for token_id in np.flatnonzero(allowed).tolist():
            if token_id in eos:
                continue
            nxt = next_state(state, token_id)
            if nxt is None or not self._fits(nxt, limit, token_id):
                allowed[token_id] = False
        words[:] = bool_to_bitmask(allowed)[: words.shape[0]]

    def advance(self, token_id: int, *, check_budget: bool = True) -> None:
        """Consume ``token_id``; raises :class:`TokenRefusedError` if it is not allowed.

        ``check_budget=False`` skips the budget test (the automaton must still allow the token):
        for a matcher that follows decisions taken elsewhere, say by a matcher of another compile
        of the same constraint, whose searches may have found other completions.
        """
        text = token_id not in self.vocab.eos_token_ids and self.vocab.is_text_token(token_id)
        limit = self.budget_limit() if text and check_budget else None
        if limit is None:
            super().advance(token_id)
            context = self._contexts[-1]
            if text and context is not None:
                context = json_context(context, self.vocab.token_bytes[token_id])
            self._contexts.append(context)
            return
        nxt = self._automaton.next_state(self._states[-1], token_id)
        if nxt is None or not self._fits(nxt, limit, token_id):
            raise TokenRefusedError(
                f"token {token_id} ({self.vocab.describe(token_id)}) refused after {self.num_tokens} "
                f"tokens: the output could not be completed within the {self.remaining} tokens left"
            )
        self._states.append(nxt)
        context = self._contexts[-1]
        self._contexts.append(
            None if context is None else json_context(context, self.vocab.token_bytes[token_id])
        )

    def rollback(self, n: int = 1) -> None:
        """Undo the last ``n`` tokens."""
        super().rollback(n)
        del self._contexts[len(self._states) :]


def budgeted_matcher(constraint: Constraint, max_tokens: int | None) -> Matcher:
    """``constraint``'s matcher; with ``max_tokens``, a :class:`BudgetMatcher` whose outputs fit in it."""
    if max_tokens is None:
        return constraint.matcher()
    return BudgetMatcher(constraint.automaton, max_tokens)
