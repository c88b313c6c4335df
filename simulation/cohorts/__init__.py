"""fedcare."""
