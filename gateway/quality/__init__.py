"""Whether routing keeps quality, and acting on it: shadow judging on live traffic (`shadow`) and
`evaluate` on labelled prompts.

Imports everything below the flow (settings, ledger, routing, APIs, forwarder); never the flow or
the HTTP layer."""
