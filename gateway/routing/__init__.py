"""Which model answers: the request as the flow sees it (`call`), the text classified
(`human_text`), the decision (`decider`), conversations keeping their model (`conversations`)
over a shared store (`state`).

Imports settings and the ledger's value types; never the APIs' wire formats, the forwarder, the
flow or the HTTP layer."""
