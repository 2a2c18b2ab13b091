"""Load SmolLM2's vocabulary and print a few facts about its tokens.

Run from the repository root: ``python examples/vocabulary.py``
"""

from __future__ import annotations

import time

from structgen.tokenizers import load_tokenizer
from structgen.vocabulary import Vocabulary


def main() -> None:
    """Print the size, EOS ids, special ids and some token bytes of SmolLM2-135M-Instruct."""
    start = time.perf_counter()
    tokenizer = load_tokenizer("smollm2")
    loaded = time.perf_counter()
    vocab = Vocabulary.from_tokenizer(tokenizer, name="smollm2")
    built = time.perf_counter()
    print(f"tokenizer loaded in {loaded - start:.2f} s, vocabulary built in {built - loaded:.3f} s")
    print(f"size: {vocab.size} token ids")
    eos = ", ".join(f"{i} {tokenizer.convert_ids_to_tokens(i)}" for i in vocab.eos_token_ids)
    print(f"EOS ids: {eos}")
    special = [i for i in range(vocab.size) if vocab.token_bytes[i] is None]
    print(f"special ids ({len(special)}): {tokenizer.convert_ids_to_tokens(special)}")
    lengths = [len(b) for b in vocab.token_bytes if b is not None]
    print(
        f"text tokens: {len(lengths)}, longest {max(lengths)} bytes, mean {sum(lengths) / len(lengths):.2f}"
    )
    text = "Bonjour 👋, naïve café!\n\tx = 1"
    ids = tokenizer.encode(text, add_special_tokens=False)
    print(f"{text!r} -> {ids}")
    for i in ids:
        print(f"  {i:6d} {tokenizer.convert_ids_to_tokens(i)!r:>12} -> {vocab.token_bytes[i]!r}")
    assert vocab.decode(ids) == text.encode("utf-8")
    singles = {b[0] for b in vocab.token_bytes if b is not None and len(b) == 1}
    missing = [hex(b) for b in sorted(set(range(256)) - singles)]
    print(f"single-byte tokens: {len(singles)}; bytes with no token of their own: {missing}")


if __name__ == "__main__":
    main()
