"""The HTTP server: in-process through httpx's ASGI transport, and once as a real uvicorn process with the real
huggingface_hub InferenceClient."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from gliznet_model.pipeline import load_model
from gliznet_model.serving import Limits, ServerSettings, create_app
from tests.surface_helpers import free_port, wait_until_up, write_tiny_gliznet

WORDS = "news game team match vote market bank film song rain city school doctor phone data music travel".split()
LABELS = ["sports", "politics", "business", "entertainment"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return write_tiny_gliznet(tmp_path_factory.mktemp("serving"))[0]


@pytest.fixture(scope="module")
def loaded(saved):
    return load_model(saved, "cpu")


def call(app, requests):
    """Run the app's lifespan and send `requests` ([(method, path, json-or-bytes)]) concurrently."""
    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gliznet") as client:
                async def one(method, path, body):
                    if isinstance(body, bytes):
                        return await client.request(method, path, content=body,
                                                    headers={"content-type": "application/json"})
                    return await client.request(method, path, json=body)

                return await asyncio.gather(*(one(*r) for r in requests))

    return asyncio.run(main())


def scores_of(loaded, texts, labels_list, activation):
    model, tokenizer = loaded
    return [{s.label: s.score for s in p.labels}
            for p in model.predict_batch(texts, labels_list, tokenizer, activation=activation)]


def as_dict(result):
    assert result["scores"] == sorted(result["scores"], reverse=True)
    return dict(zip(result["labels"], result["scores"]))


def test_classify_returns_predict_batch_scores_in_the_pipeline_shape(loaded):
    app = create_app(*loaded)
    texts = ["the team won the match", "the bank raised rates"]
    single, listed, per_text, multi = call(app, [
        ("POST", "/v1/classify", {"inputs": texts[0], "candidate_labels": LABELS}),
        ("POST", "/v1/classify", {"inputs": texts, "candidate_labels": LABELS}),
        ("POST", "/v1/classify", {"inputs": texts, "candidate_labels": [LABELS, ["money", "sports"]]}),
        ("POST", "/v1/classify", {"inputs": texts[0], "candidate_labels": "sports, politics", "multi_label": True,
                                  "threshold": 0.001}),
    ])
    assert all(r.status_code == 200 for r in (single, listed, per_text, multi))
    body = single.json()
    assert set(body) == {"sequence", "labels", "scores"} and body["sequence"] == texts[0]
    softmax = scores_of(loaded, texts, [LABELS, LABELS], "softmax")
    np.testing.assert_allclose(list(as_dict(body).values()), [softmax[0][k] for k in as_dict(body)], rtol=1e-5)
    assert [r["sequence"] for r in listed.json()] == texts
    for result, want in zip(listed.json(), softmax):
        assert as_dict(result) == pytest.approx(want, rel=1e-5)
    own = scores_of(loaded, texts, [LABELS, ["money", "sports"]], "softmax")
    assert [as_dict(r) for r in per_text.json()] == [pytest.approx(w, rel=1e-5) for w in own]
    body = multi.json()
    sigmoid = scores_of(loaded, texts[:1], [["sports", "politics"]], "sigmoid")[0]
    assert as_dict(body) == pytest.approx(sigmoid, rel=1e-5)
    assert body["predicted"] == [label for label, score in zip(body["labels"], body["scores"]) if score >= 0.001]


def test_inference_api_format_at_root(loaded):
    app = create_app(*loaded)
    ok, bad, extra = call(app, [
        ("POST", "/", {"inputs": "the team won", "parameters": {"candidate_labels": LABELS, "multi_label": True}}),
        ("POST", "/", {"inputs": "the team won", "parameters": {"candidate_labels": ["a", "a"]}}),
        ("POST", "/", {"inputs": "the team won", "parameters": {"candidate_labels": "sports,politics",
                                                                "hypothesis_template": "About {}.", "x": 1}}),
    ])
    assert ok.status_code == 200 and extra.status_code == 200
    items = ok.json()
    assert [set(i) for i in items] == [{"label", "score"}] * len(LABELS)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    want = scores_of(loaded, ["the team won"], [LABELS], "sigmoid")[0]
    assert {i["label"]: i["score"] for i in items} == pytest.approx(want, rel=1e-5)
    assert bad.status_code == 422 and "duplicate labels" in bad.json()["error"]


