"""A tiny OpenAI-compatible HTTP server with scripted misbehaviour, for the openai backend tests.

Run as ``python tests/fake_openai_server.py --port 0``: it prints the port it bound, then
serves ``POST /v1/chat/completions`` and ``POST /v1/completions``. What a request gets
depends on words in its prompt (the last user message, or the completion prompt):

- ``RATE_LIMIT_ONCE``: 429 the first time that exact prompt is seen (``Retry-After`` from
  ``RETRY_AFTER=<s>`` in the prompt, else 0), then success;
- ``ECHO_AUTH``: 400 whose message repeats the request's Authorization header;
- ``ALWAYS_500``: always 500;  ``TOO_LONG``: 400 as vLLM rejects a prompt over max-model-len;
- ``SLOW``: sleeps ``--slow-s`` before answering;
- ``HOLD``: sleeps 0.3 s before answering (to overlap concurrent requests);
- ``MALFORMED``: 200 with a JSON content type but a body that is not JSON;
- ``HTML_BODY``: 200 with an HTML content type and body;
- ``NO_CHOICES``: 200 with a JSON body without ``choices``;  ``EMPTY``: an empty completion;
- anything else: the completion ``{"echo": <prompt>}`` with a usage block, unless the request's
  model is ``fake-templatizer``, ``fake-instantiator``, ``fake-judge`` or ``fake-synthesizer``:
  then it answers like that released model would (valid output built from the prompt by
  :func:`role_play`), so a whole job can run against it. ``fake-synthesizer`` first checks
  that the request is what the instruction synthesizer must get (:func:`synthesizer_problem`:
  a raw completion with no BOS added, in the released multi-round format) and answers 400
  with the problem otherwise.

``GET /v1/models`` answers a model list (401 for the key ``REJECT-ME``): the jobs' probe.
``GET /_log`` returns every request seen (path, JSON body, Authorization header, prompt,
server-side start and end times) so tests can check retries, parameters and concurrency.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOLD_S = 0.3
COMPLETION_TOKENS = 3


class State:
    def __init__(self, slow_s: float):
        self.slow_s = slow_s
        self.lock = threading.Lock()
        self.log = []
        self.rate_limited = set()


def prompt_text(path: str, body: dict) -> str:
    """The last user message of a chat request, or the completion prompt."""
    if path.endswith("/chat/completions"):
        users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
        return str(users[-1]) if users else ""
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


def completion_body(path: str, model: str, content: str, prompt: str) -> dict:
    usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": COMPLETION_TOKENS,
             "total_tokens": len(prompt.split()) + COMPLETION_TOKENS}
    if path.endswith("/chat/completions"):
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        kind = "chat.completion"
    else:
        choice = {"index": 0, "text": content, "logprobs": None, "finish_reason": "stop"}
        kind = "text_completion"
    return {"id": "fake-1", "object": kind, "created": int(time.time()), "model": model,
            "choices": [choice], "usage": usage}


WORD_RE = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
SENTENCE_RE = re.compile(r"[A-Z][^.!?]{80,400}[.!?]")


_SYN_EXAMPLE = (r"<s> <CON> (?:(?!</CON>).)* </CON>\n\n<QUE> .+? <ANS> .+? </END>"
                r"(?:\n\n<QUE> .+? <ANS> .+? </END>)*</s>")
_SYN_PROMPT = re.compile(rf"(?:{_SYN_EXAMPLE})*<s> <CON> ((?:(?!</CON>).)*) </CON>\n\n", re.DOTALL)
SYN_SENTENCE_RE = re.compile(r"[A-Z][^.!?\n]{30,300}[.!?]")


def synthesizer_problem(path: str, body: dict, prompt: str):
    """Why a request is not what the instruction synthesizer must receive (None: it is)."""
    if not path.endswith("/completions") or path.endswith("/chat/completions"):
        return "the synthesizer is a base model: use /v1/completions, not chat"
    if body.get("add_special_tokens") is not False:
        return "the prompt holds its own <s>: send add_special_tokens=false or the model gets two BOS"
    if not _SYN_PROMPT.fullmatch(prompt):
        return "the prompt is not in the synthesizer's multi-round format"
    if body.get("max_tokens") is None or body.get("temperature") not in (0, 0.0):
        return "the synthesizer decodes greedily with a token limit"
    return None


def synthesize(prompt: str) -> str:
    """Pairs about the prompt's last text, in the model's format, with a truncated last pair
    when the text holds a digit (as a model cut by its token limit would write)."""
    text = _SYN_PROMPT.fullmatch(prompt).group(1)
    pairs = []
    for sentence in SYN_SENTENCE_RE.findall(text)[:3]:
        subject = max(WORD_RE.findall(sentence) or ["it"], key=lambda w: (len(w), w))
        pairs.append(f"<QUE> What does the text say about {subject.lower()}? <ANS> {sentence} </END>")
    if not pairs:
        return "The text gives nothing to ask about."
    out = "\n\n".join(pairs)
    if re.search(r"\d", text):
        out += "\n\n<QUE> Which number appears in the text? <ANS> The text"
    return out


def role_play(model: str, prompt: str) -> str:
    """A plausible answer of the released model ``model`` stands for (deterministic)."""
    if model == "fake-templatizer":
        words = WORD_RE.findall(prompt)
        if not words:
            return "I cannot turn this into a template."  # not JSON: a dead letter downstream
        target = max(words, key=lambda w: (len(w), w))
        template = prompt.replace(target, "<fi>a specific subject</fi>", 1)
        return json.dumps({"template": template,
                           "compatible_document_description": f"A document that explains {target.lower()} "
                                                              "in enough detail to answer the question."})
    if model == "fake-instantiator":
        request = json.loads(prompt)
        document = request["document"]
        sentence = SENTENCE_RE.search(document)
        if sentence is None:
            return "null"
        words = sentence.group(0).split()
        filler = WORD_RE.search(sentence.group(0)).group(0)
        instruction = re.sub(r"<fi>.*?</fi>", filler, request["instruction_template"])
        answer = f"<excerpt>{' '.join(words[:4])}<...>{' '.join(words[-4:])}</excerpt>"
        return "```json\n" + json.dumps({"instruction": instruction, "answer": answer}) + "\n```"
    if model == "fake-synthesizer":
        return synthesize(prompt)
    if model == "fake-judge":
        return "<feedback>The answer addresses the instruction from the document.</feedback>\n<score>5</score>"
    return json.dumps({"echo": prompt})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State  # set on the subclass made in main()

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # keep the test output clean

    def _send(self, status: int, body: bytes, content_type: str = "application/json", headers=()):
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout); nothing to answer

    def _send_json(self, status: int, obj, headers=()):
        self._send(status, json.dumps(obj).encode("utf-8"), headers=headers)

    def do_GET(self):  # pylint: disable=invalid-name
        if self.path == "/v1/models":  # what the jobs probe before they start
            if self.headers.get("Authorization") == "Bearer REJECT-ME":
                return self._send_json(401, {"error": {"message": "invalid api key"}})
            return self._send_json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        if self.path != "/_log":
            return self._send_json(404, {"error": {"message": "not found"}})
        with self.state.lock:
            return self._send_json(200, {"requests": list(self.state.log)})

    def do_POST(self):  # pylint: disable=invalid-name
        start = time.monotonic()
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path
        if path not in ("/v1/chat/completions", "/v1/completions"):
            return self._send_json(404, {"error": {"message": f"no route {path}"}})
        body = json.loads(raw or b"{}")
        prompt = prompt_text(path, body)
        record = {"path": path, "body": body, "authorization": self.headers.get("Authorization"),
                  "prompt": prompt, "start": start, "end": None}
        with self.state.lock:
            self.state.log.append(record)
            first_time = prompt not in self.state.rate_limited
            if "RATE_LIMIT_ONCE" in prompt:
                self.state.rate_limited.add(prompt)
        if "SLOW" in prompt:
            time.sleep(self.state.slow_s)
        if "HOLD" in prompt:
            time.sleep(HOLD_S)
        record["end"] = time.monotonic()
        if "RATE_LIMIT_ONCE" in prompt and first_time:
            wait = re.search(r"RETRY_AFTER=(\d+(?:\.\d+)?)", prompt)
            return self._send_json(429, {"error": {"message": "rate limited", "type": "rate_limit"}},
                                   headers=[("Retry-After", wait.group(1) if wait else "0")])
        if body.get("model") == "fake-synthesizer":
            problem = synthesizer_problem(path, body, prompt)
            if problem:
                return self._send_json(400, {"object": "error", "type": "BadRequestError", "code": 400,
                                             "message": problem})
        if "ECHO_AUTH" in prompt:  # a server whose error body shows the request's key
            return self._send_json(400, {"error": {"message": f"bad request with {self.headers.get('Authorization')}"}})
        if "ALWAYS_500" in prompt:
            return self._send_json(500, {"error": {"message": "internal error", "type": "server_error"}})
        if "TOO_LONG" in prompt:
            return self._send_json(400, {"object": "error", "type": "BadRequestError", "code": 400, "message":
                                         "This model's maximum context length is 16384 tokens. However, you "
                                         "requested 17410 tokens (16386 in the messages, 1024 in the completion)."})
        if "MALFORMED" in prompt:
            return self._send(200, b"<html>this is not JSON{")
        if "HTML_BODY" in prompt:
            return self._send(200, b"<html>proxy error page</html>", content_type="text/html")
        if "NO_CHOICES" in prompt:
            return self._send_json(200, {"id": "fake-1", "object": "chat.completion"})
        content = "" if "EMPTY" in prompt else role_play(body.get("model", ""), prompt)
        return self._send_json(200, completion_body(path, body.get("model", ""), content, prompt))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--slow-s", type=float, default=3.0)
    args = parser.parse_args(argv)
    handler = type("BoundHandler", (Handler,), {"state": State(args.slow_s)})
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
