"""`gliznet-model demo`: a Gradio page to try GliZNet in a browser, beside the embedding baseline.

A visitor types a text and comma-separated labels and sees GliZNet's scores (from `predict_batch`, the one
prediction path) next to the cosine similarities of the backbone's own sentence embeddings, so the difference a
trained joint encoder makes is visible on their own input. `gradio` is the optional extra `.[demo]`.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from .pipeline import activation_for, split_labels

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a demo that may run offline

MAX_LABELS = 64
MAX_CHARS = 5_000
EXAMPLES = [
    ["The striker scored twice in the derby and the fans stormed the pitch.",
     "sports, politics, finance, music", False, 0.5],
    ["The central bank raised interest rates again to cool inflation.",
     "economy, monetary policy, sports, cooking", True, 0.5],
    ["I waited forty minutes on the phone and my package still has not arrived.",
     "complaint, shipping delay, praise, refund request", True, 0.5],
    ["The new phone's battery lasts two days, but the camera struggles in low light.",
     "product review, positive, negative, travel", True, 0.5],
]


def embedding_baseline(model_name_or_path: str | None = None) -> Any:
    """The evaluation's embedding baseline (a sentence-transformers bi-encoder, cosine per label)."""
    from .systems import embedding_system

    return embedding_system(model_name_or_path)


class DemoScorer:
    """What the page's button calls: GliZNet through `predict_batch`, the baseline through its system."""

    def __init__(self, model: Any, tokenizer: Any, baseline: Any = None) -> None:
        self.model, self.tokenizer, self.baseline = model, tokenizer, baseline
        # Gradio runs events in worker threads; one Rust tokenizer must not be driven by two threads at once.
        self._lock = threading.Lock()

    def score(self, text: str, labels_text: str, multi_label: bool) -> list[dict[str, Any]]:
        """One row per label, highest GliZNet score first: label, gliznet, embedding (None without baseline)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("type a text to classify")
        if len(text) > MAX_CHARS:
            raise ValueError(f"the text has {len(text)} characters; the demo takes at most {MAX_CHARS}")
        labels = split_labels(labels_text or "")
        if len(labels) > MAX_LABELS:
            raise ValueError(f"{len(labels)} labels; the demo takes at most {MAX_LABELS}")
        with self._lock:
            (prediction,) = self.model.predict_batch([text], [labels], self.tokenizer,
                                                     activation=activation_for(multi_label, len(labels)))
            similarity: dict[str, float] = {}
            if self.baseline is not None:
                (values,) = self.baseline.score([text], [labels])
                similarity = {label: float(v) for label, v in zip(labels, values)}
        return [{"label": s.label, "gliznet": s.score, "embedding": similarity.get(s.label)}
                for s in prediction.labels]


def build_demo(scorer: DemoScorer, title: str = "GliZNet zero-shot classification") -> Any:
    """The Gradio Blocks app; `launch_demo` serves it."""
    import gradio as gr
    import pandas as pd

    has_baseline = scorer.baseline is not None

    def run(text: str, labels_text: str, multi_label: bool, threshold: float):
        try:
            rows = scorer.score(text, labels_text, multi_label)
        except ValueError as exc:  # the visitor's input: say what to fix where the scores would be
            empty = pd.DataFrame({"label": [], "score": []})
            return [f"**Cannot classify:** {exc}", empty,
                    *([pd.DataFrame({"label": [], "cosine": []})] if has_baseline else []),
                    pd.DataFrame({"label": [], "GliZNet": []})]
        mode = "independent scores (sigmoid)" if multi_label else "scores sum to 1 (softmax)"
        chosen = [r["label"] for r in rows if r["gliznet"] >= threshold]
        top = rows[0]
        summary = (f"**Top label: {top['label']}** ({top['gliznet']:.3f}) · {mode} · at threshold "
                   f"{threshold:.2f}: {', '.join(chosen) if chosen else 'none'}")
        bars = pd.DataFrame({"label": [r["label"] for r in rows], "score": [r["gliznet"] for r in rows]})
        table = pd.DataFrame({
            "label": [r["label"] for r in rows],
            "GliZNet": [f"{r['gliznet']:.3f}" for r in rows],
            **({"embedding cosine": [f"{r['embedding']:.3f}" for r in rows]} if has_baseline else {}),
            f"≥ {threshold:.2f}": ["yes" if r["gliznet"] >= threshold else "" for r in rows],
        })
        outputs = [summary, bars, table]
        if has_baseline:
            outputs.insert(2, pd.DataFrame({"label": [r["label"] for r in rows],
                                            "cosine": [r["embedding"] for r in rows]}))
        return outputs

    with gr.Blocks(title=title) as demo:
        gr.Markdown(f"# {title}\nOne encoder pass reads the text and every label together and scores them all. "
                    + ("Beside it: the cosine similarity of the backbone's own sentence embeddings (the embedding "
                       "baseline of `gliznet-model evaluate`)." if has_baseline else ""))
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(label="Text", lines=4, placeholder="Type or paste a text", elem_id="text")
                labels = gr.Textbox(label="Candidate labels (comma-separated)", placeholder="sports, politics, finance",
                                    elem_id="labels")
            with gr.Column(scale=1):
                multi = gr.Checkbox(label="Multi-label (independent scores)", value=False, elem_id="multi-label")
                threshold = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Threshold", elem_id="threshold")
                button = gr.Button("Classify", variant="primary", elem_id="classify")
        summary = gr.Markdown(elem_id="summary")
        with gr.Row():
            gliznet_bars = gr.BarPlot(x="label", y="score", sort="-y", y_lim=[0, 1], title="GliZNet",
                                      elem_id="gliznet-chart")
            baseline_bars = gr.BarPlot(x="label", y="cosine", sort="-y", y_lim=[-1, 1],
                                       title="Embedding baseline (cosine)", elem_id="baseline-chart",
                                       visible=has_baseline)
        table = gr.Dataframe(label="Scores", interactive=False, elem_id="scores")
        inputs = [text, labels, multi, threshold]
        outputs = [summary, gliznet_bars, *([baseline_bars] if has_baseline else []), table]
        gr.Examples(EXAMPLES, inputs=inputs, outputs=outputs, fn=run, run_on_click=True, cache_examples=False)
        button.click(run, inputs, outputs)
        text.submit(run, inputs, outputs)
        labels.submit(run, inputs, outputs)
    return demo


def launch_demo(model_path: str, host: str = "127.0.0.1", port: int = 7860, device: str | None = None,
                baseline_model: str | None = None, baseline: bool = True, block: bool = True) -> Any:
    """Load the model (and baseline), build the page and serve it; `block=False` returns the running app."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ValueError('the demo needs gradio: pip install "gliznet[demo]" (or pip install -e ".[demo]")') from None
    from .pipeline import load_model

    model, tokenizer = load_model(model_path, device)
    scorer = DemoScorer(model, tokenizer, embedding_baseline(baseline_model) if baseline else None)
    demo = build_demo(scorer)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
                footer_links=[])
    return demo
