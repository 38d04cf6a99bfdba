"""Accounting: the decision ledger's rows and writer (`writer`), its read side (`reports`), what a
request cost (`pricing`), the quality figures over its verdicts (`quality`) and the traffic
re-decided at another threshold (`what_if`).

Imports settings only; never routing, the APIs, the forwarder, the flow or the HTTP layer."""
