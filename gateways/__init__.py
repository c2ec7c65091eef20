"""Gateways: turn the outside world into engine commands and events back into messages."""
