"""The RouteLLM BERT classifier: in-process model, remote client, wire formats and HTTP service.

Nothing here imports the gateway: the gateway and the classifier service share this package.
"""

from classifier.base import Classifier, ClassifierError, Scores

__all__ = ["Classifier", "ClassifierError", "Scores"]
