"""Saving and loading models atomically; the user's files are never overwritten by default.

A coreprune checkpoint (format 2) is a ``torch.save`` file holding ``{"format", "module",
"state_dict", "arch", "metadata"}``: ``state_dict`` the weights, ``metadata`` plain JSON values
(the pruning record included), and ``module`` a byte string: the pickled module with its
weights left out (on the ``meta`` device), so that :func:`load` gives back the pruned shapes
without rebuilding the architecture. Format 1 (coreprune 0.1-0.4.0) pickled the module inline;
such files still load.

Loading runs no code from the file unless the caller says it is trusted: by default the file is
read by PyTorch's restricted unpickler (``weights_only=True``), which builds tensors, plain
containers and numbers, and here also the module classes of ``torch.nn``, torchvision,
coreprune's zoo and the attention layers a head cut hands back (``SeparateQKVAttention`` and
the others of :mod:`coreprune.pruning.layers`; their ``__setstate__`` only restores attributes).
A module that needs any other class (a model class of one's own, or a payload) is refused with a
message naming it; ``trusted=True`` (``--trust-pickle`` on the command line) unpickles it in
full, and ``load(path, model=MyNet())`` loads the weights into the user's own unpruned
architecture, resized to them (:func:`load_resized`), with nothing unpickled but tensors.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import json
import os
import pickle
import pkgutil
import shutil
import tempfile
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ._version import __version__
from .errors import CheckpointError, DataFileError, OutputExistsError, describe

__all__ = ["save", "load", "load_with_metadata", "load_model_file", "load_resized",
           "load_hf_folder", "save_hf_folder", "is_hf_folder", "atomic_write_bytes",
           "write_json", "check_output_path", "read_yaml_mapping", "FORMAT"]

FORMAT = "coreprune-checkpoint/2"
FORMAT_V1 = "coreprune-checkpoint/1"  # 0.1-0.4.0: the module pickled inline with its weights


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """``path`` as a ``Path`` if it may be written: new (or ``overwrite``) in an existing folder.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        CheckpointError: the folder does not exist.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; choose a new path or pass overwrite=True "
                                "(--overwrite on the command line)")
    if not path.parent.is_dir():
        raise CheckpointError(f"output folder {path.parent} does not exist")
    return path


def read_yaml_mapping(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """The mapping in the YAML (or JSON) file ``path``; ``what`` names it in errors.

    Raises:
        DataFileError: missing file, not YAML, or not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"{what} not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise DataFileError(f"{p}: not YAML/JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataFileError(f"{p}: expected a mapping ({what})")
    return data


def _atomic(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    p = check_output_path(path, overwrite)
    _atomic(p, lambda f: f.write(data))
    return p


def write_json(path: str | os.PathLike, obj: Any, overwrite: bool = False) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, default=float) + "\n").encode(),
                              overwrite)


def _metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """``metadata`` with the coreprune and torch versions first, as plain JSON values (numpy
    scalars as floats: they would need the full unpickler to load)."""
    meta = {"coreprune_version": __version__, "torch_version": torch.__version__,
            **(metadata or {})}
    return json.loads(json.dumps(meta, default=float))


def save(model: nn.Module, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
         overwrite: bool = False) -> Path:
    """Save ``model`` (any shapes) with ``metadata`` to ``path`` atomically.

    The file holds the weights (``state_dict``), the metadata (plain JSON values) and, as a
    separate byte string, the module's structure with its weights left out (parameters and
    persistent buffers on the ``meta`` device): the weights and metadata always load without
    running code, the structure with the restricted loader when its classes are known, and
    ``load(path, model=...)`` re-applies the weights to the user's own unpruned architecture.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
    """
    p = check_output_path(path, overwrite)
    meta = _metadata(metadata)
    structure = BytesIO()
    torch.save(_skeleton(model), structure)
    payload = {"format": FORMAT, "module": structure.getvalue(),
               "state_dict": model.state_dict(), "arch": getattr(model, "arch", None),
               "metadata": meta}
    _atomic(p, lambda f: torch.save(payload, f))
    return p


def _skeleton(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and persistent buffers are on the ``meta`` device
    (shapes without data; tied weights stay tied): its structure."""
    memo: dict[int, Any] = {}
    for module in model.modules():
        for t in module._parameters.values():
            if t is not None and id(t) not in memo:
                memo[id(t)] = nn.Parameter(torch.empty_like(t, device="meta"),
                                           requires_grad=t.requires_grad)
        for name, t in module._buffers.items():
            if (t is not None and name not in module._non_persistent_buffers_set
                    and id(t) not in memo):
                memo[id(t)] = torch.empty_like(t, device="meta")
    return copy.deepcopy(model, memo)


