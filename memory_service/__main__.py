"""`python -m memory_service`: serve the memory service until SIGTERM (see server.py)."""

from memory_service.server import main

if __name__ == "__main__":
    main()
