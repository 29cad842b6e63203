"""ssmsh.emulator."""
