import pytest


@pytest.fixture(autouse=True)
def _no_in_process_drainer(settings):
    """A drainer thread an earlier test started in this process reads ``SERVING_SPOOL_DIR`` on every
    round: without this it drains the spool a monitoring test writes itself, in its own database
    connection (outside the test's transaction), and the test's own drain then finds nothing."""
    settings.SERVING_DRAIN_IN_PROCESS = False
    yield