_SAFE_CLASSES: list[type] | None = None


def _package_modules(package_name: str) -> list:
    """A package and its direct submodules (those that import)."""
    package = importlib.import_module(package_name)
    out = [package]
    for sub in pkgutil.iter_modules(getattr(package, "__path__", [])):
        try:
            out.append(importlib.import_module(f"{package_name}.{sub.name}"))
        except ImportError:  # pragma: no cover - an optional dependency of a submodule
            continue
    return out


def _safe_module_classes() -> list[type]:
    """Every ``nn.Module`` class of ``torch.nn``, torchvision's models and ops, coreprune's zoo
    and :mod:`coreprune.pruning.layers`, ``TorchVersion`` (a ``str``) and ``functools.partial``
    (of those classes): what the restricted loader may build."""
    global _SAFE_CLASSES
    if _SAFE_CLASSES is None:
        found: dict[str, type] = {}
        for package in ("torch.nn.modules", "torchvision.models", "torchvision.ops",
                        "coreprune.models", "coreprune.pruning.layers"):
            for module in _package_modules(package):
                for obj in vars(module).values():
                    if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
                        found[f"{obj.__module__}.{obj.__qualname__}"] = obj
        # checkpoints record torch.__version__, a str subclass
        found["torch.torch_version.TorchVersion"] = torch.torch_version.TorchVersion
        # torchvision's ViT keeps partial(nn.LayerNorm, eps=...): building a partial calls
        # nothing, and its function can only be another class of this list
        found["functools.partial"] = functools.partial
        _SAFE_CLASSES = list(found.values())
    return _SAFE_CLASSES


