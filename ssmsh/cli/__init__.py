"""ssmsh.cli."""
