"""A native XGBoost/LightGBM version is not a scikit-learn estimator: a training job refuses it up front."""

import pytest

from apps.common.errors import InvalidInput
from apps.training.services.jobs import training_job_create
from tests.registry import factories as f

pytestmark = pytest.mark.django_db


def test_a_native_booster_cannot_be_chosen_for_a_training_job(project, users):
    X, y, names = f.make_classification_frame(n=200)
    version = f.register_ready_version(project, users["data_scientist"], None, X, y, names, "binary_classification",
                                       artifact=f.native_bytes(f.make_booster("lightgbm", "classifier", X, y)))
    with pytest.raises(InvalidInput, match="native lightgbm model, not a scikit-learn estimator"):
        training_job_create(model=version.model, actor=users["data_scientist"], parent_version=version, labels=None)