def _is_torchscript(p: Path) -> bool:
    """Whether ``p`` is a TorchScript archive (a zip holding compiled code)."""
    try:
        with zipfile.ZipFile(p) as z:
            return any(n.split("/", 1)[-1] in ("constants.pkl", "code/") or "/code/" in n
                       for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _unpickle(source: Path | BytesIO, map_location: str | torch.device | None,
              trusted: bool) -> Any:
    """``torch.load`` of ``source``, restricted unless ``trusted``; a class the restricted
    loader does not build is one :class:`CheckpointError` line naming it."""
    try:
        if trusted:
            return torch.load(source, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(_safe_module_classes()):
            return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        marker = "Unsupported global: GLOBAL "
        culprit = str(exc).split(marker, 1)[1].split()[0] if marker in str(exc) else first[:120]
        raise CheckpointError(
            f"loading needs {culprit}, which would run code from the file; if you trust it, "
            "pass trusted=True (--trust-pickle on the command line)") from None


def _read(p: Path, map_location: str | torch.device, trusted: bool) -> Any:
    """:func:`_unpickle` of file ``p``; every failure one :class:`CheckpointError` line."""
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    if _is_torchscript(p):
        raise CheckpointError(
            f"{p}: a TorchScript archive; its layers are compiled code that coreprune cannot "
            "rewrite: save the nn.Module (torch.save(model), then --trust-pickle) or its "
            "state_dict (torch.save(model.state_dict()), then --model NAME) instead")
    try:
        return _unpickle(p, map_location, trusted)
    except CheckpointError as exc:
        raise CheckpointError(f"{p}: {exc}") from None
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(f"{p}: not a readable checkpoint ({describe(exc)})") from None


def _state_dict_of(payload: Any) -> dict[str, torch.Tensor] | None:
    """``payload`` as a state dict (tensors by name, possibly under a "state_dict" or
    "model_state_dict" key, as training scripts save them), else None."""
    if isinstance(payload, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = payload.get(key)
            if isinstance(inner, dict) and inner and all(
                    isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
        if payload and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                           for k, v in payload.items()):
            return payload
    return None


def load_model_file(path: str | os.PathLike, model_name: str | None = None,
                    map_location: str | torch.device = "cpu",
                    trusted: bool = False) -> tuple[nn.Module, dict]:
    """Any model file a user may have: ``(model, metadata)``.

    Accepted: a coreprune checkpoint (:func:`save`); a whole module saved with
    ``torch.save(model)`` (its classes built by the restricted loader, or any class when
    ``trusted``); a state dict (``torch.save(model.state_dict())``, also under a
    ``"state_dict"`` / ``"model_state_dict"`` key), built as zoo, torchvision or timm model
    ``model_name`` (:func:`~coreprune.models.build_model_for_state_dict`); a Hugging Face
    ``save_pretrained`` folder (:func:`load_hf_folder`). TorchScript archives are refused
    (compiled layers cannot be rewritten).

    Raises:
        CheckpointError: as :func:`load_with_metadata`; a state dict without ``model_name``; a
            state dict that does not fit ``model_name``; anything else in the file.
    """
    p = Path(path)
    if p.is_dir():
        if not is_hf_folder(p):
            raise CheckpointError(f"{p} is a folder without config.json: pass a model file, "
                                  "or a Hugging Face save_pretrained folder")
        return load_hf_folder(p, map_location)
    payload = _read(p, map_location, trusted)
    if isinstance(payload, dict) and payload.get("format") in (FORMAT, FORMAT_V1):
        return _from_checkpoint(p, payload, trusted)
    if isinstance(payload, nn.Module):
        return payload, {}
    state = _state_dict_of(payload)
    if state is None:
        raise CheckpointError(f"{p}: holds a {type(payload).__name__}, neither a model nor a "
                              "state_dict; save the model with torch.save(model) or "
                              "torch.save(model.state_dict())")
    if model_name is None:
        raise CheckpointError(f"{p}: a state_dict without its architecture: pass --model NAME "
                              "(model_name=), a zoo, torchvision or timm model name")
    from .models import build_model_for_state_dict

    model = build_model_for_state_dict(model_name, state)
    return model, {"model": model_name}


HF_METADATA = "coreprune.json"  # the pruning record inside a Hugging Face model folder


def is_hf_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder with a ``config.json`` (a Hugging Face ``save_pretrained``
    folder)."""
    return Path(path).is_dir() and (Path(path) / "config.json").is_file()


def load_hf_folder(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                   ) -> tuple[nn.Module, dict]:
    """A Hugging Face model saved with ``save_pretrained``: ``(model, metadata)``.

    The class is the one ``config.json`` names in ``architectures`` (a class of the
    ``transformers`` package), built by its ``from_pretrained`` from the folder's weights
    (safetensors, or a ``.bin`` read with ``weights_only``); no code from the folder runs, so a
    config that needs the model's own code (``auto_map``) is refused. ``metadata``: the
    folder's :data:`HF_METADATA` (a pruned folder's record) if any, with ``"model"`` (the
    class name) and ``"hf_folder": True``.

    Raises:
        CheckpointError: no ``config.json`` or not JSON; ``auto_map``; no single class named;
            transformers missing or without that class; the weights do not load.
    """
    p = Path(path)
    try:
        config = json.loads((p / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{p}/config.json: not a readable JSON config ({describe(exc)})"
                              ) from None
    if "auto_map" in config:
        raise CheckpointError(f"{p}: the model needs its own Python code (config.json "
                              "'auto_map'); coreprune does not run code from a model folder: "
                              "load it yourself and call coreprune.prune(model, ...)")
    names = config.get("architectures") or []
    if len(names) != 1 or not isinstance(names[0], str):
        raise CheckpointError(f"{p}/config.json: 'architectures' must name one model class, "
                              f"got {names!r}")
    try:
        import transformers
    except ImportError:
        raise CheckpointError(f"{p} is a Hugging Face model folder: loading it needs "
                              "transformers (pip install 'coreprune[hf]')") from None
    cls = getattr(transformers, names[0], None)
    if not isinstance(cls, type) or not hasattr(cls, "from_pretrained"):
        raise CheckpointError(f"{p}: transformers {transformers.__version__} has no model "
                              f"class {names[0]!r}")
    try:
        with _quiet_transformers():
            model = cls.from_pretrained(p, trust_remote_code=False)
    except Exception as exc:  # transformers raises many types: one line, the file named
        raise CheckpointError(f"{p}: {names[0]}.from_pretrained failed "
                              f"({describe(exc)})") from None
    meta: dict[str, Any] = {}
    if (p / HF_METADATA).is_file():
        try:
            meta = json.loads((p / HF_METADATA).read_text())
        except ValueError:
            meta = {}
    return model.to(map_location).eval(), {**meta, "model": names[0], "hf_folder": True}


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' progress bars and loading reports off within the block (coreprune's own
    check of a folder it wrote prints nothing); settings restored after."""
    from transformers.utils import logging as hf_logging

    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def save_hf_folder(model: nn.Module, path: str | os.PathLike,
                   metadata: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """``model.save_pretrained`` into the new folder ``path``, with ``metadata`` in
    :data:`HF_METADATA`, atomically: written to a temporary folder beside it, reloaded with
    ``from_pretrained`` (every tensor must come back with its pruned shape: a config can only
    describe layers of one width per type), then renamed to ``path``. With ``overwrite`` an
    existing ``path`` is replaced only after the new folder is complete.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        CheckpointError: the reloaded model's shapes differ (the message says what to do).
    """
    p = check_output_path(path, overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent))
    try:
        with _quiet_transformers():
            model.save_pretrained(tmp)
        (tmp / HF_METADATA).write_text(json.dumps(_metadata(metadata), indent=2) + "\n")
        mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        try:
            with _quiet_transformers():
                back = {k: tuple(v.shape) for k, v in
                        type(model).from_pretrained(tmp).state_dict().items()}
        except Exception:  # a size mismatch while loading
            back = None
        if back is None or any(back.get(k, s) != s for k, s in mine.items()):
            raise CheckpointError(
                f"{p}: the pruned layers have different widths, which a Hugging Face config "
                "cannot describe, so from_pretrained would not rebuild the model; prune every "
                "layer to the same width (allocation 'uniform', the default, with a global "
                "target or keep_ratio) or write a coreprune checkpoint (a .pt path)")
        if back != mine:
            lost = sorted(set(mine) - set(back)) or sorted(set(back) - set(mine))
            raise CheckpointError(
                f"{p}: from_pretrained would not rebuild {lost[0]} (and {len(lost) - 1} more "
                "tensors): the config cannot describe them (a bias the reconstruction added); "
                "prune with compensate 'none' or write a coreprune checkpoint (a .pt path)")
        if p.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".old", dir=p.parent))
            os.replace(p, old / p.name)
            os.replace(tmp, p)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, p)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return p


