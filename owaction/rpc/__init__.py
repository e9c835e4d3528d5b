"""The gRPC door: the servicer, the server, its interceptors and the generated code."""
