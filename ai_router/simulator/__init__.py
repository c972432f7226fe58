"""A fake LLM upstream speaking the real OpenAI Chat Completions and Anthropic Messages wire formats.

Deterministic replies, tunable latency and token pacing, scripted faults (error statuses, slow
answers, connection resets, in-stream errors) and a record of every request, all steerable over
HTTP under `/_sim/`. See server.py for the endpoints.
"""

from .script import Fault, SimulatorSettings
from .server import SimulatorServer, build_server, serve

__all__ = ["Fault", "SimulatorServer", "SimulatorSettings", "build_server", "serve"]
