"""The reference pages of the documentation, harvested from the code so they cannot drift:
`variables` (every `ROUTELLM_*` variable, from the settings fields' docstrings), `config_keys`
(the config file, from `gateway.settings.descriptions`), `commands` (every subcommand and flag,
from the argument parsers), `http_api` (the routes, from the app's OpenAPI schema, with the
response headers and reasons) and `metrics` (the Prometheus registry); `source` reads the code
they check against, `pages` puts them together for `docs/gen_reference.py`.

The top floor: it imports the app and the CLIs, and nothing imports it.
"""
