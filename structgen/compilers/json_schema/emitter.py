"""JSON Schema → :class:`ContextFreeGrammar` (BNF over regex/literal terminals).

Every schema node becomes a nonterminal whose language is a *superset* of the serializations of the
node's valid instances (within the serialization space described in ``__init__``), and the emitter
records whether it is *exact*: equal to that set. Keywords a grammar cannot express (``uniqueItems``,
``not``, float ``multipleOf``, ``contains`` counts, ...) are left to the runtime checks, which the
automaton runs only where some node is inexact. Recursion through ``$ref`` becomes recursive rules.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from structgen.automata.cfg import ContextFreeGrammar, Production, Terminal
from structgen.automata.regex import regex_to_byte_dfa
from structgen.compilers.json_schema import ecma_regex
from structgen.compilers.json_schema.dfas import (
    ascii_regex_dfa,
    difference_dfa,
    excluded_keys_dfa,
    intersection_dfa,
    intersects,
    length_string_dfa,
)
from structgen.compilers.json_schema.ecma_regex import (
    ANY,
    PatternSyntaxError,
    UnsupportedPattern,
    json_char_regex,
    pattern_to_json_regex,
)
from structgen.compilers.json_schema.formats import FORMAT_PATTERNS
from structgen.compilers.json_schema.numbers import (
    INTEGER_FRACTION,
    NONNEGATIVE_NUMBER,
    NUMBER,
    decimal_range,
    integer_range,
)
from structgen.compilers.json_schema.schema import Node, SchemaContext
from structgen.errors import EmptyLanguageError, ResourceLimitError, SchemaError

ALL_TYPES = ("null", "boolean", "object", "array", "number", "string")
# Keywords that never constrain instances (annotations, identifiers, containers of subschemas
# reached only by reference).
ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "id",
        "$anchor",
        "$dynamicAnchor",
        "$recursiveAnchor",
        "$defs",
        "definitions",
        "$vocabulary",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentEncoding",
        "contentMediaType",
        "contentSchema",
        "discriminator",
        "example",
        "nullable_annotation",
    }
)
APPLICATORS = frozenset(
    {"$ref", "$dynamicRef", "$recursiveRef", "allOf", "anyOf", "oneOf", "not", "if", "then", "else"}
)
GENERIC_STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
# Strings longer than this are not counted in the grammar (automaton size); the runtime check does it.
MAX_EXACT_LENGTH = 1024
# Array lengths beyond this are not unrolled into rules; the runtime check enforces them.
MAX_UNROLLED_ITEMS = 64
# Pattern-property key regexes longer than this are not turned into DFAs while emitting (slow).
MAX_EAGER_PATTERN = 1000
# property_order="flexible": objects with at most this many listed properties accept any order.
MAX_ANY_ORDER_PROPERTIES = 6


@dataclass
class EmitOptions:
    """How the grammar is shaped (see ``compile_json_schema`` for the meaning of each)."""

    whitespace: str = "flexible"
    max_whitespace: int = 24
    property_order: str = "flexible"
    strict: bool = False
    assert_formats: bool = True
    max_rules: int = 200_000
    time_limit_s: float = 20.0


@dataclass
class EmittedGrammar:
    """The grammar plus what the runtime checks need to know about it."""

    grammar: ContextFreeGrammar
    root_exact: bool
    exact_nodes: frozenset[tuple[int, str]]
    # Nodes whose own emission is exact (their subschemas' may not be).
    own_exact_nodes: frozenset[tuple[int, str]]
    inexact_reasons: dict[str, list[str]] = field(default_factory=dict)
    terminal_dfas: dict[str, Any] = field(default_factory=dict)


class GrammarEmitter:
    """Builds the grammar for one schema context."""

    def __init__(self, ctx: SchemaContext, options: EmitOptions) -> None:
        self.ctx = ctx
        self.opt = options
        self.productions: list[Production] = []
        self.terminals: dict[str, Terminal] = {}
        self.terminal_dfas: dict[str, Any] = {}
        self._term_by_pattern: dict[tuple[str, bool], str] = {}
        self._rules: dict[tuple, str] = {}
        self._rule_node: dict[str, tuple[int, str]] = {}
        self._own_exact: dict[str, bool] = {}
        self._deps: dict[str, set[str]] = {}
        self._stack: list[str] = []
        self._counter = 0
        self._keep: list[Any] = []
        self._merge_cache: dict[tuple, tuple[Node, bool]] = {}
        self._any: str | None = None
        self._ws: list[str] = []
        self.reasons: dict[str, list[str]] = {}
        self._deadline = time.monotonic() + options.time_limit_s
        if options.whitespace == "flexible":
            ws_term = self.term(f"[ \\t\\n\\r]{{1,{options.max_whitespace}}}", name="WS")
            self.productions.append(Production("ws", ()))
            self.productions.append(Production("ws", (ws_term,)))
            self._ws = ["ws"]
        elif options.whitespace != "compact":
            raise SchemaError(f"whitespace must be 'flexible' or 'compact', not {options.whitespace!r}")

    # --- bookkeeping ---------------------------------------------------------------------------------

    def term(self, pattern: str, *, literal: bool = False, name: str | None = None, dfa: Any = None) -> str:
        """The terminal for ``pattern`` (created once); ``dfa``, if given, is its prebuilt byte DFA."""
        key = (pattern, literal)
        found = self._term_by_pattern.get(key)
        if found:
            return found
        if name is None:
            name = f"T{len(self.terminals)}"
        self.terminals[name] = Terminal(name, pattern, is_literal=literal)
        self._term_by_pattern[key] = name
        if dfa is None and not literal:
            dfa = ascii_regex_dfa(pattern)  # None unless ASCII-only: then the engine builds it
        if dfa is not None:
            self.terminal_dfas[name] = dfa
        return name

    def lit(self, text: str) -> str:
        """A literal terminal."""
        names = {"{": "LBRACE", "}": "RBRACE", "[": "LBRACK", "]": "RBRACK", ",": "COMMA", ":": "COLON"}
        names.update({"true": "TRUE", "false": "FALSE", "null": "NULL"})
        return self.term(text, literal=True, name=names.get(text))

    def fresh(self, hint: str) -> str:
        """A new nonterminal name."""
        self._counter += 1
        return f"{hint}_{self._counter}"

    def add(self, lhs: str, *rhs: str) -> None:
        """Add ``lhs -> rhs``."""
        self.productions.append(Production(lhs, tuple(rhs)))
        if len(self.productions) > self.opt.max_rules:
            raise ResourceLimitError(f"the grammar for this schema exceeds {self.opt.max_rules} productions")

    def inexact(self, rule: str, reason: str) -> None:
        """Mark ``rule``'s own emission as a strict superset (checked at run time)."""
        self._own_exact[rule] = False
        self.reasons.setdefault(rule, []).append(reason)

    def ws(self) -> list[str]:
        """Symbols of an optional whitespace run (none in compact mode)."""
        return list(self._ws)

    def sep(self) -> list[str]:
        """``ws , ws``."""
        return [*self._ws, self.lit(","), *self._ws]

    # --- entry ---------------------------------------------------------------------------------------

    def emit(self) -> EmittedGrammar:
        """Emit the grammar for the whole schema."""
        root = self.value(self.ctx.root())
        self.add("start", *self.ws(), root, *self.ws())
        grammar = self._finish()
        exact = self._exactness()
        exact_nodes = frozenset(self._rule_node[r] for r, ok in exact.items() if ok and r in self._rule_node)
        own_exact = frozenset(
            self._rule_node[r] for r, ok in self._own_exact.items() if ok and r in self._rule_node
        )
        reasons = {r: v for r, v in self.reasons.items() if not exact.get(r, True) or v}
        dfas = {n: d for n, d in self.terminal_dfas.items() if n in grammar.terminals}
        return EmittedGrammar(grammar, exact[root], exact_nodes, own_exact, reasons, dfas)

    def _finish(self) -> ContextFreeGrammar:
        # Remove unproductive nonterminals (empty schemas, impossible required properties, ...).
        by_lhs: dict[str, list[Production]] = {}
        for p in self.productions:
            by_lhs.setdefault(p.lhs, []).append(p)
        productive: set[str] = set()
        changed = True
        while changed:
            changed = False
            for p in self.productions:
                if p.lhs not in productive and all(s in self.terminals or s in productive for s in p.rhs):
                    productive.add(p.lhs)
                    changed = True
        if "start" not in productive:
            raise EmptyLanguageError("the schema accepts no JSON value")
        kept = [
            p
            for p in self.productions
            if p.lhs in productive and all(s in self.terminals or s in productive for s in p.rhs)
        ]
        # Keep only what the start symbol reaches.
        reach = {"start"}
        todo = ["start"]
        by_lhs = {}
        for p in kept:
            by_lhs.setdefault(p.lhs, []).append(p)
        used_terms: set[str] = set()
        while todo:
            for p in by_lhs.get(todo.pop(), ()):
                for s in p.rhs:
                    if s in self.terminals:
                        used_terms.add(s)
                    elif s not in reach:
                        reach.add(s)
                        todo.append(s)
        kept = [p for p in kept if p.lhs in reach]
        terminals = {n: t for n, t in self.terminals.items() if n in used_terms}
        return ContextFreeGrammar("start", kept, terminals, (), name="json_schema")

    def _exactness(self) -> dict[str, bool]:
        exact = {r: self._own_exact.get(r, True) for r in self._own_exact}
        users: dict[str, set[str]] = {}
        for rule, deps in self._deps.items():
            for d in deps:
                users.setdefault(d, set()).add(rule)
        todo = [r for r, ok in exact.items() if not ok]
        while todo:
            r = todo.pop()
            for u in users.get(r, ()):
                if exact.get(u, True):
                    exact[u] = False
                    todo.append(u)
        return exact

    # --- values --------------------------------------------------------------------------------------

    def value(self, node: Node) -> str:
        """The nonterminal of ``node``'s values."""
        if time.monotonic() > self._deadline:
            raise ResourceLimitError(f"compiling the schema took longer than {self.opt.time_limit_s} s")
        schema = node.schema
        if schema is True or (isinstance(schema, dict) and not (set(schema) - ANNOTATIONS)):
            rule = self.any_value()
        else:
            key = node.key
            rule = self._rules.get(key)
            if rule is None:
                rule = self.fresh("v")
                self._rules[key] = rule
                self._rule_node[rule] = key
                self._own_exact[rule] = True
                self._deps[rule] = set()
                self._stack.append(rule)
                try:
                    for rhs in self._node_alternatives(node, rule):
                        self.add(rule, *rhs)
                finally:
                    self._stack.pop()
        if self._stack:
            self._deps[self._stack[-1]].add(rule)
        return rule

    def any_value(self) -> str:
        """The nonterminal of every JSON value (exact)."""
        if self._any is None:
            self._any = "any"
            self._own_exact["any"] = True
            self._deps["any"] = set()
            string = self.term(GENERIC_STRING, name="STRING")
            number = self.term(NUMBER, name="NUMBER")
            for rhs in (
                ["obj_any"],
                ["arr_any"],
                [string],
                [number],
                [self.lit("true")],
                [self.lit("false")],
                [self.lit("null")],
            ):
                self.add("any", *rhs)
            ws = self.ws()
            self.add("obj_any", self.lit("{"), *ws, self.lit("}"))
            self.add("obj_any", self.lit("{"), *ws, "members_any", *ws, self.lit("}"))
            self.add("members_any", "pair_any")
            self.add("members_any", "members_any", *self.sep(), "pair_any")
            self.add("pair_any", string, *ws, self.lit(":"), *ws, "any")
            self.add("arr_any", self.lit("["), *ws, self.lit("]"))
            self.add("arr_any", self.lit("["), *ws, "elems_any", *ws, self.lit("]"))
            self.add("elems_any", "any")
            self.add("elems_any", "elems_any", *self.sep(), "any")
        return self._any

    def _node_alternatives(self, node: Node, rule: str) -> list[list[str]]:
        schema = node.schema
        if schema is False:
            return []
        if not isinstance(schema, dict):
            raise SchemaError(f"a schema must be an object or a boolean at {node.pointer or '/'!r}")
        if self.ctx.old_draft and "$ref" in schema:
            # Before 2019-09, "$ref" makes every sibling keyword ignored.
            return [[self.value(self.ctx.resolve(node, schema["$ref"]))]]
        if "$dynamicRef" in schema or "$recursiveRef" in schema:
            # The target depends on the dynamic scope: accept any value, check exactly at run time.
            self.inexact(rule, "$dynamicRef")
            own = {k: v for k, v in schema.items() if k not in ("$dynamicRef", "$recursiveRef")}
            if set(own) - ANNOTATIONS:
                return [[self.value(self._derived(node, own))]]
            return [[self.any_value()]]
        own = {k: v for k, v in schema.items() if k not in APPLICATORS}
        conjuncts: list[Node] = []
        if set(own) - ANNOTATIONS:
            conjuncts.append(self._derived(node, own) if len(own) != len(schema) else node)
        if "$ref" in schema:
            conjuncts.append(self.ctx.resolve(node, schema["$ref"]))
        for i, sub in enumerate(schema.get("allOf", ())):
            conjuncts.append(self.ctx.child(node, sub, "allOf", i))
        if "not" in schema:
            self.inexact(rule, "not")
            not_schema = schema["not"]
            if (
                isinstance(not_schema, dict)
                and set(not_schema) <= {"type"} | ANNOTATIONS
                and "type" in not_schema
            ):
                # {"not": {"type": T}}: remove T from the allowed types (exact).
                banned = not_schema["type"] if isinstance(not_schema["type"], list) else [not_schema["type"]]
                allowed = [t for t in ALL_TYPES if t not in banned]
                if "integer" in banned and "number" in allowed:
                    pass  # numbers without integers: keep number (superset), runtime check stays
                else:
                    self._own_exact[rule] = True
                    self.reasons[rule].remove("not")
                conjuncts.append(self._derived(node, {"type": allowed}))
            elif (
                isinstance(not_schema, dict)
                and set(not_schema) - ANNOTATIONS == {"required"}
                and len(not_schema["required"]) == 1
            ):
                # {"not": {"required": [k]}}: an object without property k (non-objects satisfy
                # "required", so "not" rejects them).
                self._own_exact[rule] = True
                self.reasons[rule].remove("not")
                (key,) = not_schema["required"]
                conjuncts.append(self._derived(node, {"type": "object", "properties": {key: False}}))
            elif not_schema is True:
                return []
        disjunctions: list[tuple[str, list[Node]]] = []
        if "anyOf" in schema:
            disjunctions.append(
                ("anyOf", [self.ctx.child(node, s, "anyOf", i) for i, s in enumerate(schema["anyOf"])])
            )
        if "oneOf" in schema:
            disjunctions.append(
                ("oneOf", [self.ctx.child(node, s, "oneOf", i) for i, s in enumerate(schema["oneOf"])])
            )
        if "if" in schema and ("then" in schema or "else" in schema):
            self.inexact(rule, "if/then/else")
            branches = [self.ctx.child(node, schema.get(k, True), k) for k in ("then", "else")]
            disjunctions.append(("if", branches))
        base, base_exact = self._conjunction(node, conjuncts)
        if not base_exact:
            self.inexact(rule, "allOf/$ref with siblings")
        if not disjunctions:
            if base is None:
                return [[self.any_value()]]
            if base is node:
                return self._typed_alternatives(node, rule)
            return [[self.value(base)]]
        kind, branches = disjunctions[0]
        if len(disjunctions) > 1:
            self.inexact(rule, "several of anyOf/oneOf/if")
        if kind == "oneOf" and not self._disjoint(branches):
            self.inexact(rule, "oneOf exclusivity")
        alternatives = []
        for branch in branches:
            if base is None:
                alternatives.append([self.value(branch)])
                continue
            merged, ok = self._conjunction(node, [base, branch])
            if not ok:
                self.inexact(rule, f"{kind} branch merged with siblings")
            alternatives.append([self.value(merged) if merged is not None else self.any_value()])
        return alternatives

    def _derived(self, node: Node, schema: dict) -> Node:
        # Derived dicts stay alive (in _keep) so their id()-based node keys are never reused.
        self._keep.append(schema)
        return Node(schema, node.resolver, node.pointer)

    def _conjunction(self, node: Node, conjuncts: list[Node]) -> tuple[Node | None, bool]:
        """One node whose grammar covers all conjuncts (merged when possible) and whether it is exact."""
        parts = [
            c
            for c in conjuncts
            if not (c.schema is True or (isinstance(c.schema, dict) and not (set(c.schema) - ANNOTATIONS)))
        ]
        if any(c.schema is False for c in parts):
            return Node(False, node.resolver, node.pointer), True
        if not parts:
            return None, True
        if len(parts) == 1:
            return parts[0], True
        cache_key = tuple(c.key for c in parts)
        cached = self._merge_cache.get(cache_key)
        if cached is not None:
            return cached
        merged: dict | None = None
        exact = True
        base_uri = str(parts[0].resolver._base_uri)
        flat: list[dict] = []
        for part in parts:
            expanded = self._flatten(part, base_uri, depth=0)
            if expanded is None:
                flat = []
                break
            flat.extend(expanded)
        if flat:
            merged = {}
            members = _conjoin_object_members(flat)
            for schema in flat:
                if members is not None:
                    schema = {k: v for k, v in schema.items() if k not in _OBJECT_MEMBER_KEYWORDS}
                exact &= _merge_into(merged, schema)
            if members is not None:
                merged.update(members)
            # additionalProperties/items-style keywords depend on their siblings: merged with another
            # part's properties/prefixItems they constrain less (a superset), so checks must stay.
            for sensitive, siblings in _SIBLING_SENSITIVE:
                if members is not None and "additionalProperties" in sensitive:
                    continue
                if any(sensitive & set(f) for f in flat) and sum(bool(siblings & set(f)) for f in flat) > 1:
                    exact = False
        if merged is None:
            # Different base URIs (or references that cannot be inlined): use the most specific part.
            best = max(parts, key=lambda c: len(c.schema) if isinstance(c.schema, dict) else 0)
            result = (best, False)
        else:
            result = (self._derived(parts[0], merged), exact)
        self._merge_cache[cache_key] = result
        return result

    def _flatten(self, node: Node, base_uri: str, depth: int) -> list[dict] | None:
        """Plain keyword dicts whose conjunction is ``node`` (refs and allOf inlined), or None."""
        schema = node.schema
        if schema is True:
            return []
        if schema is False:
            return [{"not": {}}]
        if str(node.resolver._base_uri) != base_uri or depth > 8:
            return None
        if any(k in schema for k in ("$dynamicRef", "$recursiveRef", "$id", "id")) and depth > 0:
            return None
        own = {k: v for k, v in schema.items() if k not in ("$ref", "allOf")}
        out = [own]
        if "$ref" in schema:
            if self.ctx.old_draft:
                out = []
            target = self.ctx.resolve(node, schema["$ref"])
            sub = self._flatten(target, base_uri, depth + 1)
            if sub is None:
                return None
            out.extend(sub)
        for i, s in enumerate(schema.get("allOf", ())):
            sub = self._flatten(self.ctx.child(node, s, "allOf", i), base_uri, depth + 1)
            if sub is None:
                return None
            out.extend(sub)
        return out

    def _disjoint(self, branches: list[Node]) -> bool:
        """Whether oneOf branches provably never both match (distinct types or distinct constants)."""
        seen_types: set[str] = set()
        for branch in branches:
            types = self._possible_types(branch, 0)
            if types is None:
                return False
            numeric = {"integer", "number"}
            if types & numeric and seen_types & numeric:
                return False
            if types & seen_types:
                return False
            seen_types |= types
        return True

    def _possible_types(self, node: Node, depth: int) -> set[str] | None:
        schema = node.schema
        if not isinstance(schema, dict) or depth > 8:
            return None
        if "$ref" in schema and "type" not in schema:
            return self._possible_types(self.ctx.resolve(node, schema["$ref"]), depth + 1)
        if "const" in schema:
            return {_json_type(schema["const"])}
        if "enum" in schema:
            return {_json_type(v) for v in schema["enum"]}
        t = schema.get("type")
        if t is None:
            return None
        return set(t) if isinstance(t, list) else {t}

    # --- typed schemas ---------------------------------------------------------------------------------

    def _typed_alternatives(self, node: Node, rule: str) -> list[list[str]]:
        schema: dict = node.schema
        for kw, value in schema.items():
            # Numeric keywords the emitter does arithmetic with (the metaschema check is lazy).
            bad_count = isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            if kw in _COUNT_KEYWORDS and (bad_count or not float(value).is_integer()):  # fmt: skip
                raise SchemaError(f"{kw} must be a non-negative integer at {node.pointer or '/'!r}")
            if (
                kw in _BOUND_KEYWORDS
                and not (isinstance(value, int | float) and not isinstance(value, bool))
                and not (kw.startswith("exclusive") and isinstance(value, bool))
            ):
                raise SchemaError(f"{kw} must be a number at {node.pointer or '/'!r}")
        if "enum" in schema or "const" in schema:
            values = [schema["const"]] if "const" in schema else list(schema["enum"])
            alternatives = []
            seen = set()
            for v in values:
                # Keep only members valid under the whole node: this makes enum + siblings exact.
                if not self.ctx.is_valid(node, v):
                    continue
                text = json.dumps(v, sort_keys=False, ensure_ascii=False)
                if (text, type(v)) in seen:
                    continue
                seen.add((text, type(v)))
                alternatives.append(self.constant(v))
            return alternatives
        types = schema.get("type", list(ALL_TYPES))
        if isinstance(types, str):
            types = [types]
        types = list(dict.fromkeys(types))
        if "number" in types and "integer" in types:
            types.remove("integer")
        alternatives: list[list[str]] = []
        for t in types:
            if t == "null":
                alternatives.append([self.lit("null")])
            elif t == "boolean":
                alternatives.append([self.lit("true")])
                alternatives.append([self.lit("false")])
            elif t == "integer":
                alternatives.extend(self._integer(node, rule))
            elif t == "number":
                alternatives.extend(self._number(node, rule))
            elif t == "string":
                alternatives.extend(self._string(node, rule))
            elif t == "array":
                alternatives.extend(self._array(node, rule))
            elif t == "object":
                alternatives.extend(self._object(node, rule))
            else:
                raise SchemaError(f"unknown type {t!r} at {node.pointer or '/'!r}")
        return alternatives

    def constant(self, value: Any) -> list[str]:
        """Symbols matching the JSON serializations of one constant (any whitespace between tokens)."""
        if value is None:
            return [self.lit("null")]
        if value is True:
            return [self.lit("true")]
        if value is False:
            return [self.lit("false")]
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            n = int(value)
            text = str(abs(n))
            sign = "\\-?" if n == 0 else ("\\-" if n < 0 else "")
            return [self.term(f"{sign}{text}{INTEGER_FRACTION}")]
        if isinstance(value, float):
            if not math.isfinite(value):
                return []
            return [self.term(json.dumps(value), literal=True)]
        if isinstance(value, str):
            return [self.term(json.dumps(value, ensure_ascii=False), literal=True)]
        if isinstance(value, list):
            if not value:
                return [self.lit("["), *self.ws(), self.lit("]")]
            out = [self.lit("["), *self.ws()]
            for i, item in enumerate(value):
                if i:
                    out += self.sep()
                out += self.constant(item)
            return [*out, *self.ws(), self.lit("]")]
        if isinstance(value, dict):
            if not value:
                return [self.lit("{"), *self.ws(), self.lit("}")]
            out = [self.lit("{"), *self.ws()]
            for i, (k, v) in enumerate(value.items()):
                if i:
                    out += self.sep()
                out += [
                    self.term(json.dumps(k, ensure_ascii=False), literal=True),
                    *self.ws(),
                    self.lit(":"),
                    *self.ws(),
                    *self.constant(v),
                ]
            return [*out, *self.ws(), self.lit("}")]
        raise SchemaError(f"unsupported constant {value!r}")

    def _bounds(self, schema: dict) -> tuple[tuple[float, bool] | None, tuple[float, bool] | None]:
        lo = hi = None
        if "minimum" in schema:
            lo = (schema["minimum"], bool(schema.get("exclusiveMinimum") is True))
        if "maximum" in schema:
            hi = (schema["maximum"], bool(schema.get("exclusiveMaximum") is True))
        emin, emax = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if isinstance(emin, int | float) and not isinstance(emin, bool) and (lo is None or emin >= lo[0]):
            lo = (emin, True)
        if isinstance(emax, int | float) and not isinstance(emax, bool) and (hi is None or emax <= hi[0]):
            hi = (emax, True)
        return lo, hi

    def _integer(self, node: Node, rule: str) -> list[list[str]]:
        schema = node.schema
        lo, hi = self._bounds(schema)
        ilo = ihi = None
        try:
            if lo is not None:
                ilo = math.floor(lo[0]) + 1 if lo[1] and float(lo[0]).is_integer() else math.ceil(lo[0])
            if hi is not None:
                ihi = math.ceil(hi[0]) - 1 if hi[1] and float(hi[0]).is_integer() else math.floor(hi[0])
        except (OverflowError, ValueError):
            self.inexact(rule, "non-finite bound")
            return [[self.term(integer_range(None, None, zero_fraction=self.ctx.integer_zero_fraction))]]
        if ilo is not None and ihi is not None and ilo > ihi:
            return []
        if "multipleOf" in schema:
            m = schema["multipleOf"]
            if not (isinstance(m, int) or float(m).is_integer()) or int(m) != 1:
                self.inexact(rule, "multipleOf")
        return [[self.term(integer_range(ilo, ihi, zero_fraction=self.ctx.integer_zero_fraction))]]

    def _number(self, node: Node, rule: str) -> list[list[str]]:
        schema = node.schema
        lo, hi = self._bounds(schema)
        places = None
        if "multipleOf" in schema:
            places = _decimal_places(schema["multipleOf"])
            if places is None:
                self.inexact(rule, "multipleOf")
        if lo is None and hi is None and places is None:
            return [[self.term(NUMBER, name="NUMBER")]]
        if hi is None and lo == (0, False) and places is None:
            return [[self.term(NONNEGATIVE_NUMBER)]]
        ilo, ihi = _integer_bound(lo), _integer_bound(hi)
        if (lo is None or ilo is not None) and (hi is None or ihi is not None):
            # Integer bounds and/or a multipleOf 10^-k: exact over plain decimals (such numbers are
            # written without exponent).
            body = decimal_range(ilo, bool(lo and lo[1]), ihi, bool(hi and hi[1]), places)
            return [] if body is None else [[self.term(body)]]
        if places is not None:
            self.inexact(rule, "multipleOf")
        self.inexact(rule, "number bounds")
        if hi is None and lo is not None and lo[0] >= 0:
            return [[self.term(NONNEGATIVE_NUMBER)]]
        return [[self.term(NUMBER, name="NUMBER")]]

    def _string(self, node: Node, rule: str) -> list[list[str]]:
        schema = node.schema
        fmt = schema.get("format") if self.opt.assert_formats else None
        pattern = schema.get("pattern")
        min_len = int(schema.get("minLength", 0))
        max_len = None if schema.get("maxLength") is None else int(schema["maxLength"])
        content: str | None = None
        constraints = [
            k
            for k in ("format", "pattern")
            if (k == "format" and fmt in FORMAT_PATTERNS) or (k == "pattern" and pattern is not None)
        ]
        length_trivial = min_len == 0 and max_len is None
        # Unknown formats are annotations; known ones without a regex here are checked at run time.
        if fmt is not None and fmt not in FORMAT_PATTERNS and fmt in self.ctx.format_checker.checkers:
            self.inexact(rule, f"format {fmt}")
        if len(constraints) > 1 or (constraints and not length_trivial):
            combined = self._combined_string(node, fmt if "format" in constraints else None, min_len, max_len)
            if combined is not None:
                return combined
            self.inexact(rule, "string keywords combined")
        if "format" in constraints:
            content = pattern_to_json_regex(FORMAT_PATTERNS[fmt])
        elif "pattern" in constraints:
            try:
                content = pattern_to_json_regex(pattern)
            except UnsupportedPattern as exc:
                self.inexact(rule, f"pattern: {exc}")
            except PatternSyntaxError as exc:
                raise SchemaError(f"invalid pattern at {node.pointer}/pattern: {exc}") from None
        length_dfa = None
        if content is None and not length_trivial:
            char = json_char_regex(ANY)
            if max_len is not None and max_len < min_len:
                return []
            lo, hi = min_len, max_len
            if min_len > MAX_EXACT_LENGTH:
                self.inexact(rule, "minLength too large to unroll")
                lo, hi = MAX_EXACT_LENGTH, None
            elif max_len is not None and max_len > MAX_EXACT_LENGTH:
                self.inexact(rule, "maxLength too large to unroll")
                hi = None
            content = f"(?:{char}){{{lo},}}" if hi is None else f"(?:{char}){{{lo},{hi}}}"
            length_dfa = length_string_dfa(lo, hi)
        if content is None:
            return [[self.term(GENERIC_STRING, name="STRING")]]
        dfa = (
            length_dfa
            if length_dfa is not None and "format" not in constraints and "pattern" not in constraints
            else None
        )
        return [[self.term(f'"{content}"', dfa=dfa)]]

    def _combined_string(
        self, node: Node, fmt: str | None, min_len: int, max_len: int | None
    ) -> list[list[str]] | None:
        """Exact alternatives for a string under several of format/pattern/length, or None.

        The terminal's DFA is the intersection of the keywords' DFAs; its regex says the same with
        lookaheads. None (the caller falls back to one keyword plus runtime checks) when a pattern
        is outside the supported syntax, a length is too large to unroll, or the product of the
        DFAs is too large.
        """
        if (max_len if max_len is not None else min_len) > MAX_EXACT_LENGTH:
            return None
        if max_len is not None and max_len < min_len:
            return []
        parts: list[str] = []
        try:
            if fmt is not None:
                parts.append(f'"{pattern_to_json_regex(FORMAT_PATTERNS[fmt])}"')
            if "pattern" in node.schema:
                parts.append(f'"{pattern_to_json_regex(node.schema["pattern"])}"')
        except UnsupportedPattern:
            return None
        except PatternSyntaxError as exc:
            raise SchemaError(f"invalid pattern at {node.pointer}/pattern: {exc}") from None
        dfas = [ascii_regex_dfa(p) or regex_to_byte_dfa(p) for p in parts]
        if min_len or max_len is not None:
            char = json_char_regex(ANY)
            bound = "" if max_len is None else max_len
            parts.append(f'"(?:{char}){{{min_len},{bound}}}"')
            dfas.append(length_string_dfa(min_len, max_len))
        try:
            dfa = intersection_dfa(dfas)
        except EmptyLanguageError:
            return []
        except OverflowError:
            return None
        regex = "".join(f"(?={p})" for p in parts[:-1]) + parts[-1]
        return [[self.term(regex, dfa=dfa)]]

    def _array(self, node: Node, rule: str) -> list[list[str]]:
        schema = node.schema
        ctx = self.ctx
        prefix: list[Node] = []
        rest: Node | None
        if isinstance(schema.get("items"), list):
            prefix = [ctx.child(node, s, "items", i) for i, s in enumerate(schema["items"])]
            rest = ctx.child(node, schema.get("additionalItems", True), "additionalItems")
        else:
            prefix = [
                ctx.child(node, s, "prefixItems", i) for i, s in enumerate(schema.get("prefixItems", ()))
            ]
            rest = ctx.child(node, schema.get("items", True), "items")
        if schema.get("uniqueItems") is True:
            self.inexact(rule, "uniqueItems")
        if "contains" in schema:
            self.inexact(rule, "contains")
        if schema.get("unevaluatedItems", True) not in (True, {}):
            self.inexact(rule, "unevaluatedItems")
        min_items = int(schema.get("minItems", 0))
        max_items = schema.get("maxItems")
        max_items = None if max_items is None else int(max_items)
        if rest.schema is False:
            max_items = len(prefix) if max_items is None else min(max_items, len(prefix))
        if max_items is not None and max_items < min_items:
            return []
        ws = self.ws()
        alternatives: list[list[str]] = []
        if min_items == 0:
            alternatives.append([self.lit("["), *ws, self.lit("]")])
        if max_items == 0:
            return alternatives
        name = self.fresh("arr")
        unroll = max(len(prefix), min_items, 1)
        if max_items is not None:
            unroll = min(unroll + MAX_UNROLLED_ITEMS, max_items)

        def element(i: int) -> str:
            return self.value(prefix[i]) if i < len(prefix) else self.value(rest)

        # tails[i]: what may follow once i >= 1 elements are written.
        tails: dict[int, str] = {}
        last = f"{name}_t{unroll}"
        tails[unroll] = last
        self.add(last)
        if (max_items is None or unroll < max_items) and rest.schema is not False:
            # Any number of further ``rest`` items; a bound past the unrolled part is checked at run time.
            if max_items is not None:
                self.inexact(rule, "maxItems beyond the unrolled bound")
            self.add(last, last, *self.sep(), self.value(rest))
        for i in range(unroll - 1, 0, -1):
            t = f"{name}_t{i}"
            tails[i] = t
            if i >= min_items:
                self.add(t)
            self.add(t, *self.sep(), element(i), tails[i + 1])
        alternatives.append([self.lit("["), *ws, element(0), tails[1], *ws, self.lit("]")])
        return alternatives

    def _object_any_order(
        self, name: str, ordered: list[str], required: list[str], key_nodes: dict, extra: str | None
    ) -> list[list[str]]:
        """Listed properties in any order, each at most once (exact): one rule per subset written."""
        ws = self.ws()
        colon = [*ws, self.lit(":"), *ws]
        pairs = [
            [self.term(json.dumps(k, ensure_ascii=False), literal=True), *colon, self.value(key_nodes[k])]
            for k in ordered
        ]
        needed = 0
        for i, k in enumerate(ordered):
            if k in required:
                needed |= 1 << i
        first = f"{name}_s"
        for subset in range(1 << len(ordered)):
            rest = f"{name}_s{subset}"
            if subset & needed == needed:
                self.add(rest)
            if extra:
                self.add(rest, *self.sep(), extra, rest)
            for i, pair in enumerate(pairs):
                if not subset & (1 << i):
                    self.add(rest, *self.sep(), *pair, f"{name}_s{subset | (1 << i)}")
        for i, pair in enumerate(pairs):
            self.add(first, *pair, f"{name}_s{1 << i}")
        if extra:
            self.add(first, extra, f"{name}_s0")
        alternatives = [[self.lit("{"), *ws, first, *ws, self.lit("}")]]
        if not required:
            alternatives.append([self.lit("{"), *ws, self.lit("}")])
        return alternatives

    def _object(self, node: Node, rule: str) -> list[list[str]]:
        schema = node.schema
        ctx = self.ctx
        props: dict = schema.get("properties", {})
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
            raise SchemaError(f"required must be a list of strings at {node.pointer or '/'!r}")
        required = list(dict.fromkeys(required))
        patterns: dict = schema.get("patternProperties", {})
        additional = schema.get("additionalProperties", not self.opt.strict)
        for kw in ("dependentRequired", "dependentSchemas", "dependencies"):
            if schema.get(kw):
                self.inexact(rule, kw)
        if "propertyNames" in schema and schema["propertyNames"] not in (True, {}):
            self.inexact(rule, "propertyNames")
        if "unevaluatedProperties" in schema and schema["unevaluatedProperties"] not in (True, {}):
            self.inexact(rule, "unevaluatedProperties")
        # Pattern keys as byte DFAs: exact when no listed key matches a pattern and the patterns
        # are disjoint; other keys are then "no listed key, no pattern" (a DFA difference).
        pattern_dfas: dict[str, Any] = {}
        if patterns:
            exact_patterns = True
            for pat in patterns:
                try:
                    regex = f'"{pattern_to_json_regex(pat)}"'
                    if any(ecma_regex.ecma_search(pat, k) for k in props):
                        exact_patterns = False
                    dfa = ascii_regex_dfa(regex)
                    if dfa is None and len(regex) <= MAX_EAGER_PATTERN:
                        dfa = regex_to_byte_dfa(regex)
                    if dfa is None:
                        exact_patterns = False  # huge Unicode classes: left to the engine, checked
                        continue
                    pattern_dfas[pat] = (regex, dfa)
                except UnsupportedPattern:
                    exact_patterns = False
                except PatternSyntaxError as exc:
                    raise SchemaError(f"invalid pattern at {node.pointer}/patternProperties: {exc}") from None
            if exact_patterns and len(pattern_dfas) == len(patterns):
                found = [d for _, d in pattern_dfas.values()]
                exact_patterns = not any(
                    intersects(found[i], found[j])
                    for i in range(len(found))
                    for j in range(i + 1, len(found))
                )
            if not exact_patterns:
                self.inexact(rule, "patternProperties")
        min_props = int(schema.get("minProperties", 0))
        max_props = schema.get("maxProperties")
        if max_props is not None or min_props > len(required):
            self.inexact(rule, "minProperties/maxProperties")
        if max_props is not None and max_props < len(required):
            return []

        def schema_for(key: str) -> Node:
            if key in props:
                return ctx.child(node, props[key], "properties", key)
            for pat, sub in patterns.items():
                if ecma_regex.ecma_search(pat, key):
                    return ctx.child(node, sub, "patternProperties", pat)
            return ctx.child(node, additional, "additionalProperties")

        ordered = [
            k
            for k in props
            if ctx.child(node, props[k], "properties", k).schema is not False or k in required
        ]
        ordered += [k for k in required if k not in props]
        key_nodes = {k: schema_for(k) for k in ordered}
        if any(key_nodes[k].schema is False for k in required):
            return []
        ws = self.ws()
        colon = [*ws, self.lit(":"), *ws]
        # The "other properties" section, written after the listed ones.
        extra_pairs: list[list[str]] = []
        known_keys = list(props) + [k for k in required if k not in props]
        for pat, sub in patterns.items():
            sub_node = ctx.child(node, sub, "patternProperties", pat)
            if sub_node.schema is False:
                continue
            if pat in pattern_dfas:
                regex, dfa = pattern_dfas[pat]
                key_term = self.term(regex, dfa=dfa)
            else:
                try:
                    key_term = self.term(f'"{pattern_to_json_regex(pat)}"')
                except UnsupportedPattern:
                    key_term = self.term(GENERIC_STRING, name="STRING")
            extra_pairs.append([key_term, *colon, self.value(sub_node)])
        add_node = ctx.child(node, additional, "additionalProperties")
        if add_node.schema is not False:
            words = tuple(sorted(set(known_keys)))
            regex = f'"{exclude_strings_regex(list(words))}"'
            dfa = excluded_keys_dfa(words)
            if patterns and len(pattern_dfas) == len(patterns):
                # The IR keeps the (superset) regex; the engine gets the exact difference DFA.
                try:
                    dfa = difference_dfa(dfa, [d for _, d in pattern_dfas.values()])
                except EmptyLanguageError:
                    dfa = None  # every key matches some pattern: no "other" properties
                tag = hashlib.sha1("\n".join(sorted(patterns)).encode()).hexdigest()[:12]
                regex = f"{regex}(?#minus-patterns-{tag})"
            key_term = self.term(regex, dfa=dfa) if dfa is not None else None
            if key_term is not None:
                extra_pairs.append([key_term, *colon, self.value(add_node)])
        name = self.fresh("obj")
        extra: str | None = None
        if extra_pairs:
            extra = f"{name}_xp"
            for p in extra_pairs:
                self.add(extra, *p)

        if self.opt.property_order == "any":
            if ordered or required:
                self.inexact(rule, "property_order any")
            pair = f"{name}_ap"
            for k in ordered:
                self.add(
                    pair,
                    self.term(json.dumps(k, ensure_ascii=False), literal=True),
                    *colon,
                    self.value(key_nodes[k]),
                )
            if extra:
                self.add(pair, extra)
            members = f"{name}_am"
            self.add(members, pair)
            self.add(members, members, *self.sep(), pair)
            return [[self.lit("{"), *ws, self.lit("}")], [self.lit("{"), *ws, members, *ws, self.lit("}")]]
        if self.opt.property_order not in ("definition", "flexible"):
            raise SchemaError(
                f"property_order must be 'definition', 'flexible' or 'any', not {self.opt.property_order!r}"
            )
        if self.opt.property_order == "flexible" and 1 < len(ordered) <= MAX_ANY_ORDER_PROPERTIES:
            return self._object_any_order(name, ordered, required, key_nodes, extra)
        n = len(ordered)
        pairs = []
        for k in ordered:
            value = self.value(key_nodes[k])
            pairs.append([self.term(json.dumps(k, ensure_ascii=False), literal=True), *colon, value])
        # f{i}: nothing written yet, properties i.. to come; r{i}: something written (separator first).
        # Other properties (extra) may appear between listed ones: listed keys stay in their order.
        for i in range(n + 1):
            first, rest = f"{name}_f{i}", f"{name}_r{i}"
            if extra:
                self.add(first, f"{name}_xp", rest)
                self.add(rest, *self.sep(), f"{name}_xp", rest)
            if i == n:
                self.add(rest)
                continue
            optional = ordered[i] not in required
            self.add(first, *pairs[i], f"{name}_r{i + 1}")
            self.add(rest, *self.sep(), *pairs[i], f"{name}_r{i + 1}")
            if optional:
                self.add(first, f"{name}_f{i + 1}")
                self.add(rest, f"{name}_r{i + 1}")
        alternatives = [[self.lit("{"), *ws, f"{name}_f0", *ws, self.lit("}")]]
        if not required:
            alternatives.append([self.lit("{"), *ws, self.lit("}")])
        return alternatives


