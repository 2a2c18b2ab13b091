"""A pydantic model as a constraint: compile it, inspect the masks, then generate with SmolLM2-135M.

Run: python examples/json_schema_pydantic.py
"""

from __future__ import annotations

import json
from enum import Enum

from pydantic import BaseModel, Field

from structgen import compile_json_schema, generate
from structgen.tokenizers import load_tokenizer, load_vocabulary


class Color(str, Enum):
    """A closed set of values (an ``enum`` in the schema)."""

    red = "red"
    green = "green"
    blue = "blue"


class Pet(BaseModel):
    """One pet: every field type the compiler turns into exact grammar."""

    name: str = Field(min_length=1, max_length=20)
    species: str = Field(pattern=r"^(cat|dog|fish)$")
    age: int = Field(ge=0, le=30)
    color: Color
    vaccinated: bool = False


class Owner(BaseModel):
    """An owner with a list of pets (a ``$ref`` into ``$defs``)."""

    first_name: str
    email: str = Field(json_schema_extra={"format": "email"})
    pets: list[Pet] = Field(min_length=1, max_length=3)


def main() -> None:
    """Compile, show a few masks, then generate one owner greedily and one with sampling."""
    vocab = load_vocabulary("smollm2")
    tokenizer = load_tokenizer("smollm2")
    # strict=True closes the objects (additionalProperties: false), as generation usually wants: with
    # JSON Schema's default (additional properties allowed) a small model tends to wander into extra
    # keys instead of the required ones.
    constraint = compile_json_schema(Owner, vocab, strict=True)
    print(f"compiled {constraint}")

    # Walk a known-valid document token by token: every token is allowed, and the end accepts.
    doc = {
        "first_name": "Ada",
        "email": "ada@example.org",
        "pets": [{"name": "Tom", "species": "cat", "age": 3, "color": "red"}],
    }
    matcher = constraint.matcher()
    for token_id in tokenizer.encode(json.dumps(doc), add_special_tokens=False):
        assert matcher.mask()[token_id]
        matcher.advance(token_id)
    print(f"valid document accepted, complete: {matcher.is_accepting()}")

    for temperature in (0.0, 0.7):
        result = generate(
            "Invent a pet owner with two pets and answer in JSON.",
            constraint=constraint,
            temperature=temperature,
            seed=0,
            max_new_tokens=256,
        )
        print(f"temperature {temperature}: {result.text}")
        if result.complete:
            owner = Owner.model_validate_json(result.text)
            print(f"  -> parsed: {owner!r}")
        else:
            print(f"  -> stopped early ({result.stats['stopped']}): raise max_new_tokens")


if __name__ == "__main__":
    main()
