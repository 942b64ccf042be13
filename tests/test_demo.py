"""The Gradio demo: its scorer against predict_batch and the embedding baseline, and the page in a real browser
(Debian's chromium driven by Playwright)."""

from __future__ import annotations

import re
import shutil

import pytest

pytest.importorskip("gradio", reason="the demo needs the .[demo] extra: pip install -e '.[dev,demo]'")

from gliznet_model.demo import EXAMPLES, DemoScorer, build_demo, embedding_baseline  # noqa: E402
from gliznet_model.pipeline import load_model  # noqa: E402
from tests.surface_helpers import free_port, write_tiny_gliznet  # noqa: E402

# pandas deprecations raised inside gradio's own queue code: theirs to fix, noise here.
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")
LABELS = ["sports", "politics", "business"]
TEXT = "the team won the football match"


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    model_path, backbone = write_tiny_gliznet(tmp_path_factory.mktemp("demo"))
    model, tokenizer = load_model(model_path, "cpu")
    # The tiny backbone doubles as the baseline's sentence encoder (mean pooling), as MiniLM does for a real model.
    return DemoScorer(model, tokenizer, embedding_baseline(backbone))


def test_scorer_is_predict_batch_beside_the_embedding_baseline(scorer):
    for multi, activation in ((False, "softmax"), (True, "sigmoid")):
        rows = scorer.score(TEXT, "sports, politics,business", multi)
        (prediction,) = scorer.model.predict_batch([TEXT], [LABELS], scorer.tokenizer, activation=activation)
        assert [(r["label"], r["gliznet"]) for r in rows] == [(s.label, s.score) for s in prediction.labels]
        (cosine,) = scorer.baseline.score([TEXT], [LABELS])
        assert {r["label"]: r["embedding"] for r in rows} == pytest.approx(dict(zip(LABELS, cosine)))
    for text, labels, message in (("", "a", "type a text"), (TEXT, "a, a", "duplicate"), (TEXT, " ", "empty")):
        with pytest.raises(ValueError, match=message):
            scorer.score(text, labels, False)


def _browser():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no browser: the page test needs Debian's chromium (apt-get install -y chromium), which "
                    "Playwright drives since it cannot download its own browsers here")
    pytest.importorskip("playwright", reason="the page test needs playwright (the .[dev] extra)")
    return path


def test_page_in_a_real_browser(scorer, tmp_path):
    from playwright.sync_api import sync_playwright

    executable = _browser()
    demo = build_demo(scorer)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, footer_links=[])
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            page.locator("#text textarea").fill(TEXT)
            page.locator("#labels textarea, #labels input").first.fill("sports, politics, business")
            page.locator("#classify").click()
            summary = page.locator("#summary")
            summary.get_by_text("Top label").wait_for(timeout=30_000)

            rows = scorer.score(TEXT, ",".join(LABELS), False)
            assert f"Top label: {rows[0]['label']} ({rows[0]['gliznet']:.3f})" in summary.inner_text()
            table = page.locator("#scores")
            table.get_by_text(f"{rows[-1]['gliznet']:.3f}").first.wait_for(timeout=10_000)
            shown = table.inner_text()
            for row in rows:  # each label with GliZNet's score and the baseline's, in GliZNet's order
                assert re.search(rf"{row['label']}\s+{row['gliznet']:.3f}\s+{row['embedding']:.3f}", shown), shown
            assert [shown.index(f"\n{r['label']}\n") for r in rows] == sorted(shown.index(f"\n{r['label']}\n")
                                                                             for r in rows)
            assert page.locator("#gliznet-chart").is_visible() and page.locator("#baseline-chart").is_visible()
            page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)

            # Multi-label and a clicked example: the example fills the inputs and scores them.
            example_text, example_labels = EXAMPLES[1][0], EXAMPLES[1][1]
            page.get_by_text(example_text[:30]).first.click()
            summary.get_by_text("independent scores").wait_for(timeout=30_000)
            assert page.locator("#text textarea").input_value() == example_text
            expected = scorer.score(example_text, example_labels, True)
            assert f"Top label: {expected[0]['label']} ({expected[0]['gliznet']:.3f})" in summary.inner_text()

            # A bad input shows an error instead of scores.
            page.locator("#labels textarea, #labels input").first.fill("sports, sports")
            page.locator("#classify").click()
            summary.get_by_text("Cannot classify: duplicate labels").wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "demo-error.png"), full_page=True)
            browser.close()
    finally:
        demo.close()
    assert (tmp_path / "demo.png").stat().st_size > 10_000
