"""The template library: the format both jobs share, its writer and its loader.

```
LIBRARY/manifest.json                  written last: model, dimension, count, index, sha256 per file
LIBRARY/templates/templates-SSSSS-of-NNNNN.parquet
LIBRARY/embeddings/embeddings.npy      float32 [n, d], row i <-> template_ids[i] <-> index row i
LIBRARY/embeddings/template_ids.npy    fixed-width bytes, memory-mappable
LIBRARY/index/                         serialized ScaNN searcher (relative asset paths)
```

Only ``(template_id, embedding)`` pairs meet on one worker (to build the one index);
template records are written as sharded Parquet by many workers. Rows are ordered by
``template_id`` so the index is identical for any worker count.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms.errors import InputError
from transforms.accounting import StageCounters, count_stage
from transforms.record_io import WriteParquet
from transforms.remote_dirs import copy_dir_to_local
from transforms.scann_index import build_searcher, index_params_for, load_searcher, save_searcher

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TEMPLATES_DIR = "templates"
EMBEDDINGS = "embeddings/embeddings.npy"
TEMPLATE_IDS = "embeddings/template_ids.npy"
INDEX_DIR = "index"

TEMPLATE_SCHEMA = pa.schema([
    ("template_id", pa.string()),
    ("template", pa.string()),
    ("description", pa.string()),
    ("num_tags", pa.int32()),
    ("weight", pa.int64()),
    ("cluster_id", pa.int32()),
    ("sources", pa.list_(pa.string())),
    ("examples", pa.list_(pa.struct([("text", pa.string()), ("source", pa.string())]))),
])


def sha256_of(path: str) -> str:
    """Hex sha256 of a file on any Beam filesystem, streamed."""
    digest = hashlib.sha256()
    with FileSystems.open(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path) as f:
        f.write(data)


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def build_manifest(embedding: Dict[str, Any], count: int, index: Dict[str, Any],
                   files: Dict[str, str], build_params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The manifest dict (pure). ``files`` maps paths relative to the library to sha256."""
    return {
        "format_version": FORMAT_VERSION,
        "created_by": "fineinstructions-beam templates_mining",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "embedding": {**embedding, "normalized": True},
        "count": count,
        "index": index,
        "files": dict(sorted(files.items())),
        "build": build_params or {},
    }


def write_index_files(output_dir: str, pairs: Sequence[Tuple[str, bytes]]) -> Dict[str, Any]:
    """Writes embeddings, ids and the ScaNN index for ``(template_id, embedding)`` pairs.

    Returns ``{"count", "dimension", "index", "files"}`` (files: relative path -> sha256).
    """
    pairs = sorted(pairs)
    if not pairs:
        return {"count": 0, "dimension": 0, "index": {"type": "empty"}, "files": {}}
    ids = np.array([tid.encode("utf-8") for tid, _ in pairs])
    vectors = np.stack([np.frombuffer(e, dtype=np.float32) for _, e in pairs])
    files: Dict[str, str] = {}
    for rel, array in ((EMBEDDINGS, vectors), (TEMPLATE_IDS, ids)):
        data = _npy_bytes(array)
        _write_bytes(FileSystems.join(output_dir, rel), data)
        files[rel] = hashlib.sha256(data).hexdigest()
    params = index_params_for(*vectors.shape)
    local = tempfile.mkdtemp(prefix="scann-build-")
    try:
        save_searcher(build_searcher(vectors, params), local)
        for name in sorted(os.listdir(local)):
            with open(os.path.join(local, name), "rb") as f:
                data = f.read()
            rel = f"{INDEX_DIR}/{name}"
            _write_bytes(FileSystems.join(output_dir, rel), data)
            files[rel] = hashlib.sha256(data).hexdigest()
    finally:
        shutil.rmtree(local, ignore_errors=True)
    return {"count": len(pairs), "dimension": int(vectors.shape[1]), "index": params, "files": files}


