"""routellm-gateway: an OpenAI-compatible gateway that routes each chat request to the model
the RouteLLM BERT classifier picks, and streams the answer from that model's upstream."""

__version__ = "0.1.0"
