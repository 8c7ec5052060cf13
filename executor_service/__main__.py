"""`python -m executor_service`: serve the executor until SIGTERM (see server.py)."""

from executor_service.server import main

if __name__ == "__main__":
    main()
