"""The providers: one module per upstream wire format, each a `Provider` (base.py)."""
