"""Build, save and load the ScaNN searcher over template description embeddings.

Embeddings are unit norm, so maximum inner product ("dot_product") is cosine similarity.
The searcher is serialized with *relative* asset paths so its directory can be copied or
moved (to ``gs://`` and back to a worker's local disk); ScaNN itself loads only local
directories, so :func:`load_searcher` copies anything else to a local temp dir first.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from typing import Any, Dict

import numpy as np

from transforms.remote_dirs import copy_dir_to_local

BRUTE_FORCE_BELOW = 20_000
"""Below this many vectors exact search is fast enough and needs no training."""

ASSETS_FILE = "scann_assets.pbtxt"
_ASSET_PATH_RE = re.compile(r'asset_path: "([^"]*)"')


def index_params_for(n: int, dim: int) -> Dict[str, Any]:
    """The ScaNN configuration for ``n`` vectors of dimension ``dim``.

    Rule (tuned with ``benchmarks/scann_benchmark.py``):

    * ``n < 20,000``: exact brute-force scoring (float32): already fast, perfect recall.
    * otherwise a k-means tree with ``num_leaves = round(2 * sqrt(n))`` (about
      ``sqrt(n) / 2`` vectors per leaf), searching the closest ``num_leaves / 20``
      leaves (5% of the data); asymmetric hashing with 2 dimensions per 4-bit block
      and anisotropic threshold 0.2 scores those vectors, and the best ``reorder = 200``
      are rescored exactly in float32 (reorder >> k makes AH error negligible).

    On topic-structured data (like sentence embeddings) this gives recall@10 ~0.99 at
    tens of times exact QPS; on structureless i.i.d. random vectors no partitioning
    helps and recall falls with the fraction searched (see the benchmark).
    """
    if n < 1 or dim < 1:
        raise ValueError(f"need n >= 1 and dim >= 1, got n={n}, dim={dim}")
    if n < BRUTE_FORCE_BELOW:
        return {"type": "brute_force", "n": n, "dim": dim}
    num_leaves = int(round(2 * math.sqrt(n)))
    return {
        "type": "tree_ah",
        "n": n,
        "dim": dim,
        "num_leaves": num_leaves,
        "num_leaves_to_search": max(1, int(round(num_leaves / 20))),
        "training_sample_size": min(n, 250_000),
        "dimensions_per_block": 2,
        "anisotropic_quantization_threshold": 0.2,
        "reorder": 200,
    }


def build_searcher(embeddings: np.ndarray, params: Dict[str, Any], k: int = 10):
    """A ScaNN dot-product searcher over ``embeddings`` (float32 ``[n, d]``, unit norm)."""
    from scann import scann_ops_pybind

    db = np.ascontiguousarray(embeddings, dtype=np.float32)
    if db.ndim != 2 or db.shape[0] == 0:
        raise ValueError(f"need a non-empty [n, d] matrix, got shape {db.shape}")
    builder = scann_ops_pybind.builder(db, min(k, db.shape[0]), "dot_product")
    if params["type"] == "brute_force":
        return builder.score_brute_force().build()
    if params["type"] != "tree_ah":
        raise ValueError(f"unknown index type {params['type']!r}")
    return (
        builder
        .tree(num_leaves=params["num_leaves"],
              num_leaves_to_search=params["num_leaves_to_search"],
              training_sample_size=params["training_sample_size"])
        .score_ah(params["dimensions_per_block"],
                  anisotropic_quantization_threshold=params["anisotropic_quantization_threshold"],
                  training_sample_size=params["training_sample_size"])
        .reorder(params["reorder"])
        .build())


def save_searcher(searcher, local_dir: str) -> None:
    """Serializes ``searcher`` into ``local_dir`` with relative asset paths (movable)."""
    os.makedirs(local_dir, exist_ok=True)
    searcher.serialize(local_dir, relative_path=True)


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local_path(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


def _relativize_assets(local_dir: str) -> bool:
    """Rewrites absolute asset paths to file names; True if anything changed."""
    assets = os.path.join(local_dir, ASSETS_FILE)
    with open(assets) as f:
        text = f.read()
    fixed = _ASSET_PATH_RE.sub(lambda m: f'asset_path: "{os.path.basename(m.group(1))}"', text)
    if fixed == text:
        return False
    with open(assets, "w") as f:
        f.write(fixed)
    return True


def _has_absolute_assets(local_dir: str) -> bool:
    with open(os.path.join(local_dir, ASSETS_FILE)) as f:
        return any(os.path.isabs(p) for p in _ASSET_PATH_RE.findall(f.read()))


def load_searcher(path: str, local_cache: str | None = None):
    """Loads a serialized searcher from a local or remote (``gs://``...) directory.

    Remote directories are copied to ``local_cache`` (default: a fresh temp dir) first.
    A local directory written with absolute asset paths (``serialize(dir)`` without
    ``relative_path``) is copied and its asset paths rewritten, so moved indexes load too.
    """
    from scann import scann_ops_pybind

    if _is_local(path):
        local = _local_path(path)
        if not os.path.isfile(os.path.join(local, ASSETS_FILE)):
            raise FileNotFoundError(f"no ScaNN index at {path} ({ASSETS_FILE} missing)")
        if _has_absolute_assets(local):
            copy = local_cache or tempfile.mkdtemp(prefix="scann-index-")
            shutil.copytree(local, copy, dirs_exist_ok=True)
            _relativize_assets(copy)
            local = copy
    else:
        local = copy_dir_to_local(path, local_cache or tempfile.mkdtemp(prefix="scann-index-"))
        if not os.path.isfile(os.path.join(local, ASSETS_FILE)):
            raise FileNotFoundError(f"no ScaNN index at {path} ({ASSETS_FILE} missing)")
        _relativize_assets(local)
    return scann_ops_pybind.load_searcher(local)
