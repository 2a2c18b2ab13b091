"""Exact validation by plain-Python predicates: a schema node compiled once into a tree of closures.

:meth:`SchemaContext.is_valid` validates with ``jsonschema`` (the draft's validator class with ECMA-262
``pattern``/``patternProperties``). Its per-call machinery (``descend``/``evolve``/``is_type``, a
reference lookup per ``$ref``) costs 0.1-3 ms, and the runtime checks call it for hundreds of candidate
values per token mask. :func:`compile_predicate` turns a node into a predicate giving the same verdict.

Exactness comes from dispatching every keyword on the function the validator class itself would call
for it (``cls.VALIDATORS[keyword]``) and re-implementing that function's behaviour, read from
jsonschema's ``_keywords.py``/``_legacy_keywords.py``. So the drafts' differences follow the class:
``$ref`` overriding its siblings before 2019-09 (``cls._APPLICABLE_VALIDATORS``), the forms of
``items``/``additionalItems``, draft-4 integers and boolean ``exclusiveMinimum``, ``dependencies``;
keywords the class does not know (annotations, other vocabularies, ``dependencies`` in 2020-12) are
ignored as the class ignores them. Details that jsonschema has and that are kept on purpose:

* ``additionalProperties`` decides what is "additional" with Python's ``re`` on the
  ``patternProperties`` joined by ``|``, even where ``patternProperties`` itself uses ECMA regexes;
* a subschema carrying ``$schema`` switches to that dialect's *plain* validator class (``evolve`` calls
  ``validator_for``), whose ``pattern``/``patternProperties`` use Python's ``re``;
* ``not``, ``if``, ``contains`` and all but the first valid ``oneOf`` branch are applied with the
  parent's resolver (``evolve``), not entering the subschema's ``$id``; ``then``/``else``, the other
  applicators and ``$ref`` enter it (``descend``);
* ``enum``/``const``/``uniqueItems`` compare with ``jsonschema._utils.equal``/``uniq`` (1 == 1.0,
  True != 1), which are called directly wherever a fast path would not be obviously identical.

:func:`compile_predicate` returns None, and the caller keeps using jsonschema, when the node reaches
anything not implemented exactly: ``$dynamicRef``/``$recursiveRef``, ``unevaluated*``, draft 3, an
unknown keyword implementation, a reference it cannot resolve through the node's resolver, a switch to
another draft, a malformed keyword value, a regex Python's ``re`` rejects where jsonschema would use
``re``, an ``$id`` inside a subschema applied with ``evolve``, or a cycle of in-place applicators that
does not consume the instance (jsonschema recurses until RecursionError there, in an order that
matters).

Values are typed as jsonschema's type checker types them (``isinstance``), so any Python value gets
its verdict. Where the computation raises (the float ``multipleOf`` of an overflowing number, an
exception a format checker does not declare, a value nested so deep that jsonschema could exhaust the
stack on it) the caller falls back to jsonschema, which answers or raises as before. The one
difference left: checks are short-circuited in another order than jsonschema's, so where jsonschema
would raise an exception it does not catch itself (an error, not a verdict) a predicate may have
returned before reaching it.
"""

from __future__ import annotations

import gc
import numbers
import re
import sys
import threading
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import jsonschema
import referencing.jsonschema
from jsonschema import _keywords as kw
from jsonschema import _legacy_keywords as legacy
from jsonschema._utils import equal as _equal
from jsonschema._utils import uniq as _uniq

from structgen.compilers.json_schema.ecma_regex import PatternSyntaxError, compile_python

if TYPE_CHECKING:
    from structgen.compilers.json_schema.schema import Node, SchemaContext

Predicate = Callable[[Any], bool]

_NONE_TYPE = type(None)
# The Python types json.loads builds: values of other types take the type checker's own path.
_JSON_TYPES = frozenset({str, dict, list, _NONE_TYPE, bool, int, float})
_TYPE_CLASSES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "object": (dict,),
    "array": (list,),
    "null": (_NONE_TYPE,),
    "boolean": (bool,),
    "number": (int, float),
    "integer": (int,),
}
# Which instance kinds a "type" keyword lets through to the kind-specific checks.
_TYPE_KINDS = {
    "string": "s",
    "object": "o",
    "array": "a",
    "number": "n",
    "integer": "n",
    "null": "",
    "boolean": "",
}
_DRAFT4_TYPES = jsonschema.Draft4Validator.TYPE_CHECKER
_DRAFT6_TYPES = jsonschema.Draft6Validator.TYPE_CHECKER


class _Unsupported(Exception):
    """The node reaches something this module does not implement exactly."""


class _TooDeep(Exception):
    """A value nests deeper than a predicate judges it (see :meth:`_Compiler._lazy`)."""


def _true(value: Any) -> bool:
    return True


def _false(value: Any) -> bool:
    return False


def _is_number(value: Any) -> bool:
    # jsonschema: not a bool and a numbers.Number.
    t = type(value)
    if t is int or t is float:
        return True
    if t is bool:
        return False
    return isinstance(value, numbers.Number)


