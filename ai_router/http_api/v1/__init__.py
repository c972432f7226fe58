"""The drop-in OpenAI and Anthropic APIs under /v1: each family's endpoints, its translation to
and from the router's types, and the relay of a same-family answer."""
