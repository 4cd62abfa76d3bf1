import pytest

from hub.logging import configure


@pytest.fixture(autouse=True)
def _log_to_real_stderr():
    """CLI tests leave structlog writing to CliRunner's (closed) stream; start each test clean."""
    configure("json", "INFO")
    yield
    configure("json", "INFO")
