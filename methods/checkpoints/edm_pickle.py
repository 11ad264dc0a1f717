"""Read EDM network pickles without running any code from the file.

EDM (NVlabs/edm, `torch_utils/persistence.py`) pickles every object of a "persistent class"
as the call `torch_utils.persistence._reconstruct_persistent_obj(meta)` where `meta` is a
dict {type: 'class', version: 6, module_src: <source of the whole defining module>,
class_name, state: <the object's __dict__>}. EDM's own loader `exec`s `module_src`, so
opening an untrusted pickle runs arbitrary code. Here a restricted `pickle.Unpickler`
resolves only an explicit allow-list of globals: the reconstruct hook becomes a function
that returns an inert `PersistentRecord` (the source is hashed, never compiled), tensors
and storages are rebuilt by torch's weights-only machinery, and plain containers are
allowed. After unpickling, network records are rebuilt as our zoo classes from the
constructor arguments EDM records in `state['_init_kwargs']`, and their parameters and
buffers are loaded by name (zoo state-dict keys equal EDM's); loss and augmentation objects
become `InertRecord`s of their constructor arguments.

The files written by EDM's training loop (`network-snapshot-*.pkl`) and the published
`edm-*.pkl` / `baseline-*.pkl` hold `dict(ema=..., loss_fn=..., augment_pipe=...,
dataset_kwargs=...)`.
"""
from __future__ import annotations

import _compat_pickle
import collections
import hashlib
import io
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

# EDM's training/networks.py: the networks a pickle's 'ema' may be, and the layers inside them.
EDM_NETWORK_CLASSES = ("EDMPrecond", "VPPrecond", "VEPrecond", "iDDPMPrecond", "SongUNet", "DhariwalUNet")
EDM_LAYER_CLASSES = ("Linear", "Conv2d", "GroupNorm", "UNetBlock", "PositionalEmbedding", "FourierEmbedding")
# EDM's training/loss.py and training/augment.py: kept as records of their constructor arguments.
EDM_INERT_CLASSES = ("EDMLoss", "VPLoss", "VELoss", "AugmentPipe")
KNOWN_PERSISTENT_CLASSES = EDM_NETWORK_CLASSES + EDM_LAYER_CLASSES + EDM_INERT_CLASSES
# torch.nn containers EDM's networks hold (SongUNet/DhariwalUNet keep their blocks in ModuleDicts).
_TORCH_CONTAINERS = ("ModuleDict", "ModuleList", "Sequential")
REQUIRED_KEYS = ("ema",)


@dataclass
class PersistentRecord:
    """One `_reconstruct_persistent_obj(meta)` call, kept as data (the source is never run)."""

    class_name: str
    state: dict
    version: int
    source_sha256: str  # identifies the embedded module source without keeping or running it

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args") or ())

    @property
    def init_kwargs(self) -> dict | None:
        kwargs = self.state.get("_init_kwargs")
        return None if kwargs is None else dict(kwargs)


@dataclass
class InertRecord:
    """An EDM object we do not rebuild (loss, augmentation pipe): its class and arguments."""

    class_name: str
    init_args: tuple
    init_kwargs: dict
    attributes: dict = field(default_factory=dict)  # its plain (number/string) attributes


class _ModuleContainer:
    """Stand-in for torch.nn.ModuleDict/ModuleList/Sequential: keeps the pickled state only."""

    torch_class = "Module container"

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"{self.torch_class}: expected a dict state, got {type(state).__name__}")
        self.state = state


def _container_type(name: str) -> type:
    return type(f"_{name}Record", (_ModuleContainer,), {"torch_class": f"torch.nn.{name}"})


_CONTAINER_TYPES = {name: _container_type(name) for name in _TORCH_CONTAINERS}


class _EasyDict(dict):
    """dnnlib.util.EasyDict is a dict with attribute access; as data a plain dict is enough."""


def _check_storage(storage) -> None:
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError(f"tensor storage is a {type(storage).__name__}, not a torch storage")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    _check_storage(storage)
    if backward_hooks:
        raise pickle.UnpicklingError("a tensor carries backward hooks (code); refusing it")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, collections.OrderedDict(), metadata)


def _rebuild_tensor(storage, storage_offset, size, stride):
    _check_storage(storage)
    return torch._utils._rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    # `state` (extra Python attributes on a Parameter) is dropped: it carries no weights.
    if backward_hooks:
        raise pickle.UnpicklingError("a parameter carries backward hooks (code); refusing it")
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"parameter data is a {type(data).__name__}, not a tensor")
    return torch.nn.Parameter(data, requires_grad)


def _load_storage_from_bytes(data: bytes):
    # torch pickles a storage as torch.save(storage) bytes; EDM/torch reload them with
    # weights_only=False. The weights-only loader reads the same bytes and runs nothing.
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"storage payload is a {type(data).__name__}, not bytes")
    return torch.load(io.BytesIO(bytes(data)), weights_only=True)


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    # Protocol-2 pickles write bytes as _codecs.encode(str, 'latin1').
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin1")