class _BuildIndex(beam.DoFn):
    """All ``(template_id, embedding)`` pairs -> index files; also describes the model."""

    def __init__(self, output_dir: str, embedding_model: str, stage: str):
        self._output_dir, self._model, self._stage = output_dir, embedding_model, stage

    def process(self, pairs: List[Tuple[str, bytes]]):
        from transforms.embedding import load_embedding_model, model_info

        counters = StageCounters(self._stage)
        start = time.perf_counter()
        info = write_index_files(self._output_dir, pairs)
        info["embedding"] = {**model_info(load_embedding_model(self._model)), "name": self._model}
        counters.busy(time.perf_counter() - start)
        yield info


class _WriteManifest(beam.DoFn):
    def __init__(self, output_dir: str, build_params: Dict[str, Any]):
        self._output_dir, self._build_params = output_dir, build_params

    def process(self, info: Dict[str, Any], template_files: List[str]):
        files = dict(info["files"])
        for path in template_files:
            files[f"{TEMPLATES_DIR}/{path.rsplit('/', 1)[-1]}"] = sha256_of(path)
        manifest = build_manifest(info["embedding"], info["count"], info["index"], files, self._build_params)
        if manifest["embedding"]["dimension"] != info["dimension"] and info["count"]:
            raise ValueError(f"model dimension {manifest['embedding']['dimension']} != "
                             f"embeddings dimension {info['dimension']}")
        _write_bytes(FileSystems.join(self._output_dir, MANIFEST),
                     json.dumps(manifest, indent=2).encode("utf-8"))
        yield manifest


class WriteLibrary(beam.PTransform):
    """PCollection[EmbeddedTemplate] -> a template library at ``output_dir`` (local or gs://).

    Returns a PCollection holding the manifest dict once it is written.
    """

    def __init__(self, output_dir: str, embedding_model: str, num_shards: int = 0,
                 build_params: Optional[Dict[str, Any]] = None, stage: str = "write_library"):
        super().__init__()
        self._out = output_dir.rstrip("/")
        self._model = embedding_model
        self._num_shards = num_shards
        self._build_params = build_params or {}
        self._stage = stage

    def expand(self, embedded):
        counted = embedded | "CountIn" >> beam.Map(count_stage(self._stage, "in"))
        template_files = (
            counted
            | "Templates" >> beam.Map(lambda e: e.template)
            | "WriteTemplates" >> WriteParquet(f"{self._out}/{TEMPLATES_DIR}/templates", TEMPLATE_SCHEMA,
                                               num_shards=self._num_shards))
        info = (
            counted
            | "CountOut" >> beam.Map(count_stage(self._stage, "out"))
            | "IdAndEmbedding" >> beam.Map(lambda e: (e.template.template_id, e.embedding))
            | "Gather" >> beam.combiners.ToList()
            | "BuildIndex" >> beam.ParDo(_BuildIndex(self._out, self._model, self._stage)))
        return info | "WriteManifest" >> beam.ParDo(
            _WriteManifest(self._out, self._build_params), beam.pvalue.AsList(template_files))


class TemplateLibrary:
    """A loaded library: manifest, memory-mapped embeddings and ids, the ScaNN searcher."""

    def __init__(self, path: str, local_dir: str, manifest: Dict[str, Any]):
        self.path = path
        self.local_dir = local_dir
        self.manifest = manifest
        if not manifest["count"]:
            raise ValueError(f"template library {path} is empty (count 0)")
        self.embeddings = np.load(os.path.join(local_dir, EMBEDDINGS), mmap_mode="r")
        self.template_ids = np.load(os.path.join(local_dir, TEMPLATE_IDS), mmap_mode="r")
        self.searcher = load_searcher(os.path.join(local_dir, INDEX_DIR))

    def __len__(self) -> int:
        return int(self.manifest["count"])

    def search(self, vectors: np.ndarray, k: int = 10) -> Tuple[np.ndarray, np.ndarray]:
        """``(rows [m, k], scores [m, k])`` of the top-``k`` templates by cosine."""
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        rows, scores = self.searcher.search_batched(vectors, final_num_neighbors=min(k, len(self)))
        return np.asarray(rows), np.asarray(scores)

    def template_id(self, row: int) -> str:
        return self.template_ids[row].decode("utf-8")

    def template_table(self) -> pa.Table:
        """All template records (reads every Parquet shard)."""
        paths = sorted(p for p in self.manifest["files"] if p.startswith(f"{TEMPLATES_DIR}/"))
        tables = []
        for rel in paths:
            with FileSystems.open(FileSystems.join(self.path, rel)) as f:
                tables.append(pq.read_table(pa.BufferReader(f.read())))
        return pa.concat_tables(tables) if tables else TEMPLATE_SCHEMA.empty_table()



