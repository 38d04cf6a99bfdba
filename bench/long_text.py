"""What one client's huge message costs everyone else's classification: the latency of a short
"hello" submitted while a 15 MB message is on the classifier's only worker thread, with texts
cut before tokenizing (today) and given whole to the tokenizer (before the cut existed).

    .venv/bin/python bench/long_text.py [--mb 15] [--repeats 5] [--skip-uncut]

The checkpoint is the tiny synthetic XLM-RoBERTa (its forward pass takes about a millisecond):
what a long text costs is tokenizing it, and the tokenizer is the same kind as the real model's
(sentencepiece Unigram with NFKC and Metaspace), with a much smaller vocabulary.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classifier.local import LocalClassifier  # noqa: E402
from classifier.settings import ClassifierSettings  # noqa: E402
from classifier.synthetic import build_checkpoint, corpus  # noqa: E402


async def hello_latency(classifier: LocalClassifier, huge: str, repeats: int) -> list[float]:
    """Milliseconds for "hello #i" while `huge` is classified concurrently, `repeats` times."""
    latencies = []
    for i in range(repeats):
        attack = asyncio.ensure_future(classifier.classify([f"{huge} {i}"]))
        await asyncio.sleep(0.01)  # the huge text reaches the worker first
        started = time.perf_counter()
        await classifier.classify([f"hello #{i}"])
        latencies.append((time.perf_counter() - started) * 1000)
        await attack
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=15.0, help="size of the huge message")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-uncut", action="store_true", help="only measure the cut path")
    args = parser.parse_args()
    prose = " ".join(corpus(4000))
    size = int(args.mb * 1e6)
    huge = (prose * (size // len(prose) + 1))[:size]
    # The worst case for the cut: characters the tokenizer folds into few tokens, so the cut
    # doubles up to ROUTELLM_BERT_MAX_CHARS without proving itself harmless.
    rng = random.Random(0)
    block = "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(100_000))
    folded = (block * (size // len(block) + 1))[:size]
    with tempfile.TemporaryDirectory() as tmp:
        path = build_checkpoint(Path(tmp) / "bert")
        settings = ClassifierSettings(model=str(path), cache_size=0, runtime="torch")
        classifier = LocalClassifier.load(settings)
        try:
            idle = []
            for i in range(args.repeats):
                started = time.perf_counter()
                await classifier.classify([f"hello alone #{i}"])
                idle.append((time.perf_counter() - started) * 1000)
            cut = await hello_latency(classifier, huge, args.repeats)
            print(f"hello alone:                  median {statistics.median(idle):8.1f} ms")
            worst = await hello_latency(classifier, folded, args.repeats)
            print(f"hello behind {args.mb:g} MB, cut:     median {statistics.median(cut):8.1f} ms, "
                  f"max {max(cut):8.1f} ms")  # fmt: skip
            print(f"hello behind {args.mb:g} MB folded:   median {statistics.median(worst):8.1f} "
                  f"ms, max {max(worst):8.1f} ms (cut doubles to the cap)")  # fmt: skip
            if not args.skip_uncut:
                # The old path: the whole text reaches the tokenizer.
                classifier.bound = lambda text: text  # type: ignore[method-assign]
                classifier._max_chars = len(huge) + 100
                whole = await hello_latency(classifier, huge, 1)
                print(f"hello behind {args.mb:g} MB, uncut:   {whole[0]:8.1f} ms (one run)")
        finally:
            await classifier.aclose()


if __name__ == "__main__":
    asyncio.run(main())
