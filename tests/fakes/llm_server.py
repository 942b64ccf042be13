"""A local stand-in for Groq and Ollama that speaks their wire protocols.

Routes: ``POST /openai/v1/chat/completions`` (Groq's OpenAI-compatible API, what ``groq.AsyncGroq``
calls when ``GROQ_BASE_URL`` points here), Groq's Batch API (``/openai/v1/files``, ``/openai/v1/files/{id}/content``,
``/openai/v1/batches``, ``/openai/v1/batches/{id}``) and ``POST /api/chat`` (what ``ollama.AsyncClient``
calls when ``OLLAMA_HOST`` points here). Replies are built from what the prompt asks for (number
of examples, word range, label counts), so well-behaved replies pass validation.

Faults are injected per request from a queue (``server.faults.extend([...])``) or for every
request (``server.always``): ``429``, ``500``, ``401``, ``404``, ``slow``, ``broken_json``,
``truncated``, ``prose``, ``duplicates``, ``overlap``, ``json_validate_failed``, and for bundle requests
``one_role`` (one pool label is a positive of the first text and used nowhere else, so it breaks the
cross-role rule).

A bundle request ("one shared pool of P labels") is answered with a valid bundle: every text is
labelled against the whole pool, positives taken round-robin so each label is a positive of one
text and a hard negative of another. Target word counts ("Target lengths ...") are followed.

An annotation request (texts in ``<text index="j">`` tags, from ``gliznet-data annotate``) is labelled
against the texts it carries: the positives name words the text contains ("about river"), the hard
negatives words it does not, so a test can tell that every label set reached its own text. Faults
``broken_json``, ``truncated``, ``prose``, ``overlap`` apply to these too, and ``wrong_index`` numbers the
last item past the texts.

Run standalone (used by the benchmark): ``python tests/fakes/llm_server.py --latency 0.2``
prints ``PORT <n>`` and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import itertools
import json
import random
import re
import threading
import time
from collections import deque
from email.parser import BytesParser
from http import HTTPStatus

API_KEY = "gsk_test_fake_key_never_real"

_VOCAB = (
    "market quarterly growth patient clinic lesson student match season league policy vote budget "
    "climate energy battery update release router signal network delivery order refund invoice "
    "account password screen camera lens flavour recipe travel flight hotel museum concert album "
    "studio episode trailer ticket coach player injury research sample study galaxy orbit rocket "
    "harvest soil garden puppy kitten family weekend morning evening neighbour council river bridge"
).split()


_ANNOTATE_TEXT = re.compile(r'<text index="(\d+)">\n(.*?)\n</text>', re.S)


def _asked(prompt: str, pattern: str, default: int) -> int:
    match = re.search(pattern, prompt)
    return int(match.group(1)) if match else default


class FakeLLMServer:
    """An asyncio HTTP/1.1 server in a background thread: one event loop serves every connection,
    so a hundred concurrent clients cost no thread contention (a threaded server collapses there)."""

    def __init__(self, latency: float = 0.0, require_key: bool = True, retry_after: float = 0.05,
                 slow_seconds: float = 5.0):
        self.latency = latency
        self.require_key = require_key
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.faults: deque[str] = deque()
        self.always: str | None = None
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self.port = 0
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.batch_failures: set[int] = set()
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _listen(self, port: int = 0) -> asyncio.base_events.Server:
        server = await asyncio.start_server(self._connection, "127.0.0.1", port, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def start(self) -> FakeLLMServer:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(self._listen())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Keep-alive loop: request line, headers, a Content-Length body; answer; repeat."""
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    key, value = header.decode("latin-1").split(":", 1)
                    headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                status, payload, extra = await self._route(method, path, headers, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                kind = "application/octet-stream" if isinstance(payload, bytes) else "application/json"
                head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Content-Type: {kind}",
                        f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in extra.items())]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
                await writer.drain()
                self.statuses.append(status)
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a client that timed out or was cancelled mid-request, or the server stopping
        finally:
            writer.close()

    async def _route(self, method: str, path: str, headers: dict, raw: bytes) -> tuple[int, dict | bytes, dict]:
        multipart = headers.get("content-type", "").startswith("multipart/")
        body = {} if multipart else json.loads(raw or b"{}")
        self.requests.append({"method": method, "path": path, "body": body,
                              "authorization": headers.get("authorization"), "at": time.monotonic()})
        if method == "POST" and path == "/openai/v1/chat/completions":
            return await self._groq(headers, body)
        if method == "POST" and path == "/api/chat":
            return await self._ollama(body)
        if path.startswith("/openai/v1/files") or path.startswith("/openai/v1/batches"):
            if self.require_key and headers.get("authorization") != f"Bearer {API_KEY}":
                return 401, {"error": {"message": "Invalid API Key", "type": "invalid_request_error"}}, {}
            return self._batch_api(method, path, headers, raw, body)
        return 404, {"error": f"no route {method} {path}"}, {}

    # The Batch API: files in memory; a batch runs in the background, one chat reply per line.

    def _batch_api(self, method: str, path: str, headers: dict, raw: bytes, body: dict) -> tuple[int, dict | bytes, dict]:
        parts = path.split("/")[3:]  # after /openai/v1
        if method == "POST" and parts == ["files"]:
            message = BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {headers['content-type']}\r\n\r\n".encode() + raw)
            upload = next(p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file")
            file_id = self._store_file(upload.get_payload(decode=True), upload.get_filename() or "upload.jsonl")
            return 200, self.files[file_id]["meta"], {}
        if method == "GET" and len(parts) == 3 and parts[0] == "files" and parts[2] == "content":
            if parts[1] not in self.files:
                return 404, {"error": {"message": "file not found", "type": "not_found"}}, {}
            return 200, self.files[parts[1]]["data"], {}
        if method == "POST" and parts == ["batches"]:
            if body.get("input_file_id") not in self.files:
                return 404, {"error": {"message": "input file not found", "type": "not_found"}}, {}
            batch_id = f"batch_{len(self.batches) + 1:04d}"
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "input_file_id": body["input_file_id"],
                "completion_window": body["completion_window"], "status": "validating", "created_at": int(time.time()),
                "output_file_id": None, "error_file_id": None,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
            }
            asyncio.get_running_loop().create_task(self._run_batch(batch_id))
            return 200, self.batches[batch_id], {}
        if method == "GET" and len(parts) == 2 and parts[0] == "batches":
            if parts[1] not in self.batches:
                return 404, {"error": {"message": "batch not found", "type": "not_found"}}, {}
            return 200, self.batches[parts[1]], {}
        return 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}}, {}

    def _store_file(self, data: bytes, name: str) -> str:
        file_id = f"file_{len(self.files) + 1:04d}"
        self.files[file_id] = {"data": data, "meta": {
            "id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
            "filename": name, "purpose": "batch"}}
        return file_id

    async def _run_batch(self, batch_id: str) -> None:
        """Answer every line; ``batch_failures`` line numbers (0-based) get an error instead."""
        batch = self.batches[batch_id]
        lines = [json.loads(x) for x in self.files[batch["input_file_id"]]["data"].decode().splitlines() if x.strip()]
        batch["request_counts"]["total"] = len(lines)
        await asyncio.sleep(self.latency)
        batch["status"] = "in_progress"
        outputs, errors = [], []
        for number, line in enumerate(lines):
            if number in self.batch_failures:
                errors.append({"id": f"batch_req_{number}", "custom_id": line["custom_id"], "response": None,
                               "error": {"code": "server_error", "message": "the model failed"}})
                batch["request_counts"]["failed"] += 1
                continue
            content = self.content(line["body"]["messages"][-1]["content"], None)
            outputs.append({"id": f"batch_req_{number}", "custom_id": line["custom_id"], "error": None, "response": {
                "status_code": 200, "request_id": f"req_{number}", "body": {
                    "id": f"chatcmpl-b{number}", "object": "chat.completion", "created": int(time.time()),
                    "model": line["body"]["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": len(content) // 4,
                              "total_tokens": 100 + len(content) // 4}}}})
            batch["request_counts"]["completed"] += 1
        await asyncio.sleep(self.latency)
        batch["status"] = "finalizing"
        if outputs:
            batch["output_file_id"] = self._store_file("".join(json.dumps(o) + "\n" for o in outputs).encode(),
                                                       "results.jsonl")
        if errors:
            batch["error_file_id"] = self._store_file("".join(json.dumps(e) + "\n" for e in errors).encode(),
                                                      "errors.jsonl")
        batch["status"] = "completed" if outputs else "failed"
        batch["completed_at"] = int(time.time())

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
        pool_size = _asked(prompt, r"one shared pool of (\d+) labels", 0)
        targets = re.search(r"Target lengths, one per example in order: ([\d, ]+) words", prompt)
        targets = [int(t) for t in targets.group(1).split(",")] if targets else []
        with self._lock:
            serials = [next(self._counter) for _ in range(k)]
        pool = [f"{word} pool {serials[0]} {j}"
                for j, word in enumerate(random.Random(serials[0]).sample(_VOCAB, pool_size))]
        out = []
        for i, serial in enumerate(serials):
            rng = random.Random(serial)
            words = targets[i] if i < len(targets) else rng.randint(max(low, 3), max(low, 3, min(high, low + 25)))
            text = " ".join([f"item{serial}"] + [rng.choice(_VOCAB) for _ in range(max(words, 3) - 1)])
            if pool:
                pos = [pool[(i * n_pos + j) % len(pool)] for j in range(n_pos)]
                neg = [label for label in pool if label not in pos]
            else:
                pos = [f"{rng.choice(_VOCAB)} topic {j}" for j in range(n_pos)]
                neg = [f"{rng.choice(_VOCAB)} theme {j}" for j in range(n_neg)]
            out.append({"text": text, "labels": pos, "not_labels": neg})
        return out

    @staticmethod
    def annotations(prompt: str) -> list[dict]:
        """Label sets grounded in the texts of an annotation request, in the order asked."""
        out = []
        for index, text in _ANNOTATE_TEXT.findall(prompt):
            words = list(dict.fromkeys(w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2))
            absent = [w for w in _VOCAB if w not in words]
            out.append({"index": int(index), "labels": [f"about {w}" for w in (words[:2] or ["nothing"])],
                        "not_labels": [f"about {w}" for w in absent[:3]]})
        return out

    def annotation_content(self, prompt: str, fault: str | None) -> str:
        items = self.annotations(prompt)
        if fault == "overlap":
            for item in items:
                item["not_labels"] = item["not_labels"] + [item["labels"][0].upper().replace(" ", "_")]
        if fault == "wrong_index":
            items[-1]["index"] = len(items) + 7
        body = json.dumps({"examples": items})
        if fault == "broken_json" and len(items) > 1:
            broken = json.dumps(items[1]).replace('"labels":', '"labels"', 1)
            return '{"examples": [' + ", ".join([json.dumps(items[0]), broken, *map(json.dumps, items[2:])]) + "]}"
        if fault == "truncated":
            return body[: int(len(body) * 0.7)]
        if fault == "prose":
            return "Here are the labels:\n```json\n" + body + "\n```"
        return body

    def content(self, prompt: str, fault: str | None) -> str:
        if '<text index="' in prompt:
            return self.annotation_content(prompt, fault)
        examples = self.examples(prompt)
        if fault == "one_role":
            examples[0]["labels"] = examples[0]["labels"] + ["lonely label"]
        if fault == "duplicates":
            examples = [examples[0]] * len(examples)
        if fault == "overlap":
            for ex in examples:
                ex["not_labels"] = ex["not_labels"] + [ex["labels"][0].upper().replace(" ", "_")]
        pool = sorted({label for ex in examples for label in ex["labels"] + ex["not_labels"]})
        body = json.dumps({"label_pool": pool, "examples": examples} if "label_pool" in prompt else
                          {"examples": examples})
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

    def _fault_reply(self, fault: str | None, groq_style: bool) -> tuple[int, dict, dict] | None:
        def err(message: str, kind: str) -> dict:
            return {"error": {"message": message, "type": kind}} if groq_style else {"error": message}

        if fault == "429":
            return 429, err("Rate limit reached, please retry", "rate_limit_exceeded"), {
                "retry-after": f"{self.retry_after:g}"}
        if fault == "500":
            return 500, err("internal server error", "internal_server_error"), {}
        if fault == "404":
            return 404, err("model not found", "not_found"), {}
        if fault == "401":
            return 401, err("Invalid API Key", "invalid_request_error"), {}
        return None

    async def _wait(self, fault: str | None, started: float) -> None:
        """Answer ``latency`` after the request arrived: the reply is built first, so the server's own
        work does not stretch the latency a client sees."""
        delay = self.slow_seconds if fault == "slow" else self.latency
        await asyncio.sleep(max(0.0, started + delay - time.monotonic()))

    async def _groq(self, headers: dict, body: dict) -> tuple[int, dict, dict]:
        if self.require_key and headers.get("authorization") != f"Bearer {API_KEY}":
            return 401, {"error": {"message": "Invalid API Key", "type": "invalid_request_error",
                                   "code": "invalid_api_key"}}, {}
        fault = self.next_fault()
        if reply := self._fault_reply(fault, groq_style=True):
            return reply
        started = time.monotonic()
        prompt = body["messages"][-1]["content"]
        content = self.content(prompt, fault)
        await self._wait(fault, started)
        if fault == "json_validate_failed":
            return 400, {"error": {"message": "Failed to generate JSON", "type": "invalid_request_error",
                                   "code": "json_validate_failed", "failed_generation": content[:60]}}, {}
        prompt_tokens, completion_tokens = len(prompt) // 4, len(content) // 4
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "length" if fault == "truncated" else "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }, {}

    async def _ollama(self, body: dict) -> tuple[int, dict, dict]:
        fault = self.next_fault()
        if reply := self._fault_reply(fault, groq_style=False):
            return reply
        started = time.monotonic()
        prompt = body["messages"][-1]["content"]
        content = self.content(prompt, fault)
        await self._wait(fault, started)
        return 200, {
            "model": body.get("model"), "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": content}, "done": True, "done_reason": "stop",
            "total_duration": 1000, "load_duration": 10, "prompt_eval_count": len(prompt) // 4,
            "prompt_eval_duration": 100, "eval_count": len(content) // 4, "eval_duration": 500,
        }, {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeLLMServer(latency=args.latency)

    async def serve() -> None:
        listener = await server._listen()
        print(f"PORT {server.port}", flush=True)
        await listener.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
