"""Shared, deterministic benchmark prompt set: unique chat-like prompts of mixed token lengths.

Every system under benchmark (RouteLLM's `BERTRouter` in its own venv, our in-process classifier)
classifies exactly these prompts, in this order. Lengths are counted with the checkpoint's own
tokenizer (`tokenizer.json`, loaded with the `tokenizers` library only: no torch, no transformers),
including the `<s>` / `</s>` specials, so "tokens" here means the model's real sequence length.

Length mix: 50 % short (8-31 tokens), 30 % medium (32-127), 20 % long (128-400), exact in every
block of 10 prompts; the set is prefix-stable (`make_prompts(m)[:n]` == `make_prompts(n)`), so
runs of different sizes share their first prompts.

    from bench.prompts import make_prompts
    prompts, lengths = make_prompts(n=256)          # texts and their exact token counts

Run as a script to print a summary: `python bench/prompts.py [--n 256] [--checkpoint DIR]`.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = ROOT / "bench" / ".cache" / "bert-base"

# (low, high inclusive, share) in tokens, specials included.
BUCKETS: tuple[tuple[int, int, float], ...] = ((8, 31, 0.5), (32, 127, 0.3), (128, 400, 0.2))

# Openers that make the texts read like chat requests; the body is drawn from the synthetic
# tokenizer's training vocabulary so that the token counts are stable and few are `<unk>`.
_OPENERS = (
    "explain",
    "write",
    "summarize",
    "translate",
    "prove",
    "help",
    "tell",
    "how",
    "what",
    "why",
)


def _words() -> list[str]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from classifier.synthetic import WORDS  # stdlib-only module at import time

    return list(WORDS)


def _load_tokenizer(checkpoint: str | Path):
    from tokenizers import Tokenizer

    path = Path(checkpoint) / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} missing: build the checkpoint first with classifier.synthetic.build_checkpoint"
        )
    return Tokenizer.from_file(str(path))


def target_lengths(n: int, seed: int = 0) -> list[int]:
    """Prefix-stable: prompt i's bucket follows a fixed shuffled cycle of 10 (5 short, 3 medium,
    2 long), its length is uniform inside the bucket.

    `target_lengths(m)[:n] == target_lengths(n)`."""
    rng = random.Random(seed)
    cycle: list[int] = []
    for b, (_, _, share) in enumerate(BUCKETS):
        cycle += [b] * round(10 * share)
    out: list[int] = []
    while len(out) < n:
        order = cycle[:]
        rng.shuffle(order)
        for b in order:
            lo, hi, _ = BUCKETS[b]
            out.append(rng.randint(lo, hi))
    return out[:n]


def make_prompts(
    n: int = 256, seed: int = 0, checkpoint: str | Path = DEFAULT_CHECKPOINT
) -> tuple[list[str], list[int]]:
    """Return (`prompts`, `token_counts`): `n` unique texts and their exact token counts."""
    tok = _load_tokenizer(checkpoint)
    words = _words()
    # tokens per word, without specials, under this tokenizer (Metaspace: words split on spaces)
    cost = {w: len(tok.encode(w, add_special_tokens=False).ids) for w in set(words)}
    rng = random.Random(seed + 1)
    prompts: list[str] = []
    seen: set[str] = set()
    for target in target_lengths(n, seed):
        while True:
            body: list[str] = [rng.choice(_OPENERS)]
            used = 2 + cost.setdefault(
                body[0], len(tok.encode(body[0], add_special_tokens=False).ids)
            )
            while True:
                w = rng.choice(words)
                if used + cost[w] > target:
                    break
                body.append(w)
                used += cost[w]
            # pad with a 1-token word until exact (most words are single tokens)
            ones = [w for w in words if cost[w] == 1]
            while used < target:
                body.append(rng.choice(ones))
                used += 1
            text = " ".join(body)
            if text not in seen:
                break
        seen.add(text)
        prompts.append(text)
    counts = [len(e.ids) for e in tok.encode_batch(prompts)]
    return prompts, counts


def summary(counts: list[int]) -> dict:
    s = sorted(counts)
    n = len(s)
    return {
        "n": n,
        "min": s[0],
        "p50": s[n // 2],
        "p90": s[int(n * 0.9)],
        "max": s[-1],
        "mean": round(sum(s) / n, 1),
        "total_tokens": sum(s),
        "share_lt32": round(sum(c < 32 for c in s) / n, 3),
        "share_32_127": round(sum(32 <= c < 128 for c in s) / n, 3),
        "share_ge128": round(sum(c >= 128 for c in s) / n, 3),
    }


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    args = ap.parse_args()
    p, c = make_prompts(args.n, args.seed, args.checkpoint)
    assert len(set(p)) == len(p)
    print(json.dumps(summary(c)))
