"""Generate text that fully matches a regular expression with the default model (SmolLM2-135M).

Run: python examples/regex_generate.py
"""

from __future__ import annotations

import re

from structgen.generate import generate

EXAMPLES = [
    ("Give me a US phone number.", r"\(\d{3}\) \d{3}-\d{4}"),
    ("What is the date of the first Moon landing?", r"\d{4}-\d{2}-\d{2}"),
    ("Is Paris the capital of France?", r"(Yes|No), because [a-z ,]{10,60}\."),
    ("Write an email address for John Smith.", r"[a-z]{2,12}\.[a-z]{2,12}@[a-z]{3,10}\.(com|org|net)"),
]


def main() -> None:
    """Generate one greedy and one sampled answer per example and print them with their stats."""
    for prompt, pattern in EXAMPLES:
        for temperature in (0.0, 0.8):
            result = generate(prompt, regex=pattern, temperature=temperature, seed=0, max_new_tokens=64)
            assert re.fullmatch(pattern, result.text), result.text
            s = result.stats
            print(f"{prompt!r} ~ /{pattern}/ (temperature {temperature})")
            print(f"  -> {result.text!r}")
            print(
                f"     {s['tokens']} tokens ({s['forced_tokens']} forced), stopped: {s['stopped']}, "
                f"model {s['model_seconds']:.2f} s, constraint {s['constraint_seconds'] * 1000:.1f} ms"
            )


if __name__ == "__main__":
    main()
