"""slipway-client: register, deploy, call and monitor models on a Slipway portal from a notebook.

    from slipway_client import Slipway
    sw = Slipway("http://localhost:8000", token="slw_…")
    version = sw.register(model, X_holdout, y_holdout, project="churn", name="churn-xgb")
"""

from .artifacts import native_format, serialize
from .client import Deployment, ModelVersion, Slipway, SlipwayError, ValidationRejected
from .contract import infer_contract, infer_task

__all__ = ["Deployment", "ModelVersion", "Slipway", "SlipwayError", "ValidationRejected", "infer_contract",
           "infer_task", "native_format", "serialize"]
__version__ = "0.1.0"
