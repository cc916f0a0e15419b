"""Portrait Builder: turn movies into labelled person datasets (Portrait250K style)."""

__version__ = "0.1.0"
