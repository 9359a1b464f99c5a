"""A validated Triton model repository and its default model."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from endpointkit.errors import SpecError
from endpointkit.modelrepo._archive import content_sha256, model_folders, subfolders
from endpointkit.modelrepo._config import REPOSITORY_FIELD, LoadedModel, ModelInfo, load_model
from endpointkit.modelrepo._ensemble import check_ensembles

__all__ = ["ModelRepository", "is_remote_repository", "load_repository"]

DEFAULT_MODEL_FIELD = "model.default_model"
_REMOTE_SCHEMES = ("s3://", "as://", "gs://")


def is_remote_repository(uri: str) -> bool:
    """Whether ``uri`` names a repository in cloud storage that Triton reads itself (``s3://``, ``as://``, ``gs://``).

    Such a repository is used as it is: it cannot be validated or packaged locally.
    """
    return str(uri).strip().lower().startswith(_REMOTE_SCHEMES)


@dataclass(frozen=True)
class ModelRepository:
    """A local Triton model repository that :func:`load_repository` validated.

    Attributes:
        path: the repository folder, absolute.
        models: model name to :class:`ModelInfo`, sorted by name, read-only.
    """

    path: Path
    models: Mapping[str, ModelInfo]
    _content_hash: str | None = field(default=None, init=False, repr=False, compare=False)

    def inferred_default_model(self) -> str | None:
        """The model requests go to when none is named: the only model, or else the one top-level ensemble.

        A top-level ensemble is one that no other ensemble uses as a step. Returns None when there is no
        such single choice (several models and no ensemble, or several top-level ensembles).
        """
        if len(self.models) == 1:
            return next(iter(self.models))
        used_as_step = {step for info in self.models.values() for step in info.steps}
        top_level = [
            name for name, info in self.models.items() if info.is_ensemble and name not in used_as_step
        ]
        return top_level[0] if len(top_level) == 1 else None

    def default_model(self, explicit: str | None = None) -> str:
        """The default model: ``explicit`` if given (it must be in the repository), else the inferred one.

        Raises:
            SpecError: ``explicit`` is not a model here (the message suggests the nearest name and lists the
                models), or nothing is given and no single default can be inferred.
        """
        listing = ", ".join(f"'{name}'" for name in self.models)
        if explicit is not None:
            if explicit in self.models:
                return explicit
            close = difflib.get_close_matches(explicit, list(self.models), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise SpecError(
                f"default model '{explicit}' is not in the model repository {self.path}; {hint}"
                f"its models are: {listing}",
                field=DEFAULT_MODEL_FIELD,
            )
        inferred = self.inferred_default_model()
        if inferred is not None:
            return inferred
        ensembles = [name for name, info in self.models.items() if info.is_ensemble]
        why = (
            f"{len(ensembles)} ensembles could each be the entry point ({', '.join(ensembles)})"
            if ensembles
            else "none of them is an ensemble that combines the others"
        )
        raise SpecError(
            f"cannot tell which model of {self.path} requests should go to: it holds {len(self.models)} models "
            f"({listing}) and {why}; set model.default_model to one of them",
            field=DEFAULT_MODEL_FIELD,
        )

    def content_hash(self) -> str:
        """The sha256 hex digest of the repository's deterministic tar stream (:func:`content_sha256`), which
        names models and configs on every target.

        Computed on first call without writing a file, then cached: later changes to the folder are not seen
        by this object.
        """
        if self._content_hash is None:
            # The dataclass is frozen for its callers; the cache is an implementation detail.
            object.__setattr__(self, "_content_hash", content_sha256(self.path))
        assert self._content_hash is not None
        return self._content_hash


def load_repository(path: str | os.PathLike[str]) -> ModelRepository:
    """Read and validate a local Triton model repository.

    Checks what Triton checks when it loads the models: every model folder's ``config.pbtxt`` parses, its
    name matches the folder, the numeric version folders the version policy selects exist and hold the
    backend's model file, a missing config is allowed only where Triton can generate one, and every
    ensemble step names an existing model, version and tensors, with a data flow that connects. Reads
    files; does not start Triton.

    Raises:
        SpecError: the first problem found, naming the file, model or ensemble step and how to fix it.
        MissingDependencyError: tritonclient (which parses config.pbtxt) is not installed.
    """
    if is_remote_repository(str(path)):
        raise SpecError(
            f"{path} is in cloud storage: only a local model repository can be loaded and validated",
            field=REPOSITORY_FIELD,
        )
    root = Path(path).expanduser()
    if not root.is_dir():
        state = "does not exist" if not root.exists() else "is not a folder"
        raise SpecError(f"model repository {root} {state}", field=REPOSITORY_FIELD)
    root = root.resolve()
    folders = model_folders(root)
    if not folders:
        raise SpecError(
            f"model repository {root} holds no model folder; expected <model name>/config.pbtxt and "
            "<model name>/1/ with the model files",
            field=REPOSITORY_FIELD,
        )
    loaded: dict[str, LoadedModel] = {
        folder.name: load_model(folder, subfolders(folder)) for folder in folders
    }
    check_ensembles(loaded)
    models = MappingProxyType({name: model.info for name, model in sorted(loaded.items())})
    return ModelRepository(path=root, models=models)
