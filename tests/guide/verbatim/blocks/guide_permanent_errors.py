if not api_key:
    raise ValueError("API key required")
