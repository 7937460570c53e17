"""The server's fixed allowlist of importable globals for uploaded models (pure: no Django).

Every global a pickle/joblib stream would import, and every type a skops file contains, must be on
this list as an EXACT ``module`` + ``name`` pair: scikit-learn estimator classes (the ones
``sklearn.utils.all_estimators`` lists, by their defining module) and the helper classes they pickle,
numpy's array/dtype/scalar reconstruction and bit generators, and a handful of builtins. Whole
modules are never trusted: numpy and scipy contain functions that read files or run code
(``numpy.load``, ``numpy.fromfile``, ``numpy.testing``...), so a stream naming them is refused.

The list is decided by the server; nothing in an uploaded file ever extends it (skops files are
loaded with ``trusted=skops_trusted_types()``, never with the file's own ``get_untrusted_types``).
"""

from __future__ import annotations

from functools import cache

# numpy: array, dtype and scalar reconstruction (numpy 2 ``_core`` and numpy 1 ``core`` paths),
# random number generators as found in fitted estimators' ``random_state``.
NUMPY_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random.mtrand", "RandomState"),
    ("numpy.random._generator", "Generator"),
    ("numpy.random._mt19937", "MT19937"),
    ("numpy.random._pcg64", "PCG64"),
    ("numpy.random._pcg64", "PCG64DXSM"),
    ("numpy.random._philox", "Philox"),
    ("numpy.random._sfc64", "SFC64"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    # scalar types, e.g. the ``dtype=numpy.float64`` parameter of encoders
    *(("numpy", name) for name in ("float64", "float32", "float16", "int64", "int32", "int16", "int8",
                                   "uint64", "uint32", "uint16", "uint8", "bool_", "object_", "str_",
                                   "bytes_", "complex128")),
})
# numpy dtype classes used in pickled dtypes (numpy >= 1.25 pickles some dtypes by class).
NUMPY_DTYPE_CLASSES = frozenset(
    ("numpy.dtypes", name) for name in (
        "Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType", "Int16DType", "Int8DType",
        "UInt64DType", "UInt32DType", "UInt16DType", "UInt8DType", "BoolDType", "ObjectDType", "StrDType",
        "BytesDType", "VoidDType",
    )
)

BUILTIN_GLOBALS = frozenset(
    {(mod, name) for mod in ("builtins", "__builtin__") for name in (
        "object", "set", "frozenset", "slice", "complex", "bytearray", "bytes", "int", "float", "bool", "str",
        "list", "dict", "tuple", "range",
    )}
    | {("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"), ("_codecs", "encode"),
       ("collections", "OrderedDict")}
)

# Helper classes that fitted scikit-learn estimators contain (found by pickling fitted estimators).
SKLEARN_HELPERS = frozenset({
    ("sklearn.tree._tree", "Tree"),
    ("sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor"),
    ("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper"),
    ("sklearn._loss.loss", "HalfBinomialLoss"),
    ("sklearn._loss.loss", "HalfMultinomialLoss"),
    ("sklearn._loss.loss", "HalfSquaredError"),
    ("sklearn._loss.loss", "AbsoluteError"),
    ("sklearn._loss.loss", "PinballLoss"),
    ("sklearn._loss.loss", "HuberLoss"),
    ("sklearn._loss.loss", "HalfPoissonLoss"),
    ("sklearn._loss.loss", "HalfGammaLoss"),
    ("sklearn._loss.loss", "HalfTweedieLoss"),
    ("sklearn._loss.loss", "HalfTweedieLossIdentity"),
    ("sklearn._loss.loss", "ExponentialLoss"),
    ("sklearn._loss._loss", "CyHalfBinomialLoss"),
    ("sklearn._loss._loss", "CyHalfMultinomialLoss"),
    ("sklearn._loss._loss", "CyHalfSquaredError"),
    ("sklearn._loss._loss", "CyAbsoluteError"),
    ("sklearn._loss._loss", "CyPinballLoss"),
    ("sklearn._loss._loss", "CyHuberLoss"),
    ("sklearn._loss._loss", "CyHalfPoissonLoss"),
    ("sklearn._loss._loss", "CyHalfGammaLoss"),
    ("sklearn._loss._loss", "CyHalfTweedieLoss"),
    ("sklearn._loss._loss", "CyHalfTweedieLossIdentity"),
    ("sklearn._loss._loss", "CyExponentialLoss"),
    ("sklearn._loss._loss", "__pyx_unpickle_CyHalfMultinomialLoss"),
    ("sklearn._loss._loss", "__pyx_unpickle_CyPinballLoss"),
    ("sklearn._loss._loss", "__pyx_unpickle_CyHuberLoss"),
    ("sklearn._loss._loss", "__pyx_unpickle_CyHalfTweedieLoss"),
    ("sklearn._loss._loss", "__pyx_unpickle_CyHalfTweedieLossIdentity"),
    ("sklearn._loss.link", "IdentityLink"),
    ("sklearn._loss.link", "LogitLink"),
    ("sklearn._loss.link", "LogLink"),
    ("sklearn._loss.link", "HalfLogitLink"),
    ("sklearn._loss.link", "MultinomialLogit"),
    ("sklearn._loss.link", "Interval"),
    ("sklearn.ensemble._gb_losses", "BinomialDeviance"),
    ("sklearn.ensemble._gb_losses", "LeastSquaresError"),
    ("sklearn.ensemble._gb_losses", "MultinomialDeviance"),
    ("sklearn.linear_model._sgd_fast", "Hinge"),
    ("sklearn.linear_model._sgd_fast", "Log"),
    ("sklearn.linear_model._sgd_fast", "SquaredLoss"),
    ("sklearn.linear_model._sgd_fast", "ModifiedHuber"),
    ("sklearn.utils._bunch", "Bunch"),
    ("sklearn.compose._column_transformer", "_RemainderColsList"),
    ("sklearn.neighbors._kd_tree", "KDTree"),
    ("sklearn.neighbors._ball_tree", "BallTree"),
    ("sklearn.neighbors._kd_tree", "newObj"),
    ("sklearn.neighbors._ball_tree", "newObj"),
    ("sklearn.metrics._dist_metrics", "EuclideanDistance64"),
    ("sklearn.metrics._dist_metrics", "newObj"),
})

