"""Joint image-text (CLIP-style) models: their registry entries and where their checkpoints live.

A checkpoint lives in the model cache as a folder in the Hugging Face hub's open_clip layout
(`open_clip_config.json` + `open_clip_model.safetensors` or `open_clip_pytorch_model.bin`),
plus `imgsearch.json`: where it came from and its sha256, so that identifying it costs no
hashing. `imgsearch models pull NAME` fills it from the hub; `--from PATH` from a checkpoint
already on this machine, which is also how a model of one's own (any open_clip config) gets a
name. Nothing here imports torch or open_clip.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from imgsearch.encoding.catalog import file_sha256
from imgsearch.encoding.state_dicts import checkpoint_format
from imgsearch.errors import ImgsearchError, WeightsUnavailable
from imgsearch.safe_files import is_digest

CONFIG_FILE = "open_clip_config.json"
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth")
RECORD_FILE = "imgsearch.json"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
GENERIC = "open-clip"  # any open_clip model, from --weights FOLDER


@dataclass(frozen=True)
class ClipSpec:
    """A registered joint image-text model: open_clip's architecture and pretrained tag."""

    name: str
    architecture: str  # open_clip's model name
    pretrained: str  # open_clip's tag
    hub: str  # Hugging Face hub repository of the tag's weights
    dimension: int
    licence: str
    mean: tuple[float, float, float] = OPENAI_MEAN  # open_clip's preprocessing of the tag
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"

    @property
    def preprocess_cfg(self) -> dict:
        return {"mean": self.mean, "std": self.std, "interpolation": self.interpolation}


CLIP_MODELS: dict[str, ClipSpec] = {
    s.name: s
    for s in (
        ClipSpec(
            "clip-vit-b-32",
            "ViT-B-32",
            "laion2b_s34b_b79k",
            "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
            512,
            "MIT (weights: LAION, trained on LAION-2B)",
        ),
        ClipSpec(
            "clip-vit-b-32-openai",
            "ViT-B-32-quickgelu",
            "openai",
            "timm/vit_base_patch32_clip_224.openai",
            512,
            "MIT (OpenAI CLIP)",
        ),
        ClipSpec(
            "clip-vit-b-16",
            "ViT-B-16",
            "laion2b_s34b_b88k",
            "laion/CLIP-ViT-B-16-laion2B-s34B-b88K",
            512,
            "MIT (weights: LAION, trained on LAION-2B)",
        ),
        ClipSpec(
            "mobileclip2-s0",
            "MobileCLIP2-S0",
            "dfndr2b",
            "timm/MobileCLIP2-S0-OpenCLIP",
            512,
            "Apple Machine Learning Research Model licence (research use)",
            (0.0, 0.0, 0.0),
            (1.0, 1.0, 1.0),
            "bilinear",
        ),
    )
}


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint on disk: its config (None: the registered architecture's), weights and digest."""

    folder: Path | None
    weights: Path
    digest: str  # sha256 prefix of the weights (and of the config, for a folder)
    model_cfg: dict | None
    preprocess_cfg: dict

    @property
    def mean(self) -> tuple[float, float, float]:
        return tuple(self.preprocess_cfg.get("mean", OPENAI_MEAN))

    @property
    def std(self) -> tuple[float, float, float]:
        return tuple(self.preprocess_cfg.get("std", OPENAI_STD))

    @property
    def interpolation(self) -> str:
        return str(self.preprocess_cfg.get("interpolation", "bicubic"))


def cache_root(home: Path | None = None) -> Path:
    """Where open_clip checkpoints are kept in the model cache (`onnx_runtime.cache_dir`)."""
    from imgsearch.encoding.onnx_runtime import cache_dir

    return cache_dir(home) / "open_clip"


def valid_name(name: str) -> bool:
    """A model name that is one plain folder name in the cache (no path, no '+')."""
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/\\+\0")


def installed_folder(name: str) -> Path:
    if not valid_name(name):
        raise ImgsearchError(f"{name!r} cannot name a model (no '/', '+' or leading '.').")
    return cache_root() / name


def installed_names() -> list[str]:
    """Models in the cache that are not registered: the ones `models pull NAME --from` named."""
    root = cache_root()
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if valid_name(p.name) and (p / RECORD_FILE).exists() and p.name not in CLIP_MODELS
    )


def is_clip(name: str, home: Path | None = None) -> bool:
    """Whether `name` is a CLIP-style model: a registered one, or one installed in the model
    cache below `home` (default: the settings')."""
    if name in CLIP_MODELS or name == GENERIC:
        return True
    return valid_name(name) and (cache_root(home) / name / RECORD_FILE).exists()


def _weights_in(folder: Path) -> Path | None:
    return next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)


