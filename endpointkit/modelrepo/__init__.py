"""Triton model repositories: validation, the default model, deterministic packaging.

A repository is a folder with one subfolder per model, as Triton reads it::

    model_repository/
      preprocess/config.pbtxt   preprocess/1/model.py
      classifier/config.pbtxt   classifier/1/model.py  classifier/labels.txt
      ensemble/config.pbtxt     ensemble/1/            (an ensemble's version folder may be empty)

:func:`load_repository` validates it the way Triton would load it and returns a :class:`ModelRepository`;
:func:`package_repository` writes the ``model.tar.gz`` SageMaker and blob storage receive, byte for byte
the same for the same content. Parsing ``config.pbtxt`` needs ``tritonclient[grpc]`` (``pip install 'endpointkit[local]'``).
"""

from __future__ import annotations

from endpointkit.modelrepo._archive import PackagedRepository, package_repository
from endpointkit.modelrepo._config import ModelInfo, TensorInfo
from endpointkit.modelrepo._repository import ModelRepository, is_remote_repository, load_repository

__all__ = [
    "ModelInfo",
    "ModelRepository",
    "PackagedRepository",
    "TensorInfo",
    "is_remote_repository",
    "load_repository",
    "package_repository",
]