BAD_REQUESTS = [
    ({"inputs": "x", "candidate_labels": []}, "candidate_labels is empty"),
    ({"inputs": "x", "candidate_labels": ""}, "candidate_labels is empty"),
    ({"inputs": "x", "candidate_labels": ["a", " "]}, "empty label"),
    ({"inputs": "x", "candidate_labels": ["a", "b", "a"]}, "duplicate labels"),
    ({"inputs": "x", "candidate_labels": [["a"], ["b", "b"]], }, "duplicate labels"),
    ({"inputs": "", "candidate_labels": ["a"]}, "text 0 is empty"),
    ({"inputs": [], "candidate_labels": ["a"]}, "empty list"),
    ({"inputs": ["ok", "  "], "candidate_labels": ["a"]}, "text 1 is empty"),
    ({"inputs": ["x"] * 9, "candidate_labels": ["a"]}, "9 texts; at most 8"),
    ({"inputs": "x", "candidate_labels": [f"l{i}" for i in range(11)]}, "11 labels; at most 10"),
    ({"inputs": "y" * 101, "candidate_labels": ["a"]}, "101 characters; at most 100"),
    ({"inputs": "x", "candidate_labels": ["z" * 31]}, "31 characters; at most 30"),
    ({"inputs": "x", "candidate_labels": ["a [LAB] b"]}, "reserved token"),
    ({"inputs": "a [LAB] b", "candidate_labels": ["a"]}, "reserved token"),
    ({"inputs": ["x", "y"], "candidate_labels": [["a"]]}, "1 label lists for 2 texts"),
    ({"inputs": "x", "candidate_labels": [["a"], ["b"]]}, "2 label lists for 1 texts"),
    ({"inputs": 5, "candidate_labels": ["a"]}, "valid string"),
    ({"inputs": "x", "candidate_labels": [1, 2]}, "valid string"),
    ({"inputs": "x", "candidate_labels": ["a"], "threshold": 2}, "less than or equal to 1"),
    ({"inputs": "x", "candidate_labels": ["a"], "multi_label": "maybe"}, "valid boolean"),
    ({"inputs": "x", "candidate_labels": ["a"], "top_k": 3}, "Extra inputs"),
    ({"candidate_labels": ["a"]}, "Field required"),
    (b"{not json", "JSON decode error"),
    (b"", "Field required"),
    ([1, 2], "valid dictionary"),
]


def test_every_bad_request_answers_422_with_a_message(loaded):
    limits = Limits(max_texts=8, max_labels=10, max_chars=100, max_label_chars=30)
    app = create_app(*loaded, ServerSettings(limits=limits))
    responses = call(app, [("POST", "/v1/classify", body) for body, _ in BAD_REQUESTS]
                     + [("POST", "/", {"inputs": "x", "parameters": {"candidate_labels": ["q"] * 2}}),
                        ("POST", "/", {"inputs": "", "parameters": {"candidate_labels": ["a"]}}),
                        ("POST", "/", {"inputs": "x" * 101, "parameters": {"candidate_labels": ["a"]}}),
                        ("POST", "/", {"inputs": "x"})])
    for (body, needle), response in zip(BAD_REQUESTS, responses):
        assert response.status_code == 422, (body, response.text)
        assert needle in response.text, (body, response.text)
    root = responses[len(BAD_REQUESTS):]
    assert [r.status_code for r in root] == [422] * 4
    for response, needle in zip(root, ["duplicate labels", "inputs is empty", "at most 100", "Field required"]):
        assert needle in response.json()["error"], response.text
    # and the server still answers afterwards
    (after,) = call(app, [("POST", "/v1/classify", {"inputs": "x", "candidate_labels": ["a", "b"]})])
    assert after.status_code == 200


