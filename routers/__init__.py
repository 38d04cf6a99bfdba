"""Router kinds: what turns a prompt into a predicted quality per model, behind the one
`classifier.base.Classifier` seam (a `Scores` whose labels are the models' names).

- `manifest`: the router directory's `router.json` (kind, models, encoder, head, version).
- `encoders`: sentence encoders, in-process (transformers) or an OpenAI-compatible
  `/embeddings` endpoint.
- `heads`: what predicts each model's quality from an embedding (kNN, logistic).
- `embedding`: the embedding router kind (an encoder and a head).
- `registry`: `open_router(directory)`, which reads the kind the directory names.

A new kind is one module with a `load(directory, manifest, options)` and one line in
`registry.KINDS`. Imports `classifier` (the seam, the batcher); never `gateway`.
"""
