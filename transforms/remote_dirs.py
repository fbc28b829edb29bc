"""Remote directories (``gs://`` or any Beam filesystem) copied to local disk, for libraries
that load only local files (ScaNN, ``from_pretrained``, SentenceTransformer)."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading

from apache_beam.io.filesystems import FileSystems

_COPY_LOCK = threading.Lock()


def copy_dir_to_local(src: str, local_dir: str) -> str:
    """Copies every file under ``src`` (any Beam filesystem) into ``local_dir``; returns it."""
    src = src.rstrip("/")
    os.makedirs(local_dir, exist_ok=True)
    for meta in FileSystems.match([f"{src}/**"])[0].metadata_list:
        rel = meta.path[len(src):].lstrip("/")
        if not rel:
            continue
        dest = os.path.join(local_dir, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with FileSystems.open(meta.path) as fin, open(dest, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
    return local_dir


def cached_local_copy(src: str, local_dir: str = "") -> str:
    """A complete local copy of ``src``, made at most once per worker.

    The default destination is a per-path cache under the temp dir shared by the worker's
    processes; the copy is staged and renamed into place with a ``.complete`` marker, so no
    process reads a half-finished copy.
    """
    src = src.rstrip("/")
    if not local_dir:
        digest = hashlib.sha256(src.encode("utf-8")).hexdigest()[:16]
        local_dir = os.path.join(tempfile.gettempdir(), "fineinstructions-models", digest)
    marker = os.path.join(local_dir, ".complete")
    with _COPY_LOCK:
        if os.path.isfile(marker):
            return local_dir
        if not FileSystems.match([f"{src}/**"])[0].metadata_list:
            raise FileNotFoundError(f"no files under {src}")
        parent = os.path.dirname(os.path.abspath(local_dir))
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".copy-", dir=parent)
        try:
            copy_dir_to_local(src, staging)
            open(os.path.join(staging, ".complete"), "w").close()
            if os.path.isdir(local_dir) and not os.path.isfile(marker):
                shutil.rmtree(local_dir, ignore_errors=True)  # a crashed earlier copy
            try:
                os.replace(staging, local_dir)
            except OSError:
                if not os.path.isfile(marker):  # another process won the race: use its copy
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return local_dir