def test_body_over_the_limit_is_refused_unread(loaded):
    limits = Limits(max_texts=1, max_labels=1, max_chars=10, max_label_chars=10)
    app = create_app(*loaded, ServerSettings(limits=limits))
    (response,) = call(app, [("POST", "/v1/classify", {"inputs": "x" * 200_000, "candidate_labels": ["a"]})])
    assert response.status_code == 413


def test_a_bad_request_batched_with_good_ones_fails_alone(loaded):
    """A label too long to fit the model's sequence passes the limits but not the tokenizer: only its own request
    gets the 422, the requests batched with it get their scores."""
    app = create_app(*loaded, ServerSettings(max_batch_size=8, max_wait_ms=200,
                                             limits=Limits(max_label_chars=2_000)))
    too_long = " ".join(["football"] * 80)
    responses = call(app, [("POST", "/v1/classify", {"inputs": f"the team {w}", "candidate_labels": LABELS})
                           for w in WORDS[:3]]
                     + [("POST", "/v1/classify", {"inputs": "the team", "candidate_labels": [too_long, "sports"]})])
    assert [r.status_code for r in responses] == [200, 200, 200, 422]
    assert "cannot fit" in responses[-1].text


def test_concurrent_clients_get_their_own_answers_in_shared_batches(loaded):
    rng = random.Random(7)
    requests, groups = [], {"sigmoid": [], "softmax": []}
    for i in range(40):
        texts = [" ".join(rng.sample(WORDS, rng.randint(2, 8))) + f" {i}" for _ in range(rng.randint(1, 3))]
        labels = rng.sample(WORDS, rng.randint(1, 6))
        multi = rng.random() < 0.5
        requests.append(("POST", "/v1/classify", {"inputs": texts, "candidate_labels": labels, "multi_label": multi}))
        groups["sigmoid" if multi or len(labels) == 1 else "softmax"].extend((i, t, labels) for t in texts)
    expected_by_request: dict[int, list] = {}
    for activation, rows in groups.items():  # one predict_batch per head for all the requests' texts
        scores = scores_of(loaded, [t for _, t, _ in rows], [labels for _, _, labels in rows], activation)
        for (i, _, _), score in zip(rows, scores):
            expected_by_request.setdefault(i, []).append(score)
    wanted = [(requests[i][2]["inputs"], expected_by_request[i]) for i in range(40)]
    app = create_app(*loaded, ServerSettings(max_batch_size=16, max_wait_ms=20))
    responses = call(app, requests)
    (health,) = call(app, [("GET", "/health", None)])
    health = health.json()
    for response, (texts, scores) in zip(responses, wanted):
        assert response.status_code == 200
        assert [r["sequence"] for r in response.json()] == texts
        for result, want in zip(response.json(), scores):
            assert as_dict(result) == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert health["requests"] == 40
    assert 1 < health["largest_batch"] <= 16 and health["batches"] < 40  # requests really shared model calls


def test_a_lone_client_never_waits_for_company(loaded):
    """One client sending request after request: each runs at once, never held for max_wait (3 s here)."""
    app = create_app(*loaded, ServerSettings(max_batch_size=16, max_wait_ms=3_000))

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gliznet") as client:
                start = time.perf_counter()
                for word in WORDS[:4]:
                    response = await client.post("/v1/classify", json={"inputs": word, "candidate_labels": LABELS})
                    assert response.status_code == 200
                return time.perf_counter() - start, (await client.get("/health")).json()

    seconds, health = asyncio.run(main())
    assert seconds < 2.5 and health["batches"] == 4


def test_batching_off_runs_one_text_per_call(loaded):
    app = create_app(*loaded, ServerSettings(max_batch_size=1, max_wait_ms=50))
    responses = call(app, [("POST", "/v1/classify", {"inputs": f"text {w}", "candidate_labels": LABELS})
                           for w in WORDS[:6]])
    assert all(r.status_code == 200 for r in responses)
    health = call(app, [("GET", "/health", None)])[0].json()
    assert health["largest_batch"] == 1 and health["batches"] == 6


