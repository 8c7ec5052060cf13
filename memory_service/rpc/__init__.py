"""The MemoryService RPCs, one module per job; memory_service.servicer joins them."""
