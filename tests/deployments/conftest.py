import pytest


@pytest.fixture(autouse=True)
def serving_isolation(settings, tmp_path):
    """Each test: its own spool folder, no background drainer thread, an empty serving cache."""
    from apps.deployments import logpipe, serving

    settings.SERVING_SPOOL_DIR = tmp_path / "spool"
    settings.SERVING_DRAIN_IN_PROCESS = False
    settings.SERVING_STATE_TTL = 0.0
    settings.SERVING_STATE_SNAPSHOT = tmp_path / "serving-state.json"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    logpipe.flush_own_segment()
    logpipe._writer = None
    serving.CACHE.clear()
    serving.CACHE.clear_models()
    yield
    logpipe.flush_own_segment()
    logpipe._writer = None
    serving.CACHE.clear()
