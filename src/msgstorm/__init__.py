"""msgstorm."""