def read_checkpoint(path: Path) -> Checkpoint:
    """A checkpoint file, or a folder in the hub's open_clip layout (config + weights)."""
    path = Path(path)
    if path.is_file():
        return Checkpoint(None, _checked(path), file_sha256(path)[:16], None, {})
    if not path.is_dir():
        raise WeightsUnavailable(f"--weights {path}: no such file or folder.")
    weights = _weights_in(path)
    if weights is None:
        raise WeightsUnavailable(f"{path} has no open_clip weights ({' or '.join(WEIGHT_FILES)}).")
    record_file = path / RECORD_FILE
    try:
        record = json.loads(record_file.read_text()) if record_file.exists() else {}
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise WeightsUnavailable(f"{record_file} is damaged ({exc}): install the model again.") from exc
    config_file = path / CONFIG_FILE
    model_cfg, preprocess_cfg = None, {}
    if config_file.exists():
        try:
            saved = json.loads(config_file.read_text())
            model_cfg = saved["model_cfg"]
            preprocess_cfg = saved.get("preprocess_cfg", {})
            if not isinstance(model_cfg, dict) or not isinstance(preprocess_cfg, dict):
                raise TypeError("model_cfg and preprocess_cfg must be objects")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WeightsUnavailable(f"{config_file} is not an open_clip config (model_cfg): {exc}") from exc
    if model_cfg is not None:
        _check_model_cfg(model_cfg, config_file)
    # one rule everywhere (pull, --from, --weights): the weights' own sha256 prefix, computed
    # here unless the folder is one imgsearch filled itself (it recorded the digest it computed)
    digest = record.get("digest")
    if not (is_digest(digest, 16) and path.resolve().parent == cache_root().resolve()):
        digest = file_sha256(weights)[:16]
    return Checkpoint(path, _checked(weights), str(digest), model_cfg, preprocess_cfg)


def _checked(weights: Path) -> Path:
    """`weights`, if it is a checkpoint (safetensors or a torch.save archive); a file of any
    other kind, which a link may point at, is never copied nor loaded."""
    if checkpoint_format(weights) is None:
        raise WeightsUnavailable(
            f"{weights} is not a checkpoint (neither safetensors nor a torch.save archive): refused."
        )
    return weights


CLIP_VOCABULARY = 49408


def _check_model_cfg(model_cfg: dict, config_file: Path) -> None:
    """Refuse what imgsearch cannot run faithfully: a text tower with another tokenizer."""
    text_cfg = model_cfg.get("text_cfg") if isinstance(model_cfg, dict) else None
    if not isinstance(text_cfg, dict) or not isinstance(model_cfg.get("embed_dim"), int):
        raise WeightsUnavailable(f"{config_file}: an open_clip model_cfg needs embed_dim and text_cfg.")
    if (
        text_cfg.get("hf_tokenizer_name")
        or text_cfg.get("tokenizer_kwargs")
        or text_cfg.get("vocab_size", CLIP_VOCABULARY) != CLIP_VOCABULARY
    ):
        raise WeightsUnavailable(
            f"{config_file}: this model reads words with another tokenizer than CLIP's byte-pair one "
            "(SigLIP, multilingual and similar models are not supported)."
        )


def checkpoint_for(name: str, weights: str | Path | None) -> Checkpoint:
    """`--weights` if given, else the model's folder in the cache; one sentence when neither is.
    A registered model's preprocessing fills what the checkpoint does not say."""
    folder = installed_folder(name)
    if weights is not None or (folder / RECORD_FILE).exists():
        checkpoint = read_checkpoint(Path(weights) if weights is not None else folder)
        if name in CLIP_MODELS:
            given = checkpoint.preprocess_cfg
            checkpoint = replace(checkpoint, preprocess_cfg={**CLIP_MODELS[name].preprocess_cfg, **given})
        return checkpoint
    if name == GENERIC:
        raise WeightsUnavailable(
            f"{GENERIC} is any open_clip model: pass --weights FOLDER (open_clip_config.json + weights), "
            "or name it with `imgsearch models pull NAME --from FOLDER`."
        )
    spec = CLIP_MODELS[name]
    raise WeightsUnavailable(
        f"The {name} weights are not on this machine: run `imgsearch models pull {name}` where "
        f"huggingface.co is reachable (hub: {spec.hub}), or pass --weights with an open_clip "
        f"{spec.architecture} checkpoint file or folder."
    )


def dimension(name: str, weights: str | Path | None = None) -> int | None:
    """The vector size of a CLIP model, when it is known without loading it."""
    if name in CLIP_MODELS and weights is None and not (installed_folder(name) / CONFIG_FILE).exists():
        return CLIP_MODELS[name].dimension
    try:
        checkpoint = checkpoint_for(name, weights)
    except WeightsUnavailable:
        return None
    if checkpoint.model_cfg is not None:
        return int(checkpoint.model_cfg["embed_dim"])
    return CLIP_MODELS[name].dimension if name in CLIP_MODELS else None


