"""Runtime checks: exact JSON Schema semantics for what the grammar only over-approximates.

:class:`JsonTracker` follows the output byte by byte (the grammar guarantees it is JSON) and reports
each value as it completes: a string at its closing quote, a container at its closing bracket, a
number or literal at the byte after it (or at the end of the output). :class:`ValueChecker` decides
whether a completed value can still be part of a valid document: it walks the schema along the
value's path (properties, patternProperties, additionalProperties, prefixItems/items, through
``$ref``, ``allOf`` = all, ``anyOf``/``oneOf``/``if`` = any) and validates the value exactly
(``jsonschema``) against the subschemas found there. Everything it cannot judge from one value alone
(``not`` of an ancestor, ``oneOf`` exclusivity, ``uniqueItems``, ``contains``, ...) counts as
possible, so the checks never refuse a value of some valid document. Every completed value whose
node is not exact is validated in full, so no invalid document is ever accepted, with two
exceptions that lose nothing: a *plain* container (only member keywords such as ``properties`` and
``items``, an exact emission of its own, no ``anyOf``/``oneOf``/``if`` on its path) is valid when
its members are, and they are checked as they complete; a string whose only check is a
``maxLength`` longer than the string is valid. Nodes whose grammar is exact are not checked again.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, NamedTuple

from structgen.compilers.json_schema import ecma_regex
from structgen.compilers.json_schema.emitter import MAX_EXACT_LENGTH
from structgen.compilers.json_schema.schema import Node, SchemaContext

_WS = frozenset(b" \t\n\r")
# Keywords with which possible() looks at more than the members on a value's path.
_BRANCHING_KEYWORDS = frozenset({"$ref", "allOf", "anyOf", "oneOf", "if", "$dynamicRef", "$recursiveRef"})
_UNBOUNDED = 1 << 62
# Keywords that constrain a container only through its members (and "type", which the grammar
# enforces): a container with no other validation keyword is valid when its members are.
_MEMBER_KEYWORDS = frozenset(
    {"type", "properties", "required", "additionalProperties", "patternProperties", "items", "prefixItems"}
    | {"additionalItems"}
)
_SCALAR_END = frozenset(b",}] \t\n\r")
# Bytes at which some value may complete: tokens without any of them never need a runtime check.
CLOSING_BYTES = frozenset(b'"}],: \t\n\r')


class Frame(NamedTuple):
    """An open container: ``kind`` is ``"o"``/``"a"``; ``slot`` the current key or index."""

    kind: str
    start: int
    slot: Any
    keys: frozenset


class TrackerState(NamedTuple):
    """Where the output is, structurally (immutable)."""

    text: bytes
    stack: tuple[Frame, ...]
    in_string: bool
    escaped: bool
    string_start: int
    is_key: bool
    scalar_start: int
    expect_key: bool


INITIAL = TrackerState(b"", (), False, False, -1, False, -1, False)


class ValueChecker:
    """Decides whether a completed value at a path may belong to a valid document (see module doc)."""

    def __init__(
        self,
        ctx: SchemaContext,
        exact_nodes: frozenset,
        own_exact_nodes: frozenset = frozenset(),
        *,
        cache_size: int = 65536,
    ) -> None:
        self.ctx = ctx
        self.exact_nodes = exact_nodes
        self.own_exact_nodes = own_exact_nodes
        self._cache: OrderedDict[tuple, bool] = OrderedDict()
        self._cache_size = cache_size
        self._needs_cache: dict[tuple, bool] = {}
        self._key_cache: dict[tuple, bool] = {}
        self._free_keys_cache: dict[tuple, bool] = {}
        self._bound_cache: dict[tuple, int | None] = {}
        self._children_cache: dict[tuple, list[Node]] = {}
        self.checks = 0

    def needs_check(self, path: tuple) -> bool:
        """Whether some value at ``path`` could fail :meth:`possible` (else checks there are skipped)."""
        found = self._needs_cache.get(path)
        if found is None:
            found = self._needs(self.ctx.root(), path, 0, False)
            self._needs_cache[path] = found
        return found

    def _needs(self, node: Node, path: tuple, depth: int, branched: bool) -> bool:
        # Mirrors possible(): True as soon as some branch would validate or reject.
        schema = node.schema
        if schema is True:
            return False
        if schema is False or depth > 64:
            return True
        if not isinstance(schema, dict) or node.key in self.exact_nodes:
            return False
        if not path:
            if self.ctx.uses_dynamic_refs:
                return not depth
            # A plain container is valid when its members are: each inexact member is checked when
            # it completes, so the container needs no check of its own -- unless the path went
            # through anyOf/oneOf/if, where members may pass in different branches.
            return branched or not self._plain(node)
        ctx = self.ctx
        if ctx.old_draft and "$ref" in schema:
            return self._needs(ctx.resolve(node, schema["$ref"]), path, depth + 1, branched)
        # possible() also refuses a path through a node whose "type" excludes the container the path
        # steps into; that check is not a reason here: every node's grammar enforces its own "type"
        # exactly (relaxations concern other keywords), so the value at hand is inside a container of
        # an allowed type. Counting it made every path below a typed inexact root "needed", and
        # validated thousands of completed strings per document that no check ever refused.
        subs = []
        if "$ref" in schema:
            subs.append(ctx.resolve(node, schema["$ref"]))
        subs.extend(ctx.child(node, sub, "allOf", i) for i, sub in enumerate(schema.get("allOf", ())))
        if any(self._needs(sub, path, depth + 1, branched) for sub in subs):
            return True
        branches = []
        for kw in ("anyOf", "oneOf"):
            branches.extend(ctx.child(node, sub, kw, i) for i, sub in enumerate(schema.get(kw, ())))
        if "if" in schema and "then" in schema and "else" in schema:
            branches.extend(ctx.child(node, schema[k], k) for k in ("then", "else"))
        if any(self._needs(sub, path, depth + 1, True) for sub in branches):
            return True
        return any(
            self._needs(child, path[1:], depth + 1, branched) for child in self._children(node, path[0])
        )

    def length_bound(self, path: tuple) -> int | None:
        """The ``maxLength`` that is the only check a string at ``path`` can fail, else None (cached).

        The grammar leaves ``maxLength`` beyond what it unrolls to this check; when nothing else on
        the way to the string (``$ref``, ``allOf``, ``anyOf``, ...) or in its schema is checked, a
        string that stays shorter needs no check at all.
        """
        if path not in self._bound_cache:
            bound = self._bound(self.ctx.root(), path, 0)
            self._bound_cache[path] = None if bound is None or bound == _UNBOUNDED else bound
        return self._bound_cache[path]

    def _bound(self, node: Node, path: tuple, depth: int) -> int | None:
        # Mirrors possible() on a string value; None where it could judge more than its length.
        schema = node.schema
        if schema is True:
            return _UNBOUNDED
        if not isinstance(schema, dict) or depth > 64:
            return None
        if node.key in self.exact_nodes:
            return _UNBOUNDED
        validators = self.ctx.validator_class.VALIDATORS
        checked = {k for k in schema if k in validators}
        if not path:
            if (
                checked - {"type", "minLength", "maxLength"}
                or int(schema.get("minLength", 0)) > MAX_EXACT_LENGTH
            ):
                return None
            return int(schema["maxLength"]) if "maxLength" in schema else _UNBOUNDED
        if checked & _BRANCHING_KEYWORDS:
            return None
        bounds = [self._bound(child, path[1:], depth + 1) for child in self._children(node, path[0])]
        return None if None in bounds else min(bounds, default=_UNBOUNDED)

    def _plain(self, node: Node) -> bool:
        """Whether ``node``'s own emission is exact and its keywords only spread to its members.

        Then a value valid per the grammar is valid exactly when its members are valid under their
        subschemas (``properties``, ``items``, ...): no keyword judges the container as a whole.
        """
        validators = self.ctx.validator_class.VALIDATORS
        return node.key in self.own_exact_nodes and all(
            k in _MEMBER_KEYWORDS or k not in validators for k in node.schema
        )

    def check(self, path: tuple, raw: bytes) -> bool:
        """Whether the JSON text ``raw`` at ``path`` can be part of a valid document (cached)."""
        if not self.needs_check(path):
            return True
        bound = self.length_bound(path)
        if bound is not None and len(raw) - 2 <= bound:
            return True  # a string value: it has no more characters than bytes between its quotes
        key = (path, raw)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        self.checks += 1
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            result = False
        else:
            result = self.possible(self.ctx.root(), path, value, 0)
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def key_allowed(self, path: tuple, key: str) -> bool:
        """Whether an object at ``path`` may have property ``key`` (propertyNames, closed objects)."""
        cache_key = (path, key)
        found = self._key_cache.get(cache_key)
        if found is None:
            found = self._key_possible(self.ctx.root(), path, key, 0)
            if len(self._key_cache) > self._cache_size:
                self._key_cache.clear()
            self._key_cache[cache_key] = found
        return found

    def keys_unrestricted(self, path: tuple) -> bool:
        """Whether :meth:`key_allowed` holds for every key of an object at ``path`` (cached).

        Conservative: False when some ``propertyNames``, or a ``false`` subschema of a property,
        could refuse a key there.
        """
        found = self._free_keys_cache.get(path)
        if found is None:
            found = self._keys_free(self.ctx.root(), path, 0)
            self._free_keys_cache[path] = found
        return found

    def _keys_free(self, node: Node, path: tuple, depth: int) -> bool:
        # Mirrors _key_possible: a branch that allows every key makes anyOf/oneOf allow every key.
        schema = node.schema
        if schema is True or not isinstance(schema, dict) or depth > 64 or node.key in self.exact_nodes:
            return True
        ctx = self.ctx
        if ctx.old_draft and "$ref" in schema:
            return self._keys_free(ctx.resolve(node, schema["$ref"]), path, depth + 1)
        if "$ref" in schema and not self._keys_free(ctx.resolve(node, schema["$ref"]), path, depth + 1):
            return False
        if not all(
            self._keys_free(ctx.child(node, sub, "allOf", i), path, depth + 1)
            for i, sub in enumerate(schema.get("allOf", ()))
        ):
            return False
        for kw in ("anyOf", "oneOf"):
            if kw in schema and not any(
                self._keys_free(ctx.child(node, sub, kw, i), path, depth + 1)
                for i, sub in enumerate(schema[kw])
            ):
                return False
        if path:
            return all(self._keys_free(c, path[1:], depth + 1) for c in self._children(node, path[0]))
        if "propertyNames" in schema:
            return False
        subs = [ctx.child(node, sub, "properties", k) for k, sub in schema.get("properties", {}).items()]
        subs += [
            ctx.child(node, sub, "patternProperties", p)
            for p, sub in schema.get("patternProperties", {}).items()
        ]
        if "additionalProperties" in schema:
            subs.append(ctx.child(node, schema["additionalProperties"], "additionalProperties"))
        return all(sub.schema is not False for sub in subs)

    def possible(self, node: Node, path: tuple, value: Any, depth: int) -> bool:
        """Whether ``value`` at ``path`` below ``node`` is consistent with ``node``."""
        schema = node.schema
        if schema is True:
            return True
        if schema is False:
            return False
        if not isinstance(schema, dict) or depth > 64 or node.key in self.exact_nodes:
            return True
        if not path:
            if depth and self.ctx.uses_dynamic_refs:
                return True  # validated in full once the whole document is there
            return self.ctx.is_valid(node, value)
        ctx = self.ctx
        if ctx.old_draft and "$ref" in schema:
            return self.possible(ctx.resolve(node, schema["$ref"]), path, value, depth + 1)
        step = path[0]
        types = schema.get("type")
        if types is not None:
            types = types if isinstance(types, list) else [types]
            if ("object" if isinstance(step, str) else "array") not in types:
                return False
        if "$ref" in schema and not self.possible(ctx.resolve(node, schema["$ref"]), path, value, depth + 1):
            return False
        for i, sub in enumerate(schema.get("allOf", ())):
            if not self.possible(ctx.child(node, sub, "allOf", i), path, value, depth + 1):
                return False
        for kw in ("anyOf", "oneOf"):
            if kw in schema and not any(
                self.possible(ctx.child(node, sub, kw, i), path, value, depth + 1)
                for i, sub in enumerate(schema[kw])
            ):
                return False
        if (
            "if" in schema
            and "then" in schema
            and "else" in schema
            and not any(
                self.possible(ctx.child(node, schema[k], k), path, value, depth + 1) for k in ("then", "else")
            )
        ):
            return False
        return all(self.possible(child, path[1:], value, depth + 1) for child in self._children(node, step))

    def _children(self, node: Node, step: Any) -> list[Node]:
        key = (node.key, step)
        found = self._children_cache.get(key)
        if found is None:
            found = self._find_children(node, step)
            self._children_cache[key] = found
        return found

    def _find_children(self, node: Node, step: Any) -> list[Node]:
        schema = node.schema
        ctx = self.ctx
        out = []
        if isinstance(step, str):
            props = schema.get("properties", {})
            if step in props:
                out.append(ctx.child(node, props[step], "properties", step))
            for pat, sub in schema.get("patternProperties", {}).items():
                try:
                    if ecma_regex.ecma_search(pat, step):
                        out.append(ctx.child(node, sub, "patternProperties", pat))
                except ecma_regex.PatternSyntaxError:
                    continue
            if not out and "additionalProperties" in schema:
                out.append(ctx.child(node, schema["additionalProperties"], "additionalProperties"))
            return out
        items = schema.get("items")
        if isinstance(items, list):
            if step < len(items):
                out.append(ctx.child(node, items[step], "items", step))
            elif "additionalItems" in schema:
                out.append(ctx.child(node, schema["additionalItems"], "additionalItems"))
            return out
        prefix = schema.get("prefixItems", [])
        if step < len(prefix):
            out.append(ctx.child(node, prefix[step], "prefixItems", step))
        elif items is not None:
            out.append(ctx.child(node, items, "items"))
        return out

    def _key_possible(self, node: Node, path: tuple, key: str, depth: int) -> bool:
        schema = node.schema
        if schema is True or not isinstance(schema, dict) or depth > 64 or node.key in self.exact_nodes:
            return True
        if schema is False:
            return False
        ctx = self.ctx
        if ctx.old_draft and "$ref" in schema:
            return self._key_possible(ctx.resolve(node, schema["$ref"]), path, key, depth + 1)
        if "$ref" in schema and not self._key_possible(
            ctx.resolve(node, schema["$ref"]), path, key, depth + 1
        ):
            return False
        for i, sub in enumerate(schema.get("allOf", ())):
            if not self._key_possible(ctx.child(node, sub, "allOf", i), path, key, depth + 1):
                return False
        for kw in ("anyOf", "oneOf"):
            if kw in schema and not any(
                self._key_possible(ctx.child(node, sub, kw, i), path, key, depth + 1)
                for i, sub in enumerate(schema[kw])
            ):
                return False
        if path:
            return all(self._key_possible(c, path[1:], key, depth + 1) for c in self._children(node, path[0]))
        if "propertyNames" in schema:
            names = ctx.child(node, schema["propertyNames"], "propertyNames")
            if not ctx.is_valid(names, key):
                return False
        return not (self._children(node, key) and all(c.schema is False for c in self._children(node, key)))


class _CallRecorder:
    """A stand-in checker that records whether the tracker asked it anything (and allows all)."""

    def __init__(self) -> None:
        self.asked = False

    def check(self, path: tuple, raw: bytes) -> bool:
        self.asked = True
        return True

    def key_allowed(self, path: tuple, key: str) -> bool:
        self.asked = True
        return True


# The tracker state right after the closing quote of the key "k" of an object.
_AFTER_KEY = TrackerState(b'{"k"', (Frame("o", 0, "k", frozenset({"k"})),), False, False, 1, True, -1, False)


def inert_after_key(rest: bytes) -> bool:
    """Whether ``rest``, written right after an object key, completes no value and closes no key.

    Then a token made of key text, the closing quote and ``rest`` passes the tracker exactly when
    its key does: the mask computation needs no replay for it.
    """
    recorder = _CallRecorder()
    try:
        done = JsonTracker(recorder)._run(_AFTER_KEY, rest, False)
    except (IndexError, ValueError):  # bytes that no JSON text has there: the grammar refuses them
        return False
    return done is True and not recorder.asked


class JsonTracker:
    """Feeds bytes into :class:`TrackerState` values and runs the checker at each completion."""

    def __init__(self, checker: ValueChecker) -> None:
        self.checker = checker

    @staticmethod
    def path(stack: tuple[Frame, ...]) -> tuple:
        """The JSON path of the value being written inside ``stack``."""
        return tuple(f.slot for f in stack)

    def feed(self, st: TrackerState, data: bytes) -> TrackerState | None:
        """The state after ``data``, or None when a value completed in it fails its check."""
        return self._run(st, data, True)

    def admits(self, st: TrackerState, data: bytes) -> bool:
        """Whether every value ``data`` completes passes its check (:meth:`feed` without the state)."""
        return self._run(st, data, False) is not None

    def _run(self, st: TrackerState, data: bytes, build: bool) -> TrackerState | bool | None:
        # Mask computation runs this for hundreds of tokens per state: the document text is not
        # copied per token, only the text of each value a token completes is assembled.
        old = st.text
        base = len(old)

        def raw(start: int, stop: int) -> bytes:
            if start >= base:
                return data[start - base : stop - base]
            return old[start:] + data[: stop - base]

        stack, in_string, escaped = st.stack, st.in_string, st.escaped
        string_start, is_key, scalar_start, expect_key = (
            st.string_start,
            st.is_key,
            st.scalar_start,
            st.expect_key,
        )
        check = self.checker.check
        pos = base - 1
        for b in data:
            pos += 1
            if in_string:
                if escaped:
                    escaped = False
                elif b == 0x5C:
                    escaped = True
                elif b == 0x22:
                    in_string = False
                    value = raw(string_start, pos + 1)
                    if is_key:
                        top = stack[-1]
                        try:
                            key = json.loads(value)
                        except ValueError:
                            return None
                        if key in top.keys:
                            return None  # duplicate key: JSON Schema would only see the last one
                        if not self.checker.key_allowed(self.path(stack[:-1]), key):
                            return None
                        stack = (*stack[:-1], Frame("o", top.start, key, top.keys | {key}))
                    elif not check(self.path(stack), value):
                        return None
                continue
            if scalar_start >= 0:
                if b not in _SCALAR_END:
                    continue
                if not check(self.path(stack), raw(scalar_start, pos)):
                    return None
                scalar_start = -1
            if b in _WS:
                continue
            if b == 0x22:
                in_string, string_start = True, pos
                is_key = expect_key
                expect_key = False
            elif b == 0x7B:
                stack = (*stack, Frame("o", pos, None, frozenset()))
                expect_key = True
            elif b == 0x5B:
                stack = (*stack, Frame("a", pos, 0, frozenset()))
                expect_key = False
            elif b in (0x7D, 0x5D):
                top = stack[-1]
                stack = stack[:-1]
                expect_key = False
                if not check(self.path(stack), raw(top.start, pos + 1)):
                    return None
            elif b == 0x2C:
                top = stack[-1]
                if top.kind == "a":
                    stack = (*stack[:-1], Frame("a", top.start, top.slot + 1, top.keys))
                else:
                    expect_key = True
            elif b == 0x3A:
                expect_key = False
            else:
                scalar_start = pos
        if not build:
            return True
        return TrackerState(
            old + data, stack, in_string, escaped, string_start, is_key, scalar_start, expect_key
        )

    def finish(self, st: TrackerState) -> bool:
        """Whether the output may end here (a pending top-level scalar is checked)."""
        if st.scalar_start >= 0 and not st.stack:
            return self.checker.check((), st.text[st.scalar_start :])
        return True
