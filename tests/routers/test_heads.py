"""The heads and the embedding router on planted data: each topic goes to the model that is good
at it, a kNN head learns a new labelled prompt at once, and a directory round-trips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from routers.embedding import EmbeddingRouter
from routers.encoders import LocalEncoder
from routers.heads import KnnHead, LinearHead
from routers.manifest import RouterDirectoryError, read_manifest
from routers.registry import open_router
from tests.routers.planted import LAW, MATHS, MODELS, labels

UNSEEN_MATHS = ["What is the second derivative of x^3 - 2x?", "Integrate 1/(1+x^2) from 0 to 1"]
UNSEEN_LAW = ["Can a landlord be sued for negligence?", "What makes a contract void?"]


@pytest.mark.parametrize("head", [KnnHead, LinearHead])
def test_a_head_sends_each_topic_to_the_model_good_at_it(
    head: type[KnnHead] | type[LinearHead], encoder: LocalEncoder
) -> None:
    fitted = head.fit(encoder.encode(MATHS + LAW), labels())
    maths = fitted.predict(encoder.encode(UNSEEN_MATHS))
    law = fitted.predict(encoder.encode(UNSEEN_LAW))
    mathy, lawyer = MODELS.index("mathy"), MODELS.index("lawyer")
    assert (maths[:, mathy] > maths[:, lawyer] + 0.3).all(), maths
    assert (law[:, lawyer] > law[:, mathy] + 0.3).all(), law
    assert ((maths >= 0) & (maths <= 1)).all()


def test_unknown_labels_are_left_out_not_read_as_wrong(encoder: LocalEncoder) -> None:
    vectors = encoder.encode(MATHS)
    matrix = np.full((len(MATHS), 2), np.nan, dtype=np.float32)
    matrix[:, 0] = 1.0
    matrix[0, 1] = 1.0  # the second model is known on one prompt only, and right there
    head = KnnHead.fit(vectors, matrix, k=8)
    predicted = head.predict(vectors[:1])[0]
    assert predicted[1] == pytest.approx(1.0)  # its one known answer, and its prior agree
    assert predicted[0] == pytest.approx(1.0)


def test_a_knn_head_learns_a_new_labelled_prompt_at_once(encoder: LocalEncoder) -> None:
    head = KnnHead.fit(encoder.encode(MATHS + LAW), labels(), k=4)
    cooking = encoder.encode(["How long should I boil an egg for a soft yolk?"] * 6)
    before = head.predict(cooking[:1])[0]
    head.add(cooking, np.asarray([[0.0, 0.0, 0.0, 1.0]] * 6, dtype=np.float32))
    after = head.predict(cooking[:1])[0]
    cheap = MODELS.index("cheap")
    assert after[cheap] > before[cheap] + 0.4
    assert after[cheap] == max(after)


async def test_a_router_directory_opens_and_predicts_per_model(
    planted_router: Callable[[str], Path],
) -> None:
    directory = planted_router("linear")
    manifest = read_manifest(directory)
    assert manifest.models == MODELS
    assert manifest.head == "linear"
    assert manifest.version
    router = await open_router(str(directory))
    try:
        assert isinstance(router, EmbeddingRouter)
        (maths, law) = await router.classify([UNSEEN_MATHS[0], UNSEEN_LAW[0]])
        assert maths.labels == MODELS
        assert maths.get("mathy") > maths.get("lawyer")
        assert law.get("lawyer") > law.get("mathy")
        await router.classify([UNSEEN_MATHS[0]])
        assert router.batcher.stats.cache_hits == 1
        health = await router.health()
        assert health["version"] == manifest.version
        assert health["head"] == "linear"
    finally:
        await router.aclose()


async def test_a_directory_that_is_not_a_router_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(RouterDirectoryError, match="routellm-gateway train --models"):
        await open_router(str(tmp_path))
    (tmp_path / "router.json").write_text('{"kind": "crystal-ball", "models": ["a"]}')
    with pytest.raises(RouterDirectoryError, match="'crystal-ball' is not served here"):
        await open_router(str(tmp_path))
