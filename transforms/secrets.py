"""API keys of model endpoints: from Secret Manager on Dataflow, from an environment variable
locally; never a flag, a pipeline option or a log line.

Dataflow workers do not inherit the launcher's environment, so a key in ``$OPENAI_API_KEY``
never reaches them; ``--openai_api_key_secret projects/P/secrets/S/versions/V`` is read once per
worker process with the worker's service account (Beam's ``GcpSecret``). Whatever is stored
about a failed request (an endpoint's error body may echo the Authorization header) passes
through :func:`redact` first.
"""
from __future__ import annotations

import os
import re
import threading
from typing import Dict, Optional, Sequence, Set

SECRET_VERSION_RE = re.compile(r"^projects/[^/\s]+/secrets/[^/\s]+/versions/[^/\s]+$")
ALLOWED_FLAGS = ("--openai_api_key_env", "--openai_api_key_secret")
# A flag one of whose words (split at _ and -) names a secret: --openai_api_key, --hf-token,
# --db_password; not --max_document_tokens or --budget_tokenizer.
_SECRET_FLAG_RE = re.compile(r"^--?(?:[A-Za-z0-9]+[_-])*(?:api[_-]?key|apikey|token|secret|passw(?:or)?d)(?:[_-][A-Za-z0-9]+)*$",
                             re.I)
_PATTERNS = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{4,}"), r"\1 [REDACTED]"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), "[REDACTED]"),
    (re.compile(r"(?i)((?:api[_-]?key|authorization|x-api-key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{4,}"), r"\1[REDACTED]"),
)

_LOCK = threading.Lock()
_SECRETS: Dict[str, str] = {}
_KNOWN: Set[str] = set()


def read_secret(version_name: str) -> str:
    """The secret's value (UTF-8, stripped), read once per process."""
    with _LOCK:
        if version_name not in _SECRETS:
            from apache_beam.transforms.util import GcpSecret

            value = GcpSecret(version_name).get_secret_bytes().decode("utf-8").strip()
            _SECRETS[version_name] = value
            _KNOWN.add(value)
        return _SECRETS[version_name]


def api_key(env_name: str, secret_version: Optional[str] = None) -> str:
    """The key: the Secret Manager secret when named, else ``$env_name``, else ``"EMPTY"`` (what
    a vLLM server without ``--api-key`` expects)."""
    key = read_secret(secret_version) if secret_version else (os.environ.get(env_name) or "EMPTY")
    if key != "EMPTY":
        with _LOCK:
            _KNOWN.add(key)
    return key


def redact(text: str) -> str:
    """``text`` with the keys this process loaded, bearer tokens and key-like values replaced."""
    for known in sorted(_KNOWN, key=len, reverse=True):
        if len(known) >= 4:
            text = text.replace(known, "[REDACTED]")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def refuse_secret_flags(argv: Sequence[str]) -> None:
    """Raises ValueError (naming the flag, never its value) for a flag that looks like a secret
    (``--openai_api_key=...``, ``--token``): Beam would log it in full as an unparseable argument
    and keep it in the job's options."""
    for arg in argv:
        name = str(arg).split("=", 1)[0]
        if name not in ALLOWED_FLAGS and _SECRET_FLAG_RE.match(name):
            raise ValueError(f"{name} looks like a secret on the command line, where logs and the job's options "
                             "keep it: put the key in an environment variable named by --openai_api_key_env "
                             "(local runs) or in Secret Manager, named by --openai_api_key_secret "
                             "projects/P/secrets/S/versions/V (Dataflow); for other services, their own "
                             "credential files or environment")
