"""Accounting: the decision ledger's rows and writer (`writer`), its read side (`reports`), what a
request cost (`pricing`) and the quality figures over its verdicts (`quality`).

Imports settings only; never routing, the APIs, the forwarder, the flow or the HTTP layer."""
