"""File transfer over Session Manager sessions (``ssmsh cp``): the helper sessions
(:mod:`.remote`) and the copy engine (:mod:`.copy`)."""
