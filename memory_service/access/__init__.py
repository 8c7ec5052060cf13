"""Access control both services share: the audit log and its buffer, the
denied-calls budget, access settings."""