def _decimal_places(step: Any) -> int | None:
    """k when ``step`` is 10^-k (k >= 0: 1, 0.1, 0.01, ...), else None."""
    if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
        return None
    exponent = Decimal(repr(step)).normalize().as_tuple()
    if exponent.digits == (1,) and exponent.exponent <= 0:
        return -exponent.exponent
    return None


def _integer_bound(bound: tuple[float, bool] | None) -> int | None:
    """The bound's value as an int when it is an integer of reasonable size, else None."""
    if bound is None:
        return None
    value = bound[0]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if abs(value) <= 10**18 else None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


_SIBLING_SENSITIVE = (
    (
        frozenset({"additionalProperties", "unevaluatedProperties"}),
        frozenset({"properties", "patternProperties", "additionalProperties", "unevaluatedProperties"}),
    ),
    (
        frozenset({"items", "additionalItems", "unevaluatedItems"}),
        frozenset({"prefixItems", "items", "additionalItems", "unevaluatedItems"}),
    ),
)
_COUNT_KEYWORDS = frozenset(
    {
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minContains",
        "maxContains",
    }
)
_BOUND_KEYWORDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
_MIN_KEYS = ("minimum", "minLength", "minItems", "minProperties", "minContains")
_MAX_KEYS = ("maximum", "maxLength", "maxItems", "maxProperties", "maxContains")


