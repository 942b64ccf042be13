"""GliZNETTokenizer: builds the joint sequence `[CLS] text [SEP] [LAB] l1 [SEP] [LAB] l2 [SEP] ...` (or the original
`[CLS] text [LAB] l1 [LAB] l2 ... [SEP]` without segment separators) and its label mask.

Truncation never cuts a label. The text gives way first, down to `min_text_tokens` (default 128) or its own length
if shorter; when the labels still do not fit in `max_length`, they are split into chunks that each carry the same
(equally truncated) text, and the caller maps chunk scores back with `GliZNetEncoding.label_positions`.

Everything is batched: all texts go through the fast tokenizer in one call, all distinct labels in another, and the
rows are assembled with numpy gathers over those token pools; Python loops run over samples, never over tokens.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AddedToken, AutoTokenizer, BatchEncoding, PreTrainedTokenizerBase
from transformers.utils import PushToHubMixin

CONFIG_NAME = "gliznet_tokenizer_config.json"
DEFAULT_MAX_LENGTH = 512
DEFAULT_MIN_TEXT_TOKENS = 128
LABEL_CACHE_SIZE = 100_000


def _ragged_arange(lengths: np.ndarray) -> np.ndarray:
    """Position of every element inside its own run: lengths [2, 3] -> [0, 1, 0, 1, 2]."""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def _gather_runs(pool: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate pool[s:s+l] for every (s, l) pair without a Python loop."""
    return pool[np.repeat(starts, lengths) + _ragged_arange(lengths)]


def _pad_runs(flat: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, pad: int) -> np.ndarray:
    """Ragged runs flat[o:o+l] -> a right-padded [n, max(l)] matrix."""
    n = len(lengths)
    width = int(lengths.max()) if n else 0
    out = np.full((n, width), pad, dtype=flat.dtype)
    rows = np.repeat(np.arange(n), lengths)
    cols = _ragged_arange(lengths)
    out[rows, cols] = flat[np.repeat(offsets, lengths) + cols]
    return out


def _greedy_chunks(cumulative: np.ndarray, cap: int) -> list[int]:
    """End indices of contiguous chunks whose summed sizes stay <= cap (sizes given as a cumulative sum)."""
    ends, start_total, start = [], 0, 0
    while start < len(cumulative):
        end = int(np.searchsorted(cumulative, start_total + cap, side="right"))
        ends.append(end)
        start_total, start = int(cumulative[end - 1]), end
    return ends


