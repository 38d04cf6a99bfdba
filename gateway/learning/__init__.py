"""Offline learning: reading labelled prompts (`examples`), fitting routers on them (`fitting`,
`train`, `distil`), judging routers side by side (`evaluate`), and the CLIs that run them
(`commands`).

Many-model routers (`train/evaluate --models`, `calibrate --router`): the quality matrix
(`matrix`), cached embeddings (`embeddings`), head fitting (`heads_fit`), the router directory
(`router_training`), the accuracy-cost maths (`frontier`, `tradeoff`), the cost weight for a
target (`weights`), prices (`prices`), a directory's predictions (`predict`), their CLIs
(`many_commands`).

Imports everything below the flow (settings, ledger, routing); never the flow or the HTTP layer.
Live measurement on traffic (shadow judging) stays in `gateway.quality`."""
