"""Models robench did not train: `timm:<name>`, `torchvision:<name>`, `file.py:factory`, TorchScript
and `torch.export` files, a robench model name with `--checkpoint`, and ensembles of any of these.

Every such model is wrapped in an `InputAdapter`, which turns robench's images (uint8, or float in
[0, 1]) into what the model expects: resized on the device (`image_size`), scaled to its input range
(`0-1` or `0-255`) and normalised (`mean`, `std`, in the units of that range). By default a model
gets [0, 1] input and its own normalisation: the library's mean and std for timm and torchvision
models, none for user models (which normalise themselves, as RobustBench models do).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import logging
import os
import socket
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robench.errors import RobenchError, user_code_failed

INPUT_RANGES = ("0-1", "0-255")
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass
class InputConvention:
    """What a model expects as input; recorded in an external run's run.json."""

    input_range: str = "0-1"
    mean: tuple[float, ...] | None = None  # None: no normalisation outside the model
    std: tuple[float, ...] | None = None
    image_size: int | None = None


class InputAdapter(nn.Module):
    """robench images (uint8, or float in [0, 1]; N, 3, H, W) -> the wrapped model's input convention."""

    def __init__(self, model: nn.Module, convention: InputConvention):
        super().__init__()
        self.model, self.convention = model, convention
        scale = 255.0 if convention.input_range == "0-255" else 1.0
        self.scale = scale
        mean = convention.mean if convention.mean is not None else (0.0,)
        std = convention.std if convention.std is not None else (1.0,)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        size = self.convention.image_size
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if self.scale != 1.0:
            x = x * self.scale
        return self.model((x - self.mean) / self.std)


class Ensemble(nn.Module):
    """Averages the members' softmax; returns log(mean p), so softmax(output) is the ensemble's p
    and argmax its prediction (the AugMix paper's ensembles average probabilities)."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        p = torch.stack([m(images).float().softmax(1) for m in self.members]).mean(0)
        return p.clamp_min(torch.finfo(p.dtype).tiny).log()


# ----------------------------------------------------------------------------- the libraries


def timm_backbone(spec: str, num_classes: int, pretrained: bool = False) -> nn.Module:
    """`timm:<name>`: timm.create_model(name, num_classes=...), pretrained weights when asked (timm
    replaces the classifier when the class count differs from the weights')."""
    timm = _import("timm")
    name = spec.split(":", 1)[1]
    if name not in timm.list_models():
        raise RobenchError(f"timm has no model '{name}'; list them with python -c \"import timm; "
                           f"print(timm.list_models('*{name[:6]}*'))\"")
    if pretrained and not _online("huggingface.co"):
        # Offline, let the hub look only in its cache; otherwise it retries the network for a minute.
        import huggingface_hub.constants

        huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes)
    except Exception as e:  # download and cache errors of several types
        raise RobenchError(_no_weights(spec, e)) from None


def torchvision_backbone(spec: str, num_classes: int, pretrained: bool = False) -> nn.Module:
    """`torchvision:<name>`: torchvision.models.get_model(name); with pretrained weights, the last
    linear layer is replaced (newly initialised) when the class count differs from the weights'."""
    models = _import("torchvision").models
    name = spec.split(":", 1)[1]
    if name not in models.list_models():
        raise RobenchError(f"torchvision has no model '{name}'; list them with python -c \"import torchvision; "
                           f"print(torchvision.models.list_models())\"")
    if not pretrained:
        return models.get_model(name, weights=None, num_classes=num_classes)
    cached = _torch_hub_file(models.get_model_weights(name).DEFAULT.url)
    if not cached.exists() and not _online("download.pytorch.org"):
        # Offline, torch.hub would make its cache folders and print "Downloading ..." before failing.
        raise RobenchError(_no_weights(spec, ConnectionError(f"offline, and {cached} is not cached")))
    try:
        model = models.get_model(name, weights="DEFAULT")
    except Exception as e:
        raise RobenchError(_no_weights(spec, e)) from None
    last = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if last and last[-1][1].out_features != num_classes:
        path, linear = last[-1]
        parent = model.get_submodule(path.rsplit(".", 1)[0]) if "." in path else model
        setattr(parent, path.rsplit(".", 1)[-1], nn.Linear(linear.in_features, num_classes))
    return model


