"""A local stand-in for Groq and Ollama that speaks their wire protocols.

Routes: ``POST /openai/v1/chat/completions`` (Groq's OpenAI-compatible API, what ``groq.AsyncGroq``
calls when ``GROQ_BASE_URL`` points here) and ``POST /api/chat`` (what ``ollama.AsyncClient``
calls when ``OLLAMA_HOST`` points here). Replies are built from what the prompt asks for (number
of examples, word range, label counts), so well-behaved replies pass validation.

Faults are injected per request from a queue (``server.faults.extend([...])``) or for every
request (``server.always``): ``429``, ``500``, ``401``, ``404``, ``slow``, ``broken_json``,
``truncated``, ``prose``, ``duplicates``, ``overlap``, ``json_validate_failed``.

Run standalone (used by the benchmark): ``python tests/fakes/llm_server.py --latency 0.2``
prints ``PORT <n>`` and serves until killed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "gsk_test_fake_key_never_real"

_VOCAB = (
    "market quarterly growth patient clinic lesson student match season league policy vote budget "
    "climate energy battery update release router signal network delivery order refund invoice "
    "account password screen camera lens flavour recipe travel flight hotel museum concert album "
    "studio episode trailer ticket coach player injury research sample study galaxy orbit rocket "
    "harvest soil garden puppy kitten family weekend morning evening neighbour council river bridge"
).split()


def _asked(prompt: str, pattern: str, default: int) -> int:
    match = re.search(pattern, prompt)
    return int(match.group(1)) if match else default


class FakeLLMServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, latency: float = 0.0, require_key: bool = True, retry_after: float = 0.05,
                 slow_seconds: float = 5.0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency = latency
        self.require_key = require_key
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.faults: deque[str] = deque()
        self.always: str | None = None
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def handle_error(self, request, client_address) -> None:
        pass  # clients cancelled mid-request (the end of a run) are normal here

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> FakeLLMServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.popleft() if self.faults else self.always

    def examples(self, prompt: str) -> list[dict]:
        """Well-formed examples for what the prompt asks; every text is new across the server's life."""
        k = _asked(prompt, r"Write (\d+) examples", 5)
        low = _asked(prompt, r"between (\d+) and", 5)
        high = _asked(prompt, r"and (\d+) words", 20)
        n_pos = _asked(prompt, r"(\d+) positive label", 2)
        n_neg = _asked(prompt, r"(\d+) hard negatives", 3)
        out = []
        for _ in range(k):
            with self._lock:
                serial = next(self._counter)
            rng = random.Random(serial)
            words = rng.randint(max(low, 3), max(low, 3, min(high, low + 25)))
            text = " ".join([f"item{serial}"] + [rng.choice(_VOCAB) for _ in range(words - 1)])
            pos = [f"{rng.choice(_VOCAB)} topic {j}" for j in range(n_pos)]
            neg = [f"{rng.choice(_VOCAB)} theme {j}" for j in range(n_neg)]
            out.append({"text": text, "labels": pos, "not_labels": neg})
        return out

    def content(self, prompt: str, fault: str | None) -> str:
        examples = self.examples(prompt)
        if fault == "duplicates":
            examples = [examples[0]] * len(examples)
        if fault == "overlap":
            for ex in examples:
                ex["not_labels"] = ex["not_labels"] + [ex["labels"][0].upper().replace(" ", "_")]
        body = json.dumps({"examples": examples})
        if fault == "broken_json":
            # The second example loses a comma; the others stay decodable.
            first, second = json.dumps(examples[0]), json.dumps(examples[1])
            broken = second.replace('", "labels"', '" "labels"', 1)
            rest = ", ".join(json.dumps(e) for e in examples[2:])
            return '{"examples": [' + ", ".join(p for p in (first, broken, rest) if p) + "]}"
        if fault == "truncated":
            return body[: int(len(body) * 0.7)]
        if fault == "prose":
            return "Here are the examples you asked for:\n```json\n" + body + "\n```\nLet me know if you need more!"
        return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeLLMServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.server.statuses.append(status)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not raw:
            return  # the client went away before sending its body
        body = json.loads(raw)
        srv = self.server
        srv.requests.append({"path": self.path, "body": body, "authorization": self.headers.get("Authorization"),
                             "at": time.monotonic()})
        if self.path == "/openai/v1/chat/completions":
            self._groq(body)
        elif self.path == "/api/chat":
            self._ollama(body)
        else:
            self._send(404, {"error": f"no route {self.path}"})

    def _fault_status(self, fault: str | None, groq_style: bool) -> bool:
        """Send an error reply for a status fault; True when one was sent."""
        def err(message: str, kind: str) -> dict:
            return {"error": {"message": message, "type": kind}} if groq_style else {"error": message}

        if fault == "429":
            self._send(429, err("Rate limit reached, please retry", "rate_limit_exceeded"),
                       {"retry-after": f"{self.server.retry_after:g}"})
        elif fault == "500":
            self._send(500, err("internal server error", "internal_server_error"))
        elif fault == "404":
            self._send(404, err("model not found", "not_found"))
        elif fault == "401":
            self._send(401, err("Invalid API Key", "invalid_request_error"))
        else:
            return False
        return True

    def _wait(self, fault: str | None) -> None:
        time.sleep(self.server.slow_seconds if fault == "slow" else self.server.latency)

    def _groq(self, body: dict) -> None:
        srv = self.server
        if srv.require_key and self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self._send(401, {"error": {"message": "Invalid API Key", "type": "invalid_request_error",
                                       "code": "invalid_api_key"}})
            return
        fault = srv.next_fault()
        if self._fault_status(fault, groq_style=True):
            return
        prompt = body["messages"][-1]["content"]
        self._wait(fault)
        content = srv.content(prompt, fault)
        if fault == "json_validate_failed":
            self._send(400, {"error": {"message": "Failed to generate JSON", "type": "invalid_request_error",
                                       "code": "json_validate_failed", "failed_generation": content[:60]}})
            return
        prompt_tokens, completion_tokens = len(prompt) // 4, len(content) // 4
        self._send(200, {
            "id": f"chatcmpl-{len(srv.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "length" if fault == "truncated" else "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })

    def _ollama(self, body: dict) -> None:
        srv = self.server
        fault = srv.next_fault()
        if self._fault_status(fault, groq_style=False):
            return
        prompt = body["messages"][-1]["content"]
        self._wait(fault)
        content = srv.content(prompt, fault)
        self._send(200, {
            "model": body.get("model"), "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": content}, "done": True, "done_reason": "stop",
            "total_duration": 1000, "load_duration": 10, "prompt_eval_count": len(prompt) // 4,
            "prompt_eval_duration": 100, "eval_count": len(content) // 4, "eval_duration": 500,
        })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeLLMServer(latency=args.latency)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
