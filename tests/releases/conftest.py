from tests.deployments.conftest import serving_isolation  # noqa: F401 - the same serving isolation per test