def library_normalization(spec: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std (in [0, 1] units) a library's models are trained with."""
    library, name = spec.split(":", 1)
    if library == "timm":
        cfg = _import("timm").models.get_pretrained_cfg(name) or {}
        cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
        return tuple(cfg.get("mean", IMAGENET[0])), tuple(cfg.get("std", IMAGENET[1]))
    return IMAGENET  # every torchvision classification weight uses the ImageNet statistics


def library_input_size(spec: str) -> int | None:
    """The square input side a library's pretrained weights were evaluated at (timm's
    pretrained_cfg input_size, torchvision's weights transforms' crop size), or None when unknown."""
    library, name = spec.split(":", 1)
    if library == "timm":
        cfg = _import("timm").models.get_pretrained_cfg(name)
        size = (cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})).get("input_size")
        return int(size[-1]) if size and size[-1] == size[-2] else None
    from torchvision import models

    try:
        crop = models.get_model_weights(name).DEFAULT.transforms().crop_size
    except (ValueError, AttributeError, TypeError):
        return None
    return int(crop[0]) if crop else None


def _import(library: str):
    try:
        return importlib.import_module(library)
    except ImportError:
        raise RobenchError(f"{library}: models need {library}: pip install {library}") from None


def _online(host: str) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def _torch_hub_file(url: str) -> Path:
    """Where torch.hub caches the weights at `url` (what torchvision's weights load from)."""
    from urllib.parse import urlparse

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _no_weights(spec: str, error: Exception) -> str:
    first = (str(error).splitlines() or [type(error).__name__])[0][:160]
    return (f"cannot get the pretrained weights of {spec} ({type(error).__name__}: {first}); they are downloaded "
            f"on first use, so connect once, or drop --pretrained and give --checkpoint FILE")


# ----------------------------------------------------------------------------- user code and files


def user_factory(spec: str, num_classes: int) -> nn.Module:
    """`path/to/file.py:factory`: the module is imported from its file and `factory()` called, with
    num_classes=... when the factory takes that argument."""
    path, _, name = spec.rpartition(":")
    file = Path(path)
    if not file.is_file():
        raise RobenchError(f"model file {file} does not exist; give path/to/file.py:factory")
    module_name = f"robench_user_{abs(hash(str(file.resolve())))}"
    loader = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = module
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in the user's folder
    try:
        loader.loader.exec_module(module)
    except Exception as e:
        raise user_code_failed(f"importing {file}", e, "fix the file") from None
    finally:
        sys.dont_write_bytecode = writes_bytecode
    factory = getattr(module, name, None)
    if not callable(factory):
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise RobenchError(f"{file} has no function '{name}'; give {path}:<factory>, one of: {', '.join(found) or 'none'}")
    try:
        takes = "num_classes" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes = False
    try:
        model = factory(num_classes=num_classes) if takes else factory()
    except Exception as e:  # the user's code: one line naming it, not robench's traceback
        raise user_code_failed(f"{file}:{name}()", e, "fix the factory (it is called with no arguments, or "
                                                       "num_classes= when it takes that)") from None
    if not isinstance(model, nn.Module):
        raise RobenchError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def saved_program(path: Path) -> nn.Module:
    """A TorchScript file (torch.jit.save) or a torch.export file (torch.export.save, .pt2)."""
    try:
        with _quiet_loaders():
            if path.suffix == ".pt2":
                return torch.export.load(path).module()
            return torch.jit.load(path, map_location="cpu")
    except Exception as e:
        kind = "torch.export" if path.suffix == ".pt2" else "TorchScript"
        raise RobenchError(f"{path} is not a {kind} file ({type(e).__name__}); save the model with "
                           f"torch.jit.save or torch.export.save (.pt2), or give file.py:factory") from None


