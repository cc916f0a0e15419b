"""The PySide6 annotation app: thin widgets over portrait_builder.annotation (no SQL here)."""
