"""`python -m executor_service.cli`: the `attune` command line."""

from executor_service.cli.app import app

if __name__ == "__main__":
    app()
