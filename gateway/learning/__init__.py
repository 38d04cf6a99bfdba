"""Offline learning: reading labelled prompts (`examples`), fitting routers on them (`fitting`,
`train`, `distil`), judging routers side by side (`evaluate`), and the CLIs that run them
(`commands`).

Imports everything below the flow (settings, ledger, routing); never the flow or the HTTP layer.
Live measurement on traffic (shadow judging) stays in `gateway.quality`."""
