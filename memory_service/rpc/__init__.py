"""The MemoryService RPCs, one module per job; memory_service.rpc.servicer joins them."""
