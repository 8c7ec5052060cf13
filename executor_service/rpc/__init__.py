"""The ExecutorService RPCs, one module per job; executor_service.rpc.servicer joins them."""
