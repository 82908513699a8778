"""Connection settings every Acme class shares."""

# ruff: noqa: UP045 - kept in the guide's typing style (Optional, List, Dict)

import os
from typing import Optional

DEFAULT_BASE_URL = "https://api.acme.example"


def api_key_from_env(api_key: Optional[str]) -> str:
    """The key passed in, else ``ACME_API_KEY``."""
    key = api_key or os.environ.get("ACME_API_KEY")
    if not key:
        raise ValueError("ACME_API_KEY must be provided as argument or environment variable")
    return key


def auth_headers(api_key: str) -> dict[str, str]:
    """Acme authenticates with a bearer token."""
    return {"Authorization": f"Bearer {api_key}"}