_OBJECT_MEMBER_KEYWORDS = ("properties", "additionalProperties")


def _all_of(schemas: list[Any]) -> Any:
    """The conjunction of ``schemas`` as one schema, with the trivial cases folded."""
    parts = [s for s in schemas if s is not True and s != {}]
    if any(s is False for s in parts):
        return False
    if not parts:
        return True
    return parts[0] if len(parts) == 1 else {"allOf": parts}


def _conjoin_object_members(flat: list[dict]) -> dict | None:
    """Exact ``properties``/``additionalProperties`` of the conjunction of ``flat``, or None.

    A property ``k`` of the conjunction must satisfy, in every conjunct, that conjunct's
    ``properties[k]`` or else its ``additionalProperties``; any other key every conjunct's
    ``additionalProperties``. Without ``patternProperties``/``unevaluatedProperties`` (whose
    interplay this does not model: None) that is the whole story, so the merge stays exact.
    """
    if not any(k in f for f in flat for k in _OBJECT_MEMBER_KEYWORDS):
        return None
    if any("patternProperties" in f or "unevaluatedProperties" in f for f in flat):
        return None
    names = dict.fromkeys(name for f in flat for name in f.get("properties", {}))
    out: dict[str, Any] = {}
    if names:
        out["properties"] = {
            name: _all_of(
                [f.get("properties", {}).get(name, f.get("additionalProperties", True)) for f in flat]
            )
            for name in names
        }
    extra = _all_of([f.get("additionalProperties", True) for f in flat])
    if extra is not True:
        out["additionalProperties"] = extra
    return out


