"""Shared pytest fixtures: the four shipped tokenizers, their vocabularies and the shared data folder.

Tokenizers are loaded once per session (loading SmolLM2's GGUF takes several seconds); a fixture
skips its tests cleanly when the package holding the tokenizer is not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from structgen.tokenizers import MissingPackageError, load_tokenizer, load_vocabulary
from structgen.vocabulary import Vocabulary

REPO_ROOT = Path(__file__).resolve().parents[1]


def _tokenizer(name: str) -> Any:
    try:
        return load_tokenizer(name)
    except MissingPackageError as exc:
        pytest.skip(f"tokenizer {name!r} unavailable: {exc}")


def _vocabulary(name: str) -> Vocabulary:
    _tokenizer(name)  # skips when the package is missing
    return load_vocabulary(name)


@pytest.fixture(scope="session")
def smollm2_tokenizer() -> Any:
    """SmolLM2-135M-Instruct's tokenizer (byte-level BPE, 49,152 ids)."""
    return _tokenizer("smollm2")


@pytest.fixture(scope="session")
def smollm2_vocab() -> Vocabulary:
    """SmolLM2-135M-Instruct's vocabulary."""
    return _vocabulary("smollm2")


@pytest.fixture(scope="session")
def llama3_tokenizer() -> Any:
    """Llama 3's tokenizer (tiktoken converted to byte-level BPE, 128,256 ids)."""
    return _tokenizer("llama3")


@pytest.fixture(scope="session")
def llama3_vocab() -> Vocabulary:
    """Llama 3's vocabulary."""
    return _vocabulary("llama3")


@pytest.fixture(scope="session")
def mistral_v1_tokenizer() -> Any:
    """Mistral's v1 SentencePiece tokenizer (BPE with byte fallback, 32,000 ids)."""
    return _tokenizer("mistral-v1")


@pytest.fixture(scope="session")
def mistral_v1_vocab() -> Vocabulary:
    """Mistral's v1 SentencePiece vocabulary."""
    return _vocabulary("mistral-v1")


@pytest.fixture(scope="session")
def tekken_tokenizer() -> Any:
    """Mistral's Tekken tokenizer (byte-level BPE after 1,000 special ids, 131,072 ids)."""
    return _tokenizer("tekken")


@pytest.fixture(scope="session")
def tekken_vocab() -> Vocabulary:
    """Mistral's Tekken vocabulary."""
    return _vocabulary("tekken")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only shared data folder beside the checkout (``<repo>/../shared``)."""
    path = (REPO_ROOT / ".." / "shared").resolve()
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} not present")
    return path


@pytest.fixture(scope="session")
def default_model() -> tuple[Any, Any, Vocabulary]:
    """(model, tokenizer, vocab) of the default model, loaded once per session."""
    from structgen.models import resolve_model

    try:
        loaded = resolve_model()
    except ImportError as exc:
        pytest.skip(f"default model unavailable: {exc}")
    return loaded.model, loaded.tokenizer, loaded.vocab
