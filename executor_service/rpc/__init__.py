"""The ExecutorService RPCs, one module per job; executor_service.servicer joins them."""
