"""Both jobs' command lines: --help, usage errors as exit 2 with a message, no traceback."""
import pytest

from pipeline.job import main as pipeline_main
from templates_mining.job import main as mining_main


@pytest.mark.parametrize("main,flag", [(pipeline_main, "--match_threshold"), (mining_main, "--near_threshold")])
def test_help_lists_flags_with_defaults(main, flag, capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert flag in out and "(default:" in out and "pass through" in out


def test_pipeline_usage_errors_exit_2(tmp_path, capsys):
    assert pipeline_main(["--templates", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "--documents is required" in capsys.readouterr().err


def test_mining_usage_errors_exit_2(tmp_path, capsys):
    assert mining_main(["--output", str(tmp_path / "o")]) == 2
    assert "--sources" in capsys.readouterr().err


def test_pipeline_missing_inputs_exit_3(sample_library, tmp_path, capsys):
    library, _ = sample_library
    assert pipeline_main(["--documents", str(tmp_path / "none-*.jsonl"), "--templates", str(library),
                          "--output", str(tmp_path / "o")]) == 3
    assert "matches no file" in capsys.readouterr().err
    docs = tmp_path / "d.jsonl"
    docs.write_text('{"id": "1", "text": "hello"}\n')
    assert pipeline_main(["--documents", str(docs), "--templates", str(tmp_path / "nolib"),
                          "--output", str(tmp_path / "o")]) == 3
    assert "no template library" in capsys.readouterr().err


def test_a_broken_library_exits_3_before_any_work(sample_library, tmp_path, capsys):
    import shutil

    library, _ = sample_library
    broken = tmp_path / "lib"
    shutil.copytree(library, broken)
    (broken / "embeddings" / "embeddings.npy").write_bytes(b"truncated")
    docs = tmp_path / "d.jsonl"
    docs.write_text('{"id": "1", "text": "hello"}\n')
    argv = ["--documents", str(docs), "--templates", str(broken), "--output", str(tmp_path / "o")]
    assert pipeline_main(argv) == 3
    assert "embeddings/embeddings.npy does not match its sha256" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_mining_queries_glob_matching_nothing_exits_3(tmp_path, capsys):
    assert mining_main(["--queries", str(tmp_path / "none-*.jsonl"), "--output", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert "none-*.jsonl" in err and "Traceback" not in err
