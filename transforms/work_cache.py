"""Finished per-record work kept under a key of everything that decides it, so a rerun skips it.

Beam and Dataflow rerun a killed or failed job from its start. With ``--generation_cache DIR``
(local or gs://) the job keeps what its expensive steps finished: model generations
(:mod:`transforms.generation_cache`), document embeddings and extractive instantiations; a
rerun does only the work not finished yet and, since every step is deterministic, writes the
same files. Entries are written atomically (a torn write reads as missing and is redone).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

from apache_beam.io.filesystems import FileSystems


def work_key(*decided: Any) -> str:
    """sha256 of everything that decides a result (JSON-serialisable parts, in order)."""
    return hashlib.sha256(json.dumps(decided, sort_keys=True, default=str).encode("utf-8")).hexdigest()


class WorkCache:
    """Bytes under ``ROOT[/KIND]/<key[:2]>/<key><suffix>``."""

    def __init__(self, root: str, kind: str = "", suffix: str = ".json"):
        self._dir = "/".join(p for p in (root.rstrip("/"), kind) if p)
        self._suffix = suffix

    def path(self, key: str) -> str:
        return f"{self._dir}/{key[:2]}/{key}{self._suffix}"

    def get(self, key: str) -> Optional[bytes]:
        path = self.path(key)
        if not FileSystems.exists(path):
            return None
        with FileSystems.open(path) as f:
            return f.read()

    def put(self, key: str, data: bytes) -> None:
        from transforms.record_io import write_atomically

        write_atomically(self.path(key), data)
