"""devicectl: the service that runs the treatment devices under the safety kernel."""

__version__ = "0.1.0"
