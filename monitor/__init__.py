"""qmon: an Asterisk call-center quality monitor."""

__version__ = "0.1.0"
