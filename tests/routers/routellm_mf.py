"""Run by RouteLLM 0.2.0's own interpreter, in its own virtual environment, for
`tests/routers/test_mf_parity.py`; never imported by the project (RouteLLM is not one of its
dependencies). Reads one JSON job on stdin, writes one JSON answer as the last line of stdout:

    {"do": "save", "dir": D, "seed": S, "scale": K}
        RouteLLM's `MFModel` at its real size (dim 128, 64 models, text_dim 1536), seeded, its
        projection and classifier scaled by K so win rates spread over (0, 1), saved with its
        own `save_pretrained` (config.json + model.safetensors) into D.
    {"do": "score", "dir": D, "prompts": [...], "thresholds": [...]}
        RouteLLM's `MatrixFactorizationRouter` on D: `calculate_strong_win_rate` of each prompt,
        and `route` at each threshold. The embeddings come from OPENAI_BASE_URL.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import torch
    from routellm.controller import ModelPair
    from routellm.routers.matrix_factorization.model import MFModel
    from routellm.routers.routers import MatrixFactorizationRouter

    job = json.load(sys.stdin)
    if job["do"] == "save":
        torch.manual_seed(job["seed"])
        model = MFModel(dim=128, num_models=64, text_dim=1536, num_classes=1, use_proj=True)
        with torch.no_grad():
            model.text_proj[0].weight.mul_(job["scale"])
            model.classifier[0].weight.mul_(job["scale"])
        model.save_pretrained(job["dir"])
        print(json.dumps({"saved": job["dir"]}))
        return
    router = MatrixFactorizationRouter(checkpoint_path=job["dir"])
    pair = ModelPair(strong="strong", weak="weak")
    rates = [router.calculate_strong_win_rate(p) for p in job["prompts"]]
    routes = [[router.route(p, t, pair) for p in job["prompts"]] for t in job["thresholds"]]
    print(json.dumps({"rates": rates, "routes": routes}))


if __name__ == "__main__":
    main()