@dataclass
class GliZNetEncoding:
    """Ragged encoded rows; one row per (sample, label chunk).

    `ids`/`label_mask` hold all rows back to back (row r is `[offsets[r], offsets[r] + lengths[r])`); label j of row r
    (1-based in the label mask) is label `label_positions[label_offsets[r] + j - 1]` of the flattened caller labels,
    whose sample s starts at `sample_label_offsets[s]`.
    """

    ids: np.ndarray
    label_mask: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    sample_index: np.ndarray
    label_positions: np.ndarray
    label_offsets: np.ndarray
    num_labels: np.ndarray
    sample_label_offsets: np.ndarray
    total_labels: int
    pad_token_id: int

    @property
    def num_rows(self) -> int:
        return len(self.lengths)

    def collate(self, rows: Sequence[int] | np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Model inputs for the given rows, right-padded to the longest of them."""
        rows = np.arange(self.num_rows) if rows is None else np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        ids = _pad_runs(self.ids, self.offsets[rows], lengths, self.pad_token_id)
        label_mask = _pad_runs(self.label_mask, self.offsets[rows], lengths, 0)
        attention = np.arange(ids.shape[1])[None, :] < lengths[:, None]
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(attention.astype(np.int64)),
            "label_mask": torch.from_numpy(label_mask),
        }

    def row_label_positions(self, rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[n, max_labels] flattened caller-label position of each logit slot, and which slots are real."""
        rows = np.asarray(rows, dtype=np.int64)
        counts = self.num_labels[rows]
        positions = _pad_runs(self.label_positions, self.label_offsets[rows], counts, -1)
        return positions, positions >= 0


class GliZNETTokenizer(PushToHubMixin):
    """Wraps a backbone's fast tokenizer; adds `[LAB]` as a special token and builds GliZNet inputs.

    Args:
        tokenizer: a fast (Rust-backed) Hugging Face tokenizer with CLS/SEP (or BOS/EOS) and pad tokens.
        lab_token: the label marker; added as a special token when the vocabulary lacks it.
        max_length: longest joint sequence; defaults to min(512, tokenizer.model_max_length).
        min_text_tokens: shortest the text is cut to before labels are chunked (shorter texts are kept whole).
        segment_separators: close the text and every label with its own SEP,
            `[CLS] text [SEP] [LAB] l1 [SEP] [LAB] l2 [SEP]`, so that in the restarting attention layouts each segment
            reads exactly like a sentence the backbone embedded alone (`[CLS] ... [SEP]`); one token more per label.
            Off: the original `[CLS] text [LAB] l1 [LAB] l2 ... [SEP]`.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        lab_token: str = "[LAB]",
        max_length: int | None = None,
        min_text_tokens: int = DEFAULT_MIN_TEXT_TOKENS,
        segment_separators: bool = True,
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"GliZNet needs a fast tokenizer, got {type(tokenizer).__name__}")
        self.tokenizer = tokenizer
        self.lab_token = lab_token
        if lab_token not in tokenizer.get_vocab():
            # add_tokens(special_tokens=True) is the spelling both transformers 4 and 5 accept.
            tokenizer.add_tokens([AddedToken(lab_token, special=True, normalized=False)], special_tokens=True)
        self.lab_token_id = int(tokenizer.convert_tokens_to_ids(lab_token))
        cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else sep_id
        if cls_id is None or sep_id is None:
            raise ValueError("the backbone tokenizer needs a CLS/BOS and a SEP/EOS token")
        self.cls_token_id, self.sep_token_id, self.pad_token_id = int(cls_id), int(sep_id), int(pad_id)
        if max_length is None:
            model_max = tokenizer.model_max_length
            max_length = min(DEFAULT_MAX_LENGTH, model_max) if model_max else DEFAULT_MAX_LENGTH
        if min_text_tokens < 1 or max_length < min_text_tokens + 4:
            raise ValueError(
                f"need 1 <= min_text_tokens and max_length >= min_text_tokens + 4, got {min_text_tokens}, {max_length}"
            )
        # Label sets repeat across calls (every batch of a benchmark, every epoch), so their token ids are kept.
        self._label_cache: dict[str, list[int]] = {}
        self.max_length = int(max_length)
        self.min_text_tokens = int(min_text_tokens)
        self.segment_separators = bool(segment_separators)

    @property
    def max_length(self) -> int:
        return self._max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        self._max_length = int(value)
        self._label_cache.clear()  # cached ids were truncated at the old length

    # ----------------------------------------------------------------------------------------------- persistence
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> GliZNETTokenizer:
        """Load from a saved GliZNet folder or any backbone (Hub id or folder); kwargs override saved settings."""
        settings: dict[str, Any] = {}
        config_file = Path(name_or_path) / CONFIG_NAME
        hub_kwargs = {k: kwargs.pop(k) for k in ("revision", "token", "cache_dir", "local_files_only") if k in kwargs}
        if config_file.is_file():
            settings = json.loads(config_file.read_text())
            settings.setdefault("segment_separators", False)  # saved before separators existed
        elif not Path(name_or_path).exists():
            from huggingface_hub import hf_hub_download
            from huggingface_hub.utils import HfHubHTTPError

            try:
                settings = json.loads(Path(hf_hub_download(str(name_or_path), CONFIG_NAME, **hub_kwargs)).read_text())
                settings.setdefault("segment_separators", False)
            except (HfHubHTTPError, OSError, ValueError):  # a plain backbone on the Hub has no GliZNet settings
                settings = {}
        settings.update(kwargs)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **hub_kwargs)
        return cls(tokenizer, **settings)

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> tuple:
        """Write the backbone tokenizer (with [LAB]) and the GliZNet settings; `push_to_hub` as transformers does."""
        if push_to_hub:
            repo_id = kwargs.pop("repo_id", None) or Path(save_directory).name
            return self.push_to_hub(repo_id, **kwargs)
        os.makedirs(save_directory, exist_ok=True)
        files = self.tokenizer.save_pretrained(save_directory)
        settings = {"lab_token": self.lab_token, "max_length": self.max_length, "min_text_tokens": self.min_text_tokens,
                    "segment_separators": self.segment_separators}
        config_file = Path(save_directory) / CONFIG_NAME
        config_file.write_text(json.dumps(settings, indent=2) + "\n")
        return (*files, str(config_file))

    def __len__(self) -> int:
        return len(self.tokenizer)

    def __repr__(self) -> str:
        return (
            f"GliZNETTokenizer({type(self.tokenizer).__name__}, lab_token={self.lab_token!r}, "
            f"lab_token_id={self.lab_token_id}, max_length={self.max_length}, min_text_tokens={self.min_text_tokens}, "
            f"segment_separators={self.segment_separators})"
        )

    # -------------------------------------------------------------------------------------------------- encoding
    def _validate(self, texts: Sequence[str], labels_list: Sequence[Sequence[str]]) -> None:
        if len(texts) != len(labels_list):
            raise ValueError(f"got {len(texts)} texts but {len(labels_list)} label lists")
        for i, (text, labels) in enumerate(zip(texts, labels_list)):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text {i} is empty or not a string")
            if isinstance(labels, str) or not isinstance(labels, Sequence):
                raise ValueError(f"labels for text {i} must be a list of strings, got {type(labels).__name__}")
            if len(labels) == 0:
                raise ValueError(f"text {i} has an empty label list")
            for label in labels:
                if not isinstance(label, str) or not label.strip():
                    raise ValueError(f"text {i} has an empty or non-string label: {label!r}")
                if self.lab_token in label:
                    raise ValueError(f"label {label!r} contains the reserved token {self.lab_token}")
            if len(set(labels)) != len(labels):
                dupes = sorted(label for label, n in Counter(labels).items() if n > 1)
                raise ValueError(f"text {i} has duplicate labels: {dupes}")

    def _token_ids(self, strings: list[str]) -> list[list[int]]:
        # Nothing longer than max_length can be used, so the tokenizer need not produce it.
        return self.tokenizer(
            strings, add_special_tokens=False, truncation=True, max_length=self.max_length, return_attention_mask=False
        )["input_ids"]

    def _label_token_ids(self, labels: list[str]) -> list[list[int]]:
        cache = self._label_cache
        missing = [label for label in labels if label not in cache]
        if missing:
            if len(cache) + len(missing) > LABEL_CACHE_SIZE:
                cache.clear()
            cache.update(zip(missing, self._token_ids(missing)))
        return [cache[label] for label in labels]

    def _plan(self, text_len: int, seg_lens: np.ndarray, allow_chunking: bool, index: int) -> tuple[int, list[int]]:
        """Kept text length and label chunk end indices for one sample."""
        avail = self.max_length - 2  # CLS and SEP
        total = int(seg_lens.sum())
        if text_len + total <= avail:
            return text_len, [len(seg_lens)]
        min_text = min(text_len, self.min_text_tokens)
        if min_text + total <= avail:
            return avail - total, [len(seg_lens)]
        budget = avail - min_text
        longest = int(seg_lens.max())
        if longest > budget:
            raise ValueError(
                f"text {index}: a label of {longest - 1 - int(self.segment_separators)} tokens cannot fit next to {min_text} text tokens "
                f"within max_length={self.max_length}"
            )
        if not allow_chunking:
            raise ValueError(
                f"text {index}: {len(seg_lens)} labels need {total} tokens, more than the {budget} left in "
                f"max_length={self.max_length}; use fewer labels per example or the predict API (which chunks)"
            )
        cumulative = np.cumsum(seg_lens)
        n_chunks = len(_greedy_chunks(cumulative, budget))
        # Balance the chunks (smallest cap that still gives n_chunks) so the text can keep more tokens.
        low, high = max(longest, -(-total // n_chunks)), budget
        while low < high:
            mid = (low + high) // 2
            if len(_greedy_chunks(cumulative, mid)) <= n_chunks:
                high = mid
            else:
                low = mid + 1
        ends = _greedy_chunks(cumulative, low)
        chunk_sizes = np.diff(np.concatenate([[0], cumulative[np.asarray(ends) - 1]]))
        return min(text_len, avail - int(chunk_sizes.max())), ends

    def encode(
        self,
        texts: str | Sequence[str],
        labels_list: Sequence[str] | Sequence[Sequence[str]],
        allow_chunking: bool = True,
    ) -> GliZNetEncoding:
        """Encode texts with their label lists into ragged rows (several per sample when labels are chunked).

        `labels_list` is one label list per text, or a single list of strings shared by every text.
        Raises ValueError on empty texts, empty label lists, empty or duplicate labels.
        """
        if isinstance(texts, str):
            texts, labels_list = [texts], [labels_list]
        else:
            texts = list(texts)
            if not texts:
                raise ValueError("no texts given")
            if not labels_list:
                raise ValueError("empty label list")
            if all(isinstance(x, str) for x in labels_list):  # one list shared by every text
                labels_list = [labels_list] * len(texts)
        labels_list = list(labels_list)
        self._validate(texts, labels_list)

        # One tokenizer call for all texts, one for all distinct labels.
        text_ids = self._token_ids(texts)
        unique: dict[str, int] = {}
        sample_uids = [
            np.fromiter((unique.setdefault(label, len(unique)) for label in labels), np.int64, len(labels))
            for labels in labels_list
        ]
        label_ids = self._label_token_ids(list(unique))
        label_lens = np.fromiter(map(len, label_ids), np.int64, len(label_ids))
        if (label_lens == 0).any():
            empty = [lab for lab, n in zip(unique, label_lens) if n == 0]
            raise ValueError(f"labels produce no tokens: {empty}")
        text_lens = np.fromiter(map(len, text_ids), np.int64, len(text_ids))
        if (text_lens == 0).any():
            raise ValueError(f"text {int(np.argmin(text_lens))} produces no tokens")

        # Token pool: [CLS] [SEP] | all text tokens | every distinct label as "[LAB] tokens" (+ "[SEP]").
        closing = int(self.segment_separators)
        seg_lens = label_lens + 1 + closing
        text_starts = 2 + np.cumsum(text_lens) - text_lens
        seg_starts = 2 + int(text_lens.sum()) + np.cumsum(seg_lens) - seg_lens
        label_pool = np.full(int(seg_lens.sum()), self.lab_token_id, dtype=np.int64)
        if closing:
            label_pool[np.cumsum(seg_lens) - 1] = self.sep_token_id
        label_pool[_ragged_arange(label_lens) + np.repeat(seg_starts - seg_starts[0] + 1, label_lens)] = np.fromiter(
            itertools.chain.from_iterable(label_ids), np.int64, int(label_lens.sum())
        )
        pool = np.concatenate(
            [
                np.array([self.cls_token_id, self.sep_token_id], dtype=np.int64),
                np.fromiter(itertools.chain.from_iterable(text_ids), np.int64, int(text_lens.sum())),
                label_pool,
            ]
        )

        # Plan rows: (sample, kept text length, slice of the sample's labels).
        row_sample, row_keep, row_uids, row_pos = [], [], [], []
        sample_label_offsets = np.cumsum([0] + [len(u) for u in sample_uids])
        for i, uids in enumerate(sample_uids):
            keep, ends = self._plan(int(text_lens[i]), seg_lens[uids], allow_chunking, i)
            start = 0
            for end in ends:
                row_sample.append(i)
                row_keep.append(keep)
                row_uids.append(uids[start:end])
                row_pos.append(np.arange(start, end, dtype=np.int64) + sample_label_offsets[i])
                start = end
        row_sample_arr = np.asarray(row_sample, dtype=np.int64)
        keep_arr = np.asarray(row_keep, dtype=np.int64)
        k = np.fromiter(map(len, row_uids), np.int64, len(row_uids))
        all_uids = np.concatenate(row_uids)

        # Pieces per row: CLS, text slice, one per label, SEP (with segment separators the SEP closes the text and
        # comes before the labels); all rows laid out with one gather.
        n_rows = len(k)
        pieces_per_row = k + 3
        first_piece = np.cumsum(pieces_per_row) - pieces_per_row
        n_pieces = int(pieces_per_row.sum())
        piece_start = np.empty(n_pieces, dtype=np.int64)
        piece_len = np.empty(n_pieces, dtype=np.int64)
        piece_label = np.zeros(n_pieces, dtype=np.int64)
        piece_start[first_piece], piece_len[first_piece] = 0, 1
        piece_start[first_piece + 1], piece_len[first_piece + 1] = text_starts[row_sample_arr], keep_arr
        within = _ragged_arange(k)
        label_piece = np.repeat(first_piece + 2 + closing, k) + within
        piece_start[label_piece], piece_len[label_piece] = seg_starts[all_uids], seg_lens[all_uids]
        piece_label[label_piece] = within + 1
        sep_piece = first_piece + 2 if closing else first_piece + 2 + k
        piece_start[sep_piece], piece_len[sep_piece] = 1, 1

        ids = _gather_runs(pool, piece_start, piece_len)
        mask = np.repeat(piece_label, piece_len)
        piece_token_start = np.cumsum(piece_len) - piece_len
        mask[piece_token_start[label_piece]] = 0  # the [LAB] marker itself belongs to no label
        if closing:
            mask[piece_token_start[label_piece] + piece_len[label_piece] - 1] = 0  # nor does its closing SEP
        lengths = np.add.reduceat(piece_len, first_piece) if n_rows else np.zeros(0, np.int64)

        return GliZNetEncoding(
            ids=ids,
            label_mask=mask,
            offsets=np.cumsum(lengths) - lengths,
            lengths=lengths.astype(np.int64),
            sample_index=row_sample_arr,
            label_positions=np.concatenate(row_pos),
            label_offsets=np.cumsum(k) - k,
            num_labels=k,
            sample_label_offsets=sample_label_offsets[:-1].astype(np.int64),
            total_labels=int(sample_label_offsets[-1]),
            pad_token_id=self.pad_token_id,
        )

    def __call__(
        self,
        texts: str | Sequence[str],
        labels_list: Sequence[str] | Sequence[Sequence[str]],
        targets: Sequence[Sequence[float]] | None = None,
        return_tensors: str = "pt",
        ignore_index: int = -100,
    ) -> BatchEncoding:
        """Training/forward inputs: one row per text (labels must fit; no chunking), padded to the longest row.

        `targets` (1 positive, 0 negative, aligned with each label list) become `labels`: a float [batch, max_labels]
        tensor padded with `ignore_index`.
        """
        if return_tensors != "pt":
            raise ValueError("only return_tensors='pt' is supported")
        encoding = self.encode(texts, labels_list, allow_chunking=False)
        data: dict[str, Any] = encoding.collate()
        if targets is not None:
            if isinstance(texts, str):
                targets = [targets]
            if len(targets) != encoding.num_rows:
                raise ValueError(f"got {len(targets)} target lists for {encoding.num_rows} texts")
            counts = encoding.num_labels
            for i, row in enumerate(targets):
                if len(row) != counts[i]:
                    raise ValueError(f"text {i}: {len(row)} targets for {counts[i]} labels")
            padded = torch.full((len(targets), int(counts.max())), float(ignore_index))
            for i, row in enumerate(targets):
                padded[i, : len(row)] = torch.as_tensor(row, dtype=torch.float32)
            data["labels"] = padded
        return BatchEncoding(data, tensor_type=None)
