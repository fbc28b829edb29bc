import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from transforms.embedding import embed_texts, load_embedding_model
from transforms.records import EmbeddedTemplate, Example, Template
from transforms.template_library import MANIFEST, WriteLibrary, build_manifest, load_library, read_manifest, verify_library


def _templates():
    descriptions = ["A document about a country's capital city.", "A recipe describing how to cook eggs.",
                    "A medical article on the symptoms of a condition.", "A guide to personal savings accounts.",
                    "An encyclopedia entry about a planet's moons."]
    vectors = embed_texts(load_embedding_model(), descriptions)
    out = []
    for i, (d, v) in enumerate(zip(descriptions, vectors)):
        t = Template(f"id{i:02d}", f"what is <fi>thing {i}</fi>", d, 1, i + 1, ["s"], [Example(f"q{i}", "s")], i % 2)
        out.append(EmbeddedTemplate(t, v.tobytes()))
    return out, vectors


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    out = tmp_path_factory.mktemp("lib")
    templates, vectors = _templates()
    with TestPipeline() as p:
        _ = p | beam.Create(templates) | WriteLibrary(str(out), "sentence-transformers/all-MiniLM-L6-v2",
                                                      num_shards=2, build_params={"seed": 1})
    return out, templates, vectors


def test_manifest_fields(library):
    out, templates, _ = library
    m = read_manifest(str(out))
    assert m["count"] == 5 and m["embedding"]["dimension"] == 384 and m["embedding"]["normalized"]
    assert m["embedding"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert m["index"]["type"] == "brute_force" and m["build"] == {"seed": 1}
    assert sum(p.startswith("templates/") for p in m["files"]) == 2
    assert {"embeddings/embeddings.npy", "embeddings/template_ids.npy"} <= set(m["files"])


def test_load_search_and_table(library):
    out, templates, vectors = library
    lib = load_library(str(out))
    assert len(lib) == 5
    rows, scores = lib.search(vectors, k=3)
    assert [lib.template_id(r) for r in rows[:, 0]] == [t.template.template_id for t in templates]
    assert np.allclose(scores[:, 0], 1.0, atol=1e-4)
    table = lib.template_table().to_pylist()
    assert sorted(r["template_id"] for r in table) == [f"id{i:02d}" for i in range(5)]
    row = next(r for r in table if r["template_id"] == "id03")
    assert row["weight"] == 4 and row["examples"] == [{"text": "q3", "source": "s"}] and row["cluster_id"] == 1
    verify_library(lib.path, lib.manifest)


def test_tampered_file_fails_verification(library, tmp_path):
    import shutil
    out, _, _ = library
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    path = copy / "embeddings" / "embeddings.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="embeddings/embeddings.npy"):
        verify_library(str(copy), read_manifest(str(copy)))


def test_missing_library_and_pure_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        load_library(str(tmp_path))
    m = build_manifest({"name": "m", "dimension": 3}, 2, {"type": "brute_force"}, {"b": "2", "a": "1"})
    assert list(m["files"]) == ["a", "b"] and m["count"] == 2 and m["embedding"]["normalized"]
    (tmp_path / MANIFEST).write_text(json.dumps({**m, "format_version": 99}))
    with pytest.raises(ValueError, match="unsupported"):
        load_library(str(tmp_path))


# --- a broken library fails before the job starts (issue 13) -----------------------------------

def _broken_copy(library, tmp_path, name):
    import shutil

    out, _, _ = library
    copy = tmp_path / name
    shutil.copytree(out, copy)
    return copy


@pytest.mark.parametrize("break_it, message", [
    (lambda d: (d / "index").rename(d / "index-gone"), "is missing"),
    (lambda d: (d / "embeddings" / "embeddings.npy").write_bytes(
        (d / "embeddings" / "embeddings.npy").read_bytes()[:-64]), "embeddings/embeddings.npy does not match"),
    (lambda d: [f.write_bytes(b"PAR1 not really") for f in (d / "templates").glob("*.parquet")], "templates/"),
])
def test_verify_library_names_what_is_broken(library, tmp_path, break_it, message):
    copy = _broken_copy(library, tmp_path, "copy")
    break_it(copy)
    with pytest.raises(ValueError, match=message) as e:
        verify_library(str(copy), read_manifest(str(copy)))
    assert str(copy) in str(e.value) and "--skip_library_check" in str(e.value)


def test_an_index_from_another_library_and_an_empty_one_are_refused(library, tmp_path):
    import json
    import shutil

    copy = _broken_copy(library, tmp_path, "copy")
    other = next((copy / "index").iterdir())
    other.write_bytes(other.read_bytes() + b"\0")   # e.g. another library's index file
    with pytest.raises(ValueError, match="index/"):
        verify_library(str(copy), read_manifest(str(copy)))
    empty = _broken_copy(library, tmp_path, "empty")
    manifest = json.loads((empty / MANIFEST).read_text())
    manifest["count"] = 0
    (empty / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="0 templates"):
        verify_library(str(empty), read_manifest(str(empty)))
    shutil.rmtree(empty)


def test_a_corrupt_manifest_error_names_the_file(tmp_path):
    (tmp_path / MANIFEST).write_text('{"format_version": 1, "files": {')
    with pytest.raises(ValueError, match=str(tmp_path / MANIFEST)):
        read_manifest(str(tmp_path))


def test_embeddings_of_another_shape_than_the_manifests_are_refused(library, tmp_path):
    import hashlib
    import json

    copy = _broken_copy(library, tmp_path, "shape")
    path = copy / "embeddings" / "embeddings.npy"
    arr = np.load(path)
    np.save(path, arr[:-1])   # one row short, checksum updated to match: only the shape tells
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["files"]["embeddings/embeddings.npy"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"embeddings/embeddings.npy has shape \(4, "):
        verify_library(str(copy), read_manifest(str(copy)))
