"""Who a caller is, and what every write passes; shared by both services but crypto.

- `identity`: tokens files, authentication (bearer tokens), roles per
  service, delegation (`attune-on-behalf-of`); `principals`: principals,
  actions and authorization by role and namespace.
- `secrets` (with `secret_detectors`, `secret_screen`): `find_secrets` finds
  credentials anywhere in a pattern; a write that holds one is refused. A
  finding names the kind and the field path, never the value.
- `pii`: `scrub_pattern` replaces personal data in free text only with tokens
  such as `[EMAIL]`; identifiers, ids, hashes and typed values stay as given.
- `classify`: PUBLIC, INTERNAL or SENSITIVE, from the pattern's content.
- `crypto`: encryption at rest for SENSITIVE patterns (the memory service's own).

The audit log and the denied-calls budget are in `memory_service.access`.
"""
