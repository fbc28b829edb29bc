import shutil

import numpy as np
import pytest

from transforms.scann_index import BRUTE_FORCE_BELOW, build_searcher, index_params_for, load_searcher, save_searcher


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_params_rule():
    assert index_params_for(100, 384)["type"] == "brute_force"
    big = index_params_for(1_000_000, 384)
    assert big["type"] == "tree_ah" and big["num_leaves"] == 2000 and big["num_leaves_to_search"] == 100
    assert index_params_for(BRUTE_FORCE_BELOW, 384)["type"] == "tree_ah"
    with pytest.raises(ValueError):
        index_params_for(0, 384)


@pytest.mark.parametrize("n", [500, 25_000])
def test_every_vector_finds_itself_after_a_move(tmp_path, n):
    rng = np.random.default_rng(0)
    centres = unit(rng.standard_normal((50, 64)))
    db = unit(centres[rng.integers(0, 50, n)] + 0.3 * rng.standard_normal((n, 64)))
    searcher = build_searcher(db, index_params_for(n, 64))
    save_searcher(searcher, str(tmp_path / "a"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    loaded = load_searcher(str(tmp_path / "b"))
    sample = np.arange(0, n, max(1, n // 300))
    rows, scores = loaded.search_batched(db[sample], final_num_neighbors=1)
    assert np.mean(np.asarray(rows)[:, 0] == sample) >= 0.99
    assert np.allclose(np.asarray(scores)[:, 0], 1.0, atol=1e-3)


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ScaNN index"):
        load_searcher(str(tmp_path))


def test_index_serialized_with_absolute_asset_paths_still_loads_after_a_move(tmp_path):
    """ScaNN's default ``serialize(dir)`` writes absolute asset paths; moving that dir must still load."""
    db = unit(np.random.default_rng(1).standard_normal((300, 16)))
    searcher = build_searcher(db, index_params_for(300, 16))
    (tmp_path / "a").mkdir()
    searcher.serialize(str(tmp_path / "a"))  # absolute paths, as an older or foreign writer would
    assert str(tmp_path / "a") in (tmp_path / "a" / "scann_assets.pbtxt").read_text()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    rows, _ = load_searcher(str(tmp_path / "b")).search_batched(db[:20], final_num_neighbors=1)
    assert list(np.asarray(rows)[:, 0]) == list(range(20))


def test_copy_dir_to_local_copies_nested_files(tmp_path):
    """The path a gs:// index takes to a worker's disk (through Beam FileSystems)."""
    from transforms.remote_dirs import copy_dir_to_local

    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.bin").write_bytes(b"\x00\x01")
    (tmp_path / "src" / "sub" / "b.txt").write_text("b")
    dest = copy_dir_to_local(str(tmp_path / "src"), str(tmp_path / "dest"))
    assert (tmp_path / "dest" / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "dest" / "sub" / "b.txt").read_text() == "b"
    assert dest == str(tmp_path / "dest")
