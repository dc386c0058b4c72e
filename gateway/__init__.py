"""Chat-routing and FAQ-bot gateway for e-commerce customer service."""

__version__ = "0.1.0"
