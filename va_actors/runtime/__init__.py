"""The actor runtime: actor host, supervisor, pipeline configuration."""
