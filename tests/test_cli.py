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


def test_pipeline_missing_inputs_exit_2(sample_library, tmp_path, capsys):
    library, _ = sample_library
    assert pipeline_main(["--documents", str(tmp_path / "none-*.jsonl"), "--templates", str(library),
                          "--output", str(tmp_path / "o")]) == 2
    assert "matches no file" in capsys.readouterr().err
    docs = tmp_path / "d.jsonl"
    docs.write_text('{"id": "1", "text": "hello"}\n')
    assert pipeline_main(["--documents", str(docs), "--templates", str(tmp_path / "nolib"),
                          "--output", str(tmp_path / "o")]) == 2
    assert "no template library" in capsys.readouterr().err
