"""Version of the scorer library, recorded with every stored score."""

__version__ = "0.2.0"