def _is_count(value: Any) -> bool:
    """A numeric keyword value (bools are ints in Python but never numbers in JSON Schema)."""
    return type(value) in (int, float)


def _all(checks: tuple[Predicate, ...]) -> Predicate:
    checks = tuple(c for c in checks if c is not _true)
    if _false in checks:
        return _false
    if not checks:
        return _true
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks

        def both(value: Any) -> bool:
            return first(value) and second(value)

        return both

    def every(value: Any) -> bool:
        for check in checks:  # noqa: SIM110 - no generator per call on the hot path
            if not check(value):
                return False
        return True

    return every


def _size_bound(kind: str, *, at_most: bool) -> Callable[[Node, type, str, Any, _Parts], None]:
    """Handler of min/maxLength, min/maxProperties, min/maxItems: a bound on ``len`` of one kind."""

    def handler(node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        limit = _count(value)
        check = (lambda x: not len(x) > limit) if at_most else (lambda x: not len(x) < limit)
        getattr(parts, kind).append(check)

    return handler


class _Parts:
    """The checks of one schema object, grouped by the instance kind they apply to."""

    def __init__(self) -> None:
        self.type_test: Predicate | None = None
        self.kinds: str | None = None  # instance kinds "type" lets through; None: no "type"
        self.type_names: tuple[str, ...] = ()
        self.first: list[Predicate] = []  # cheap checks on any instance (enum, const)
        self.generic: list[Predicate] = []  # applicators, format
        self.strings: list[Predicate] = []
        self.numbers: list[Predicate] = []
        self.objects: list[Predicate] = []
        self.arrays: list[Predicate] = []
        # properties / patternProperties / additionalProperties share one pass over the members.
        self.props: dict[str, Predicate] | None = None
        self.patterns: list[tuple[Callable[[str], Any], Predicate]] = []
        self.additional: Predicate | None = None
        self.additional_names: Any = None
        self.additional_search: Callable[[str], Any] | None = None


class _Compiler:
    """Builds and caches the predicates of one :class:`SchemaContext` (one per context)."""

    def __init__(self, ctx: SchemaContext) -> None:
        # Imported here: schema.py imports this module.
        from structgen.compilers.json_schema import schema as schema_module

        self.ctx = ctx
        self.base = ctx.validator_class
        self._lock = threading.Lock()
        # jsonschema spends at most ~4 frames per schema node it nests into (descend, the keyword's
        # generator, is_valid and iter_errors for not/if/contains): up to this many nested nodes it
        # cannot reach the recursion limit, whatever the caller's own stack.
        self.nesting_budget = sys.getrecursionlimit() // 10
        self._nesting = threading.local()  # per thread: concurrent walks must not share a count
        self.done: dict[tuple, Predicate] = {}
        self.failed: set[tuple] = set()
        self._pending: dict[tuple, list] = {}
        self._added: list[tuple] = []
        self._stack: list[tuple] = []
        self._edges: dict[tuple, list[tuple]] = {}
        self._lookups: dict[tuple, Node] = {}
        base_spec = referencing.jsonschema.specification_with(
            self.base.ID_OF(self.base.META_SCHEMA) or "urn:unknown-dialect",
            default=referencing.Specification.OPAQUE,
        )
        # The context's children enter "$id" scopes with the context's dialect; jsonschema with its
        # class's. Only where they agree (always, unless a dialect is unknown to one of them).
        self.usable = base_spec is ctx.specification and self.base.TYPE_CHECKER in (
            _DRAFT4_TYPES,
            _DRAFT6_TYPES,
        )
        self.handlers: dict[Any, Callable[[Node, type, str, Any, _Parts], None]] = {
            kw.ref: self._ref,
            kw.type: self._type,
            kw.enum: self._enum,
            kw.const: self._const,
            kw.format: self._format,
            kw.minLength: _size_bound("strings", at_most=False),
            kw.maxLength: _size_bound("strings", at_most=True),
            kw.pattern: self._pattern_python,
            schema_module._ecma_pattern: self._pattern_ecma,
            kw.minimum: self._minimum,
            kw.maximum: self._maximum,
            kw.exclusiveMinimum: self._exclusive_minimum,
            kw.exclusiveMaximum: self._exclusive_maximum,
            legacy.minimum_draft3_draft4: self._minimum_draft4,
            legacy.maximum_draft3_draft4: self._maximum_draft4,
            kw.multipleOf: self._multiple_of,
            kw.properties: self._properties,
            kw.patternProperties: self._pattern_properties_python,
            schema_module._ecma_pattern_properties: self._pattern_properties_ecma,
            kw.additionalProperties: self._additional_properties,
            kw.required: self._required,
            kw.minProperties: _size_bound("objects", at_most=False),
            kw.maxProperties: _size_bound("objects", at_most=True),
            kw.propertyNames: self._property_names,
            kw.dependentRequired: self._dependent_required,
            kw.dependentSchemas: self._dependent_schemas,
            legacy.dependencies_draft4_draft6_draft7: self._dependencies,
            kw.items: self._items,
            kw.prefixItems: self._prefix_items,
            legacy.items_draft3_draft4: self._items_draft4,
            legacy.items_draft6_draft7_draft201909: self._items_draft6,
            legacy.additionalItems: self._additional_items,
            kw.minItems: _size_bound("arrays", at_most=False),
            kw.maxItems: _size_bound("arrays", at_most=True),
            kw.uniqueItems: self._unique_items,
            kw.contains: self._contains,
            legacy.contains_draft6_draft7: self._contains_draft6,
            kw.allOf: self._all_of,
            kw.anyOf: self._any_of,
            kw.oneOf: self._one_of,
            kw.not_: self._not,
            kw.if_: self._if,
        }

    # -- graph -----------------------------------------------------------------------------------

    def compile(self, node: Node) -> Predicate | None:
        """The predicate of ``node`` validated as :meth:`SchemaContext.is_valid` does, or None."""
        if node.schema is True:
            return _true
        if node.schema is False:
            return _false
        key = (node.key, self.base)
        found = self.done.get(key)
        if found is not None:
            return found
        if key in self.failed or not self.usable:
            return None
        with self._lock:  # the build state below is per attempt
            # A large schema allocates tens of thousands of closures here; the collections that
            # triggers would each scan the whole heap (vocabulary, tokenizer) for no garbage.
            collecting = gc.isenabled()
            gc.disable()
            try:
                return self._compile(node, key)
            finally:
                if collecting:
                    gc.enable()

    def _compile(self, node: Node, key: tuple) -> Predicate | None:
        found = self.done.get(key)
        if found is not None or key in self.failed:
            return found
        self._added = []
        self._stack = []
        try:
            # The node's own validator is built from the context's class, whatever "$schema" says.
            pred = self._node(node, self.base)
            if self._unguarded_cycle():
                raise _Unsupported("in-place applicator cycle")
        except Exception:  # _Unsupported, and anything unexpected: jsonschema stays in charge
            for added in self._added:
                self.done.pop(added, None)
            # Every node being built when it failed reaches the failing one.
            self.failed.update(self._pending)
            self.failed.add(key)
            self._pending.clear()
            return None
        finally:
            # In-place edges only matter within one attempt (earlier nodes were checked then).
            self._edges.clear()
        return pred

    def _node(self, node: Node, cls: type, *, inplace: bool = False) -> Predicate:
        schema = node.schema
        if schema is True:
            return _true
        if schema is False:
            return _false
        if not isinstance(schema, dict):
            raise _Unsupported("schema is neither an object nor a boolean")
        key = (node.key, cls)
        if inplace and self._stack:
            self._edges[self._stack[-1]].append(key)
        found = self.done.get(key)
        if found is not None:
            return found
        if key in self.failed:
            raise _Unsupported("known unsupported")
        holder = self._pending.get(key)
        if holder is not None:
            return self._lazy(holder, len(self._stack) - self._stack.index(key))
        holder = [None]
        self._pending[key] = holder
        self._stack.append(key)
        self._edges[key] = []
        try:
            pred = self._build(node, cls)
        finally:
            self._stack.pop()
        del self._pending[key]
        holder[0] = pred
        self.done[key] = pred
        self._added.append(key)
        return pred

    def _lazy(self, holder: list, cycle: int) -> Predicate:
        """The predicate of a node still being built (a cycle of ``cycle`` nodes), bound once built.

        Only cycles nest without bound, and jsonschema nests its own frames for every node on the
        way: on a value deep enough to exhaust the stack there, it answers False (RecursionError),
        where these closures, thinner, could still give a verdict. Past a nesting of nodes safely
        below that point the predicate gives up (the caller falls back to jsonschema).
        """
        budget = self.nesting_budget
        local = self._nesting

        def lazy(value: Any) -> bool:
            depth = getattr(local, "depth", 0) + cycle
            if depth > budget:
                raise _TooDeep
            local.depth = depth
            try:
                return holder[0](value)
            finally:
                local.depth = depth - cycle

        return lazy

    def _unguarded_cycle(self) -> bool:
        """Whether the nodes built in this attempt have a cycle of in-place applicators only."""
        added = set(self._added)
        state: dict[tuple, int] = {}
        for start in self._added:
            if start in state:
                continue
            state[start] = 1
            stack = [(start, iter(self._edges.get(start, ())))]
            while stack:
                current, successors = stack[-1]
                for succ in successors:
                    if succ not in added:
                        continue  # built earlier: checked then
                    mark = state.get(succ)
                    if mark == 1:
                        return True
                    if mark is None:
                        state[succ] = 1
                        stack.append((succ, iter(self._edges.get(succ, ()))))
                        break
                else:
                    state[current] = 2
                    stack.pop()
        return False

    def _class_for(self, schema: Any, cls: type) -> type:
        # evolve() re-picks the class from "$schema"; only the same dialect's classes are modelled.
        if not isinstance(schema, dict) or "$schema" not in schema:
            return cls
        if not isinstance(schema["$schema"], str):
            raise _Unsupported("$schema is not a string")
        new = jsonschema.validators.validator_for(schema, default=cls)
        if new is cls:
            return cls
        base = self.base
        if (
            new.ID_OF(new.META_SCHEMA) != base.ID_OF(base.META_SCHEMA)
            or new.TYPE_CHECKER is not base.TYPE_CHECKER
            or new._APPLICABLE_VALIDATORS is not base._APPLICABLE_VALIDATORS
            or new.ID_OF is not base.ID_OF
        ):
            raise _Unsupported("subschema switches to another draft")
        return new

    def _descend(
        self, node: Node, sub: Any, cls: type, *pointer: str | int, inplace: bool = False
    ) -> Predicate:
        """A subschema applied with ``descend`` (its own ``$id`` scope entered).

        ``inplace``: applied to the same instance (applicators), not to a member or item of it.
        """
        if sub is True:
            return _true
        if sub is False:
            return _false
        if not isinstance(sub, dict):
            raise _Unsupported("subschema is neither an object nor a boolean")
        self._check_id(sub)
        return self._node(self.ctx.child(node, sub, *pointer), self._class_for(sub, cls), inplace=inplace)

    def _evolve(
        self, node: Node, sub: Any, cls: type, *pointer: str | int, inplace: bool = False
    ) -> Predicate:
        """A subschema applied with ``evolve`` (the parent's resolver: its ``$id`` is not entered)."""
        if isinstance(sub, dict):
            self._check_id(sub)
            if cls.ID_OF(sub) is not None:
                raise _Unsupported("$id in a subschema applied with the parent's resolver")
        return self._descend(node, sub, cls, *pointer, inplace=inplace)

    def _check_id(self, sub: dict) -> None:
        # The context's child() swallows identifiers referencing cannot use; jsonschema raises.
        try:
            found = self.ctx.specification.create_resource(sub).id()
        except Exception as exc:
            raise _Unsupported("unusable $id") from exc
        if found is not None and not isinstance(found, str):
            raise _Unsupported("non-string $id")

    def _build(self, node: Node, cls: type) -> Predicate:
        schema = node.schema
        validators = cls.VALIDATORS
        parts = _Parts()
        for name, value in cls._APPLICABLE_VALIDATORS(schema):
            function = validators.get(name)
            if function is None:
                continue  # jsonschema ignores keywords its class does not know
            handler = self.handlers.get(function)
            if handler is None:
                raise _Unsupported(f"keyword {name!r}")
            handler(node, cls, name, value, parts)
        return _assemble(parts)

    # -- any instance ----------------------------------------------------------------------------

    def _ref(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        if not isinstance(value, str):
            raise _Unsupported("$ref is not a string")
        target = self._lookup(node, value)
        sub = target.schema
        if isinstance(sub, dict):
            self._check_id(sub)
        elif not isinstance(sub, bool):
            raise _Unsupported("$ref to a non-schema")
        # _validate_reference descends with the resolved resolver (the target's scope already entered).
        parts.generic.append(self._node(target, self._class_for(sub, cls), inplace=True))

    def _lookup(self, node: Node, ref: str) -> Node:
        # Not ctx.resolve(): that also flags the context as using dynamic references (a side effect
        # the runtime reads); a failure here only means "not compiled".
        key = (node.key, ref)
        found = self._lookups.get(key)
        if found is None:
            try:
                resolved = node.resolver.lookup(ref)
            except Exception as exc:
                raise _Unsupported(f"cannot resolve {ref!r}") from exc
            found = type(node)(resolved.contents, resolved.resolver, f"{node.pointer}/$ref")
            self._lookups[key] = found
        return found

    def _type(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) and n in _TYPE_CLASSES for n in names):
            raise _Unsupported("type")
        checker = cls.TYPE_CHECKER
        parts.type_test = _type_test(tuple(names), checker, float_integers=checker is _DRAFT6_TYPES)
        parts.kinds = "".join(_TYPE_KINDS[n] for n in names)
        parts.type_names = tuple(names)

    def _enum(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        if not isinstance(value, list):
            raise _Unsupported("enum is not an array")
        parts.first.append(_member_test(value))

    def _const(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        parts.first.append(_member_test([value]))

    def _format(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        checker = self.ctx.format_checker
        if checker is None:
            return
        if not isinstance(value, str):
            raise _Unsupported("format is not a string")
        if value not in checker.checkers:
            return  # FormatChecker.check passes unknown formats
        function, raises = checker.checkers[value]

        def conforms(instance: Any) -> bool:
            # FormatChecker.check: the declared exceptions and a falsy result both fail. Any other
            # exception propagates, as it does through jsonschema (the caller then asks jsonschema).
            try:
                result = function(instance)
            except raises:
                return False
            return bool(result)

        parts.generic.append(conforms)

    def _all_of(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        subs = self._schema_list(value)
        parts.generic.extend(
            self._descend(node, sub, cls, name, i, inplace=True) for i, sub in enumerate(subs)
        )

    def _any_of(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        preds = tuple(
            self._descend(node, sub, cls, name, i, inplace=True)
            for i, sub in enumerate(self._schema_list(value))
        )

        def any_of(instance: Any) -> bool:
            for pred in preds:  # noqa: SIM110 - no generator per call on the hot path
                if pred(instance):
                    return True
            return False

        parts.generic.append(any_of)

    def _one_of(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        # The first valid branch is found with descend(), the others tried with evolve(): the same
        # predicate serves both as long as no branch has an "$id" (checked by _evolve).
        preds = tuple(
            self._evolve(node, sub, cls, name, i, inplace=True)
            for i, sub in enumerate(self._schema_list(value))
        )

        def one_of(instance: Any) -> bool:
            found = False
            for pred in preds:
                if pred(instance):
                    if found:
                        return False
                    found = True
            return found

        parts.generic.append(one_of)

    def _not(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        pred = self._evolve(node, value, cls, name, inplace=True)

        def negated(instance: Any) -> bool:
            return not pred(instance)

        parts.generic.append(negated)

    def _if(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        schema = node.schema
        # Compiled even alone: jsonschema evaluates it, and what it cannot compile (an unresolvable
        # reference, say) could make jsonschema's verdict False there.
        condition = self._evolve(node, value, cls, "if", inplace=True)
        if "then" not in schema and "else" not in schema:
            return  # its verdict is never used
        then = self._descend(node, schema["then"], cls, "then", inplace=True) if "then" in schema else _true
        otherwise = (
            self._descend(node, schema["else"], cls, "else", inplace=True) if "else" in schema else _true
        )

        def if_then_else(instance: Any) -> bool:
            return then(instance) if condition(instance) else otherwise(instance)

        parts.generic.append(if_then_else)

    @staticmethod
    def _schema_list(value: Any) -> list:
        if not isinstance(value, list):
            raise _Unsupported("applicator value is not an array")
        return value

    # -- strings ---------------------------------------------------------------------------------

    def _pattern_python(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        search = _python_regex(value).search
        parts.strings.append(lambda s: search(s) is not None)

    def _pattern_ecma(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        compiled = _ecma_regex(value)
        if compiled is None:
            return  # the ECMA pattern keyword ignores patterns that are not ECMA-262 regexes
        search = compiled.search
        parts.strings.append(lambda s: search(s) is not None)

    # -- numbers ---------------------------------------------------------------------------------

    def _minimum(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        limit = _count(value)
        parts.numbers.append(lambda x: not x < limit)

    def _maximum(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        limit = _count(value)
        parts.numbers.append(lambda x: not x > limit)

    def _exclusive_minimum(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        limit = _count(value)
        parts.numbers.append(lambda x: not x <= limit)

    def _exclusive_maximum(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        limit = _count(value)
        parts.numbers.append(lambda x: not x >= limit)

    def _minimum_draft4(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        limit = _count(value)
        if node.schema.get("exclusiveMinimum", False):
            parts.numbers.append(lambda x: not x <= limit)
        else:
            parts.numbers.append(lambda x: not x < limit)

    def _maximum_draft4(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        limit = _count(value)
        if node.schema.get("exclusiveMaximum", False):
            parts.numbers.append(lambda x: not x >= limit)
        else:
            parts.numbers.append(lambda x: not x > limit)

    def _multiple_of(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        divisor = _count(value)
        if not divisor > 0:
            raise _Unsupported("multipleOf is not positive")
        if isinstance(divisor, float):

            def multiple_of_float(x: Any) -> bool:
                # jsonschema's float path, including its exact fallback when the quotient overflows.
                quotient = x / divisor
                try:
                    failed = int(quotient) != quotient
                except OverflowError:
                    failed = (Fraction(x) / Fraction(divisor)).denominator != 1
                return not failed

            parts.numbers.append(multiple_of_float)
        else:
            parts.numbers.append(lambda x: not x % divisor)

    # -- objects ---------------------------------------------------------------------------------

    def _properties(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        if not isinstance(value, dict):
            raise _Unsupported("properties is not an object")
        props = {}
        for prop, sub in value.items():
            pred = self._descend(node, sub, cls, "properties", prop)
            if pred is not _true:
                props[prop] = pred
        parts.props = props

    def _pattern_properties_python(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        if not isinstance(value, dict):
            raise _Unsupported("patternProperties is not an object")
        for pattern, sub in value.items():
            search = _python_regex(pattern).search
            parts.patterns.append((search, self._descend(node, sub, cls, "patternProperties", pattern)))

    def _pattern_properties_ecma(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        if not isinstance(value, dict):
            raise _Unsupported("patternProperties is not an object")
        for pattern, sub in value.items():
            compiled = _ecma_regex(pattern)
            if compiled is None:
                continue  # skipped by the ECMA patternProperties keyword
            parts.patterns.append(
                (compiled.search, self._descend(node, sub, cls, "patternProperties", pattern))
            )

    def _additional_properties(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        schema = node.schema
        names = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        if not isinstance(names, dict) or not isinstance(patterns, dict):
            raise _Unsupported("properties/patternProperties are not objects")
        if isinstance(value, dict):
            pred = self._descend(node, value, cls, "additionalProperties")
            if pred is _true:
                return
        elif value is False:
            pred = _false
        elif value is True:
            return
        else:
            raise _Unsupported("additionalProperties is not a schema")
        # jsonschema's find_additional_properties: Python's re on the patterns joined by "|".
        joined = "|".join(patterns)
        parts.additional_search = _python_regex(joined).search if joined else None
        parts.additional_names = names
        parts.additional = pred

    def _required(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise _Unsupported("required is not an array of strings")
        if not value:
            return
        names = tuple(value)
        if len(names) == 1:
            only = names[0]
            parts.objects.append(lambda d: only in d)
            return

        def required(d: dict) -> bool:
            for prop in names:  # noqa: SIM110 - no generator per call on the hot path
                if prop not in d:
                    return False
            return True

        parts.objects.append(required)

    def _property_names(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        pred = self._descend(node, value, cls, "propertyNames")
        if pred is _true:
            return

        def property_names(d: dict) -> bool:
            for prop in d:  # noqa: SIM110 - no generator per call on the hot path
                if not pred(prop):
                    return False
            return True

        parts.objects.append(property_names)

    def _dependent_required(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        if not isinstance(value, dict):
            raise _Unsupported("dependentRequired is not an object")
        pairs = []
        for prop, needed in value.items():
            if not isinstance(needed, list) or not all(isinstance(p, str) for p in needed):
                raise _Unsupported("dependentRequired value is not an array of strings")
            pairs.append((prop, tuple(needed)))
        parts.objects.append(_dependent_names(tuple(pairs)))

    def _dependent_schemas(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        if not isinstance(value, dict):
            raise _Unsupported("dependentSchemas is not an object")
        pairs = tuple(
            (prop, self._descend(node, sub, cls, name, prop, inplace=True)) for prop, sub in value.items()
        )
        parts.objects.append(_dependent_preds(pairs))

    def _dependencies(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        if not isinstance(value, dict):
            raise _Unsupported("dependencies is not an object")
        names, preds = [], []
        for prop, dependency in value.items():
            if isinstance(dependency, list):
                if not all(isinstance(p, str) for p in dependency):
                    raise _Unsupported("dependencies array of non-strings")
                names.append((prop, tuple(dependency)))
            else:
                preds.append((prop, self._descend(node, dependency, cls, name, prop, inplace=True)))
        if names:
            parts.objects.append(_dependent_names(tuple(names)))
        if preds:
            parts.objects.append(_dependent_preds(tuple(preds)))

    # -- arrays ----------------------------------------------------------------------------------

    def _items(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        prefix = node.schema.get("prefixItems", [])
        if not isinstance(prefix, list):
            raise _Unsupported("prefixItems is not an array")
        start = len(prefix)
        if value is False:  # jsonschema tests identity with False
            parts.arrays.append(lambda a: len(a) <= start)
            return
        if not isinstance(value, dict | bool):
            raise _Unsupported("items is not a schema")
        parts.arrays.append(_rest(self._descend(node, value, cls, "items"), start))

    def _prefix_items(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        subs = self._schema_list(value)
        parts.arrays.append(
            _zipped(tuple(self._descend(node, sub, cls, name, i) for i, sub in enumerate(subs)))
        )

    def _items_draft4(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        if isinstance(value, dict):
            parts.arrays.append(_rest(self._descend(node, value, cls, "items"), 0))
        elif isinstance(value, list):
            parts.arrays.append(
                _zipped(tuple(self._descend(node, s, cls, name, i) for i, s in enumerate(value)))
            )
        else:
            raise _Unsupported("draft-4 items is neither a schema nor an array")

    def _items_draft6(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        if isinstance(value, list):
            parts.arrays.append(
                _zipped(tuple(self._descend(node, s, cls, name, i) for i, s in enumerate(value)))
            )
        elif isinstance(value, dict | bool):
            parts.arrays.append(_rest(self._descend(node, value, cls, "items"), 0))
        else:
            raise _Unsupported("items is neither a schema nor an array")

    def _additional_items(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        items = node.schema.get("items", {})
        if isinstance(items, dict):
            return  # ignored beside a single "items" schema (or without "items")
        if not isinstance(items, list):
            raise _Unsupported("additionalItems beside a boolean items")  # jsonschema: len(bool)
        start = len(items)
        if isinstance(value, dict):
            parts.arrays.append(_rest(self._descend(node, value, cls, "additionalItems"), start))
        elif value is False:
            parts.arrays.append(lambda a: not len(a) > start)
        elif value is not True:
            raise _Unsupported("additionalItems is not a schema")

    def _unique_items(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        if value:  # jsonschema tests the keyword value's truthiness
            parts.arrays.append(_unique)

    def _contains(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        schema = node.schema
        low = schema.get("minContains", 1)
        high = schema.get("maxContains")
        if not _is_count(low) or (high is not None and not _is_count(high)):
            raise _Unsupported("minContains/maxContains")
        pred = self._evolve(node, value, cls, name)

        def contains(a: list) -> bool:
            limit = len(a) if high is None else high
            matches = 0
            for item in a:
                if pred(item):
                    matches += 1
                    if matches > limit:
                        return False
            return not matches < low

        parts.arrays.append(contains)

    def _contains_draft6(self, node: Node, cls: type, name: str, value: Any, parts: _Parts) -> None:
        pred = self._evolve(node, value, cls, name)

        def contains(a: list) -> bool:
            for item in a:  # noqa: SIM110 - no generator per call on the hot path
                if pred(item):
                    return True
            return False

        parts.arrays.append(contains)


# -- building blocks ---------------------------------------------------------------------------------


def _count(value: Any) -> int | float:
    if not _is_count(value):
        raise _Unsupported("numeric keyword value is not a number")
    return value


def _python_regex(pattern: Any) -> re.Pattern:
    # Where jsonschema calls re.search(pattern, ...): a pattern re rejects raises at validation time,
    # in an order-dependent place; not modelled.
    if not isinstance(pattern, str):
        raise _Unsupported("pattern is not a string")
    try:
        return re.compile(pattern)
    except Exception as exc:
        raise _Unsupported(f"Python re rejects {pattern!r}") from exc


def _ecma_regex(pattern: Any) -> re.Pattern | None:
    # As schema._ecma_pattern: PatternSyntaxError means "ignored"; anything else would raise there.
    if not isinstance(pattern, str):
        raise _Unsupported("pattern is not a string")
    try:
        return compile_python(pattern)
    except PatternSyntaxError:
        return None
    except Exception as exc:
        raise _Unsupported(f"cannot compile {pattern!r}") from exc


def _type_test(names: tuple[str, ...], checker: Any, *, float_integers: bool) -> Predicate:
    """jsonschema's "type" with this type checker: exact Python types first, the checker for others."""
    exact = frozenset(cls for n in names for cls in _TYPE_CLASSES[n])
    # From draft 6 on, a float with no fractional part is an integer.
    float_integer = float_integers and "integer" in names and "number" not in names

    def slow(value: Any) -> bool:
        return any(checker.is_type(value, n) for n in names)

    if len(exact) == 1 and not float_integer:
        (only,) = exact

        def single(value: Any) -> bool:
            t = type(value)
            if t is only:
                return True
            if t in _JSON_TYPES:
                return False
            return slow(value)

        return single

    def test(value: Any) -> bool:
        t = type(value)
        if t in exact:
            return True
        if t in _JSON_TYPES:
            return float_integer and t is float and value.is_integer()
        return slow(value)

    return test


def _member_test(values: list) -> Predicate:
    """``any(equal(each, instance) for each in values)``, with set lookups where they are the same."""
    if not all(type(v) in _JSON_TYPES for v in values):
        choices = tuple(values)
        return lambda instance: any(_equal(each, instance) for each in choices)
    strings = frozenset(v for v in values if type(v) is str)
    # equal() compares non-bool numbers with ==, as set membership does (1 == 1.0, same hash).
    nums = frozenset(v for v in values if type(v) in (int, float))
    has_true = any(v is True for v in values)
    has_false = any(v is False for v in values)
    has_null = any(v is None for v in values)
    containers = tuple(v for v in values if type(v) in (list, dict))

    def member(instance: Any) -> bool:
        t = type(instance)
        if t is str:
            return instance in strings
        if t is int or t is float:
            return instance in nums
        if t is bool:
            return has_true if instance else has_false
        if instance is None:
            return has_null
        if t is list or t is dict:
            for each in containers:  # noqa: SIM110 - no generator per call on the hot path
                if _equal(each, instance):
                    return True
            return False
        return any(_equal(each, instance) for each in values)

    return member


def _unique(a: list) -> bool:
    # uniq() sorts and compares neighbours with equal(): for strings that is plain set semantics.
    if all(type(item) is str for item in a):
        return len(set(a)) == len(a)
    return _uniq(a)


def _rest(pred: Predicate, start: int) -> Predicate:
    if pred is _true:
        return _true
    if pred is _false:
        return lambda a: len(a) <= start

    def rest(a: list) -> bool:
        for i in range(start, len(a)):  # noqa: SIM110 - no generator per call on the hot path
            if not pred(a[i]):
                return False
        return True

    return rest


def _zipped(preds: tuple[Predicate, ...]) -> Predicate:
    if all(p is _true for p in preds):
        return _true

    def zipped(a: list) -> bool:
        for pred, item in zip(preds, a, strict=False):  # noqa: SIM110 - no generator per call on the hot path
            if not pred(item):
                return False
        return True

    return zipped


def _dependent_names(pairs: tuple[tuple[str, tuple[str, ...]], ...]) -> Predicate:
    def dependent_required(d: dict) -> bool:
        for prop, needed in pairs:
            if prop in d:
                for other in needed:
                    if other not in d:
                        return False
        return True

    return dependent_required


def _dependent_preds(pairs: tuple[tuple[str, Predicate], ...]) -> Predicate:
    def dependent_schemas(d: dict) -> bool:
        for prop, pred in pairs:  # noqa: SIM110 - no generator per call on the hot path
            if prop in d and not pred(d):
                return False
        return True

    return dependent_schemas


def _members(parts: _Parts) -> Predicate | None:
    """properties, patternProperties and additionalProperties in one pass over the members."""
    props = parts.props or {}
    patterns = tuple(parts.patterns)
    additional = parts.additional
    if not props and not patterns and additional is None:
        return None
    if additional is None and not patterns:

        def properties(d: dict) -> bool:
            for key, value in d.items():
                pred = props.get(key)
                if pred is not None and not pred(value):
                    return False
            return True

        return properties
    names = parts.additional_names
    extra_search = parts.additional_search

    def members(d: dict) -> bool:
        for key, value in d.items():
            pred = props.get(key)
            if pred is not None and not pred(value):
                return False
            for search, pattern_pred in patterns:
                if search(key) is not None and not pattern_pred(value):
                    return False
            if (
                additional is not None
                and key not in names
                and (extra_search is None or extra_search(key) is None)
                and not additional(value)
            ):
                return False
        return True

    return members


def _assemble(parts: _Parts) -> Predicate:
    members = _members(parts)
    objects = ([members] if members is not None else []) + parts.objects
    kinds = parts.kinds
    # Checks for kinds "type" excludes never run: an instance of such a kind has already failed.
    strings = _all(tuple(parts.strings)) if parts.strings and (kinds is None or "s" in kinds) else None
    numbers_ = _all(tuple(parts.numbers)) if parts.numbers and (kinds is None or "n" in kinds) else None
    objects_ = _all(tuple(objects)) if objects and (kinds is None or "o" in kinds) else None
    arrays = _all(tuple(parts.arrays)) if parts.arrays and (kinds is None or "a" in kinds) else None
    generic = ([parts.type_test] if parts.type_test is not None else []) + parts.first + parts.generic
    head = _all(tuple(generic))
    if strings is None and numbers_ is None and objects_ is None and arrays is None:
        return head
    if head is _true:

        def by_kind(value: Any) -> bool:
            if isinstance(value, str):
                return strings is None or strings(value)
            if isinstance(value, dict):
                return objects_ is None or objects_(value)
            if isinstance(value, list):
                return arrays is None or arrays(value)
            if numbers_ is not None and _is_number(value):
                return numbers_(value)
            return True

        return by_kind

    def checked(value: Any) -> bool:
        if not head(value):
            return False
        if isinstance(value, str):
            return strings is None or strings(value)
        if isinstance(value, dict):
            return objects_ is None or objects_(value)
        if isinstance(value, list):
            return arrays is None or arrays(value)
        if numbers_ is not None and _is_number(value):
            return numbers_(value)
        return True

    # One type with checks of its own (the usual {"type": "object", "properties": ...}): values of
    # exactly that Python type skip the type test and the kind dispatch; others take the general path.
    exact = _SINGLE_KIND.get(parts.type_names)
    if exact is None:
        return checked
    own = {"s": strings, "o": objects_, "a": arrays, "n": numbers_}[kinds] or _true
    rest = _all(tuple(parts.first + parts.generic))
    first_type, second_type = exact
    if rest is _true:

        def single_kind(value: Any) -> bool:
            t = type(value)
            if t is first_type or t is second_type:
                return own(value)
            return checked(value)

        return single_kind

    def single_kind_and_rest(value: Any) -> bool:
        t = type(value)
        if t is first_type or t is second_type:
            return rest(value) and own(value)
        return checked(value)

    return single_kind_and_rest


# "type" values whose instances are exactly these Python types (draft-6 integers also take floats).
_SINGLE_KIND: dict[tuple[str, ...], tuple[type, type]] = {
    ("string",): (str, str),
    ("object",): (dict, dict),
    ("array",): (list, list),
    ("number",): (int, float),
}


def compile_predicate(ctx: SchemaContext, node: Node) -> Predicate | None:
    """A plain-Python predicate equal to ``ctx.is_valid(node, value)`` for JSON values, or None.

    Built once per node and cached on the context (with the predicates of every node it reaches).
    None means the node reaches something not implemented exactly (see the module docstring): the
    caller then validates with jsonschema. The predicate may raise where it meets a value it does
    not model; the caller then falls back to jsonschema as well.
    """
    compiler = getattr(ctx, "_predicate_compiler", None)
    if compiler is None:
        compiler = _Compiler(ctx)
        ctx._predicate_compiler = compiler
    return compiler.compile(node)
