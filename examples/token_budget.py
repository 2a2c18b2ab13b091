"""A tight token budget on the default model: outputs still complete and validate.

SmolLM2-135M at temperature 1 likes to write long strings and open-ended objects. With
``max_new_tokens=32`` and the budget part of the constraint (the default), the last tokens close
what is open, so the JSON parses and validates; with ``token_budget=False`` the same seeds are
often cut in the middle.

Run: python examples/token_budget.py
"""

from __future__ import annotations

import json

import jsonschema

from structgen.generate import generate

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "details": {"type": "object"},
    },
    "required": ["title", "tags"],
}
PROMPT = "Describe your favourite book as JSON, with a very long title, many tags and lots of details."


def main() -> None:
    """Generate with and without the budget in the constraint, for a few seeds."""
    for seed in range(3):
        for budget in (True, False):
            result = generate(PROMPT, schema=SCHEMA, max_new_tokens=32, seed=seed, token_budget=budget)
            s = result.stats
            print(
                f"seed {seed}, token_budget={budget}: {s['tokens']} tokens, stopped: {s['stopped']}, "
                f"complete: {result.complete}, tokens under the budget test: {s['budget_steps']}"
            )
            print(f"  {result.text!r}")
            if budget:
                assert result.complete, result.text
                jsonschema.validate(json.loads(result.text), SCHEMA)


if __name__ == "__main__":
    main()
