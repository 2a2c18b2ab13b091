"""JSON Schema → token-level constraint.

``compile_json_schema(schema, vocab)`` accepts a schema as a dict/bool, JSON text, or a pydantic model
class, and returns a :class:`~structgen.matcher.Constraint` whose language is the set of JSON texts of
instances valid under the schema (draft 2020-12 semantics; draft 4/6/7 forms such as ``definitions``,
array-form ``items``/``additionalItems``, ``dependencies`` and boolean ``exclusiveMinimum`` too).

Design: the schema is compiled to a context-free grammar (``emitter``) whose nonterminals
over-approximate each schema node and record whether they are exact. If the whole grammar is exact,
the constraint is the grammar engine's automaton itself. Otherwise a :class:`JsonSchemaAutomaton`
adds runtime checks (``runtime``): every value the output completes is validated exactly (with
``jsonschema``) against the subschemas that apply at its path, and tokens completing a failing value
are refused; the root value is validated in full, so no invalid document is ever accepted.

Serialization space (what the grammar lets the model write): standard JSON; whitespace per
``whitespace``; strings constrained by ``pattern``/``format``/length and object keys use raw
characters plus the escapes ``json.dumps(..., ensure_ascii=False)`` produces (``\\"``, ``\\\\``,
``\\n``... and ``\\u00XX`` for control characters); integers are written without exponent (an optional
``.0`` fraction is allowed, since ``1.0`` is an integer); constants are written as ``json.dumps`` does,
with their object keys in the order given in the schema.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import referencing

from structgen.compilers.json_schema.automaton import JsonSchemaAutomaton
from structgen.compilers.json_schema.dfas import json_string_dfa
from structgen.compilers.json_schema.emitter import EmitOptions, EmittedGrammar, GrammarEmitter
from structgen.compilers.json_schema.reference import EarleyRecognizer
from structgen.compilers.json_schema.runtime import JsonTracker, ValueChecker
from structgen.compilers.json_schema.schema import SchemaContext, load_schema, registry_from_directory
from structgen.errors import ConstraintError, EmptyLanguageError, ResourceLimitError, SchemaError
from structgen.matcher import Constraint
from structgen.vocabulary import Vocabulary

__all__ = [
    "CompiledSchema",
    "JsonSchemaAutomaton",
    "compile_json_schema",
    "compile_json_schema_grammar",
    "registry_from_directory",
]


@dataclass
class CompiledSchema:
    """The grammar of a schema plus the runtime checker (None when the grammar is exact)."""

    emitted: EmittedGrammar
    context: SchemaContext
    checker: ValueChecker | None

    @property
    def grammar(self):
        """The :class:`~structgen.automata.cfg.ContextFreeGrammar`."""
        return self.emitted.grammar

    @property
    def exact(self) -> bool:
        """Whether the grammar alone is exact (no runtime checks)."""
        return self.checker is None

    def tracker(self) -> JsonTracker | None:
        """A tracker running this schema's checks (None when the grammar is exact)."""
        return None if self.checker is None else JsonTracker(self.checker)

    def recognizer(self) -> EarleyRecognizer:
        """A plain-Python reference recognizer of the grammar (exact terminal DFAs included)."""
        return EarleyRecognizer(self.grammar, self.emitted.terminal_dfas)

    def is_valid(self, instance: Any) -> bool:
        """Exact validation of a whole instance (the semantics the constraint implements)."""
        return self.context.is_valid(self.context.root(), instance)


