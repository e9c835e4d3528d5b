"""Benchmarks of owaction against a canned OpenWhisk and bare forwarders (``make bench``), and a
bounded soak with faults against the emulator (``make soak``)."""
