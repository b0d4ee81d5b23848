"""The MLflow packaging of the classifier.

The model is logged as a pyfunc whose artifact is the pickled `IntentClassifier`, so three consumers
load the same file: `mlflow models serve` (through `predict`), our FastAPI service (which unwraps the
classifier to call its vectorised methods directly), and the evaluation step.
"""

from __future__ import annotations

import pickle
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.pyfunc import PythonModel

from model.classifier import IntentClassifier


class IntentPyfunc(PythonModel):
    """Input: a frame with a `text` column. Output: intent and calibrated confidence per row."""

    classifier: IntentClassifier

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["classifier"], "rb") as fh:
            self.classifier = pickle.load(fh)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame):
            texts = model_input["text"].astype(str).tolist()
        else:
            texts = [str(t) for t in model_input]
        return self._predict_frame(self.classifier, pd.DataFrame({"text": texts}))

    @staticmethod
    def _predict_frame(classifier: IntentClassifier, frame: pd.DataFrame) -> pd.DataFrame:
        intents, confidences = classifier.predict_top1(frame["text"].astype(str).tolist())
        return pd.DataFrame({"intent": intents, "confidence": confidences})


def load_classifier(model_uri: str) -> IntentClassifier:
    """Load a logged model and return the classifier inside it, for vectorised calls."""
    loaded = mlflow.pyfunc.load_model(model_uri)
    wrapper = loaded.unwrap_python_model()
    if not isinstance(wrapper, IntentPyfunc):
        raise TypeError(f"{model_uri} is not an esteira intent model ({type(wrapper).__name__})")
    return wrapper.classifier
