"""The RouteLLM BERT classifier: in-process model, remote client, wire formats and HTTP service.

Nothing here imports the gateway: the gateway and the classifier service share this package.
Importing it is cheap: torch and transformers load only when a local model does.

    settings = ClassifierSettings.from_env(os.environ)
    classifier = await open_classifier(settings)      # RemoteClassifier or LocalClassifier
"""

from classifier.base import Classifier, ClassifierError, ClassifierUnavailable, Scores
from classifier.factory import open_classifier
from classifier.settings import ClassifierSettings, SettingsError

__all__ = [
    "Classifier",
    "ClassifierError",
    "ClassifierSettings",
    "ClassifierUnavailable",
    "Scores",
    "SettingsError",
    "open_classifier",
]