def test_health_model_and_docs(loaded, saved):
    app = create_app(*loaded, ServerSettings(max_batch_size=7), name=saved)
    health, info, docs, schema = call(app, [("GET", "/health", None), ("GET", "/v1/model", None),
                                            ("GET", "/docs", None), ("GET", "/openapi.json", None)])
    assert health.json()["status"] == "ok"
    body = info.json()
    assert body["name"] == saved and body["backbone"].endswith("backbone") and body["backbone_type"] == "bert"
    assert body["batching"]["max_batch_size"] == 7 and body["limits"]["max_texts"] == 64
    assert body["config"]["model_type"] == "gliznet"
    assert docs.status_code == 200
    assert {"ClassifyRequest", "ClassifyResult", "HFRequest"} <= set(schema.json()["components"]["schemas"])


# ----------------------------------------------------------------------------------- a real uvicorn process
def test_uvicorn_process_with_the_inference_client_and_sigterm(saved, loaded):
    from huggingface_hub import InferenceClient
    from huggingface_hub.errors import HfHubHTTPError

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A long max-wait keeps a lone request queued for a while, so SIGTERM can land while it is in flight.
    process = subprocess.Popen(
        [sys.executable, "-m", "gliznet_model.cli", "serve", saved, "--port", str(port), "--device", "cpu",
         "--max-batch-size", "4", "--max-wait-ms", "3000", "--log-level", "info"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        wait_until_up(f"{url}/health", process)
        client = InferenceClient(model=url, timeout=30)
        text = "the team won the football match"
        with ThreadPoolExecutor(3) as pool:  # the calls share batches instead of each waiting alone
            calls = [pool.submit(client.zero_shot_classification, text, candidate_labels=LABELS),
                     pool.submit(client.zero_shot_classification, text, candidate_labels=LABELS, multi_label=True,
                                 hypothesis_template="This text is about {}."),
                     pool.submit(client.zero_shot_classification, text, candidate_labels=["sports", "sports"])]
            single, multi = calls[0].result(), calls[1].result()
            with pytest.raises(HfHubHTTPError) as error:
                calls[2].result()
        for result, activation in ((single, "softmax"), (multi, "sigmoid")):
            got = {item.label: item.score for item in result}
            assert got == pytest.approx(scores_of(loaded, [text], [LABELS], activation)[0], rel=1e-5)
            assert [item.score for item in result] == sorted((item.score for item in result), reverse=True)
        assert error.value.response.status_code == 422 and "duplicate labels" in str(error.value)

        # SIGTERM while a request is queued: it is answered, then the server exits cleanly.
        answer = {}
        request = threading.Thread(target=lambda: answer.update(response=httpx.post(
            f"{url}/v1/classify", json={"inputs": text, "candidate_labels": LABELS}, timeout=30)))
        request.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        request.join(30)
        assert answer["response"].status_code == 200
        assert answer["response"].json()["sequence"] == text
        assert process.wait(30) == 0
        log = process.stdout.read()
        assert "Application shutdown complete" in log and "Traceback" not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("args, needle", [
    (["--max-batch-size", "0"], "invalid setting max_batch_size"),
    (["--max-wait-ms", "-1"], "invalid setting max_wait_ms"),
    (["--max-texts", "0"], "invalid setting max_texts"),
    (["--port", "70000"], "cannot listen on 127.0.0.1:70000"),
    (["--device", "tpu-ish"], "unknown device"),
    (["--threads", "0"], "--threads must be >= 1"),
])
def test_serve_refuses_bad_settings_in_one_line(saved, args, needle):
    from typer.testing import CliRunner

    from gliznet_model.cli import app

    result = CliRunner().invoke(app, ["serve", saved, *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_serve_refuses_a_port_in_use_and_a_missing_model(saved, tmp_path):
    import socket

    from typer.testing import CliRunner

    from gliznet_model.cli import app

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = CliRunner().invoke(app, ["serve", saved, "--port", str(busy.getsockname()[1])])
    assert result.exit_code == 2 and "in use" in result.output, result.output
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "missing"), "--port", str(free_port())])
    assert result.exit_code == 2 and "does not exist" in result.output, result.output
