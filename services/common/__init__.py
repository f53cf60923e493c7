"""What every Liaison service shares: logging, configuration parsing, broker access, health."""