# joblib: the wrapper object joblib writes instead of a numpy array (array bytes follow it raw).
JOBLIB_GLOBALS = frozenset({("joblib.numpy_pickle", "NumpyArrayWrapper")})
JOBLIB_ARRAY_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")

# XGBoost / LightGBM scikit-learn wrappers and the boosters they hold, by EXACT class (never by module:
# xgboost and lightgbm also hold callbacks, data loaders and plotting helpers). Trusted in skops files
# only, where the booster's state is the library's own model format read by its parser; a pickle that
# names them is still refused (REDUCE on an allowlisted Booster could pass it a file path to read).
BOOSTING_SKOPS_TYPES = frozenset({
    ("xgboost.sklearn", "XGBClassifier"),
    ("xgboost.sklearn", "XGBRegressor"),
    ("xgboost.core", "Booster"),
    ("lightgbm.sklearn", "LGBMClassifier"),
    ("lightgbm.sklearn", "LGBMRegressor"),
    ("lightgbm.basic", "Booster"),
})

# Estimator families we accept (all_estimators type filters); clusterers etc. are not served.
_ESTIMATOR_TYPES = ("classifier", "regressor", "transformer")
_EXTRA_ESTIMATORS = frozenset({
    ("sklearn.pipeline", "Pipeline"),
    ("sklearn.pipeline", "FeatureUnion"),
    ("sklearn.compose._column_transformer", "ColumnTransformer"),
    ("sklearn.compose._target", "TransformedTargetRegressor"),
    ("sklearn.preprocessing._label", "LabelEncoder"),
    ("sklearn.preprocessing._label", "LabelBinarizer"),
    ("sklearn.dummy", "DummyClassifier"),
    ("sklearn.dummy", "DummyRegressor"),
})


@cache
def sklearn_estimator_globals() -> frozenset[tuple[str, str]]:
    """The scikit-learn estimator classes (exact defining module + name) of the installed version.

    The sandboxed loader gets the list the server computed through ``SLIPWAY_ALLOWLIST_FILE`` (a file
    the server writes; saves the loader importing all of scikit-learn)."""
    import json
    import os

    precomputed = os.environ.get("SLIPWAY_ALLOWLIST_FILE")
    if precomputed:
        with open(precomputed) as fh:
            return frozenset(tuple(pair) for pair in json.load(fh))
    from sklearn.utils.discovery import all_estimators

    found = set(_EXTRA_ESTIMATORS)
    for estimator_type in _ESTIMATOR_TYPES:
        for _name, cls in all_estimators(type_filter=estimator_type):
            found.add((cls.__module__, cls.__qualname__))
    return frozenset(found)


@cache
def pickle_allowed_globals() -> frozenset[tuple[str, str]]:
    """Every (module, name) a pickle or joblib stream may import."""
    return (NUMPY_GLOBALS | NUMPY_DTYPE_CLASSES | BUILTIN_GLOBALS | SKLEARN_HELPERS | JOBLIB_GLOBALS
            | sklearn_estimator_globals())


def is_allowed_global(module: str, name: str) -> bool:
    return (module, name) in pickle_allowed_globals()


@cache
def skops_trusted_types() -> list[str]:
    """The fixed ``trusted=`` list every skops load uses (dotted names as skops reports them)."""
    pairs = (SKLEARN_HELPERS | sklearn_estimator_globals() | NUMPY_GLOBALS | NUMPY_DTYPE_CLASSES
             | BOOSTING_SKOPS_TYPES)
    names = {f"{module}.{name}" for module, name in pairs if not name.startswith("__")}
    names |= {"builtins.slice", "builtins.complex", "builtins.bytearray", "builtins.frozenset",
              "collections.OrderedDict"}
    return sorted(names)
