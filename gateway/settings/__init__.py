"""The gateway's settings, one module per section, each section's dataclasses beside its parser:
`base` (shared parsing helpers), `prices`, `upstreams` (`upstreams:`, `models:`), `routing`
(`routing:`, `routers:`), `accounts` (baseline, ledger, shadow judging) and `load` (`Settings`,
`load_settings`). The lowest floor: imports nothing of the gateway outside this package."""
