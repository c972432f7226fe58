"""The gRPC front door: a thread-pool grpc.server serving ai_router.AIRouter."""
