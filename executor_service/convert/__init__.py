"""Every conversion between the executor's domain types and the protos."""
