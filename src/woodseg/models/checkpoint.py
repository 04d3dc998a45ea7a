"""The one place checkpoints are written and read: tensors plus plain metadata, never pickled code.

A checkpoint is a ``torch.save`` file holding only tensors and plain values (str, int, float, bool,
None, lists, tuples, dicts). It is read with ``torch.load(weights_only=True)``, whose unpickler builds
nothing else, so a file whose pickle would call ``os.system`` (or build any other object) is refused
before anything runs. Saving converts the usual non-plain values (paths, numpy values, pydantic models)
to plain ones, so every checkpoint woodseg writes loads that way.
"""

from __future__ import annotations

import enum
import pickle
import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from woodseg.errors import CheckpointError
from woodseg.fsutil import atomic_save

# What the weights-only unpickler says when a pickle asks for something beyond tensors and plain values.
_UNSAFE = re.compile(r"GLOBAL |is blocked|must be \S+ to load")
_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.dtype, torch.device, torch.Size)


def plain(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` with paths, numpy values, enums and pydantic models turned into plain values (recursively)."""
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return plain(obj.value, where)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj).copy())
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, Mapping):
        return {plain(k, where): plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if type(obj) is tuple:
        return tuple(plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, (list, tuple)):  # lists, named tuples
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        return sorted(plain(v, where) for v in obj)
    raise TypeError(f"{where} holds a {type(obj).__qualname__}; checkpoints hold tensors and plain values only")


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """Write ``state`` (made plain) atomically and durably: a crash leaves the previous file intact."""
    data = plain(state)
    atomic_save(path, lambda buf: torch.save(data, buf), durable=True)


def load_checkpoint(path: str | Path, *, what: str = "checkpoint", fix: str | None = None) -> dict[str, Any]:
    """Read a checkpoint (or a bare state dict) weights-only; every failure is a CheckpointError naming it.

    ``what`` names the file in messages ("classifier checkpoint"); ``fix`` replaces the default advice
    for a missing file.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"the {what} {path} is a folder, not a file", path=path,
                              fix="pass the checkpoint file inside it (e.g. classifier/last.pt)")
    if not path.exists():
        raise CheckpointError(f"the {what} {path} does not exist", path=path,
                              fix=fix or "check the path, or train one first (`woodseg train`)")
    try:
        size = path.stat().st_size
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise CheckpointError(f"cannot read the {what} {path}: {exc.strerror or exc}", path=path,
                              fix="check the file's permissions") from None
    with fh:
        if size == 0:
            raise CheckpointError(f"the {what} {path} is empty (0 bytes)", path=path,
                                  fix="an interrupted copy or download: copy it again, or re-run the stage that "
                                      "wrote it (with --restart if it was this run's own checkpoint)")
        try:
            obj = torch.load(fh, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            fh.seek(0)
            is_pickle = fh.read(1) == b"\x80"  # PROTO opcode: a pickle whose opcodes the safe unpickler refuses
            if _UNSAFE.search(str(exc)) or (is_pickle and "Unsupported operand" in str(exc)):
                raise _refused(path, what, str(exc)) from None
            raise _corrupt(path, what, size, exc) from None
        except (RuntimeError, EOFError, OSError, KeyError, ValueError, IndexError, TypeError) as exc:
            raise _corrupt(path, what, size, exc) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"the {what} {path} holds a {type(obj).__name__}, not a checkpoint or state dict",
                              path=path, fix="pass a checkpoint written by woodseg or an IRN/AdvCAM/W-OoD .pth")
    return obj


def _corrupt(path: Path, what: str, size: int, exc: BaseException) -> CheckpointError:
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    detail = "damaged pickle stream" if isinstance(exc, pickle.UnpicklingError) or not lines else lines[0].split(". ")[0][:200]
    return CheckpointError(
        f"the {what} {path} is truncated, corrupt or not a PyTorch file ({size} bytes; {type(exc).__name__}: {detail})", path=path,
        fix="an interrupted copy, download or save: copy it again, or re-run the stage that wrote it "
            "(with --restart if it was this run's own checkpoint)")


def _refused(path: Path, what: str, message: str) -> CheckpointError:
    """The weights-only unpickler stopped: the file holds Python objects, whose loading could run code."""
    found = sorted(set(re.findall(r"GLOBAL (\S+)", message)))
    detail = f" (it asks for {', '.join(found)})" if found else ""
    return CheckpointError(
        f"refused to load the {what} {path}: it holds pickled Python objects{detail}, not only tensors and plain "
        "values; loading it could run arbitrary code, so woodseg does not (nothing in it was run)", path=path,
        fix="use a checkpoint from a source you trust, saved as a plain state dict "
            "(torch.save(model.state_dict(), f)); if you trust this file, re-save its tensors that way")