def load_with_metadata(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                       trusted: bool = False, model: nn.Module | None = None
                       ) -> tuple[nn.Module, dict]:
    """Load a checkpoint written by :func:`save`: ``(model, metadata)``.

    Args:
        path: the checkpoint.
        map_location: where tensors go.
        trusted: unpickle in full (the file may then run code); by default only tensors,
            containers, numbers and the module classes of ``torch.nn``, torchvision and the zoo
            are built (module docstring).
        model: the unpruned architecture (an instance of the user's own class, say): resized to
            the stored weights and loaded with them (:func:`load_resized`) instead of
            building the stored structure, so that no class needs to be unpickled.

    Raises:
        CheckpointError: missing file, not a torch file, a class the restricted loader does
            not build (named, with what to do), not a coreprune checkpoint, or a state dict that
            does not match the stored module or ``model``.
    """
    p = Path(path)
    return _from_checkpoint(p, _read(p, map_location, trusted), trusted, model)


def _from_checkpoint(p: Path, payload: Any, trusted: bool = False,
                     model: nn.Module | None = None) -> tuple[nn.Module, dict]:
    """The model and metadata of a coreprune checkpoint's ``payload`` read from ``p``: its
    stored structure (restricted loader unless ``trusted``), or ``model`` resized to the
    stored weights."""
    version = payload.get("format") if isinstance(payload, dict) else None
    if version not in (FORMAT, FORMAT_V1):
        raise CheckpointError(f"{p}: not a coreprune checkpoint (expected format {FORMAT!r}; "
                              "one written by `coreprune train`, `coreprune prune --out` or "
                              "coreprune.save)")
    state = payload.get("state_dict")
    if not isinstance(state, dict) or ("module" if version == FORMAT else "model") not in payload:
        raise CheckpointError(f"{p}: a damaged coreprune checkpoint (no weights or no module)")
    meta = dict(payload.get("metadata") or {})
    if model is not None:
        return load_resized(model, state, f"{p}"), meta
    if version == FORMAT_V1:
        stored = payload["model"]
    else:
        try:
            stored = _unpickle(BytesIO(payload["module"]), None, trusted)
        except CheckpointError as exc:
            raise CheckpointError(f"{p}: {exc} (or pass model=, the unpruned architecture, to "
                                  "coreprune.load)") from None
    if not isinstance(stored, nn.Module):
        raise CheckpointError(f"{p}: checkpoint holds no model")
    try:
        stored.load_state_dict(state, assign=version == FORMAT)
    except RuntimeError as exc:
        raise CheckpointError(f"{p}: weights do not match the architecture: "
                              f"{str(exc).splitlines()[0]}") from None
    return stored, meta