def _reconstructor(cls, base, state):
    # copyreg._reconstructor is how protocols 0/1 create objects; allow it for our stand-ins only.
    if not (isinstance(cls, type) and issubclass(cls, _ModuleContainer) and base is object and state is None):
        raise pickle.UnpicklingError(f"copyreg._reconstructor for {cls!r} is not allowed")
    return cls.__new__(cls)


def _numpy_scalar(dtype, data):
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc?" or not isinstance(data, bytes):
        raise pickle.UnpicklingError(f"numpy scalar of dtype {dtype!r} is not allowed (numbers only)")
    return np.frombuffer(data, dtype=dtype)[0]


def _numpy_dtype(*args):
    import numpy as np

    return np.dtype(*args)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals EDM's network pickles need; everything else is refused."""

    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source
        builtins_ok = {"set": set, "frozenset": frozenset, "bytearray": bytearray, "complex": complex}
        self._allowed: dict[tuple[str, str], Any] = {
            ("torch_utils.persistence", "_reconstruct_persistent_obj"): self._persistent_record,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
            ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
            ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("copyreg", "_reconstructor"): _reconstructor,
            ("builtins", "object"): object,  # the `base` argument of _reconstructor (protocols 0/1)
            ("_codecs", "encode"): _codecs_encode,
            ("dnnlib.util", "EasyDict"): _EasyDict,
            ("numpy", "dtype"): _numpy_dtype,
            ("numpy.core.multiarray", "scalar"): _numpy_scalar,
            ("numpy._core.multiarray", "scalar"): _numpy_scalar,
            **{("builtins", k): v for k, v in builtins_ok.items()},
            **{("torch.nn.modules.container", k): v for k, v in _CONTAINER_TYPES.items()},
        }

    def find_class(self, module: str, name: str):
        # Protocols 0-2 spell some modules the Python 2 way (copy_reg, __builtin__), as pickle's own find_class maps.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return self._allowed[(module, name)]
        except KeyError:
            pass
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)  # dtypes are plain values
        raise CheckpointError(
            f"'{self.source}': refusing to load '{module}.{name}': it is not on the allow-list of an EDM network "
            "pickle (networks, tensors, plain containers). The file is not an EDM network pickle, or it tries to "
            "run code; convert trusted files with `save_network` instead"
        )

    def persistent_load(self, pid):
        raise CheckpointError(f"'{self.source}': unexpected persistent id {pid!r}: this is a (legacy) torch.save file, "
                              "not an EDM network pickle")

    def _persistent_record(self, meta) -> PersistentRecord:
        if not isinstance(meta, dict):
            raise CheckpointError(f"'{self.source}': persistent-object record is a {type(meta).__name__}, expected a dict")
        missing = [k for k in ("type", "version", "module_src", "class_name", "state") if k not in meta]
        if missing:
            raise CheckpointError(f"'{self.source}': persistent-object record lacks {missing}; the pickle is damaged or "
                                  "not written by EDM's torch_utils.persistence")
        if meta["type"] != "class":
            raise CheckpointError(f"'{self.source}': persistent-object record of type {meta['type']!r}; only 'class' exists in EDM")
        name = meta["class_name"]
        if name not in KNOWN_PERSISTENT_CLASSES:
            raise CheckpointError(
                f"'{self.source}': unknown persistent class {name!r}; this loader maps EDM's "
                f"{', '.join(KNOWN_PERSISTENT_CLASSES)} onto onestep's own code and never runs the source in the file"
            )
        state = meta["state"]
        if state is None:
            state = {}
        if not isinstance(state, dict):
            raise CheckpointError(f"'{self.source}': state of persistent {name} is a {type(state).__name__}, expected a dict")
        src = meta["module_src"]
        src_bytes = src.encode("utf-8", "surrogatepass") if isinstance(src, str) else bytes(src or b"")
        return PersistentRecord(name, dict(state), int(meta["version"]), hashlib.sha256(src_bytes).hexdigest())


