"""dbroll: deploy and roll back database-backed container apps, schema included."""

__version__ = "0.1.0"
