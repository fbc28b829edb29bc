import os
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
