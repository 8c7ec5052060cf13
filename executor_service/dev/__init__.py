"""Development tools: both services as child processes (`make serve`) and the `make run` demo."""
