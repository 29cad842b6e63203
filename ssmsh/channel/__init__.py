"""ssmsh.channel."""