def read_manifest(path: str) -> Dict[str, Any]:
    manifest_path = FileSystems.join(path.rstrip("/"), MANIFEST)
    if not FileSystems.exists(manifest_path):
        raise FileNotFoundError(f"no template library at {path} ({MANIFEST} missing)")
    with FileSystems.open(manifest_path) as f:
        raw = f.read()
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{manifest_path} is not a readable manifest ({type(e).__name__}: {e}); "
                         "mine the library again") from e
    if not isinstance(manifest, dict):
        raise InputError(f"{manifest_path} is not a library manifest (a JSON {type(manifest).__name__})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported library format {manifest.get('format_version')!r}")
    return manifest


def _npy_shape(path: str) -> Optional[Tuple[int, ...]]:
    """The shape in a ``.npy`` file's header (read from its first bytes only), None if unreadable."""
    try:
        with FileSystems.open(path) as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, _ = read_header(f)
    except (ValueError, OSError, EOFError):
        return None
    return tuple(int(n) for n in shape)


def verify_library(path: str, manifest: Dict[str, Any]) -> None:
    """Raises InputError naming what is wrong with the library at ``path`` before any work uses it:
    no templates, a file the manifest lists that is missing or whose sha256 differs (a truncated
    embedding file, a corrupt shard, an index copied from another library), embeddings or ids
    whose shape is not the manifest's count and dimension, or a file the format needs that the
    manifest does not list."""
    path = path.rstrip("/")
    files = manifest.get("files") or {}
    problems = []
    if not manifest.get("count"):
        problems.append("it holds 0 templates")
    needed = [EMBEDDINGS, TEMPLATE_IDS]
    problems += [f"the manifest lists no {rel}" for rel in needed if rel not in files]
    if not any(rel.startswith(f"{INDEX_DIR}/") for rel in files):
        problems.append(f"the manifest lists no {INDEX_DIR}/ files")
    if not any(rel.startswith(f"{TEMPLATES_DIR}/") for rel in files):
        problems.append(f"the manifest lists no {TEMPLATES_DIR}/ files")
    for rel, digest in sorted(files.items()):
        full = FileSystems.join(path, rel)
        if not FileSystems.exists(full):
            problems.append(f"{rel} is missing")
        elif sha256_of(full) != digest:
            problems.append(f"{rel} does not match its sha256 in the manifest")
    count, dim = manifest.get("count"), (manifest.get("embedding") or {}).get("dimension")
    for rel, expected in ((EMBEDDINGS, (count, dim)), (TEMPLATE_IDS, (count,))):
        full = FileSystems.join(path, rel)
        if rel in files and FileSystems.exists(full):
            shape = _npy_shape(full)
            if shape is None or tuple(shape[:len(expected)]) != expected:
                problems.append(f"{rel} has shape {shape}, the manifest says {expected}")
    if problems:
        raise InputError(f"template library {path} is broken: " + "; ".join(problems)
                         + ". Mine it again (or pass --skip_library_check to use it as it is).")


def load_library(path: str, local_cache: Optional[str] = None) -> TemplateLibrary:
    """Loads a library from a local or remote directory (remote: embeddings and index copied locally)."""
    path = path.rstrip("/")
    manifest = read_manifest(path)
    if "://" in path and not path.startswith("file://"):
        local = local_cache or tempfile.mkdtemp(prefix="template-library-")
        for sub in ("embeddings", INDEX_DIR):
            copy_dir_to_local(FileSystems.join(path, sub), os.path.join(local, sub))
    else:
        local = path[len("file://"):] if path.startswith("file://") else path
    return TemplateLibrary(path, local, manifest)
