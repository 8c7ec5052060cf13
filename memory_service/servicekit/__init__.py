"""The service kit both services share: everything a server or a client of an
outside API needs that is not about patterns.

Server plumbing (lifecycle, TLS, interceptors, logging, errors, paging, rate
limits, request decoding, settings), secrets read from settings or files, the
SQLite transaction and cache-file helpers, and the HTTP retry of outbound APIs
(the executor's model runners, the memory service's embeddings). It imports
nothing else of the memory service: an import contract in pyproject.toml
checks that (`make lint`).
"""