def _close_objects(schema: Any) -> Any:
    """Deep copy of ``schema`` with ``additionalProperties: false`` wherever an object schema has none."""
    if isinstance(schema, list):
        return [_close_objects(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k in _SCHEMA_MAPS and isinstance(v, dict):
            out[k] = {name: _close_objects(sub) for name, sub in v.items()}
        elif k in _DATA_KEYWORDS:
            out[k] = v
        else:
            out[k] = _close_objects(v)
    is_object_schema = out.get("type") == "object" or "properties" in out
    if is_object_schema and not any(
        k in out for k in ("additionalProperties", "unevaluatedProperties", "patternProperties")
    ):
        out["additionalProperties"] = False
    return out


# Keywords whose value maps names to subschemas, and keywords whose values are data, not schemas.
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_DATA_KEYWORDS = ("enum", "const", "default", "examples", "required", "dependentRequired")


def compile_json_schema_grammar(
    schema: Any,
    *,
    whitespace: str = "flexible",
    max_whitespace: int = 32,
    property_order: str = "flexible",
    strict: bool = False,
    formats: str = "assert",
    registry: referencing.Registry | None = None,
    check_schema: bool | None = None,
    time_limit_s: float = 20.0,
    max_rules: int = 200_000,
) -> CompiledSchema:
    """Compile ``schema`` to its grammar and runtime checker (see :func:`compile_json_schema`)."""
    value = load_schema(schema)
    if formats not in ("assert", "annotate"):
        raise SchemaError(f"formats must be 'assert' or 'annotate', not {formats!r}")
    try:
        if strict:
            value = _close_objects(copy.deepcopy(value))
        ctx = SchemaContext(
            value, registry=registry, assert_formats=formats == "assert", check_schema=check_schema is True
        )
    except RecursionError:
        raise ResourceLimitError("the schema is nested too deeply to compile") from None
    except ConstraintError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        if check_schema is not False:
            SchemaContext(value, check_schema=True)  # raises SchemaError naming the bad keyword
        raise SchemaError(f"cannot compile the schema: {type(exc).__name__}: {exc}") from exc
    options = EmitOptions(
        whitespace=whitespace,
        max_whitespace=max_whitespace,
        property_order=property_order,
        strict=strict,
        assert_formats=formats == "assert",
        max_rules=max_rules,
        time_limit_s=time_limit_s,
    )
    try:
        emitted = GrammarEmitter(ctx, options).emit()
    except RecursionError:
        raise ResourceLimitError("the schema is nested too deeply to compile") from None
    except (SchemaError, EmptyLanguageError):
        if check_schema is None:
            ctx.check_against_metaschema(value)  # an invalid schema is reported as such first
        raise
    except ConstraintError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        if check_schema is not False:
            ctx.check_against_metaschema(value)
        raise SchemaError(f"cannot compile the schema: {type(exc).__name__}: {exc}") from exc
    checker = None if emitted.root_exact else ValueChecker(ctx, emitted.exact_nodes, emitted.own_exact_nodes)
    return CompiledSchema(emitted, ctx, checker)


def compile_json_schema(
    schema: Any,
    vocab: Vocabulary,
    *,
    whitespace: str = "flexible",
    max_whitespace: int = 32,
    property_order: str = "flexible",
    strict: bool = False,
    formats: str = "assert",
    registry: referencing.Registry | None = None,
    check_schema: bool | None = None,
    time_limit_s: float = 20.0,
    max_rules: int = 200_000,
) -> Constraint:
    """Compile a JSON Schema to a token-level constraint over ``vocab``.

    Args:
        schema: a dict (or bool) schema, its JSON text, or a pydantic model class.
        vocab: the model's vocabulary.
        whitespace: ``"flexible"`` (default): any JSON whitespace between tokens, at most
            ``max_whitespace`` characters in a row (so generation cannot loop on spaces);
            ``"compact"``: no whitespace at all.
        property_order: ``"flexible"`` (default): objects with at most 6 listed properties accept
            them in any order (still exact: one grammar rule per subset written), larger ones use
            definition order. ``"definition"``: the listed properties (``properties``, then
            required names not listed there) in that order, optional ones skippable, other properties
            (when allowed) anywhere between them; exact for ``required`` and never a duplicate key.
            ``"any"``: any order for every object; ``required``, duplicates and counts are then
            enforced by runtime checks.
        strict: when True, object schemas without ``additionalProperties`` (and without
            ``patternProperties``/``unevaluatedProperties``) are closed (``additionalProperties:
            false``), as peers' strict modes do. Default False: JSON Schema semantics, where
            additional properties are allowed unless the schema says otherwise.
        formats: ``"assert"`` (default; deviates from 2020-12's annotation-only default, as every
            generation library does): ``format`` is enforced; ``"annotate"``: formats are ignored.
        registry: a ``referencing.Registry`` of documents that remote ``$ref`` may point to.
        check_schema: True: validate the schema against its metaschema first (SchemaError naming
            the JSON pointer if invalid); None (default): only when compiling it fails (metaschema
            validation of large schemas costs more than compiling them); False: never.
        time_limit_s, max_rules: compile-time and grammar-size limits (ResourceLimitError).

    Raises:
        SchemaError: invalid schema (message names the keyword and JSON pointer), unresolvable $ref.
        EmptyLanguageError: no instance is valid.
        ResourceLimitError: the schema is too large or slow to compile.
    """
    from structgen.automata.grammar import GrammarAutomaton

    compiled = compile_json_schema_grammar(
        schema,
        whitespace=whitespace,
        max_whitespace=max_whitespace,
        property_order=property_order,
        strict=strict,
        formats=formats,
        registry=registry,
        check_schema=check_schema,
        time_limit_s=time_limit_s,
        max_rules=max_rules,
    )
    # Key and string terminals share their walks past what makes them special (see
    # structgen.automata.grammar.subtrees): the rest of a JSON string is walked once per vocabulary.
    string_terminals = {
        name: json_string_dfa()
        for name, terminal in compiled.grammar.terminals.items()
        if not terminal.is_literal and terminal.pattern.startswith('"')
    }
    automaton = GrammarAutomaton(
        compiled.grammar, vocab, terminal_dfas=compiled.emitted.terminal_dfas, shared_dfas=string_terminals
    )
    if compiled.checker is not None:
        automaton = JsonSchemaAutomaton(automaton, JsonTracker(compiled.checker))
    return Constraint(automaton, source="json_schema")
