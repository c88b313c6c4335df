"""The consortium operator's ``fedcare`` sub-commands (one module per command)."""
