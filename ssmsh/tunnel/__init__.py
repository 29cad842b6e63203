"""ssmsh.tunnel."""