def read_edm_records(path: str | os.PathLike) -> Any:
    """Unpickle an EDM pickle into plain data and `PersistentRecord`s (nothing is rebuilt yet)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"EDM pickle '{path}' does not exist")
    with open(path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":
            raise CheckpointError(f"'{path}' is a zip archive (a torch.save file?), not an EDM network pickle; "
                                  "resume state loads with load_resume_state, networks from .pkl/.safetensors files")
        f.seek(0)
        try:
            return _RestrictedUnpickler(f, str(path)).load()
        except CheckpointError:
            raise
        except Exception as e:  # truncated, random bytes, wrong protocol, damaged tensors...
            raise CheckpointError(
                f"'{path}' is not a readable EDM pickle ({type(e).__name__}: {e}); the file is corrupt, truncated "
                "or of another format. Download it again or point to the right file"
            ) from e


def _module_tensors(node: Any, prefix: str, out: dict[str, torch.Tensor], source: str) -> None:
    """Collect parameters and persistent buffers by state-dict name, as nn.Module.state_dict does."""
    if isinstance(node, (PersistentRecord, _ModuleContainer)):
        state = node.state
        what = node.class_name if isinstance(node, PersistentRecord) else node.torch_class
    else:
        raise CheckpointError(f"'{source}': '{prefix.rstrip('.') or 'root'}' is a {type(node).__name__}, expected a module")
    for group in ("_parameters", "_buffers", "_modules"):
        if not isinstance(state.get(group, {}), dict):
            raise CheckpointError(f"'{source}': {what} at '{prefix.rstrip('.') or 'root'}' has a malformed {group}")
    non_persistent = set(state.get("_non_persistent_buffers_set") or ())
    for name, value in list(state.get("_parameters", {}).items()) + [
        (n, v) for n, v in state.get("_buffers", {}).items() if n not in non_persistent
    ]:
        if value is not None:
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"'{source}': '{prefix}{name}' is a {type(value).__name__}, expected a tensor")
            out[prefix + name] = value
    for name, child in state.get("_modules", {}).items():
        if child is not None:
            _module_tensors(child, f"{prefix}{name}.", out, source)


def record_to_network(record: PersistentRecord, source: str = "<memory>") -> torch.nn.Module:
    """Rebuild a network record as the zoo class of the same name and load its tensors by name."""
    from .. import zoo

    if not isinstance(record, PersistentRecord) or record.class_name not in EDM_NETWORK_CLASSES:
        what = record.class_name if isinstance(record, PersistentRecord) else type(record).__name__
        raise CheckpointError(f"'{source}': expected a network ({', '.join(EDM_NETWORK_CLASSES)}), found {what}")
    kwargs = record.init_kwargs
    if kwargs is None:
        raise CheckpointError(f"'{source}': the {record.class_name} record has no recorded constructor arguments "
                              "(_init_kwargs); it cannot be rebuilt without running its code")
    cls = getattr(zoo, record.class_name)
    try:
        net = cls(*record.init_args, **kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"'{source}': cannot build {record.class_name} from the pickle's arguments {kwargs}: {e}") from e
    tensors: dict[str, torch.Tensor] = {}
    _module_tensors(record, "", tensors, source)
    load_matching_state(net, tensors, source, f"the {record.class_name} built from its recorded arguments")
    return net.eval().requires_grad_(False)


def load_matching_state(net: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str, what: str) -> None:
    """load_state_dict with an error naming missing/unexpected keys and shape mismatches."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    shapes = [f"{k}: file {tuple(tensors[k].shape)} vs network {tuple(v.shape)}"
              for k, v in expected.items() if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        def _few(xs):
            return ", ".join(xs[:5]) + (f" (+{len(xs) - 5} more)" if len(xs) > 5 else "")
        problems = []
        if missing:
            problems.append(f"{len(missing)} tensors missing from the file: {_few(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected tensors in the file: {_few(unexpected)}")
        if shapes:
            problems.append(f"{len(shapes)} shape mismatches: {_few(shapes)}")
        raise CheckpointError(f"'{source}': weights do not fit {what} (a checkpoint of another architecture?): "
                              + "; ".join(problems))
    net.load_state_dict(tensors, strict=True)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def record_to_inert(record: PersistentRecord) -> InertRecord:
    attrs = {k: _plain(v) for k, v in record.state.items()
             if not k.startswith("_") and isinstance(v, (int, float, str, bool, list, tuple, dict, type(None)))}
    return InertRecord(record.class_name, _plain(record.init_args), _plain(record.init_kwargs or {}), attrs)


def _convert(value: Any, source: str, key: str) -> Any:
    if isinstance(value, PersistentRecord):
        if value.class_name in EDM_NETWORK_CLASSES:
            return record_to_network(value, source)
        if value.class_name in EDM_INERT_CLASSES:
            return record_to_inert(value)
        raise CheckpointError(f"'{source}': '{key}' is a bare EDM layer ({value.class_name}), not a network")
    return _plain(value)


def load_edm_pickle(path: str | os.PathLike) -> dict:
    """Load an EDM network pickle as {'ema': zoo network (eval, no grad), 'loss_fn': InertRecord,
    'augment_pipe': InertRecord | None, 'dataset_kwargs': dict, ...}. Runs no code from the file."""
    data = read_edm_records(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"'{path}' holds a {type(data).__name__}; an EDM network pickle holds a dict with "
                              f"keys {list(REQUIRED_KEYS)} (+ loss_fn, augment_pipe, dataset_kwargs)")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"'{path}' lacks the key(s) {missing} (found {sorted(map(str, data))}); an EDM network "
                              "pickle stores its network under 'ema'")
    return {k: _convert(v, str(path), str(k)) for k, v in data.items()}