def install(name: str, source: Path) -> Path:
    """Copy a checkpoint (a file for a registered model, or a hub-layout folder) into the cache
    as `name`; a name that is not registered needs a folder with its open_clip config."""
    from imgsearch.encoding.catalog import EFFICIENTNET_LITE0, TORCHVISION

    if not valid_name(name) or name == GENERIC:
        raise ImgsearchError(f"{name!r} cannot name a model (no '/', '+' or leading '.').")
    if name == EFFICIENTNET_LITE0 or name in TORCHVISION:
        raise ImgsearchError(f"{name} is an image model imgsearch ships; give yours another name.")
    checkpoint = read_checkpoint(source)
    if name not in CLIP_MODELS and checkpoint.model_cfg is None:
        raise ImgsearchError(
            f"{name} is not a registered model, so {source} must be a folder with its "
            f"{CONFIG_FILE} (open_clip's model_cfg) beside the weights."
        )
    weights_name = checkpoint.weights.name if checkpoint.folder else _file_name(checkpoint.weights)
    files = {weights_name: checkpoint.weights}
    if checkpoint.folder is not None and (checkpoint.folder / CONFIG_FILE).exists():
        files[CONFIG_FILE] = checkpoint.folder / CONFIG_FILE
    record = {"source": f"file:{Path(source).resolve()}", "digest": checkpoint.digest}
    return _write_folder(name, files, record, copy=True)


def _write_folder(name: str, files: dict[str, Path], record: dict, *, copy: bool) -> Path:
    """Fill the model's folder atomically: a temporary folder renamed into place."""
    target = installed_folder(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for filename, path in files.items():
            (shutil.copyfile if copy else shutil.move)(path, staging / filename)
        (staging / RECORD_FILE).write_text(json.dumps(record, indent=1))
        old = target.with_name(f".{name}.{os.getpid()}.old")
        if target.exists():
            target.rename(old)
        try:
            staging.rename(target)
        except BaseException:
            if old.exists() and not target.exists():
                old.rename(target)  # the model that was there stays
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _file_name(weights: Path) -> str:
    """The hub-layout name of a lone checkpoint file, by its format."""
    return WEIGHT_FILES[0] if weights.suffix == ".safetensors" else WEIGHT_FILES[1]


def pull(name: str, *, endpoint: str | None = None) -> Path:
    """Download a registered model's checkpoint from the Hugging Face hub into the cache (with
    huggingface_hub's progress bar; safetensors where the repository has them, else the
    pickle-free-loaded .bin), checking the sha256 the hub gives for each file."""
    if name not in CLIP_MODELS:
        raise ImgsearchError(
            f"{name} has no hub repository: `imgsearch models pull` knows {', '.join(CLIP_MODELS)}; "
            "name a model of your own with --from FOLDER."
        )
    spec = CLIP_MODELS[name]
    staging = cache_root() / f".{name}.{os.getpid()}.download"
    files: dict[str, Path] = {}
    try:
        for choices in (WEIGHT_FILES[:2], (CONFIG_FILE,)):
            for filename in choices:
                path = _download(spec, filename, staging, endpoint)
                if path is not None:
                    files[filename] = path
                    break
            else:
                if choices != (CONFIG_FILE,):  # the config is optional: the registry knows the model
                    raise WeightsUnavailable(f"{spec.hub} has no open_clip weights ({', '.join(choices)}).")
        weights = next(files[f] for f in WEIGHT_FILES if f in files)
        record = {"source": f"hf:{spec.hub}", "digest": file_sha256(weights)[:16]}
        return _write_folder(name, files, record, copy=False)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _download(spec: ClipSpec, filename: str, staging: Path, endpoint: str | None) -> Path | None:
    """One file of the hub repository, checked against its sha256; None when it has no such file."""
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
        from huggingface_hub.errors import RemoteEntryNotFoundError
    except ImportError as exc:
        raise ImgsearchError("Pulling models needs huggingface_hub: pip install open-clip-torch.") from exc
    try:
        meta = get_hf_file_metadata(hf_hub_url(spec.hub, filename, endpoint=endpoint))
        path = Path(hf_hub_download(spec.hub, filename, local_dir=staging, endpoint=endpoint))
    except RemoteEntryNotFoundError:  # the repository has no such file (an HTTP 404)
        return None
    except Exception as exc:  # network, HTTP or hub errors all mean "not here now"
        raise WeightsUnavailable(
            f"Could not download {filename} of {spec.name} from the hub ({spec.hub}): "
            f"{type(exc).__name__}; offline, copy the checkpoint here and run "
            f"`imgsearch models pull {spec.name} --from FILE_OR_FOLDER`."
        ) from exc
    expected = (meta.etag or "").strip('"')
    if len(expected) == 64 and file_sha256(path) != expected:
        raise WeightsUnavailable(f"{filename} of {spec.name} does not match the hub's sha256; not kept.")
    return path
