"""A proxy training's checkpoint: what it holds, how it is written, and how it is read back safely.

Why a module of its own: a checkpoint is read by more than the training loop (resume; the
export and benchmarks re-score its weights), comes from folders that others can write, and must
restore every random generator for a resumed run to match an unbroken one. So its format, the
``weights_only`` read and the refusal of anything but tensors and plain data live in one place.
"""

from __future__ import annotations

import io
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.core.runio import atomic_write_bytes

#: the logger of the warning for an unusable checkpoint: the training's, as before this module
_log = logging.getLogger("evaluators.train")


def get_rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain data: what ``torch.load(weights_only=True)``
    reads back without allowing any other type (numpy's own state holds an ndarray)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore every generator to a state :func:`get_rng_state` took."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


#: what a checkpoint's keys must hold before anything of it is compared or restored
_CHECKPOINT_TYPES = {"fingerprint": dict, "epoch": int, "model": dict, "history": list}


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint's state, or None (with a one-line warning) when it cannot be used: it is a
    cache of finished epochs, so a damaged one costs a retrain, never a crash or a half-restored
    run. It is read with ``weights_only=True``: a checkpoint comes from a trial folder or a shared
    ``--ray-storage`` that others can write, and one whose pickle names anything but tensors and
    plain data is refused without running it."""
    try:
        return read_checkpoint(path, device)
    except ValueError as err:
        _log.warning("%s: unusable checkpoint ignored, training from epoch 0 (%s)", path, err)
        return None


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A proxy checkpoint's state, read with ``weights_only=True`` (nothing but tensors and plain
    data is unpickled); ValueError with one line saying why when it is not a usable one."""
    import warnings

    try:
        with warnings.catch_warnings():  # torch warns about a foreign pickle protocol: it is refused anyway
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(state, dict) or not all(isinstance(state.get(k), t) for k, t in _CHECKPOINT_TYPES.items()):
            raise ValueError("not a proxy checkpoint")
        return state
    except Exception as err:  # noqa: BLE001 - truncated zip, bad or unsafe pickle, wrong type: all mean "unusable"
        raise ValueError(_load_error(err)) from None


def scored_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict a checkpoint's training was scored with: the weight average where the
    recipe keeps one (v2: ``ema``, BatchNorm recomputed after the last epoch), else the last
    weights (v1), as :func:`evaluators.train.train_proxy` scores ``ema.model if ema is not None
    else net``."""
    return state["ema"]["model"] if "ema" in state else state["model"]


def _load_error(err: Exception) -> str:
    """One line for why a checkpoint was refused (torch's weights-only message is a paragraph)."""
    import pickle

    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    unsafe = next((ln for ln in lines if "GLOBAL" in ln), None)
    if isinstance(err, pickle.UnpicklingError) and unsafe:
        return f"it holds more than tensors and plain data: {unsafe[:200]}"
    return f"{type(err).__name__}: {(lines[0] if lines else '')[:200]}"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` with torch.save, atomically (:func:`nas.core.runio.atomic_write_bytes`) and
    only if it holds tensors and plain data alone: a checkpoint that :func:`load_checkpoint` would
    refuse is a bug here, not a retrain from epoch 0 found on the next resume."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(buffer)
    if unsafe:
        raise TypeError(f"checkpoint {path} would hold {', '.join(unsafe)}: store tensors and plain data only")
    atomic_write_bytes(path, buffer.getvalue())
