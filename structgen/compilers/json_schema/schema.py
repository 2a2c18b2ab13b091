"""Loading schemas, resolving references and building the exact validator.

A schema node is addressed as a :class:`Node`: the schema value plus the ``referencing`` resolver in
effect there (its base URI decides what relative ``$ref``/``$id`` mean). ``$ref`` to JSON pointers,
``$defs``/``definitions``, ``$anchor``, ``$id``-relative and registered remote documents are resolved
by the ``referencing`` library, the same machinery the exact validator (``jsonschema``) uses, so the
grammar and the runtime checks always agree on what a reference points to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_specifications
import referencing
import referencing.exceptions
import referencing.jsonschema

from structgen.compilers.json_schema.ecma_regex import PatternSyntaxError, compile_python
from structgen.compilers.json_schema.formats import make_format_checker
from structgen.compilers.json_schema.predicate import compile_predicate
from structgen.errors import SchemaError

DEFAULT_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_OLD_DRAFTS = ("draft-03", "draft-04", "draft-06", "draft-07")


def load_schema(schema: Any) -> dict | bool:
    """A schema as a JSON value from a dict, a bool, a JSON string or a pydantic model class."""
    if isinstance(schema, bool | Mapping):
        return schema if isinstance(schema, bool) else dict(schema)
    if isinstance(schema, str | bytes):
        try:
            value = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"schema is not valid JSON: {exc}") from exc
        if not isinstance(value, bool | dict):
            raise SchemaError(f"a schema must be an object or a boolean, got {type(value).__name__}")
        return value
    model_json_schema = getattr(schema, "model_json_schema", None)
    if callable(model_json_schema):
        return model_json_schema()
    raise SchemaError(
        f"cannot use {type(schema).__name__} as a JSON Schema (dict, JSON text or pydantic model)"
    )


def registry_from_directory(directory: str | Path, base_uri: str) -> referencing.Registry:
    """A registry of every ``*.json`` document under ``directory``, served at ``base_uri + relative path``.

    This is how remote references (e.g. the JSON-Schema-Test-Suite's ``remotes/`` at
    ``http://localhost:1234/``) are made available without network access.
    """
    root = Path(directory)
    resources = []
    for path in sorted(root.rglob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        uri = base_uri + path.relative_to(root).as_posix()
        resources.append(
            (
                uri,
                referencing.Resource.from_contents(
                    contents, default_specification=referencing.jsonschema.DRAFT202012
                ),
            )
        )
    return referencing.Registry().with_resources(resources)


@dataclass(frozen=True)
class Node:
    """A schema value with the resolver (base URI) in effect where it occurs, and its JSON pointer."""

    schema: Any
    resolver: referencing.Resolver
    pointer: str

    @property
    def key(self) -> tuple[int, str]:
        """Identity of the node (same object under the same base URI)."""
        return (id(self.schema), str(self.resolver._base_uri))


class SchemaContext:
    """One schema being compiled: dialect, registry, resolvers and the exact validator."""

    def __init__(
        self,
        schema: dict | bool,
        *,
        registry: referencing.Registry | None = None,
        assert_formats: bool = True,
        check_schema: bool = True,
    ) -> None:
        self.root_schema = schema
        dialect = schema.get("$schema", DEFAULT_DIALECT) if isinstance(schema, dict) else DEFAULT_DIALECT
        self.specification = referencing.jsonschema.specification_with(
            dialect, default=referencing.jsonschema.DRAFT202012
        )
        self.old_draft = self.specification.name in _OLD_DRAFTS
        # Drafts 3 and 4 count 1.0 as a number but not an integer; later drafts count it as both.
        self.integer_zero_fraction = self.specification.name not in ("draft-03", "draft-04")
        self.validator_class = jsonschema.validators.validator_for(
            schema, default=jsonschema.Draft202012Validator
        )
        self.validator_class = _with_ecma_patterns(self.validator_class)
        if check_schema:
            self.check_against_metaschema(schema)
        resource = self.specification.create_resource(schema)
        base_registry = registry if registry is not None else referencing.Registry()
        # The metaschemas are always resolvable (schemas may "$ref" them), as in jsonschema itself.
        base_registry = base_registry.combine(jsonschema_specifications.REGISTRY)
        registry = base_registry.with_resource(resource.id() or "", resource)
        try:
            self.registry = registry.crawl()
        except TypeError:
            # referencing's draft 3-7 crawler assumes subschemas are objects and trips over boolean
            # ones in some positions; jsonschema itself resolves lazily, which still finds pointers.
            self.registry = registry
        # $dynamicRef makes a subschema's meaning depend on the path taken to it: then only whole
        # documents are validated at run time (see runtime.ValueChecker).
        self.uses_dynamic_refs = False
        self.root_resolver = self.registry.resolver_with_root(resource)
        self.format_checker = make_format_checker() if assert_formats else None
        self.validator = self.validator_class(
            schema, registry=self.registry, format_checker=self.format_checker
        )
        self._validators: dict[tuple[int, str], Any] = {}
        self._predicates: dict[tuple[int, str], Any] = {}
        self._resolved: dict[tuple, Node] = {}
        self._children: dict[tuple, Node] = {}
        if _mentions_dynamic(schema):
            self.uses_dynamic_refs = True

    def check_against_metaschema(self, schema: Any) -> None:
        """Raise :class:`SchemaError` (with the JSON pointer) if ``schema`` violates its metaschema."""
        meta = self.validator_class(self.validator_class.META_SCHEMA, format_checker=_META_FORMATS)
        error = jsonschema.exceptions.best_match(meta.iter_errors(schema))
        if error is not None:
            pointer = "/" + "/".join(str(p) for p in error.absolute_path)
            raise SchemaError(f"invalid schema at {pointer!r}: {error.message}")

    def root(self) -> Node:
        """The root node."""
        return Node(self.root_schema, self.root_resolver, "")

    def child(self, node: Node, sub: Any, *pointer_parts: str | int) -> Node:
        """The node of subschema ``sub`` found under ``node`` (entering its ``$id`` scope if any)."""
        cache_key = (node.key, id(sub), pointer_parts)
        found = self._children.get(cache_key)
        if found is None:
            found = self._child(node, sub, pointer_parts)
            self._children[cache_key] = found
        return found

    def _child(self, node: Node, sub: Any, pointer_parts: tuple) -> Node:
        resolver = node.resolver
        if isinstance(sub, dict) and ("$id" in sub or "id" in sub):
            try:
                resolver = resolver.in_subresource(self.specification.create_resource(sub))
            except Exception:  # an "id" that is a property name, not an identifier
                resolver = node.resolver
        pointer = node.pointer + "".join(
            "/" + str(p).replace("~", "~0").replace("/", "~1") for p in pointer_parts
        )
        return Node(sub, resolver, pointer)

    def resolve(self, node: Node, ref: str, keyword: str = "$ref") -> Node:
        """The node a reference in ``node`` points to (cached)."""
        cache_key = (node.key, ref)
        found = self._resolved.get(cache_key)
        if found is None:
            found = self._resolve(node, ref, keyword)
            self._resolved[cache_key] = found
        return found

    def _resolve(self, node: Node, ref: str, keyword: str) -> Node:
        try:
            resolved = node.resolver.lookup(ref)
        except (referencing.exceptions.Unresolvable, referencing.exceptions.Unretrievable) as exc:
            raise SchemaError(f"cannot resolve {keyword} {ref!r} at {node.pointer or '/'!r}: {exc}") from None
        target = resolved.contents
        resolver = resolved.resolver
        if not self.uses_dynamic_refs and _mentions_dynamic(target):
            self.uses_dynamic_refs = True
        # ``referencing`` already entered the target's own ``$id`` scope.
        return Node(target, resolver, f"{node.pointer}/{keyword}")

    def is_valid(self, node: Node, value: Any) -> bool:
        """Exact validation of ``value`` against ``node``'s schema (its own base URI, formats per options)."""
        # A compiled predicate (predicate.py) where the node allows one: same verdict, no jsonschema
        # machinery per call. Whatever it cannot judge (None, or an exception) jsonschema decides.
        predicate = self._predicates.get(node.key, _UNSET)
        if predicate is _UNSET:
            predicate = self._predicates[node.key] = compile_predicate(self, node)
        if predicate is not None:
            try:
                return predicate(value)
            except Exception:
                return self.jsonschema_is_valid(node, value)
        return self.jsonschema_is_valid(node, value)

    def jsonschema_is_valid(self, node: Node, value: Any) -> bool:
        """:meth:`is_valid` by ``jsonschema`` alone (the reference the compiled predicates must match)."""
        v = self._validators.get(node.key)
        if v is None:
            # Constructed directly, not with evolve(): evolve() re-picks the class from "$schema" and
            # would drop the ECMA-262 pattern keywords.
            v = self.validator_class(
                node.schema,
                registry=self.registry,
                format_checker=self.format_checker,
                _resolver=node.resolver,
            )
            self._validators[node.key] = v
        try:
            return v.is_valid(value)
        except (referencing.exceptions.Unresolvable, RecursionError, re.error):
            return False


def _mentions_dynamic(schema: Any) -> bool:
    key = id(schema)
    found = _DYNAMIC_CACHE.get(key)
    if found is None:
        text = json.dumps(schema, default=str)
        found = '"$dynamicRef"' in text or '"$recursiveRef"' in text
        _DYNAMIC_CACHE[key] = found
    return found


_DYNAMIC_CACHE: dict[int, bool] = {}
_UNSET = object()


def _is_ecma_regex(instance: Any) -> bool:
    if not isinstance(instance, str):
        return True
    try:
        compile_python(instance)
    except PatternSyntaxError:
        return False
    return True


_META_FORMATS = jsonschema.FormatChecker(formats=())
_META_FORMATS.checkers["regex"] = (_is_ecma_regex, ())


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any):
    if isinstance(instance, str):
        try:
            matched = compile_python(pattern).search(instance) is not None
        except PatternSyntaxError:
            return
        if not matched:
            yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _ecma_pattern_properties(validator: Any, patterns: dict, instance: Any, schema: Any):
    if not isinstance(instance, dict):
        return
    for pattern, subschema in patterns.items():
        try:
            compiled = compile_python(pattern)
        except PatternSyntaxError:
            continue
        for key, value in instance.items():
            if compiled.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


_EXTENDED: dict[type, type] = {}


def _with_ecma_patterns(cls: type) -> type:
    """The validator class with ``pattern``/``patternProperties`` using ECMA-262 regex semantics."""
    if cls not in _EXTENDED:
        _EXTENDED[cls] = jsonschema.validators.extend(
            cls, {"pattern": _ecma_pattern, "patternProperties": _ecma_pattern_properties}
        )
    return _EXTENDED[cls]
