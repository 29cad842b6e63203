"""ssmsh.aws."""
