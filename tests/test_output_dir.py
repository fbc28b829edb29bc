"""The output folder of a run (issue 13): a rerun leaves no files of an earlier run, a killed run
no old report, and a folder of other settings is refused unless --overwrite."""
import json

import pytest

from transforms.errors import InputError
from transforms.output_dir import SETTINGS_FILE, prepare_output, remove_empty_dirs, settings_fingerprint
from transforms.record_io import write_atomically

OWNED = ("report.json", "pairs", "filtered")


def test_a_rerun_clears_the_previous_runs_files_and_report(tmp_path):
    out = tmp_path / "out"
    prepare_output(str(out), "pipeline", {"seed": 1, "num_shards": 3}, OWNED, False)
    (out / "pairs").mkdir()
    for i in range(3):
        (out / "pairs" / f"pairs-0000{i}-of-00003.jsonl").write_text("{}\n")
    (out / "report.json").write_text('{"conservation_ok": true}')
    # Same settings (the shard count is not one), no flag needed; nothing of the last run is left.
    prepare_output(str(out), "pipeline", {"seed": 1, "num_shards": 0}, OWNED, False)
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [SETTINGS_FILE]
    assert json.loads((out / SETTINGS_FILE).read_text())["settings"] == {"seed": 1}


def test_other_settings_or_foreign_files_are_refused_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    prepare_output(str(out), "pipeline", {"seed": 1, "min_score": 4}, OWNED, False)
    with pytest.raises(InputError, match="other settings \\(changed: min_score\\).*--overwrite"):
        prepare_output(str(out), "pipeline", {"seed": 1, "min_score": 5}, OWNED, False)
    prepare_output(str(out), "pipeline", {"seed": 1, "min_score": 5}, OWNED, True)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("mine")
    with pytest.raises(InputError, match="thesis.tex"):
        prepare_output(str(other), "pipeline", {}, OWNED, False)
    prepare_output(str(other), "pipeline", {}, OWNED, True)
    assert (other / "thesis.tex").exists()   # --overwrite clears only what the job writes


def test_the_fingerprint_ignores_where_and_how_fast():
    a = settings_fingerprint("pipeline", {"seed": 1, "output": "a", "num_shards": 2, "embedding_device": "cpu"})
    b = settings_fingerprint("pipeline", {"seed": 1, "output": "b", "num_shards": 0, "embedding_device": "cuda"})
    assert a == b and a != settings_fingerprint("pipeline", {"seed": 2})


def test_writes_are_atomic_and_empty_beam_temp_folders_go(tmp_path):
    path = tmp_path / "pairs-00000-of-00001.jsonl"
    path.write_text("old, truncated")
    write_atomically(str(path), b"new\n")
    assert path.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == [path.name]
    (tmp_path / "filtered" / "beam-temp-filtered-abc").mkdir(parents=True)
    remove_empty_dirs(str(tmp_path))
    assert not (tmp_path / "filtered" / "beam-temp-filtered-abc").exists()


def test_num_shards_then_a_default_run_leaves_only_the_new_shards(sample_library, tmp_path):
    from pipeline.job import read_pairs, run

    library, _ = sample_library
    out = tmp_path / "out"
    docs = str(pytest.importorskip("conftest").REPO / "sample_data" / "documents" / "*.jsonl")
    run(["--documents", docs, "--templates", str(library), "--output", str(out), "--num_shards", "3"])
    report = run(["--documents", docs, "--templates", str(library), "--output", str(out)])
    written = {s["stage"]: s for s in report["stages"]}["write"]["out"]
    assert len(read_pairs(str(out))) == written
    assert len(list((out / "pairs").glob("*.jsonl"))) == 1