@contextlib.contextmanager
def _quiet_loaders():
    """torch.jit.load warns that it is deprecated (2 lines on every eval of a TorchScript file) and
    torch.export.load logs a damaged file's traceback (12 lines) before failing: robench says what
    went wrong in one line of its own, so both are silenced while a program loads."""
    log = logging.getLogger("torch.export")
    was_disabled, log.disabled = log.disabled, True
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
            yield
    finally:
        log.disabled = was_disabled


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip holding a constants.pkl beside its code."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_weights(model: nn.Module, path: str | Path, spec: str) -> None:
    """A state dict from `path` (plain, or under 'state_dict' / 'model_state_dict' / 'model' /
    'net'; 'module.' and '_orig_mod.' prefixes stripped), loaded strictly, with a one-line error
    naming the missing and unexpected keys."""
    path = Path(path)
    if not path.is_file():
        raise RobenchError(f"checkpoint {path} does not exist; give --checkpoint FILE of a state dict")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RobenchError(f"cannot load checkpoint {path} ({type(e).__name__}); it must be a state dict saved "
                           f"with torch.save (tensors only)") from None
    state = data
    if isinstance(data, dict):
        for key in ("state_dict", "model_state_dict", "model", "net"):
            if isinstance(data.get(key), dict):
                state = data[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RobenchError(f"{path} holds no state dict (a mapping of names to tensors)")
    state = {_strip(k): v for k, v in state.items()}
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = [f"{len(keys)} {what} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                 for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("keys of another shape", wrong)) if keys]
        raise RobenchError(f"checkpoint {path} does not fit {spec}: {'; '.join(parts)}; give the checkpoint of "
                           f"this architecture (and class count)")
    model.load_state_dict(state)


def _strip(key: str) -> str:
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


# ----------------------------------------------------------------------------- the input flags


def parse_normalize(text: str | None) -> tuple[tuple[float, ...], tuple[float, ...]] | None | str:
    """--normalize: 'none', 'imagenet', 'MEAN,STD' (one value for all channels) or 'M1,M2,M3,S1,S2,S3'.
    None (not given) means the model's own."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return "none"
    if text.strip().lower() == "imagenet":
        return IMAGENET
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (2, 6) or any(v != v for v in values):
        raise RobenchError(f"--normalize expects MEAN,STD or M1,M2,M3,S1,S2,S3 (or none, imagenet), got '{text}'; "
                           f"e.g. --normalize 0.4914,0.4822,0.4465,0.2470,0.2435,0.2616")
    half = len(values) // 2
    mean, std = tuple(values[:half]), tuple(values[half:])
    if any(s <= 0 for s in std):
        raise RobenchError(f"--normalize: every std must be positive, got {', '.join(map(str, std))}")
    return mean, std


def convention(spec_kind: str, spec: str, input_range: str | None, normalize: str | None,
               image_size: int | None, pretrained: bool = False) -> InputConvention:
    """The input convention from the flags, defaulting to the model's own. A library's pretrained
    weights also bring their input size: images of another size (e.g. ImageNet-C's 224-px crops
    for a 288-px timm model) are resized to it on the device, as RobustBench applies a model's
    own preprocessing on top of the benchmark's images."""
    input_range = input_range or "0-1"
    if input_range not in INPUT_RANGES:
        raise RobenchError(f"--input-range must be {' or '.join(INPUT_RANGES)}, got '{input_range}'")
    if image_size is not None and image_size < 1:
        raise RobenchError(f"--image-size must be at least 1, got {image_size}")
    if image_size is None and pretrained and spec_kind == "library":
        image_size = library_input_size(spec)
    chosen = parse_normalize(normalize)
    if chosen is None and spec_kind == "library":
        mean, std = library_normalization(spec)
        if input_range == "0-255":
            mean, std = tuple(255 * m for m in mean), tuple(255 * s for s in std)
    elif chosen is None or chosen == "none":
        mean = std = None
    else:
        mean, std = chosen
    return InputConvention(input_range, mean, std, image_size)


def convention_dict(conv: InputConvention) -> dict:
    out = asdict(conv)
    out["mean"] = list(conv.mean) if conv.mean is not None else None
    out["std"] = list(conv.std) if conv.std is not None else None
    return out
