"""Security of the memory service: who may call, and what every write passes.

- `identity`: authentication (bearer tokens) and authorization by role.
- `audit`: the append-only audit log of namespace access.
- `secrets`: `find_secrets` finds credentials anywhere in a pattern; a write
  that holds one is refused. A finding names the kind and the field path,
  never the value.
- `pii`: `scrub_pattern` replaces personal data in free text only with tokens
  such as `[EMAIL]`; identifiers, ids, hashes and typed values stay as given.
- `classify`: PUBLIC, INTERNAL or SENSITIVE, from the pattern's content.
- `crypto`: encryption at rest for SENSITIVE patterns.
"""