def _merge_into(merged: dict, schema: dict) -> bool:
    """Conjoin ``schema``'s keywords into ``merged``; False when the result is only a superset."""
    exact = True
    for k, v in schema.items():
        if k in ANNOTATIONS:
            continue
        if k not in merged:
            merged[k] = v
            continue
        old = merged[k]
        if old == v and type(old) is type(v):
            continue
        if k == "type":
            a = set(old) if isinstance(old, list) else {old}
            b = set(v) if isinstance(v, list) else {v}
            both = (a & b) | (
                {"integer"}
                if ("integer" in a and "number" in b) or ("number" in a and "integer" in b)
                else set()
            )
            merged[k] = sorted(both)
        elif k == "required":
            merged[k] = list(dict.fromkeys([*old, *v]))
        elif k == "properties":
            props = dict(old)
            for name, sub in v.items():
                props[name] = {"allOf": [props[name], sub]} if name in props else sub
            merged[k] = props
            if "additionalProperties" in merged or "patternProperties" in merged:
                exact = False
        elif k in _MIN_KEYS and isinstance(old, int | float) and isinstance(v, int | float):
            merged[k] = max(old, v)
        elif k in _MAX_KEYS and isinstance(old, int | float) and isinstance(v, int | float):
            merged[k] = min(old, v)
        elif k in ("allOf",):
            merged[k] = [*old, *v]
        else:
            exact = False
    if "additionalProperties" in schema and schema.get("properties") != merged.get("properties"):
        exact = False
    if ("items" in schema or "prefixItems" in schema) and merged.get("items") is not schema.get("items"):
        exact = False
    return exact


def exclude_strings_regex(words: list[str]) -> str:
    """Interegular regex for JSON string contents of every string except ``words`` (canonical escapes)."""
    return _exclude_strings_regex(tuple(sorted(set(words))))


@functools.lru_cache(maxsize=1024)
def _exclude_strings_regex(words: tuple[str, ...]) -> str:
    any_char = json_char_regex(ANY)
    if not words:
        return f"(?:{any_char})*"
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = True

    def build(node: dict) -> str:
        options = []
        children = sorted(k for k in node if k)
        if "" not in node:
            options.append("")  # stopping here is fine: not a listed word
        others = ecma_regex.subtract(ANY, ecma_regex.normalize([(ord(c), ord(c)) for c in children]))
        if others:
            options.append(f"{json_char_regex(others)}(?:{any_char})*")
        for c in children:
            options.append(json_char_regex(((ord(c), ord(c)),)) + build(node[c]))
        if options == [""]:
            return ""
        nonempty = [o for o in options if o]
        body = "(?:" + "|".join(nonempty) + ")"
        return body + "?" if "" in options else body

    return build(trie)
