"""The output folder of a run: what it may hold before the run, and what is cleared.

A run writes every file of its output again, so a rerun into the same folder must not leave
files of an earlier run beside the new ones (``--num_shards 3`` then a default run used to leave
4 pair shards), and a killed run must not leave the previous run's ``report.json`` (or, for a
library, ``manifest.json``, which marks a complete library) looking like its own. Before the
run, :func:`prepare_output` records the settings in ``OUTPUT/_settings.json`` and removes the
previous run's files; a folder holding output made with other settings (or anything else) is
refused unless ``--overwrite``.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Iterable, List

from apache_beam.io.filesystems import FileSystems

from transforms.errors import InputError

SETTINGS_FILE = "_settings.json"
# Flags that say where or how fast, not what: a rerun may change them.
NOT_SETTINGS = {"output", "overwrite", "num_shards", "probe_endpoint", "skip_library_check", "embedding_device",
                "embedding_batch_size", "generation_batch_size", "openai_max_concurrency", "openai_timeout_s",
                "openai_max_retries", "accelerator", "transformers_device", "generation_cache",
                "max_dead_fraction"}


def settings_fingerprint(job: str, settings: Dict[str, Any]) -> Dict[str, Any]:
    """``{"job", "fingerprint", "settings"}``: the flags that decide the output, and their hash."""
    kept = {k: v for k, v in sorted(settings.items()) if k not in NOT_SETTINGS}
    digest = hashlib.sha256(json.dumps({"job": job, "settings": kept}, sort_keys=True, default=str).encode()).hexdigest()
    return {"job": job, "fingerprint": digest[:16], "settings": kept}


def _entries(output: str) -> List[str]:
    """Every file under ``output`` (any depth), as full paths."""
    match = FileSystems.match([FileSystems.join(output, "**")])[0]
    return [m.path for m in match.metadata_list]


def prepare_output(output: str, job: str, settings: Dict[str, Any], owned: Iterable[str], overwrite: bool) -> None:
    """Refuses or clears ``output`` for a run of ``job`` (see the module docstring).

    ``owned``: the top-level files and folders a run of this job writes (``report.json``,
    ``pairs``, ...). Files outside them, or output of other settings, need ``overwrite``.
    """
    output = output.rstrip("/")
    record = settings_fingerprint(job, settings)
    settings_path = FileSystems.join(output, SETTINGS_FILE)
    files = _entries(output) if FileSystems.exists(output) else []
    owned = set(owned) | {SETTINGS_FILE}
    rel = [p[len(output) + 1:] if p.startswith(output + "/") else p for p in files]
    foreign = [r for r, p in zip(rel, files) if r.split("/", 1)[0] not in owned and not _beam_temp(r)]
    if FileSystems.exists(settings_path):
        with FileSystems.open(settings_path) as f:
            try:
                previous = json.loads(f.read().decode("utf-8"))
            except ValueError:
                previous = {}
        if previous.get("fingerprint") != record["fingerprint"] and not overwrite:
            changed = sorted(k for k in set(previous.get("settings", {})) | set(record["settings"])
                             if previous.get("settings", {}).get(k) != record["settings"].get(k))
            raise InputError(f"{output} holds the output of a {previous.get('job', '?')} run with other settings "
                             f"(changed: {', '.join(changed[:8]) or 'the job'}): pass --overwrite to replace it, "
                             "or choose another --output")
    elif foreign and not overwrite:
        raise InputError(f"{output} is not empty and holds files this job did not write (e.g. {foreign[0]}): "
                         "pass --overwrite to clear what this job writes there, or choose another --output")
    stale = [p for r, p in zip(rel, files) if r.split("/", 1)[0] in owned or _beam_temp(r)]
    if stale:
        FileSystems.delete(stale)
    with FileSystems.create(settings_path) as f:
        f.write(json.dumps(record, indent=1, sort_keys=True, default=str).encode("utf-8"))


def _beam_temp(rel: str) -> bool:
    return any(part.startswith("beam-temp-") for part in rel.split("/"))


def remove_empty_dirs(output: str) -> None:
    """Local outputs: the empty ``beam-temp-*`` folders Beam's file sinks leave behind."""
    if "://" in output or not os.path.isdir(output):
        return
    for root, dirs, _ in os.walk(output, topdown=False):
        for d in dirs:
            path = os.path.join(root, d)
            if d.startswith("beam-temp-") and not os.listdir(path):
                os.rmdir(path)
