"""ai-router: one API, one set of keys, limits and metrics in front of many LLM providers."""

__version__ = "0.1.0"
