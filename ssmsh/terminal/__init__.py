"""ssmsh.terminal."""
