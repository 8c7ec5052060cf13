"""gRPC server plumbing shared by both services.

The executor already depends on the memory service package for search, so the
plumbing both servers need (logging, errors, interceptors, lifecycle) lives
here once instead of twice.
"""