# module types whose shape attributes follow their weights
_SHAPE_ATTRIBUTES = {
    nn.Linear: lambda m, w: {"in_features": w.shape[1], "out_features": w.shape[0]},
    nn.modules.conv._ConvNd: lambda m, w: (
        {"in_channels": w.shape[0], "out_channels": w.shape[1] * m.groups}
        if m.transposed else
        # a depthwise convolution stays depthwise: one group per kept channel
        {"in_channels": w.shape[0], "out_channels": w.shape[0], "groups": w.shape[0]}
        if 1 < m.groups == m.in_channels == m.out_channels and w.shape[1] == 1 else
        {"in_channels": w.shape[1] * m.groups, "out_channels": w.shape[0]}),
    nn.modules.batchnorm._NormBase: lambda m, w: {"num_features": w.shape[0]},
    nn.LayerNorm: lambda m, w: {"normalized_shape": tuple(w.shape)},
    nn.GroupNorm: lambda m, w: {"num_channels": w.shape[0]},
}


def load_resized(model: nn.Module, state_dict: dict[str, torch.Tensor],
                 what: str = "the state_dict") -> nn.Module:
    """``model`` (the unpruned architecture, modified in place and returned) resized to the
    tensors of ``state_dict`` (a pruned model's) and loaded with them: every parameter and
    buffer takes the stored tensor's shape, a bias the surgery added is added, and the shape
    attributes of ``Linear``, convolutions, BatchNorm, LayerNorm and GroupNorm follow their
    weights (as Torch-Pruning's ``load_state_dict`` does).

    Raises:
        CheckpointError: a stored tensor the model has no place for, one the model has and the
            file lacks, or a resized module of another type (named).
    """
    modules = dict(model.named_modules())
    expected = set(model.state_dict())
    missing = sorted(expected - set(state_dict))
    if missing:
        raise CheckpointError(f"{what} lacks {missing[0]} of the given model: not a pruned copy "
                              "of this architecture")
    resized: set[str] = set()
    for key, tensor in state_dict.items():
        owner, _, attr = key.rpartition(".")
        module = modules.get(owner)
        if module is None or not (attr in module._parameters or attr in module._buffers
                                  or (attr == "bias" and hasattr(module, "bias"))):
            raise CheckpointError(f"{what} holds {key}, which the given model has no place for")
        current = getattr(module, attr, None)
        if current is not None and current.shape == tensor.shape:
            continue
        if attr in module._buffers:
            module._buffers[attr] = tensor.new_empty(tensor.shape)
        else:
            module._parameters[attr] = nn.Parameter(tensor.new_empty(tensor.shape),
                                                    requires_grad=tensor.is_floating_point())
        resized.add(owner)
    for owner in sorted(resized):
        module = modules[owner]
        rule = next((f for t, f in _SHAPE_ATTRIBUTES.items() if isinstance(module, t)), None)
        shaped = getattr(module, "weight", None)
        if shaped is None and isinstance(module, nn.modules.batchnorm._NormBase):
            shaped = module.running_mean
        if rule is None or shaped is None:
            raise CheckpointError(f"{what} resizes {owner} ({type(module).__name__}), whose "
                                  "shape attributes coreprune does not know: load the stored "
                                  "structure instead (trusted=True)")
        for name, value in rule(module, shaped).items():
            setattr(module, name, value)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise CheckpointError(f"{what} does not fit the given model: "
                              f"{' '.join(str(exc).split())[:200]}") from None
    return model


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu",
         trusted: bool = False, model: nn.Module | None = None) -> nn.Module:
    """Load a model saved by :func:`save`, with its (pruned) shapes; ``trusted`` and ``model``
    as in :func:`load_with_metadata`."""
    return load_with_metadata(path, map_location, trusted, model)[0]
